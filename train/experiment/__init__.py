"""The experiment: does a more diverse SFT set beat training constraints?

Chinese-Tiger-LoRA reported that adding constraints during SFT did not help while a more diverse
SFT set did. The grid here tests that: mixtures (``diverse-N``, ``random-N``, ``narrow-N``, same N)
× constraint arms (``none``, ``gravity``, ``kl``) × seeds, each a LoRA fine-tune of the same base,
all scored on one held-out eval set balanced over task types.

Steps (each a plain function in its own module; flows/experiment.py runs them as Prefect tasks):

1. ``prepare``: choose the eval set from the pool, take it and its near-duplicates out of the pool,
   build every mixture (one per strategy and seed: the seed draws the mixture and seeds the
   training) from what is left, and check again that no mixture holds an eval item.
2. ``build_tiny`` (train/tiny.py) when the base is ``tiny``, pretrained on the pool minus the eval set.
3. ``finetune`` for every (mixture, constraint, seed), ``evaluate_base`` once for step 0.
4. ``collect`` → results table, ``plot`` → figures, ``verdict`` → mean differences with 95%
   t-intervals over seeds, said plainly.
"""
from .config import EVAL_COLUMNS, ExperimentConfig, arm_name
from .grid import base_eval_path, evaluate_base, grid, runs_key
from .prepare import eval_records, prepare
from .report import report
from .stats import collect, paired_effect, t_interval
from .verdict import ADAPTER_ZERO_NORM, BASE_LOSS_TOL, collapsed_arms, verdict

__all__ = ["ADAPTER_ZERO_NORM", "BASE_LOSS_TOL", "EVAL_COLUMNS", "ExperimentConfig", "arm_name", "base_eval_path",
           "collapsed_arms", "collect", "eval_records", "evaluate_base", "grid", "paired_effect", "prepare", "report",
           "runs_key", "t_interval", "verdict"]
