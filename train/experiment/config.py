"""What one experiment is: the grid's axes, the training and evaluation settings, and run names."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..tiny import TinySpec

EVAL_COLUMNS = ["id", "task_type", "instruction", "input", "output", "history"]


@dataclass
class ExperimentConfig:
    pool_path: str
    out_dir: str
    strategies: tuple[str, ...] = ("diverse", "random", "narrow")
    size: int = 1000  # N: every mixture has this many rows
    constraints: tuple[str, ...] = ("none", "gravity", "kl")
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_per_type: int = 20
    eval_seed: int = 0
    near_dup_threshold: float = 0.7
    base_model: str = "tiny"
    tiny: TinySpec = field(default_factory=TinySpec)
    models_dir: str = "data/processed/models"
    # passed to finetune (see train/finetune.py for the rest of its defaults)
    max_steps: int = 150
    save_steps: int = 75
    micro_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3  # a tiny base takes a larger step than alpaca-lora's 3e-4 for 7B
    cutoff_len: int = 256
    lora_r: int = 8
    kl_coef: float = 1.0
    gravity_weights: tuple[float, float] = (0.7, 0.3)
    template: str = "alpaca_zh"
    device: str = "cpu"

    def finetune_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("max_steps", "save_steps", "micro_batch_size",
                                              "gradient_accumulation_steps", "learning_rate", "cutoff_len",
                                              "lora_r", "kl_coef", "gravity_weights", "template", "device")}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def arm_name(strategy: str, size: int, constraint: str, seed: int) -> str:
    return f"{strategy}-{size}__{constraint}__s{seed}"
