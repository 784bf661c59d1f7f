"""Find the text a prompt carries inside itself, so the task-type rules can see "a task on a given text".

Alpaca-shaped rows put the context in ``input``; single-field prompts, BELLE-style rows and chat turns
write it into the instruction: after a colon ("以下是一则通知：各位业主…"), in quotes (“…”, 「…」), on
lines of their own (a passage, a list, a dialogue, code) between the request and the question. The
rules judge the *request* and whether a *context* is given, so ``split_inline_context`` cuts the
instruction into the two; ``history_context`` takes the text a user pasted in an earlier chat turn.

Only structure is read (line breaks, colons, quotes, a few label words), never the topic; a piece
becomes context only when it is long enough to be a text (``MIN_CONTEXT`` characters), and a prompt
that is one plain sentence (most of the pool: "小红有25元钱…她还剩多少钱？") is left whole.
"""
from __future__ import annotations

import json
import re

# A span shorter than this is a subject or an example ("画蛇添足", “你赶紧把文件发给我。”), not a text.
MIN_CONTEXT = 15
# A request line longer than this with no request word in it is more likely text than a request.
_MAX_REQUEST_LINE = 80

# Cheap pre-check: without one of these characters an instruction has no inline context.
_MARKS = re.compile(r"[\n：:“”「」『』\"]")
_QUOTED = re.compile(r"“([^“”]*)”|「([^「」]*)」|『([^『』]*)』|\"([^\"\n]*)\"")
# A colon that is not part of a time or ratio ("18:40", "1:2:3").
_COLON = re.compile(r"(?<!\d)[：:]|[：:](?!\d)")
# Labels that name a text ("材料：…", "新闻：…") or a speaker/table row ("顾客：…", "周一：…").
_TEXT_LABEL = re.compile(
    r"^(材料|文章|短文|段落|文本|原文|正文|全文|新闻|内容|背景|上下文|资料|评论|对话|邮件|通知|公告|诗句|歌词|句子|"
    r"输入|文字|片段|故事|简介|说明|参数|信息|数据|passage|text|context|article|input)\s*[：:]",
    re.IGNORECASE,
)
_SHORT_LABEL = re.compile(r"^[^\s：:，,。？?！!]{1,5}[：:]")
# Labels whose text is the request itself ("问题：谁没有…？", "题目：…", "要求：…").
_REQUEST_LABEL = re.compile(r"^(问题|问|提问|题目|要求|任务|指令|请问|答|回答|question|task|instruction|q)\s*[：:]",
                            re.IGNORECASE)
# A head before a colon that points at a text, or asks something of one.
_HEAD_CUE = re.compile(
    r"以下|下面|下列|如下|下文|这段|这篇|这首|这句|这则|这封|这份|这条|这些|这个|这张|该|给定|所给|上面|上述|"
    r"文章|段落|材料|短文|文本|原文|内容|句子|新闻|报道|评论|留言|对话|聊天|通知|公告|邮件|消息|短信|信息|说明|介绍|描述|故事|诗|"
    r"歌词|摘要|简历|合同|条款|记录|纪要|报告|数据|表格|清单|列表|菜单|代码|程序|规定|制度|条文|广告|启事|文案|片段|"
    r"翻译|译|改写|润色|总结|概括|归纳|提炼|提取|抽取|找出|挑出|列出|标出|判断|分类|回答|阅读|读|分析|检查|修改|纠正|改正|"
    r"缩写|扩写|精简|简化|拟|起|写|帮|请|看|表|单|发你|给你|贴|following|below|text|passage|article|translate|summar",
    re.IGNORECASE,
)
# A prompt whose colon introduces a problem to solve, not a text to read ("题目：…", "计算：…").
_PROBLEM_HEAD = re.compile(r"(题目|计算|解方程|求解|应用题|数学题|算式|口算|求|算一下|算算|算一算)$")
# A line that asks: a question, or a request verb near its start.
_ASKS = re.compile(
    r"[？?]\s*$|^(问题|问|请问|请|根据|依据|基于|阅读|读|参考|结合|回答|判断|指出|找出|说明|总结|概括|提取|翻译|"
    r"帮我|帮忙|麻烦|把|将|你|能否|能不能|可以|这|上文|上面|以上|文中|文章|作者|那么|那)"
)
# A closing sentence that asks something of the text before it ("…。帮我为每款产品想两个营销点子。").
_CLOSING_REQUEST = re.compile(r"^(请|帮|麻烦|你|能否|能不能|可以|根据|依据|问|回答|判断|把|将|给|用)")
_SENTENCE_END = re.compile(r"(?<=[。！!？?；;])")
# A greeting or filler that opens a chat turn ("你好！", "嗨，", "哈喽，"): not part of the task.
_GREETING = re.compile(r"^(你好|您好|嗨|哈喽|哈啰|嘿|hello|hi|hey)(呀|啊|哇|哈)?[\s!！,，。.~～]+", re.IGNORECASE)


