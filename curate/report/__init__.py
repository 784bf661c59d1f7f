"""The reports: ``analysis`` computes what no stage stored, ``samples`` the per-sample figures, ``charts`` (Vega-Lite, drawn by the browser) and ``html`` render, and
``run_report`` / ``diversity_report`` put a page together."""
from .analysis import analyse_frame, analyse_groups
from .diversity_report import DIVERSITY_SECTIONS, build_diversity_report
from .run_report import SECTIONS, build_report, build_report_fresh

__all__ = ["DIVERSITY_SECTIONS", "SECTIONS", "analyse_frame", "analyse_groups", "build_diversity_report", "build_report",
           "build_report_fresh"]
