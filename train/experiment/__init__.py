"""The experiment: does a more diverse SFT set beat training constraints?

Chinese-Tiger-LoRA reported that adding constraints during SFT did not help while a more diverse
SFT set did. The grid here tests that: mixtures (``diverse-N``, ``random-N``, ``narrow-N``, same N)
× constraint arms (``none``, ``gravity-<w>``, ``kl-<c>``) × seeds, each a LoRA fine-tune of the same
base on the same number of trained-on tokens, all scored on one held-out eval set balanced over task
types; plus a sweep of constraint weights and longer runs that show degeneration over training.

Steps (each a plain function in its own module; flows/experiment.py runs them as Prefect tasks):

1. ``prepare``: choose the eval set from the pool, remove it and its twins (record and prompt
   near-duplicates) from the pool, build every mixture from what is left and check each with an
   independent exact after-check (``train.evaluate.check_decontaminated``).
2. ``build_tiny`` (train/tiny.py) when the base is ``tiny``, pretrained on the pool minus the eval
   set and its twins.
3. ``finetune`` for every run of ``grid``, ``evaluate_base`` once for step 0.
4. ``collect`` → results, steps and per-item tables; ``verdict``: a positive control first (narrow
   must be worse on the task types it never saw), then paired effects with bootstrap intervals over
   seeds and items; ``plot`` → figures.
"""
from .config import EVAL_COLUMNS, PRESETS, ExperimentConfig, arm_name, preset_values
from .grid import base_eval_path, evaluate_base, grid, runs_key
from .prepare import eval_records, mixture_specs, prepare
from .report import report
from .stats import collect, item_effect, paired_effect, t_interval
from .verdict import ADAPTER_ZERO_NORM, collapsed_arms, positive_control, verdict

__all__ = ["ADAPTER_ZERO_NORM", "EVAL_COLUMNS", "PRESETS", "ExperimentConfig", "arm_name",
           "base_eval_path", "collapsed_arms", "collect", "eval_records", "evaluate_base", "grid", "item_effect",
           "mixture_specs", "paired_effect", "positive_control", "prepare", "preset_values", "report", "runs_key",
           "t_interval", "verdict"]
