from __future__ import annotations

from ..normalize import get_converter
from .base import Mapper, register


@register("chinese_convert_mapper")
class ChineseConvertMapper(Mapper):
    """Traditional → simplified with OpenCC (``t2s`` characters, ``tw2sp`` mainland wording too)."""

    def __init__(self, config: str = "t2s"):
        self.config = config
        self.converter = get_converter(config)  # validates the name

    def transform(self, text: str, field: str, context: str) -> str:
        return self.converter.convert(text)

    def extra_stats(self) -> dict:
        return {"config": self.config}
