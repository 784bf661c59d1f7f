"""The operators, one per file; importing this package registers every one of them (``OPS``).

To add one: a new file in this folder with a class on the right base (``base.py``) under
``@register("its_name")``. Nothing else names operators: every module here is imported below,
and the pipeline asks each class what it can do (``row_local``)."""
import importlib
import pkgutil

from .base import OPS, Deduplicator, Filter, Mapper, Operator, Tagger, register

__all__ = ["OPS", "Deduplicator", "Filter", "Mapper", "Operator", "Tagger", "build_op", "register"]

for _m in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _m != "base":
        importlib.import_module(f"{__name__}.{_m}")


def build_op(name: str, params: dict | None = None) -> Operator:
    """The registered operator ``name`` built with ``params`` (checked by its ``__init__``)."""
    if name not in OPS:
        raise KeyError(f"unknown operator {name!r}; known: {OPS.known()}")
    return OPS[name](**(params or {}))
