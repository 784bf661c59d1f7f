"""The recipe file, parsed and validated once into typed objects that the flow hands to each stage.

A recipe names the sources, the seed, each stage's operators in order (``- op_name: {params}`` or
``- op_name``), the mixtures, and optionally ``custom_operator_paths`` (Python files of the user's
that register operators). Loading it checks every key, source, operator and parameter and builds
every operator once, so a mistake fails here with the file and line named, not inside the run.
A stage the recipe leaves out runs the default recipe's operators; ``filter: []`` runs none.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .mix import MixtureSpec, parse_mixture_specs
from .ops import OPS, Operator
from .usersources import UserSource, parse_user_source

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
# Operator stages in run order: folder name → recipe key. ``01_parse`` reads the raw files.
OPS_STAGES = {"02_normalize": "normalize", "03_filter": "filter", "04_dedupe": "dedupe", "05_diversity": "diversity"}
STAGES = ["01_parse", *OPS_STAGES]
# Stages whose stats also hold figures of their kept rows (see pipeline._summary).
SUMMARIES = {"05_diversity": "diversity"}
TOP_KEYS = ("seed", "sources", *OPS_STAGES.values(), "mixtures", "custom_operator_paths")


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Step:
    """One operator of a stage, as the recipe names it, with the recipe's parameters."""

    op: str
    params: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # the user's Python file that registers ``op`` (custom operators)

    @property
    def cls(self) -> type[Operator]:
        if self.op not in OPS and self.path:  # a worker process that has not loaded the user's file yet
            load_operator_file(self.path)
        return OPS[self.op]

    @property
    def row_local(self) -> bool:
        return self.cls.row_local

    def build(self) -> Operator:
        return self.cls(**self.params)

    def key(self) -> tuple:
        """What a cache key hashes of this step: a custom operator's file content too."""
        if self.path is None:
            return (self.op, self.params)
        return (self.op, self.params, hashlib.sha256(Path(self.path).read_bytes()).hexdigest())


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
        return {"stage": self.name, "steps": [s.key() for s in (self.steps if steps is None else steps)]}


@dataclass(frozen=True)
class Recipe:
    path: str
    seed: int
    sources: tuple[str, ...]  # names, in the recipe's order: registry sources and the user's
    stages: tuple[Stage, ...]
    mixtures: tuple[MixtureSpec, ...]
    data: dict[str, Any]  # the file's mapping (seed filled in): recorded in the manifest, hashed into the run id
    user_sources: tuple[UserSource, ...] = ()

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def user_source(self, name: str) -> UserSource | None:
        return next((s for s in self.user_sources if s.name == name), None)

    def licenses(self) -> dict[str, str]:
        """Licence of each source: the registry's, and what the recipe says of the user's."""
        from .export import source_licenses

        return {**source_licenses(), **{s.name: s.license for s in self.user_sources}}


def load_operator_file(path: str | Path) -> None:
    """Import a user's Python file; its ``@register`` classes become operators a recipe can name."""
    path = Path(path).resolve()
    name = "tiger_custom_ops_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RecipeError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise RecipeError(f"{path}: the custom operator file fails to import: {type(e).__name__}: {e}") from e


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _lines(text: str) -> dict[Any, int]:
    """Line numbers (1-based) of the recipe's top-level keys and of each item of a list under one."""
    out: dict[Any, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            key = k.value
            out[key] = k.start_mark.line + 1
            if isinstance(v, yaml.SequenceNode):
                for i, item in enumerate(v.value):
                    out[(key, i)] = item.start_mark.line + 1
    return out


def parse_steps(spec: Any, where: str = "recipe", lines: dict | None = None, key: str = "",
                custom: dict[str, str] | None = None) -> tuple[Step, ...]:
    """``[name | {name: {params}}, ...]`` → steps, each operator known and built once to check its params.
    ``where`` names the file; ``lines``/``key`` give each step's line; ``custom``: op name → user file."""
    if spec is None:
        return ()
    at = f"{where}:{lines[key]}" if lines and key in lines else where
    if not isinstance(spec, list):
        raise RecipeError(f"{at}: {key or 'steps'}: expected a list of steps, got {type(spec).__name__}")
    steps = []
    for i, item in enumerate(spec):
        at = f"{where}:{lines[(key, i)]}" if lines and (key, i) in lines else where
        at = f"{at}: {key}" if key else at
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            (name, params), = item.items()
            if params is not None and not isinstance(params, dict):
                raise RecipeError(f"{at}: step {name!r}: parameters must be a mapping, got {params!r}")
            params = dict(params or {})
        else:
            raise RecipeError(f"{at}: bad recipe step {item!r}: expected 'name' or {{name: {{params}}}}")
        if name not in OPS:
            raise RecipeError(f"{at}: unknown operator {name!r}{_suggest(name, OPS)}; known: {OPS.known()}")
        sig = inspect.signature(OPS[name].__init__).parameters.values()
        known = [q.name for q in sig if q.name != "self" and q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)]
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise RecipeError(f"{at}: operator {name!r}: unknown parameter(s) {', '.join(unknown)}"
                              f"{_suggest(unknown[0], known)}; known: {', '.join(known) or 'none'}")
        try:
            OPS[name](**params)
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{at}: operator {name!r}: {e}") from e
        steps.append(Step(name, params, (custom or {}).get(name)))
    return tuple(steps)


