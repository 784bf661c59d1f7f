"""The recipe file, parsed and validated once into typed objects that the flow hands to each stage.

A recipe names the sources, the seed, each stage's operators in order (``- op_name: {params}`` or
``- op_name``) and the mixtures. Loading it checks every operator name and builds every operator
once with its parameters, so a bad step fails here, naming the file and stage, not inside the run.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .mix import MixtureSpec, parse_mixture_specs
from .ops import OPS, Operator

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
# Operator stages in run order: folder name → recipe key. ``01_parse`` reads the raw files.
OPS_STAGES = {"02_normalize": "normalize", "03_filter": "filter", "04_dedupe": "dedupe", "05_diversity": "diversity"}
STAGES = ["01_parse", *OPS_STAGES]
# Stages whose stats also hold figures of their kept rows (see pipeline.STAGE_SUMMARIES).
SUMMARIES = {"05_diversity": "diversity"}


@dataclass(frozen=True)
class Step:
    """One operator of a stage, as the recipe names it, with the recipe's parameters."""

    op: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def row_local(self) -> bool:
        return OPS[self.op].row_local

    def build(self) -> Operator:
        return OPS[self.op](**self.params)


@dataclass(frozen=True)
class Stage:
    """An operator stage: its folder name and its steps in order."""

    name: str
    steps: tuple[Step, ...] = ()

    @property
    def summary(self) -> str | None:
        return SUMMARIES.get(self.name)

    def local_prefix(self) -> int:
        """How many leading steps are row-local: those may run on shards of the input."""
        k = 0
        while k < len(self.steps) and self.steps[k].row_local:
            k += 1
        return k

    def key_params(self, steps: tuple[Step, ...] | None = None) -> dict[str, Any]:
        """What the stage's cache key hashes besides its input and the code."""
        return {"stage": self.name, "steps": [(s.op, s.params) for s in (self.steps if steps is None else steps)]}


@dataclass(frozen=True)
class Recipe:
    path: str
    seed: int
    sources: tuple[str, ...]
    stages: tuple[Stage, ...]
    mixtures: tuple[MixtureSpec, ...]
    data: dict[str, Any]  # the file's mapping (seed filled in): recorded in the manifest, hashed into the run id

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def parse_steps(spec: Any, where: str = "recipe") -> tuple[Step, ...]:
    """``[name | {name: {params}}, ...]`` → steps, each operator known and built once to check its params."""
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise ValueError(f"{where}: expected a list of steps, got {type(spec).__name__}")
    steps = []
    for item in spec:
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            (name, params), = item.items()
            if params is not None and not isinstance(params, dict):
                raise ValueError(f"{where}: step {name!r}: parameters must be a mapping, got {params!r}")
            params = dict(params or {})
        else:
            raise ValueError(f"{where}: bad recipe step {item!r}: expected 'name' or {{name: {{params}}}}")
        if name not in OPS:
            raise ValueError(f"{where}: unknown operator {name!r}; known: {OPS.known()}")
        sig = inspect.signature(OPS[name].__init__).parameters.values()
        known = [q.name for q in sig if q.name != "self" and q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)]
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"{where}: operator {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(known) or 'none'}")
        try:
            OPS[name](**params)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: operator {name!r}: {e}") from e
        steps.append(Step(name, params))
    return tuple(steps)


def load_recipe(path: str | Path | None = None) -> Recipe:
    path = Path(path or DEFAULT_RECIPE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe is a mapping with keys sources, normalize, filter, dedupe, diversity, mixtures")
    data.setdefault("seed", 42)
    stages = tuple(Stage(name, parse_steps(data.get(key, []), f"{path}: {key}")) for name, key in OPS_STAGES.items())
    try:
        mixtures = tuple(parse_mixture_specs(data.get("mixtures", []), default_seed=data["seed"]))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: mixtures: {e}") from e
    return Recipe(str(path), int(data["seed"]), tuple(data.get("sources") or ()), stages, mixtures, data)
