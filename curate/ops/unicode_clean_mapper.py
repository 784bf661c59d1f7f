from __future__ import annotations

from ..normalize import clean_unicode
from .base import Mapper, register


@register("unicode_clean_mapper")
class UnicodeCleanMapper(Mapper):
    """NFC and the unicode rules of the module docstring; Chinese full-width punctuation is kept."""

    def transform(self, text: str, field: str, context: str) -> str:
        return clean_unicode(text)
