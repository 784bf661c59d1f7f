"""Parse stage: every row of every downloaded file becomes a record, or a quarantined row with a reason.

The format of a file is told by its content, not its name (``belle/dev1K.json`` is JSON lines):

* first non-blank character ``[``: a JSON array. Strict ``json.loads`` first (fast); if that fails,
  a tolerant reader decodes the array value by value (``JSONDecoder.raw_decode``), skipping separators,
  noting repairs (trailing comma, missing ``]``), quarantining each fragment it cannot decode with its
  line, column and byte offset, and resyncing at the next ``{"`` that begins an object.
* anything else: a stream of JSON values (JSON lines, or objects one after another). A fragment that
  cannot be decoded is quarantined and reading resumes at the next line that starts with ``{``. A
  stream holding a single object is either SQuAD-format data (``data[].paragraphs[].qas[]``), a single
  row, or quarantined as ``unknown_top_level_object``.

Row schemas (the ``schema`` counted in stats):

* ``alpaca`` — ``instruction``/``input``/``output``, flags ``+no_input`` (no ``input`` key → ""),
  ``+history`` (``history`` key), ``+en`` (``en_*`` originals). Keys other than the three texts and
  ``history`` are kept in ``extra`` as they are.
* ``seed_task`` — BELLE seed tasks: ``instruction`` + ``instances[{input, output}]``; one record per
  instance; ``extra`` has ``seed_id``, ``seed_name``, ``is_classification``, ``instance`` (its index)
  and ``line`` (JSON lines, 1-based) or ``item`` (arrays, 0-based) of the seed task.
* ``turns`` — ``input``/``output`` are lists of turns (Chinese-Vicuna chat): the last pair is the
  record, the earlier pairs its ``history``.
* ``squad`` — one record per question: instruction = question, input = context, output = first
  answer; ``extra`` has ``qa_id``, ``title``, ``article_id``, ``paragraph_id``, ``answer_start`` and any
  different further answers.

Values: text is kept exactly as in the file (normalising is a later stage). ``None`` → "", numbers and
booleans → their JSON spelling (``42``, ``1.5``, ``true``). A list or object where text is expected is
quarantined as ``wrong_type``: guessing how to flatten structure would invent text. ``history`` is a
list of ``[query, response]`` pairs, or a string holding one as JSON (``""`` → no history); a history
that cannot be read so is kept verbatim in ``extra["history_raw"]``.

Units and ledger: a unit is one would-be record (a row; an instance of a seed task; a SQuAD question;
an undecodable fragment). ``n_in == len(records) + len(quarantine)`` for every file, and ``row`` is the
running unit index, so it is unique within a file. Quarantined units are records too (texts salvaged
where they were strings) with ``extra["raw"]`` holding the raw value or fragment, plus ``reason`` and
a ``detail`` naming source/file, row, position and a short excerpt.

Positions: ``item`` is the 0-based array index; ``line``/``col`` are 1-based as editors show them;
``byte`` is the 0-based offset in the file (a stripped UTF-8 BOM counted). Arrays that parse
strictly give only ``item`` (``json.loads`` keeps no positions); the tolerant reader and streams give all.

Encodings: UTF-8 (a BOM is stripped). A file that is not UTF-8 is read as GB18030 (which contains
GBK and GB2312) when it decodes as such and is not mostly UTF-8; the stats note it as a repair
``decoded_gb18030`` with the first byte that is not UTF-8. A mostly-UTF-8 file with a few stray
bytes keeps its good rows; a row holding such bytes is quarantined as ``invalid_utf8`` (the bytes
shown as ``\\xNN``). UTF-16/32 are told by a byte-order mark or by where their zero bytes fall
(``curate.encodings``). GB18030 is taken only when the text looks like Chinese GBK (Latin-1 decodes
as GBK too); a GBK file with a few bytes that are not GBK keeps its other rows (``invalid_gbk``). A
file that is none of these raises :class:`UndecodableFile` from :func:`parse_file`; :func:`parse_files`
quarantines each of its rows as ``undecodable_file`` (the rows told apart by reading the bytes as
Latin-1), so the ledger counts the rows lost and the run goes on with the other files.

Containment: no file and no row stops a run. A value the JSON reader gives up on for its depth or
size (``RecursionError``, ``MemoryError``) is quarantined as ``too_deeply_nested`` / ``too_large``;
any other failure while reading one value is ``unreadable_row``; any failure on a whole file (a
corrupt Parquet …) quarantines it as ``unreadable_file``, one unit per row it probably held
(``curate.encodings.estimate_rows``; ``estimated_rows`` in the stats). NUL bytes between rows are
blank, not a row. CSV/TSV (by name), Parquet and gzip (by content) are read too; zip and other
archives are quarantined as ``unsupported_format`` with what to do.

Control characters (tab, NUL …) written raw inside a JSON string break the JSON rules but not the
meaning: such a row is decoded anyway, with a repair ``control_character_in_string`` at its
position (the normalize stage removes or maps the characters). Anywhere else they are invalid JSON.

Only :func:`parse_file` raises, for a file that cannot be read (missing: :class:`ParseError`;
undecodable: :class:`UndecodableFile`; an archive: :class:`UnsupportedFile`); :func:`parse_files` never
does on content.
"""
from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from .encodings import (ESCAPE, GZIP_MAGIC, PARQUET_MAGIC, container_kind, estimate_rows, gb_plausible,
                        legacy_guess, sniff_bom, sniff_utf16_32)
