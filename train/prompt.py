"""Prompt templates and tokenisation with label masking (alpaca-lora's ``generate_and_tokenize_prompt``).

A record becomes ``body + marker + response``: the body is the preamble, any earlier turns
(``history``), the instruction and the input; the marker is the response header
("### 回复：" / "### Response:"). The three parts are tokenised separately and concatenated, so the
prompt/response boundary is exact (a joint BPE pass could merge tokens across it) and training and
generation see the same prompt ids. With ``train_on_inputs=False`` the body and marker get label
-100 and only the response (and its EOS) is learnt.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

IGNORE_INDEX = -100  # label value that torch's cross-entropy skips


@dataclass(frozen=True)
class Template:
    name: str
    preamble_input: str
    preamble_no_input: str
    instruction_header: str
    input_header: str
    response_header: str

    def body(self, instruction: str, input: str = "", history: list | None = None) -> str:
        """Everything before the response header."""
        parts = [self.preamble_input if input else self.preamble_no_input]
        for turn in history or []:
            q, a = (list(turn) + ["", ""])[:2]
            parts.append(f"{self.instruction_header}\n{q}\n\n{self.response_header}\n{a}\n\n")
        parts.append(f"{self.instruction_header}\n{instruction}")
        if input:
            parts.append(f"\n\n{self.input_header}\n{input}")
        return "".join(parts)

    @property
    def marker(self) -> str:
        return f"\n\n{self.response_header}\n"

    def prompt(self, instruction: str, input: str = "", history: list | None = None) -> str:
        return self.body(instruction, input, history) + self.marker


TEMPLATES: dict[str, Template] = {
    # alpaca-lora's templates/alpaca.json, word for word.
    "alpaca": Template(
        name="alpaca",
        preamble_input=("Below is an instruction that describes a task, paired with an input that provides "
                        "further context. Write a response that appropriately completes the request.\n\n"),
        preamble_no_input=("Below is an instruction that describes a task. "
                           "Write a response that appropriately completes the request.\n\n"),
        instruction_header="### Instruction:",
        input_header="### Input:",
        response_header="### Response:",
    ),
    # The same template in Chinese, as the Chinese alpaca-lora forks use it.
    "alpaca_zh": Template(
        name="alpaca_zh",
        preamble_input="下面是一个描述任务的指令，并配有一个提供更多上下文的输入。请编写一个适当完成该请求的回复。\n\n",
        preamble_no_input="下面是一个描述任务的指令。请编写一个适当完成该请求的回复。\n\n",
        instruction_header="### 指令：",
        input_header="### 输入：",
        response_header="### 回复：",
    ),
}


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise KeyError(f"unknown template {name!r}; known: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[name]


def _history(value) -> list:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return list(value or [])


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def encode_prompt(tokenizer, template: Template, record: dict, max_len: int) -> list[int]:
    """Prompt ids (body + marker) for generation, the body cut at its end to fit ``max_len``."""
    body, marker = _ids(tokenizer, template.body(record.get("instruction", ""), record.get("input", ""),
                                                 _history(record.get("history")))), _ids(tokenizer, template.marker)
    return body[: max(0, max_len - len(marker))] + marker


def tokenize_example(tokenizer, template: Template, record: dict, cutoff_len: int = 256,
                     train_on_inputs: bool = False, add_eos: bool = True) -> dict[str, list[int]]:
    """``{input_ids, attention_mask, labels}`` for one alpaca record, at most ``cutoff_len`` tokens.

    When too long, the response keeps at least half the budget (a sample whose response is cut
    away entirely teaches nothing); the body is cut at its end, the marker always stays whole.
    """
    body = _ids(tokenizer, template.body(record.get("instruction", ""), record.get("input", ""),
                                         _history(record.get("history"))))
    marker = _ids(tokenizer, template.marker)
    response = _ids(tokenizer, record.get("output", ""))
    if add_eos and tokenizer.eos_token_id is not None:
        response = response + [tokenizer.eos_token_id]
    if len(marker) >= cutoff_len:
        raise ValueError(f"cutoff_len {cutoff_len} leaves no room after the {len(marker)}-token response marker")
    if len(body) + len(marker) + len(response) > cutoff_len:
        body_room = max(cutoff_len - len(marker) - len(response), cutoff_len // 2 - len(marker), 0)
        body = body[:body_room]
        response = response[: cutoff_len - len(body) - len(marker)]
    prompt = body + marker
    input_ids = prompt + response
    labels = list(input_ids) if train_on_inputs else [IGNORE_INDEX] * len(prompt) + response
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}
