from __future__ import annotations

from ..normalize import clean_html
from .base import Mapper, register


@register("html_tag_mapper")
class HtmlTagMapper(Mapper):
    """Entities unescaped in every field; formatting tags stripped from prose outputs (rules above)."""

    def transform(self, text: str, field: str, context: str) -> str:
        return clean_html(text, context, tags=(field == "output"))