def strip_greeting(text: str) -> str:
    """The text without an opening greeting ("你好，帮我写…" → "帮我写…"); unchanged when that is all it says."""
    m = _GREETING.match(text)
    return text[m.end():] if m and len(text) > m.end() + 1 else text


def _is_text(span: str) -> bool:
    return len(span.strip()) >= MIN_CONTEXT


# A quoted span is a text when it is a sentence or more of Chinese: a short quote is an expression asked
# about ("“全球变暖是我们这个时代最严重的问题。”这句话…"), a Latin one a phrase ("“raining cats and dogs”").
_QUOTE_MIN = 20
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _is_quoted_text(span: str) -> bool:
    span = span.strip()
    return len(span) >= _QUOTE_MIN and len(_CJK.findall(span)) * 2 >= len(span)


def _split_last_question(tail: str) -> tuple[str, str]:
    """``"材料…。他哪一科最低？"`` → ``("材料…。", "他哪一科最低？")``: a closing question or request
    ("…。帮我为每款产品想两个营销点子。") after a text."""
    parts = [p for p in _SENTENCE_END.split(tail.strip()) if p.strip()]
    if len(parts) >= 2 and len(parts[-1]) <= 60 and (parts[-1].rstrip().endswith(("？", "?")) or _CLOSING_REQUEST.match(parts[-1].strip())):
        body = "".join(parts[:-1])
        if _is_text(body):
            return body, parts[-1].strip()
    return tail, ""


# A question followed by the items it asks about, as an enumeration ("…哪些位于南半球？澳大利亚、日本、…").
_QUESTION_THEN_ITEMS = re.compile(r"^(.{4,60}?[？?])\s*([^？?。]{1,16}(?:、[^？?。、]{1,16}){2,}[。]?)$")


def _split_line(line: str) -> tuple[str, str]:
    """One line → (request, context): quoted texts first, then a colon followed by a long tail."""
    quotes = [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(line)]
    long_quotes = [q for q in quotes if _is_quoted_text(q)]
    if long_quotes:
        request = _QUOTED.sub(lambda m: "" if _is_quoted_text(next(g for g in m.groups() if g is not None)) else m.group(0), line)
        return request.strip(), "\n".join(long_quotes)
    q = _QUESTION_THEN_ITEMS.match(line)
    if q:  # "哪些是高蛋白的？鸡蛋、米饭、牛肉、苹果、豆腐": the items follow the question
        return q.group(1).strip(), q.group(2).strip()
    m = _COLON.search(line)
    if m:
        head, tail = line[:m.start()].strip(), line[m.end():].strip()
        if (head and _is_text(tail) and len(head) <= 60 and not _REQUEST_LABEL.match(line)
                and not _PROBLEM_HEAD.search(head) and (_HEAD_CUE.search(head) or _TEXT_LABEL.match(line))):
            q = _QUOTED.match(tail)
            if q and q.end() < len(tail):  # "下面的句子：“…”用不同的动词重写句子。": the request goes on after the quote
                body, question = q.group(0), tail[q.end():].strip()
            else:
                body, question = _split_last_question(tail)
            if _is_text(body):
                return (head + "：" + (" " + question if question else "")).strip(), body
    return line, ""


_HEADING = re.compile(r"^(#{1,6}\s*([^#\s].{0,11})|【([^】]{1,8})】)\s*$")
_BRACKET_LABEL = re.compile(r"^【([^】]{1,8})】\s*")