from .records import RECORD_COLUMNS, StageResult, drop_frame, empty_drops, make_record, records_frame
from .schemas import SCHEMA_OF_FORMAT, ChatError, chat_key, chat_turns, remap

STAGE = "parse"
TEXT_FIELDS = ("instruction", "input", "output")
ROW_KEYS = frozenset({"instruction", "input", "output", "instances", "history"})
EXCERPT_CHARS = 80
N_EXAMPLES = 3
BOM = "\ufeff"
MAX_DEPTH = 100  # deeper structures in a row are quarantined: later stages must be able to read them back

_WS = re.compile(r"[ \t\n\r\x00]*")  # NUL between rows (padding, a crash) is blank, not a row


class _RepeatedKeys(dict):
    """A JSON object that repeats a key. JSON readers keep the last value and drop the others
    silently; ``repeated`` names the keys, so a row that would lose text that way is quarantined."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        d = _RepeatedKeys(d)
        d.repeated = sorted({k for k, _ in pairs if k in seen or seen.add(k)})
    return d


_DECODER = json.JSONDecoder(object_pairs_hook=_object)
_LENIENT = json.JSONDecoder(strict=False, object_pairs_hook=_object)  # also takes raw control characters inside strings
_ESCAPED_BYTE = re.compile(r"[\udc00-\udcff]")  # a byte that did not decode (errors="tiger-escape")
# Resync points. In an array: a `{"` after a separator or a line break. A literal `{"` cannot occur
# inside a well-formed JSON string (the quote would be escaped), so this rarely lands mid-string.
_RESYNC_ARRAY = re.compile(r'[,\[\n][ \t\r\n]*(\{[ \t\r\n]*")')
# In a stream (JSON lines): the next line that starts with `{`.
_RESYNC_LINE = re.compile(r"\n[ \t\r\x00]*(\{)")
_TRAILING_CLOSE = re.compile(r"\][ \t\r\n]*\Z")


class ParseError(ValueError):
    """A whole file could not be read at all (missing, undecodable). The message names the file."""


class UndecodableFile(ParseError):
    """The file is neither UTF-8/16/32 nor GB18030; ``byte`` is the first offset that is not UTF-8.
    ``data`` (when given) is the whole file, so :func:`parse_files` can count the rows it loses."""

    def __init__(self, name: str, byte: int, reason: str, head: bytes, data: bytes | None = None):
        super().__init__(f"{name}: {reason}")
        self.byte, self.reason, self.head, self.data = byte, reason, head, data


class UnsupportedFile(ParseError):
    """A container this stage does not open (zip, xz …); ``reason`` says what to do with it."""

    def __init__(self, name: str, kind: str, reason: str, head: bytes):
        super().__init__(f"{name}: {reason}")
        self.kind, self.reason, self.head = kind, reason, head


@dataclass
class ParseResult:
    records: list[dict]
    quarantine: list[dict]  # record dicts plus "reason" and "detail"
    n_in: int
    format: str = ""  # json_array, json_lines, squad, json_object, empty, undecodable
    schemas: dict[str, int] = field(default_factory=dict)  # row schema -> records kept
    repairs: list[dict] = field(default_factory=list)  # what the tolerant reader fixed, with where
    encoding: str = "utf-8"  # utf-8, gb18030, utf-16-le …, or with stray bytes ("utf-8+invalid", "gb18030+invalid")
    bytes: int = 0  # size of the file as stored
    estimated: bool = False  # n_in is an estimate: the file was quarantined whole, its rows not read


class _WrongType(Exception):
    def __init__(self, key: str, value: Any):
        super().__init__(f"field {key!r} is a {type(value).__name__}, expected text")


def _text(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)  # true / 42 / 1.5: the value as JSON spells it
    raise _WrongType(key, value)


def _depth_over(value: Any, limit: int) -> bool:
    """Whether lists/objects in ``value`` nest deeper than ``limit`` (without recursing, whatever the depth)."""
    if isinstance(value, dict) and not any(isinstance(x, (dict, list)) for x in value.values()):
        return limit < 1  # a flat record (the common case): depth 1
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            if d > limit:
                return True
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v) if isinstance(x, (dict, list)))
    return False


def _cannot_decode(e: BaseException) -> tuple[str, str]:
    """(reason, why) for a value the JSON reader gave up on for its size or depth, not its syntax."""
    if isinstance(e, RecursionError):
        return "too_deeply_nested", "nested deeper than the JSON reader can follow (RecursionError); flatten it"
    return "too_large", f"the value does not fit in memory ({type(e).__name__}); split the file"


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (null, boolean, number, string, array, object)."""
    for t, name in ((type(None), "null"), (bool, "boolean"), ((int, float), "number"), (str, "string"),
                    (list, "array"), (dict, "object")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def _history(value: Any) -> tuple[list[list[str]], Any]:
    """(pairs, raw): raw is the original value when it could not be read as [query, response] pairs."""
    if value is None or value == "" or value == []:
        return [], None
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [], value
    if isinstance(parsed, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in parsed
    ):
        return [list(p) for p in parsed], None
    return [], value


def _safe(s: str) -> str:
    """Lone surrogates cannot be written as UTF-8: spell them out. A byte that was not UTF-8 becomes
    ``\\xNN``; a broken JSON escape like "\\ud83d" becomes ``\\ud83d``."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        s = _ESCAPED_BYTE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", s)
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


class _Locator:
    """Character offset → line, column, byte offset in the file; incremental because offsets rise."""

    def __init__(self, text: str, byte_offset: int, encoding: str = "utf-8", first_line: int = 1, first_col: int = 1):
        """``text`` starts at byte ``byte_offset`` of the file, on line ``first_line`` at column
        ``first_col`` (a part of a file read a part at a time may start inside a line)."""
        self.text, self.byte_offset, self.first_line, self.first_col = text, byte_offset, first_line, first_col
        # how the file's bytes became this text, to count them back
        self.codec = (encoding.split("+")[0], ESCAPE)
        self._reset()

    def _reset(self) -> None:
        self.pos, self.line, self.line_start, self.byte = 0, self.first_line, 1 - self.first_col, 0

    def at(self, pos: int) -> dict[str, int]:
        if pos < self.pos:
            self._reset()
        seg = self.text[self.pos:pos]
        nl = seg.count("\n")
        if nl:
            self.line += nl
            self.line_start = self.pos + seg.rindex("\n") + 1
        self.byte += len(seg.encode(*self.codec))
        self.pos = pos
        return {"line": self.line, "col": pos - self.line_start + 1, "byte": self.byte + self.byte_offset}


def decode_value(text: str, pos: int) -> tuple[Any, int, int | None]:
    """One JSON value at ``pos``: (value, end, position of the first raw control character inside a
    string, which is read anyway, or None); a real syntax error raises ``JSONDecodeError``."""
    try:
        value, end = _DECODER.raw_decode(text, pos)
        return value, end, None
    except json.JSONDecodeError as e:
        if not e.msg.startswith("Invalid control character"):
            raise
        value, end = _LENIENT.raw_decode(text, pos)  # a further, real syntax error raises
        return value, end, e.pos


def _fmt_loc(loc: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in loc.items())


class _FileParser:
    def __init__(self, path: Path, source: str, rel: str, encoding: str = "utf-8",
                 columns: dict[str, str] | None = None, expect: str | None = None):
        self.path, self.source, self.rel, self.encoding = path, source, rel, encoding
        self.columns = columns  # a user source's column mapping (curate.schemas.remap)
        self.expect = SCHEMA_OF_FORMAT.get(expect or "")  # a user source's declared row shape
        self.records: list[dict] = []
        self.quarantine: list[dict] = []
        self.schemas: Counter = Counter()
        self.repairs: list[dict] = []
        self.n = 0  # running unit index = the record's row
        self.format = ""
        self.lost: tuple[str, str] | None = None  # (reason, why): every unit is quarantined so (whole-file loss)
        self.span: str | None = None  # the text of the value being read, where the reader knows it

    # ---- outcomes --------------------------------------------------------------------------------
    def keep(self, schema: str, loc: dict, instruction: str, input: str, output: str,
             history: list | None, extra: dict, raw: Any) -> None:
        if self.lost is not None:
            self.drop(*self.lost, raw, loc)
            return
        if self.expect and not schema.startswith(self.expect):
            self.drop("wrong_format", f"a {schema} row in a source declared as {self.expect}", raw, loc)
            return
        if _depth_over(extra, MAX_DEPTH) or _depth_over(history, MAX_DEPTH):
            self.drop("too_deeply_nested", f"a field is nested more than {MAX_DEPTH} levels deep", raw, loc)
            return
        try:
            rec = make_record(self.source, self.rel, self.n, instruction, input, output, history, extra)
            rec["history"].encode("utf-8")
            rec["extra"].encode("utf-8")
        except UnicodeEncodeError as e:
            enc = self.encoding.split("+")[0]
            if self.encoding.endswith("+invalid") and _ESCAPED_BYTE.search(e.object[e.start:e.end]):
                reason = {"utf-8": "invalid_utf8", "gb18030": "invalid_gbk"}.get(enc, "invalid_bytes")
                self.drop(reason, f"row holds bytes that are not {enc.upper()} (shown as \\xNN)", raw, loc)
            else:
                self.drop("invalid_unicode", f"text holds a lone surrogate ({e.reason})", raw, loc)
            return
        self.records.append(rec)
        self.schemas[schema] += 1
        self.n += 1

    def drop(self, reason: str, msg: str, raw: Any, loc: dict, fragment: bool = False) -> None:
        """Quarantine one unit; ``raw`` is the decoded value, or (``fragment``) the undecodable text."""
        if self.lost is not None:
            reason, msg = self.lost
        try:
            raw_text = _safe(raw if fragment else json.dumps(raw, ensure_ascii=False, default=repr))
        except (RecursionError, MemoryError) as e:  # the value itself is the problem: show its type only
            raw_text = f"<a JSON {_json_type(raw)} that cannot be shown: {type(e).__name__}>"
        texts = {k: _safe(raw[k]) if isinstance(raw, dict) and isinstance(raw.get(k), str) else ""
                 for k in TEXT_FIELDS}
        rec = make_record(self.source, self.rel, self.n, texts["instruction"], texts["input"], texts["output"],
                          None, {"raw": raw_text, **loc})
        rec["reason"] = reason
        # the message may quote a key or value holding a byte that was not UTF-8: spelled out too
        rec["detail"] = _safe(f"{self.source}/{self.rel} row {self.n} ({_fmt_loc(loc)}): {msg}; "
                              f"raw: {raw_text[:EXCERPT_CHARS]!r}")
        self.quarantine.append(rec)
        self.n += 1

    def repair(self, kind: str, loc: dict) -> None:
        self.repairs.append({"kind": kind, **loc})

    def decode_at(self, text: str, pos: int, where: "_Locator") -> tuple[Any, int]:
        """One JSON value at ``pos``; raw control characters inside strings are repaired, noted."""
        value, end, ctrl = decode_value(text, pos)
        if ctrl is not None:
            self.repair("control_character_in_string", where.at(ctrl))
        return value, end

    # ---- one decoded value -----------------------------------------------------------------------
    def guarded(self, v: Any, loc: dict) -> None:
        """:meth:`value`, contained: if reading the value fails in any way, the units it had produced
        are taken back and the value is quarantined whole as ``unreadable_row``; the file goes on."""
        n, nr, nq, schemas = self.n, len(self.records), len(self.quarantine), self.schemas.copy()
        try:
            self.value(v, loc)
        except Exception as e:  # noqa: BLE001  (one bad row never stops a file)
            del self.records[nr:], self.quarantine[nq:]
            self.n, self.schemas = n, schemas
            self.drop("unreadable_row", f"reading the row failed ({type(e).__name__}: {str(e)[:120]})", v, loc)

    def table_row(self, row: Any, loc: dict) -> None:
        """One row of a CSV/TSV or Parquet file (``curate.tabular``), or the ``csv.Error`` reading it raised."""
        if isinstance(row, Exception):
            self.drop("invalid_csv", f"cannot read the row ({row})", "", loc, fragment=True)
        else:
            self.guarded(row, loc)

    def value(self, v: Any, loc: dict) -> None:
        if isinstance(v, _RepeatedKeys) and ROW_KEYS & set(v.repeated):
            keys = ", ".join(repr(k) for k in v.repeated)
            msg = f"the row repeats the key(s) {keys}: reading it would keep only the last value of each"
            if self.span is not None:
                self.drop("repeated_key", msg, self.span, loc, fragment=True)
            else:
                self.drop("repeated_key", msg, v, loc)
            return
        v = remap(v, self.columns)
        if not isinstance(v, dict):
            self.drop("not_an_object", f"row is a JSON {_json_type(v)}, not an object", v, loc)
        elif chat_key(v):
            self.chat(v, loc)
        elif "instances" in v:
            self.seed_task(v, loc)
        elif isinstance(v.get("input"), list) and isinstance(v.get("output"), list):
            self.turns(v, loc)
        else:
            self.alpaca(v, loc)

    def alpaca(self, v: dict, loc: dict, schema: str | None = None, extra: dict | None = None) -> None:
        try:
            instruction, input, output = (_text(v.get(k), k) for k in TEXT_FIELDS)
        except _WrongType as e:
            self.drop("wrong_type", str(e), v, loc)
            return
        if not instruction and not output:
            self.drop("missing_instruction_and_output",
                      f"no instruction and no output (keys: {', '.join(sorted(map(str, v)))})", v, loc)
            return
        history, history_raw = _history(v.get("history"))
        ex = dict(extra or {})
        ex.update((k, val) for k, val in v.items() if k not in TEXT_FIELDS and k != "history")
        if history_raw is not None:
            ex["history_raw"] = history_raw
        if schema is None:
            flags = [f for f, on in (("en", any(str(k).startswith("en_") for k in v)),
                                     ("history", "history" in v), ("no_input", "input" not in v)) if on]
            schema = "+".join(["alpaca", *flags])
        self.keep(schema, loc, instruction, input, output, history, ex, v)

    def chat(self, v: dict, loc: dict) -> None:
        """A sharegpt / OpenAI-messages row: the last exchange, earlier ones as history (curate.schemas)."""
        key = chat_key(v)
        try:
            system, history, q, a = chat_turns(v[key])
        except ChatError as e:
            self.drop("bad_chat", f"{key}: {e}", v, loc)
            return
        extra = {k: val for k, val in v.items() if k != key}
        if system:
            extra["system"] = system
        extra["turns"] = len(history) + 1
        self.keep(f"chat:{key}", loc, q, "", a, history, extra, v)

    def seed_task(self, v: dict, loc: dict) -> None:
        instances = v["instances"]
        if not isinstance(instances, list):
            self.drop("wrong_type", f"'instances' is a {type(instances).__name__}, expected a list", v, loc)
            return
        if not instances:
            self.drop("no_instances", "seed task with an empty 'instances' list", v, loc)
            return
        seed = {"seed_id": v.get("id"), "seed_name": v.get("name"), "is_classification": v.get("is_classification")}
        seed.update((k, val) for k, val in v.items()
                    if k not in ("id", "name", "is_classification", "instruction", "instances"))
        for k, inst in enumerate(instances):
            iloc = {**loc, "instance": k}
            if not isinstance(inst, dict):
                self.drop("not_an_object", f"instance {k} is a JSON {_json_type(inst)}, not an object",
                          {"instruction": v.get("instruction"), "instance": inst}, iloc)
                continue
            row = {"instruction": v.get("instruction"), "input": inst.get("input"), "output": inst.get("output")}
            extra = {**seed, **{k2: val for k2, val in loc.items() if k2 in ("line", "item")}, "instance": k}
            extra.update((f"instance_{k2}", val) for k2, val in inst.items() if k2 not in ("input", "output"))
            self.alpaca(row, iloc, schema="seed_task", extra=extra)

    def turns(self, v: dict, loc: dict) -> None:
        ins, outs = v["input"], v["output"]
        for key, turns in (("input", ins), ("output", outs)):
            for t in turns:
                if not isinstance(t, str):
                    self.drop("wrong_type", f"a turn of {key!r} is a {type(t).__name__}, expected text", v, loc)
                    return
        if not ins or len(ins) != len(outs):
            self.drop("unpaired_turns", f"{len(ins)} input turns but {len(outs)} output turns", v, loc)
            return
        history = [[q, a] for q, a in zip(ins[:-1], outs[:-1])]
        extra = {k: val for k, val in v.items() if k not in ("input", "output")}
        extra["turns"] = len(ins)
        row = {"instruction": ins[-1], "input": "", "output": outs[-1]}
        try:
            instruction, input, output = (_text(row[k], k) for k in TEXT_FIELDS)
        except _WrongType as e:  # pragma: no cover - turns are checked to be str above
            self.drop("wrong_type", str(e), v, loc)
            return
        if not instruction and not output:
            self.drop("missing_instruction_and_output", "last turn has no input and no output", v, loc)
            return
        self.keep("turns", loc, instruction, input, output, history, extra, v)

    def squad(self, doc: dict) -> None:
        for ai, art in enumerate(doc["data"]):
            aloc = {"article": ai}
            if not isinstance(art, dict) or not isinstance(art.get("paragraphs"), list):
                self.drop("wrong_type", f"data[{ai}] is not an object with a 'paragraphs' list", art, aloc)
                continue
            for pi, para in enumerate(art["paragraphs"]):
                ploc = {**aloc, "paragraph": pi}
                if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                    self.drop("wrong_type", f"data[{ai}].paragraphs[{pi}] is not an object with a 'qas' list",
                              para, ploc)
                    continue
                for qi, qa in enumerate(para["qas"]):
                    qloc = {**ploc, "question": qi}
                    if not isinstance(qa, dict):
                        self.drop("not_an_object", f"question {qi} is a JSON {_json_type(qa)}", qa, qloc)
                        continue
                    answers = qa.get("answers") or []
                    first = answers[0] if isinstance(answers, list) and answers else {}
                    if not isinstance(first, dict):
                        self.drop("wrong_type", "first answer is not an object", qa, qloc)
                        continue
                    raw = {"question": qa.get("question"), "context": para.get("context"), "answer": first.get("text")}
                    try:
                        question = _text(qa.get("question"), "question")
                        context = _text(para.get("context"), "context")
                        answer = _text(first.get("text"), "answers[0].text")
                    except _WrongType as e:
                        self.drop("wrong_type", str(e), raw, qloc)
                        continue
                    if not question and not answer:
                        self.drop("missing_instruction_and_output", "question and answer both empty", raw, qloc)
                        continue
                    extra = {"qa_id": qa.get("id"), "title": art.get("title"), "article_id": art.get("id"),
                             "paragraph_id": para.get("id"), "answer_start": first.get("answer_start")}
                    others = []
                    for a in answers[1:] if isinstance(answers, list) else []:
                        t = a.get("text") if isinstance(a, dict) else a
                        if t != answer and t not in others:
                            others.append(t)
                    if others:
                        extra["other_answers"] = others
                    extra.update((k, val) for k, val in qa.items() if k not in ("id", "question", "answers"))
                    self.keep("squad", qloc, question, context, answer, None, extra, raw)

    # ---- readers ---------------------------------------------------------------------------------
    def parse_text(self, text: str, byte_offset: int) -> None:
        start = _WS.match(text).end()
        if start >= len(text):
            self.format = "empty"
            return
        if text[start] == "[":
            self.format = "json_array"
            try:
                items = _DECODER.decode(text)
                if any(isinstance(v, _RepeatedKeys) for v in items):  # read again, keeping each row's text
                    raise ValueError("a row repeats a key")
            except (ValueError, RecursionError, MemoryError):  # read value by value, containing each
                self.tolerant_array(text, start, _Locator(text, byte_offset, self.encoding))
                return
            for i, item in enumerate(items):
                self.guarded(item, {"item": i})
        else:
            self.stream(text, start, _Locator(text, byte_offset, self.encoding))

    def tolerant_array(self, text: str, start: int, where: _Locator) -> None:
        n, pos, item = len(text), start + 1, 0
        while True:
            pos = _WS.match(text, pos).end()
            if pos >= n:
                self.repair("missing_close_bracket", where.at(pos))
                return
            c = text[pos]
            if c == ",":  # separators are skipped; one right before "]" is the trailing-comma defect
                nxt = _WS.match(text, pos + 1).end()
                if nxt < n and text[nxt] == "]":
                    self.repair("trailing_comma", where.at(pos))
                pos += 1
                continue
            if c == "]":
                end = _WS.match(text, pos + 1).end()
                if end < n:
                    self.drop("junk_after_array", "text after the closing ']' of the array",
                              text[end:], {"item": item, **where.at(end)}, fragment=True)
                return
            try:
                value, end = self.decode_at(text, pos, where)
            except (RecursionError, MemoryError) as e:
                m = _RESYNC_ARRAY.search(text, pos + 1)
                stop = m.start(1) if m else n
                self.drop(*_cannot_decode(e), text[pos:stop].rstrip().removesuffix(","),
                          {"item": item, **where.at(pos)}, fragment=True)
                item, pos = item + 1, stop
                if not m:
                    return
                continue
            except json.JSONDecodeError as e:
                m = _RESYNC_ARRAY.search(text, pos + 1)
                stop = m.start(1) if m else n
                self.broken_item(text, pos, stop, m is None, e, item, where)
                item += 1
                pos = stop
                if not m:
                    return
                continue
            self.span = text[pos:end]
            self.guarded(value, {"item": item, **where.at(pos)})
            self.span = None
            item += 1
            pos = end

    def broken_item(self, text: str, pos: int, stop: int, last: bool, e: json.JSONDecodeError, item: int,
                    where: _Locator) -> None:
        """Quarantine the array item at ``pos`` that does not decode (``e``) as ``invalid_json``, its
        text up to ``stop`` (where the next item starts; with ``last``, the end of ``text``, which
        is then the end of the file: a missing ``]`` is noted)."""
        frag = text[pos:stop].rstrip().removesuffix(",")  # the separator is not the element's
        loc = {"item": item, **where.at(pos)}
        err = where.at(e.pos)
        closed = None
        if last:  # a well-formed "]" closing the file is not part of the broken element
            closed = _TRAILING_CLOSE.search(frag)
            frag = frag[:closed.start()] if closed else frag
        self.drop("invalid_json", f"cannot decode ({e.msg.removesuffix(' at')} at line {err['line']} col {err['col']})",
                  frag, loc, fragment=True)
        if last and not closed:
            self.repair("missing_close_bracket", where.at(len(text)))

    def stream(self, text: str, start: int, where: _Locator) -> None:
        n, pos = len(text), start
        events: list[tuple[str, Any, int]] = []  # decoded values and broken fragments, in file order
        while True:
            pos = _WS.match(text, pos).end()
            if pos >= n:
                break
            try:
                value, end = self.decode_at(text, pos, where)
            except (json.JSONDecodeError, RecursionError, MemoryError) as e:
                m = _RESYNC_LINE.search(text, pos + 1)
                stop = m.start(1) if m else n
                events.append(("fragment", (text[pos:stop].rstrip(), e), pos))
                pos = stop
                continue
            events.append(("value", (value, text[pos:end]) if isinstance(value, _RepeatedKeys) else value, pos))
            pos = end
        if self.single_document(events, where):
            return
        self.format = "json_lines"
        for event in events:
            self.stream_event(event, where)

    def single_document(self, events: list[tuple[str, Any, int]], where: _Locator) -> bool:
        """A stream of one object that is not a row: SQuAD-format data, or quarantined whole."""
        if not (len(events) == 1 and events[0][0] == "value" and isinstance(events[0][1], dict)
                and not ROW_KEYS & events[0][1].keys()):
            return False
        doc = events[0][1]
        data = doc.get("data")
        if isinstance(data, list) and all(isinstance(a, dict) and "paragraphs" in a for a in data[:1]):
            self.format = "squad"
            self.squad(doc)
        else:
            self.format = "json_object"
            keys = ", ".join(sorted(map(str, doc))[:10])
            self.drop("unknown_top_level_object",
                      f"top-level JSON object (keys: {keys}) is neither a row nor SQuAD-format data",
                      doc, where.at(events[0][2]))
        return True

    def stream_event(self, event: tuple[str, Any, int], where: _Locator) -> None:
        """One value of a JSON-lines stream (a row), or a fragment that did not decode, at its place."""
        kind, payload, at = event
        loc = where.at(at)
        if kind == "value":
            if isinstance(payload, tuple):  # a row that repeats a key, with its text
                payload, self.span = payload
            self.guarded(payload, loc)
            self.span = None
        elif not isinstance(payload[1], json.JSONDecodeError):
            self.drop(*_cannot_decode(payload[1]), payload[0], loc, fragment=True)
        else:
            frag, e = payload
            err = where.at(e.pos)
            self.drop("invalid_json", f"cannot decode ({e.msg.removesuffix(' at')} at line {err['line']} col {err['col']})",
                      frag, loc, fragment=True)

    def result(self) -> ParseResult:
        return ParseResult(self.records, self.quarantine, self.n, self.format,
                           dict(sorted(self.schemas.items())), self.repairs, self.encoding)


def decode_bytes(data: bytes, name: str, offset: int = 0) -> tuple[str, str, int | None]:
    """(text, encoding, first byte that is not UTF-8 or None); see "Encodings" above.

    ``offset``: bytes before ``data`` in the file (a stripped BOM), added to reported positions.
    UTF-8 and GB18030 are told apart: GBK text read as UTF-8 is mostly invalid bytes (a GBK
    character makes a valid UTF-8 sequence by chance about one time in twelve), while UTF-8 text
    with a few damaged bytes is mostly valid, so a simple majority decides. GB18030 is accepted only
    when the text looks like Chinese GBK (``curate.encodings.gb_plausible``): Latin-1 decodes as GBK
    too. A few bytes that are not GB18030 in a GBK file are kept as escapes, and only the rows that
    hold them are quarantined (``invalid_gbk``).
    """
    try:
        return data.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError as e:
        first = e.start + offset
    text = data.decode("utf-8", ESCAPE)
    bad = len(_ESCAPED_BYTE.findall(text))
    good = len(text) - len(text.encode("ascii", "ignore")) - bad  # non-ASCII characters that were valid UTF-8
    if good > bad:
        return text, "utf-8+invalid", first
    gb = data.decode("gb18030", ESCAPE)
    if gb_plausible(gb):
        return gb, ("gb18030+invalid" if _ESCAPED_BYTE.search(gb) else "gb18030"), first
    raise UndecodableFile(name, first, f"not valid UTF-8 at byte {first}, nor GB18030/GBK "
                          f"({bad} of {len(data) + offset} bytes are not UTF-8); it looks like "
                          f"{legacy_guess(data)}: convert it to UTF-8 (e.g. iconv -f LATIN1 -t UTF-8), "
                          f"its rows are not read", data[:200], data) from None


def _decode_unicode(data: bytes, codec: str) -> tuple[str, str]:
    """UTF-16/32 text; a damaged code unit is kept as an escape and quarantines only its row."""
    try:
        return data.decode(codec), codec
    except UnicodeDecodeError:
        return data.decode(codec, ESCAPE), codec + "+invalid"


def parse_file(path: Path, source: str, rel: str, columns: dict[str, str] | None = None,
               expect: str | None = None) -> ParseResult:
    """Parse one file of ``source`` (``rel``: its path inside the source's folder, the records' ``file``;
    ``columns``: a user source's mapping of its column names to ours; ``expect``: its declared format).

    Told by content: gzip is decompressed first; Parquet (``PAR1``) and, by name, ``.csv``/``.tsv``
    are read as tables (``curate.tabular``); zip/xz/… raise :class:`UnsupportedFile`; anything else
    is JSON text in UTF-8, UTF-16/32 (byte-order mark, or zero bytes where ASCII would be) or GB18030."""
    path = Path(path)
    name = f"{source}/{rel}"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ParseError(f"{name}: cannot read {path}: {e}") from e
    size, lower, notes = len(data), rel.lower(), []
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise UnsupportedFile(name, "gzip", f"a damaged gzip file ({e}): recover what you can with "
                                  f"`gzip -dc` and put the JSON in the folder", data[:200]) from None
        notes.append("decompressed_gzip")  # positions count the decompressed bytes
        lower = lower.removesuffix(".gz")
    kind = container_kind(data)
    if kind:
        raise UnsupportedFile(name, kind[0], f"a {kind[0]} file, which the parse stage does not open: {kind[1]}",
                              data[:200])
    if data.startswith(PARQUET_MAGIC):
        from .tabular import parquet_rows

        p = _FileParser(path, source, rel, "parquet", columns, expect)
        p.format = "parquet"
        for loc, row in parquet_rows(data):
            p.table_row(row, loc)
        return _finish_file(p, notes, size)
    codec, offset = sniff_bom(data)
    codec = codec or sniff_utf16_32(data)
    if codec and codec != "utf-8":
        text, encoding = _decode_unicode(data[offset:], codec)
        first_bad = None
    else:
        data = data[offset:]
        text, encoding, first_bad = decode_bytes(data, name, offset)
    p = _FileParser(path, source, rel, encoding, columns, expect)
    for kind in notes:
        p.repair(kind, {"byte": 0})
    if encoding.startswith("gb18030"):
        p.repair("decoded_gb18030", {"byte": first_bad})
    elif encoding == "utf-8+invalid":
        p.repair("invalid_utf8_bytes", {"byte": first_bad})
    elif codec and codec != "utf-8":
        p.repair("decoded_" + codec.replace("-", "_"), {"byte": 0})
    if lower.endswith((".csv", ".tsv")):
        from .tabular import csv_rows

        p.format = lower[-3:]
        for loc, row in csv_rows(text, "\t" if lower.endswith(".tsv") else ","):
            p.table_row(row, loc)
    else:
        p.parse_text(text, offset)
    return _finish_file(p, [], size)


def _finish_file(p: "_FileParser", notes: list[str], size: int) -> ParseResult:
    for kind in notes:
        p.repair(kind, {"byte": 0})
    res = p.result()
    res.bytes = size
    assert res.n_in == len(res.records) + len(res.quarantine)
    return res


def _undecodable(f: dict, e: UndecodableFile) -> ParseResult:
    """Every row of a file in an encoding this stage does not read, quarantined as ``undecodable_file``.

    The rows are told apart by reading the bytes as Latin-1 (every byte is a character there, so the
    JSON structure and byte positions survive), so the ledger counts the rows lost, not one unit."""
    p = _FileParser(Path(f["path"]), f["source"], f["file"], "latin-1")
    p.format = "undecodable"
    p.lost = ("undecodable_file", e.reason)
    data = e.data if e.data is not None else e.head
    try:
        p.parse_text(data.decode("latin-1"), max(0, Path(f["path"]).stat().st_size - len(data)))
    except Exception:  # noqa: BLE001  (counting rows is best effort: fall back to an estimate)
        return _lost_whole(f, "undecodable_file", e.reason, data)
    if p.n == 0:
        p.drop("undecodable_file", e.reason, data[:200].decode("latin-1"), {"byte": e.byte}, fragment=True)
    p.format = "undecodable"
    res = p.result()
    res.bytes = len(data)
    return res


def _lost_whole(f: dict, reason: str, why: str, data: bytes | None = None) -> ParseResult:
    """A file that could not be read at all: one quarantined unit per row it probably held
    (``curate.encodings.estimate_rows``), so the loss shows in rows; the first unit shows its head."""
    if data is None:
        try:
            data = Path(f["path"]).read_bytes()
        except (OSError, MemoryError):
            data = b""
    n = estimate_rows(data) if data else 1
    p = _FileParser(Path(f["path"]), f["source"], f["file"])
    p.format = "unreadable"
    for k in range(n):
        raw = data[:200].decode("utf-8", "backslashreplace") if k == 0 else ""
        p.drop(reason, f"{why} (estimated row {k + 1} of {n}, {len(data):,} bytes)", raw, {"estimated_row": k},
               fragment=True)
    res = p.result()
    res.bytes, res.estimated = len(data), True
    return res


def read_file(f: dict) -> ParseResult:
    """:func:`parse_file` on one of ``parse_files``' dicts, contained: a file that cannot be read is
    quarantined whole (its rows counted), never raised."""
    try:
        return parse_file(Path(f["path"]), f["source"], f["file"], f.get("columns"), f.get("format"))
    except UndecodableFile as e:
        return _undecodable(f, e)
    except UnsupportedFile as e:
        return _lost_whole(f, "unsupported_format", e.reason)
    except Exception as e:  # noqa: BLE001  (one file never stops a run: it is quarantined, named)
        why = f"the file could not be read ({type(e).__name__}: {str(e)[:160]}); the run went on without it"
        return _lost_whole(f, "unreadable_file", why)


class ParseTally:
    """The stats of :func:`parse_files`, gathered a file (and a piece of a file's rows) at a time."""

    def __init__(self) -> None:
        self.per_file: dict[str, dict] = {}
        self.schemas: Counter = Counter()
        self.formats: Counter = Counter()
        self.reasons: Counter = Counter()
        self.examples: dict[str, list[dict]] = {}
        self.n_in = self.kept = self.quarantined = 0

    def rows(self, records: list[dict], quarantine: list[dict]) -> None:
        """Rows of the file being read, in file order (the first ``N_EXAMPLES`` per reason are kept)."""
        self.kept += len(records)
        self.quarantined += len(quarantine)
        for q in quarantine:
            self.reasons[q["reason"]] += 1
            ex = self.examples.setdefault(q["reason"], [])
            if len(ex) < N_EXAMPLES:
                ex.append({"id": q["id"], "source": q["source"], "file": q["file"], "row": q["row"], "detail": q["detail"]})

    def file(self, f: dict, res: ParseResult, kept: int, quarantined: int) -> None:
        """A file read to its end: ``res`` its outcome, ``kept``/``quarantined`` its rows' counts."""
        key = f"{f['source']}/{f['file']}"
        self.per_file[key] = {"in": res.n_in, "kept": kept, "quarantined": quarantined,
                              "format": res.format, "schema": ", ".join(res.schemas), "repairs": res.repairs,
                              "bytes": res.bytes, "encoding": res.encoding}
        if res.estimated:
            self.per_file[key]["estimated_rows"] = res.n_in  # rows lost, estimated: the file was not read
        self.schemas.update(res.schemas)
        self.formats[res.format] += 1
        self.n_in += res.n_in

    def stats(self) -> dict[str, Any]:
        return {
            "in": self.n_in, "kept": self.kept, "quarantined": self.quarantined,
            "files": self.per_file,
            "schemas": dict(sorted(self.schemas.items())),
            "formats": dict(sorted(self.formats.items())),
            "reasons": dict(sorted(self.reasons.items())),
            "examples": dict(sorted(self.examples.items())),
        }


def row_frames(records: list[dict], quarantine: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The kept records and the quarantine as the stage's kept and dropped frames."""
    kept = records_frame(records)
    if quarantine:
        qdf = records_frame([{k: q[k] for k in RECORD_COLUMNS} for q in quarantine])
        dropped = drop_frame(qdf, STAGE, pd.Series([q["reason"] for q in quarantine], index=qdf.index, dtype="str"),
                             pd.Series([q["detail"] for q in quarantine], index=qdf.index, dtype="str"))
    else:
        dropped = empty_drops(kept, STAGE)
    return kept, dropped


def parse_files(files: list[dict]) -> StageResult:
    """Parse ``files`` (dicts with ``source``, ``file``, ``path``) in the given order.

    kept: all records, by file then row. dropped: the quarantine (stage "parse", reason, detail).
    stats: ``in``/``kept``/``quarantined`` totals, ``files`` ({"source/file": {in, kept, quarantined,
    format, schema, repairs}}), ``schemas`` (records per row schema), ``formats`` (files per format),
    ``reasons`` and ``examples`` (≤3 per reason).
    """
    records: list[dict] = []
    quarantine: list[dict] = []
    tally = ParseTally()
    for f in tqdm(files, desc="parse", unit="file", disable=None):
        res = read_file(f)
        tally.rows(res.records, res.quarantine)
        tally.file(f, res, len(res.records), len(res.quarantine))
        records.extend(res.records)
        quarantine.extend(res.quarantine)
    kept, dropped = row_frames(records, quarantine)
    result = StageResult(kept, dropped, tally.stats())
    result.check(tally.n_in, STAGE)
    return result


def merge_parse_stats(parts: list[dict]) -> dict:
    """The stats of :func:`parse_files` on runs of files one after another, as one call on all of
    them gives: counts add up, ``files`` in order, examples the first ``N_EXAMPLES`` per reason."""
    out: dict[str, Any] = {"in": 0, "kept": 0, "quarantined": 0, "files": {}}
    sums: dict[str, Counter] = {"schemas": Counter(), "formats": Counter(), "reasons": Counter()}
    examples: dict[str, list[dict]] = {}
    for part in parts:
        for k in ("in", "kept", "quarantined"):
            out[k] += part[k]
        out["files"].update(part["files"])
        for k, c in sums.items():
            c.update(part[k])
        for reason, ex in part["examples"].items():
            have = examples.setdefault(reason, [])
            have.extend(ex[:N_EXAMPLES - len(have)])
    out.update({k: dict(sorted(c.items())) for k, c in sums.items()})
    out["examples"] = dict(sorted(examples.items()))
    return {k: out[k] for k in ("in", "kept", "quarantined", "files", "schemas", "formats", "reasons", "examples")}
