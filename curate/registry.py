"""A name → object table that recipes refer into (operators, mixture strategies)."""
from __future__ import annotations

from typing import Any


class Registry(dict):
    """A dict that refuses to give one name to two different objects."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def add(self, name: str, obj: Any) -> Any:
        if name in self and self[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self[name] = obj
        return obj

    def known(self) -> str:
        return ", ".join(sorted(self))
