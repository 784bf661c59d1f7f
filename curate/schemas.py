"""Row shapes users bring, turned into the alpaca shape the parser reads: a column mapping, and chats
(sharegpt ``conversations`` of ``{from, value}``, OpenAI ``messages`` of ``{role, content}``).

A chat becomes one record: its last user turn and the answer to it are ``instruction``/``output``,
the earlier pairs are ``history``, and a system prompt is kept in ``extra`` (``system``)."""
from __future__ import annotations

from typing import Any

TARGETS = ("instruction", "input", "output", "history", "system")
FORMATS = ("auto", "alpaca", "sharegpt", "messages")
# the parser's row schema each declared format must give (``auto`` and a column mapping take any)
SCHEMA_OF_FORMAT = {"alpaca": "alpaca", "sharegpt": "chat:conversations", "messages": "chat:messages"}
USER_ROLES = {"human", "user"}
ASSISTANT_ROLES = {"gpt", "assistant", "bot", "model"}


class ChatError(ValueError):
    """A chat that is not a sequence of user/assistant turns (the message says why)."""


def check_columns(columns: Any, where: str) -> dict[str, str]:
    """A mapping {instruction|input|output|history|system: the user's column name}."""
    if not isinstance(columns, dict) or not columns:
        raise ValueError(f"{where}: columns must map {', '.join(TARGETS)} to your column names")
    bad = sorted(set(columns) - set(TARGETS))
    if bad:
        raise ValueError(f"{where}: unknown column target(s) {', '.join(map(str, bad))}; the targets are {', '.join(TARGETS)}")
    if "instruction" not in columns and "output" not in columns:
        raise ValueError(f"{where}: columns must name at least the instruction or the output column")
    return {str(k): str(v) for k, v in columns.items()}


def remap(row: Any, columns: dict[str, str] | None) -> Any:
    """The row with the user's columns renamed to ours; the other keys kept (they go to ``extra``)."""
    if not columns or not isinstance(row, dict):
        return row
    taken = set(columns.values())
    out = {k: v for k, v in row.items() if k not in taken and k not in columns}
    for target, col in columns.items():
        if col in row:
            out[target] = row[col]
    return out


def chat_key(row: dict) -> str | None:
    """``conversations`` or ``messages`` when the row is a chat, else None."""
    for key in ("conversations", "messages"):
        if isinstance(row.get(key), list):
            return key
    return None


def chat_turns(turns: list) -> tuple[str, list[list[str]], str, str]:
    """(system, history pairs, last user turn, its answer) of a sharegpt/OpenAI chat."""
    system, pairs, pending = "", [], None
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise ChatError(f"turn {i} is a {type(t).__name__}, not an object")
        role = t.get("from", t.get("role"))
        text = t.get("value", t.get("content"))
        if not isinstance(role, str) or not isinstance(text, str):
            raise ChatError(f"turn {i} needs a role ('from' or 'role') and a text ('value' or 'content')")
        role = role.lower()
        if role == "system":
            if pairs or pending is not None:
                raise ChatError(f"turn {i}: a system prompt after the conversation started")
            system = text
        elif role in USER_ROLES:
            if pending is not None:
                raise ChatError(f"turn {i}: two user turns in a row")
            pending = text
        elif role in ASSISTANT_ROLES:
            if pending is None:
                raise ChatError(f"turn {i}: an answer with no question before it")
            pairs.append([pending, text])
            pending = None
        else:
            raise ChatError(f"turn {i}: unknown role {role!r}")
    if not pairs:
        raise ChatError("no user turn answered by the assistant")
    if pending is not None:
        raise ChatError("the last user turn has no answer")
    (q, a) = pairs[-1]
    return system, pairs[:-1], q, a