def load_recipe(path: str | Path | None = None) -> Recipe:
    """Parse and check a recipe file (default: ``configs/default.yaml``); stages it leaves out are the default's."""
    path = Path(path or DEFAULT_RECIPE)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RecipeError(f"{path}: cannot read the recipe ({e.strerror or e})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with keys {', '.join(TOP_KEYS)}")
    lines = _lines(text)
    where = str(path)
    for k in data:
        if k not in TOP_KEYS:
            raise RecipeError(f"{where}:{lines.get(k, '?')}: unknown key {k!r}{_suggest(k, TOP_KEYS)}; "
                              f"a recipe has {', '.join(TOP_KEYS)}")
    if path.resolve() != DEFAULT_RECIPE.resolve():
        default = yaml.safe_load(DEFAULT_RECIPE.read_text(encoding="utf-8"))
        data = {**{k: v for k, v in default.items() if k in OPS_STAGES.values()}, **data}
    data.setdefault("seed", 42)
    if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
        raise RecipeError(f"{where}:{lines.get('seed', '?')}: seed must be an integer, got {data['seed']!r}")
    sources = data.get("sources") or []
    if not isinstance(sources, list):
        raise RecipeError(f"{where}:{lines.get('sources', '?')}: sources must be a list of source names or "
                          f"mappings (name, path or hf, format, license)")
    from .download import load_registry

    registry = {s.name for s in load_registry()}
    names: list[str] = []
    users: list[UserSource] = []
    for i, item in enumerate(sources):
        at = f"{where}:{lines.get(('sources', i), lines.get('sources', '?'))}"
        if isinstance(item, dict):
            try:
                users.append(parse_user_source(item, path.parent, at))
            except ValueError as e:
                raise RecipeError(str(e)) from e
            name = users[-1].name
            if name in registry:
                raise RecipeError(f"{at}: source {name!r} is a registry source's name; give yours another")
        elif isinstance(item, str):
            name = item
            if name not in registry:
                raise RecipeError(f"{at}: unknown source {name!r}{_suggest(name, registry)}; known: "
                                  f"{', '.join(sorted(registry))}, or a mapping with a path or hf dataset")
        else:
            raise RecipeError(f"{at}: a source is a name or a mapping, got {item!r}")
        if name in names:
            raise RecipeError(f"{at}: source {name!r} is listed twice")
        names.append(name)
    custom: dict[str, str] = {}
    for i, p in enumerate(data.get("custom_operator_paths") or []):
        file = (path.parent / p).resolve()
        if not file.is_file():
            raise RecipeError(f"{where}:{lines.get(('custom_operator_paths', i), '?')}: custom operator file "
                              f"{p!r} not found (paths are relative to the recipe)")
        before = set(OPS)
        load_operator_file(file)
        custom.update({name: str(file) for name, cls in OPS.items()
                       if name not in before or Path(sys.modules[cls.__module__].__file__ or "") == file})
    stages = tuple(Stage(name, parse_steps(data.get(key, []), where, lines, key, custom))
                   for name, key in OPS_STAGES.items())
    try:
        mixtures = tuple(parse_mixture_specs(data.get("mixtures", []), default_seed=data["seed"]))
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where}:{lines.get('mixtures', '?')}: mixtures: {e}") from e
    return Recipe(str(path), int(data["seed"]), tuple(names), stages, mixtures, data, tuple(users))