def _join_headings(lines: list[str]) -> list[str]:
    """``["### 任务", "对下面的文章…", "### 文章", "城市夜经济…"]`` → ``["任务：对下面的文章…", "文章：城市夜经济…"]``;
    "【材料】…" → "材料：…": headings become the labels the rest of the splitter reads."""
    out: list[str] = []
    pending = ""
    for ln in lines:
        m = _HEADING.match(ln)
        if m:
            pending = (m.group(2) or m.group(3)).strip().rstrip("：:")
            continue
        ln = _BRACKET_LABEL.sub(lambda b: b.group(1) + "：", ln)
        out.append(f"{pending}：{ln}" if pending else ln)
        pending = ""
    return out


def split_inline_context(instruction: str) -> tuple[str, str]:
    """``(request, context)`` of a prompt that holds its own text; ``(instruction, "")`` when it holds none.

    Lines: the first is the request (unless it is itself a labelled text such as "材料：…" or a speaker's
    line), a short last line that asks ("问题：…？", "根据以上制度，…？") joins it, the lines between are
    the context. One line: a quoted span of ``MIN_CONTEXT`` characters or more, or the tail after a
    colon whose head points at a text ("以下是用户评论：…", "翻译成英文：…"), is the context, and a
    closing question after it joins the request.
    """
    text = (instruction or "").strip()
    if len(text) < MIN_CONTEXT + 4 or not _MARKS.search(text):
        return text, ""
    lines = _join_headings([ln.strip() for ln in text.split("\n") if ln.strip()])
    if len(lines) == 1:
        request, context = _split_line(lines[0])
        return (request, context) if context else (text, "")
    req_parts: list[str] = []
    ctx_parts: list[str] = []
    first, rest = lines[0], lines[1:]
    first_is_text = bool(_TEXT_LABEL.match(first) or (_SHORT_LABEL.match(first) and not _REQUEST_LABEL.match(first)
                                                     and _is_text(_COLON.split(first, 1)[-1])))
    last = ""
    if len(rest) >= 2 or (rest and (not _SHORT_LABEL.match(rest[-1]) or _REQUEST_LABEL.match(rest[-1]))):
        cand = rest[-1]
        if (_ASKS.search(cand) and len(cand) <= _MAX_REQUEST_LINE and (not _SHORT_LABEL.match(cand) or _REQUEST_LABEL.match(cand))
                and (len(rest) >= 2 or first_is_text or not _ASKS.search(first) or len(first) > _MAX_REQUEST_LINE)):
            last, rest = cand, rest[:-1]
    if first_is_text:
        ctx_parts.append(first)
    elif last and len(first) > _MAX_REQUEST_LINE and not _ASKS.search(first):
        ctx_parts.append(first)  # a text first, the request after it
    else:
        head_req, head_ctx = _split_line(first)
        req_parts.append(head_req)
        if head_ctx:
            ctx_parts.append(head_ctx)
    ctx_parts.extend(rest)
    if last:
        req_parts.append(last)
    context = "\n".join(ctx_parts).strip()
    request = " ".join(p for p in req_parts if p).strip()
    if not request or not _is_text(context):
        return text, ""
    return request, context


# A follow-up that leans on an earlier turn: short and elliptical, or pointing back ("里面有哪些是水果？").
_FOLLOW_UP_MAX = 30
_POINTS_BACK = re.compile(r"上面|上文|以上|刚才|前面|这段|这篇|这条|这封|这份|这首|这句|它|里面|文中|其中")


def history_context(history: str | list | None, request: str = "") -> str:
    """The text a user pasted in an earlier turn of a chat (their longest turn of ``MIN_CONTEXT``
    characters or more that is not a lone question), or ""; ``history`` as stored (JSON) or a list.
    Only for a follow-up ``request``: one of at most ``_FOLLOW_UP_MAX`` characters or one that points
    back; a longer request stands on its own."""
    if hasattr(history, "tolist"):  # as pandas reads a list column of Parquet: arrays of arrays
        history = history.tolist()
    if not history or history == "[]":
        return ""
    if len(request) > _FOLLOW_UP_MAX and not _POINTS_BACK.search(request):
        return ""
    if isinstance(history, str):
        try:
            history = json.loads(history)
        except ValueError:
            return ""
    best = ""
    for turn in history or []:
        if not isinstance(turn, (list, tuple)) or not turn or not isinstance(turn[0], str):
            continue
        q = turn[0].strip()
        req, ctx = split_inline_context(q)
        text = ctx or q
        if _is_text(text) and not re.fullmatch(r"[^。！!\n]{0,60}[？?]", text) and len(text) > len(best):
            best = text
    return best
