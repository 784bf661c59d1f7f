"""``probe_zh``: a short prompt template for the probe, added to ``train.prompt.TEMPLATES`` on import.

The alpaca preamble is ~45 characters, longer than most probe items; with a character-level
model every character is a token, so the preamble alone would triple the cost of a run.
The headers are the alpaca_zh idea in a few characters: 指令 / 输入 / 回答.
"""
from __future__ import annotations

from ..prompt import TEMPLATES, Template

PROBE_TEMPLATE = Template(name="probe_zh", preamble_input="", preamble_no_input="", instruction_header="指令：",
                          input_header="输入：", response_header="回答：")
TEMPLATES.setdefault(PROBE_TEMPLATE.name, PROBE_TEMPLATE)
