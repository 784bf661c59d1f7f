from __future__ import annotations

from ..normalize import normalize_whitespace
from .base import Mapper, register


@register("whitespace_normalization_mapper")
class WhitespaceNormalizationMapper(Mapper):
    """CRLF → LF, trailing spaces off, ≤2 blank lines in a row, fields stripped; indentation kept."""

    def transform(self, text: str, field: str, context: str) -> str:
        return normalize_whitespace(text)
