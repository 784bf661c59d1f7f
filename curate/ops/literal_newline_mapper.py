from __future__ import annotations

from ..normalize import fix_literal_newlines
from .base import Mapper, register


@register("literal_newline_mapper")
class LiteralNewlineMapper(Mapper):
    """Written-out ``\\n`` → line break, outside code and quotes, when it occurs ≥ ``min_count`` times."""

    def __init__(self, min_count: int = 2):
        if int(min_count) < 1:
            raise ValueError(f"literal_newline_mapper: min_count must be ≥ 1, got {min_count}")
        self.min_count = int(min_count)

    def transform(self, text: str, field: str, context: str) -> str:
        return fix_literal_newlines(text, self.min_count)
