"""Training constraints: what is added to the cross-entropy during LoRA SFT, chosen by name.

Each arm maps ``(model, inputs, ce)`` to ``(loss, parts)``; ``parts`` are detached floats for the log.

- ``none``: the loss is the cross-entropy.
- ``gravity`` (Chinese-Tiger-LoRA's): ``w_ce * ce + w_reg * mean_i ||M_i||_F`` over every LoRA
  matrix ``M_i`` (each layer's A and each layer's B counted once), pulling the adapters towards
  zero, i.e. the adapted model towards the base. Default weights 0.7 / 0.3.
- ``kl``: ``ce + coef * KL(p_adapted || p_base)`` per predicted token, where the base is the same
  model with its adapters disabled (no gradient), averaged over the positions the CE is taken on.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .prompt import IGNORE_INDEX


def lora_matrices(model) -> list[torch.Tensor]:
    """Every LoRA A and B weight of ``model``, in a fixed (module) order."""
    mats = [p for n, p in model.named_parameters() if ("lora_A" in n or "lora_B" in n) and n.endswith("weight")]
    if not mats:
        raise ValueError("model has no LoRA matrices (lora_A / lora_B); wrap it with peft first")
    return mats


def gravity_term(model) -> torch.Tensor:
    """Mean Frobenius norm of the LoRA matrices."""
    return torch.stack([m.float().norm(p="fro") for m in lora_matrices(model)]).mean()


def adapter_delta_norm(model) -> float:
    """Mean over adapted modules of ``||scaling · B @ A||_F``: how far the adapters move the base's
    weights (0 when every B is zero, as at the start, or when a penalty has driven them back)."""
    norms = []
    for module in model.modules():
        if hasattr(module, "lora_A") and hasattr(module, "lora_B") and hasattr(module, "scaling"):
            for name in module.lora_A:
                a, b = module.lora_A[name].weight.float(), module.lora_B[name].weight.float()
                with torch.no_grad():
                    norms.append(float((module.scaling[name] * (b @ a)).norm(p="fro")))
    if not norms:
        raise ValueError("model has no LoRA modules; wrap it with peft first")
    return sum(norms) / len(norms)


def response_logits(model, inputs: dict) -> torch.Tensor:
    """Next-token logits at the labelled positions only, ``[labelled tokens, vocab]``, in row-major
    order: the backbone runs on every position, the output head only where the loss is taken. On a
    tiny model the head is a third of the compute and most positions are prompt. Valid for models
    whose head is a plain linear map of the last hidden state (Bloom, LLaMA, Qwen, GPT-2...)."""
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = hf.base_model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"))[0]
    mask = inputs["labels"][:, 1:] != IGNORE_INDEX  # position t predicts token t+1
    return hf.get_output_embeddings()(hidden[:, :-1][mask])


def response_ce(model, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy over the labelled tokens, their logits): the causal-LM loss of
    ``model(**inputs).loss`` computed through ``response_logits``."""
    logits = response_logits(model, inputs)
    targets = inputs["labels"][:, 1:][inputs["labels"][:, 1:] != IGNORE_INDEX]
    if not len(targets):
        return logits.sum() * 0.0, logits
    return F.cross_entropy(logits.float(), targets), logits


def kl_to_base(model, inputs: dict, logits: torch.Tensor) -> torch.Tensor:
    """Mean per-token KL(adapted || base) over the positions that carry a label.

    ``logits`` are the adapted model's for ``inputs``, either at every position ``[batch, seq, vocab]``
    or at the labelled positions only (``response_logits``); the base's come from a second forward
    with the adapters switched off, without gradient (the base is frozen anyway).
    """
    mask = inputs["labels"][:, 1:] != IGNORE_INDEX  # position t predicts token t+1, as in the CE
    with torch.no_grad(), model.disable_adapter():
        if logits.dim() == 2:
            logq = F.log_softmax(response_logits(model, inputs).float(), dim=-1)
        else:
            base = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")).logits
            logq = F.log_softmax(base[:, :-1].float(), dim=-1)[mask]
    logp = F.log_softmax((logits if logits.dim() == 2 else logits[:, :-1][mask]).float(), dim=-1)
    if logp.numel() == 0:
        return logits.new_zeros((), dtype=torch.float32)
    return (logp.exp() * (logp - logq)).sum(-1).mean()


class Constraint:
    name = "base"

    def __call__(self, model, inputs: dict, outputs, ce: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError


class NoConstraint(Constraint):
    name = "none"

    def __call__(self, model, inputs, outputs, ce):
        return ce, {"ce": float(ce.detach())}


class Gravity(Constraint):
    name = "gravity"

    def __init__(self, ce_weight: float = 0.7, reg_weight: float = 0.3):
        self.ce_weight, self.reg_weight = float(ce_weight), float(reg_weight)

    def __call__(self, model, inputs, outputs, ce):
        reg = gravity_term(model)
        loss = self.ce_weight * ce + self.reg_weight * reg
        return loss, {"ce": float(ce.detach()), "gravity": float(reg.detach())}


class KLToBase(Constraint):
    name = "kl"

    def __init__(self, coef: float = 1.0):
        self.coef = float(coef)

    def __call__(self, model, inputs, outputs, ce):
        kl = kl_to_base(model, inputs, outputs.logits)
        return ce + self.coef * kl, {"ce": float(ce.detach()), "kl": float(kl.detach())}


CONSTRAINTS = {c.name: c for c in (NoConstraint, Gravity, KLToBase)}


def build_constraint(name: str, gravity_weights: tuple[float, float] = (0.7, 0.3), kl_coef: float = 1.0) -> Constraint:
    if name == "none":
        return NoConstraint()
    if name == "gravity":
        return Gravity(*gravity_weights)
    if name == "kl":
        return KLToBase(kl_coef)
    raise KeyError(f"unknown constraint {name!r}; known: {', '.join(CONSTRAINTS)}")


def parse_arm(arm: str) -> tuple[str, float | None]:
    """``none`` → (none, None); ``gravity-0.03`` → (gravity, 0.03); ``kl-1`` → (kl, 1.0)."""
    name, _, w = arm.partition("-")
    if name not in ("none", "gravity", "kl") or (name == "none") != (w == ""):
        raise ValueError(f"arm {arm!r}: expected none, gravity-<weight> or kl-<coefficient>")
    weight = float(w) if w else None
    if name == "gravity" and not 0 < weight < 1:
        raise ValueError(f"arm {arm!r}: the gravity weight is the penalty's share of the loss, in (0, 1)")
    return name, weight


def arm_kwargs(arm: str) -> dict[str, Any]:
    name, w = parse_arm(arm)
    kw: dict[str, Any] = {"constraint": name}
    if name == "gravity":
        kw["gravity_weights"] = (1.0 - w, w)  # (cross-entropy, mean LoRA Frobenius norm), as 0.7 / 0.3
    if name == "kl":
        kw["kl_coef"] = w
    return kw
