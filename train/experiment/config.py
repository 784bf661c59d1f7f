"""What one experiment is: the grid's axes, the training and evaluation settings, presets and run names."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..constraints import parse_arm
from ..tiny import TinySpec

EVAL_COLUMNS = ["id", "task_type", "instruction", "input", "output", "history"]

# Every linear layer of a Bloom block. With the attention projection alone, a 4.7M-parameter base
# moves its eval loss by ~0.06 nats in 150 steps and the arms differ by thousandths.
LORA_ALL = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")


@dataclass
class ExperimentConfig:
    pool_path: str
    out_dir: str
    strategies: tuple[str, ...] = ("diverse", "random", "narrow")
    size: int = 1000  # N: every mixture has this many rows
    # Constraint arms of the main grid: none, gravity-<weight> (the penalty's share: 0.3 is the
    # original's 0.7·CE + 0.3·norm), kl-<coefficient>. Every arm runs on every mixture and seed.
    constraints: tuple[str, ...] = ("none", "gravity-0.3", "kl-1")
    seeds: tuple[int, ...] = (0, 1, 2)
    # The constraint sweep: more weights, on `sweep_strategy` and `sweep_seeds` only.
    sweep: tuple[str, ...] = ("gravity-0.1", "gravity-0.03", "gravity-0.01", "kl-0.1")
    sweep_strategy: str = "diverse"
    sweep_seeds: tuple[int, ...] = (0,)
    # Degeneration over training: `degeneration_strategy` at each size, `degeneration_steps` long,
    # a checkpoint (eval loss, repetition of generations) every `degeneration_save_steps`.
    degeneration_sizes: tuple[int, ...] = (1000, 5000)
    degeneration_strategy: str = "diverse"
    degeneration_arms: tuple[str, ...] = ("none",)
    degeneration_steps: int = 600
    degeneration_save_steps: int = 50
    eval_per_type: int = 20
    eval_seed: int = 0
    near_dup_threshold: float = 0.7  # whole-record MinHash Jaccard for decontamination
    base_model: str = "tiny"
    tiny: TinySpec = field(default_factory=TinySpec)
    models_dir: str = "data/processed/models"
    # passed to finetune (see train/finetune.py for the rest of its defaults)
    response_token_budget: int = 60_000  # tokens the loss is taken on, per run; 0: max_steps instead
    max_steps: int = 150
    save_steps: int = 50
    micro_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-3  # a tiny base takes a larger step than alpaca-lora's 3e-4 for 7B
    warmup_steps: int = 10
    cutoff_len: int = 256
    train_on_inputs: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    target_modules: tuple[str, ...] = LORA_ALL
    template: str = "alpaca_zh"
    gen_max_new_tokens: int = 48
    device: str = "cpu"
    threads: int = 1  # torch threads per run; runs go in parallel on the flow's task runner (--workers)
    bootstrap: int = 2000  # resamples of the paired bootstrap over seeds and eval items

    def __post_init__(self) -> None:
        for arm in (*self.constraints, *self.sweep, *self.degeneration_arms):
            parse_arm(arm)
        if "none" not in self.constraints:
            raise ValueError("constraints: the grid needs the 'none' arm (every effect is measured against it)")

    def finetune_kwargs(self) -> dict[str, Any]:
        keys = ("response_token_budget", "max_steps", "save_steps", "micro_batch_size", "gradient_accumulation_steps",
                "learning_rate", "warmup_steps", "cutoff_len", "train_on_inputs", "lora_r", "lora_alpha",
                "target_modules", "template", "gen_max_new_tokens", "device", "threads")
        return {k: getattr(self, k) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


# Named settings, applied before the user's own flags. `cpu` is the dataclass defaults (the
# 2-core CPU budget); `original` is Chinese-Tiger-LoRA's training setup as its README gives it;
# `gpu` is the same grid on bloomz-560m for a user with the weights and one GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "original": {"learning_rate": 5e-5, "warmup_steps": 100, "train_on_inputs": True, "lora_r": 8, "lora_alpha": 16,
                 "target_modules": ("query_key_value",), "constraints": ("none", "gravity-0.3"), "sweep": ()},
    "gpu": {"base_model": "bigscience/bloomz-560m", "device": "cuda", "size": 5000, "response_token_budget": 600_000,
            "learning_rate": 3e-4, "micro_batch_size": 16, "save_steps": 100, "degeneration_sizes": (1000, 5000, 20000),
            "degeneration_steps": 2000, "degeneration_save_steps": 100},
}


def preset_values(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    known = {f.name for f in fields(ExperimentConfig)}
    bad = set(PRESETS[name]) - known
    if bad:  # a typo in a preset must not pass silently
        raise ValueError(f"preset {name!r} sets unknown fields {sorted(bad)}")
    return dict(PRESETS[name])


def arm_name(strategy: str, size: int, constraint: str, seed: int) -> str:
    return f"{strategy}-{size}__{constraint}__s{seed}"
