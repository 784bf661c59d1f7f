"""Inline passages: the text a single-field prompt or a chat turn carries inside itself (issue #14)."""
import json

import pytest

from curate.passage import history_context, split_inline_context, strip_greeting
from curate.tasktype import label_task_type, match_rule, request_and_context

NEWS = "昨天下午，一辆大巴在高速公路上与货车追尾，事故造成3人轻伤，无人死亡。目前事故原因正在调查中。"


@pytest.mark.parametrize("prompt,request_has,context_has", [
    # a request line, the passage, a closing question line
    ("阅读下面这段话，回答问题。\n" + NEWS + "\n问题：有没有人死亡？", ["阅读下面这段话", "有没有人死亡"], [NEWS]),
    # the question first, the passage under it (a poem over several lines)
    ("这首诗表达了诗人怎样的情感？\n《静夜思》\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。",
     ["这首诗表达了"], ["床前明月光", "低头思故乡"]),
    # a labelled passage first, the question after it
    ("文章：" + NEWS + "\n根据文章，事故原因查清了吗？", ["根据文章"], [NEWS]),
    # one line: a head pointing at a text, a colon, the text, a closing question
    ("以下是某学生的成绩：语文88分，数学95分，英语79分，物理91分。他哪一科成绩最低？", ["成绩", "最低"], ["语文88分", "物理91分"]),
    # a quoted passage inside a question
    ("请阅读这则新闻并回答：事故造成了多少人受伤？“" + NEWS + "”", ["多少人受伤"], [NEWS]),
    # Traditional-script corner quotes
    ("這段文字中，作者認為年輕人為什麼不願意回鄉工作？\n「近年來，許多鄉鎮面臨人口外流的問題，年輕人普遍認為家鄉缺少發展機會。」",
     ["作者認為"], ["人口外流"]),
    # a dialogue: speaker lines are text, "问：" is the request
    ("以下是一段对话：\nA：你怎么又迟到了？\nB：路上堵车，我提前半小时出门了都没用。\n问：B为什么迟到？", ["B为什么迟到"], ["A：你怎么又迟到了", "路上堵车"]),
    # code under a chat-style request
    ("你好，我是编程新手，想问一下下面这段代码为什么会报错：\nfor i in range(5)\n    print(i)", ["代码为什么会报错"], ["for i in range(5)"]),
    # a request after the text on the same line
    ("以下是我们公司的几款产品：智能台灯、无线耳机、便携充电宝。帮我为每款产品想两个营销点子。", ["营销点子"], ["智能台灯"]),
    # the request goes on after a quoted sentence
    ("拿下面的句子：“成功的关键是保持专注和决心，”用不同的动词重写句子。", ["重写句子"], ["成功的关键"]),
])
def test_split_finds_the_passage(prompt, request_has, context_has):
    request, context = split_inline_context(prompt)
    assert context, (request, context)
    for part in request_has:
        assert part in request, (part, request)
    for part in context_has:
        assert part in context and part not in request, (part, context)


@pytest.mark.parametrize("prompt", [
    "小红有25元钱，买了3支铅笔，每支2.5元，又买了一个笔记本花了8元，她还剩多少钱？",  # a word problem is one sentence
    "请问下面这个成语是什么意思：画蛇添足",  # a short tail is a subject, not a text
    "解方程：3x + 7 = 22",
    "题目：小明有3个苹果，小红给了他2个，他现在有几个苹果？",  # a problem label, not a text label
    "“raining cats and dogs”这个表达背后的文化含义是什么？",  # a Latin phrase in quotes is asked about
    "把这句话说得更礼貌一些：“你赶紧把文件发给我。”",  # too short to be a passage
    "任务：写一首关于秋天的诗，要求押韵，三节以上。",  # the head names no text: the tail is the request
    "航班于18:40起飞，请问我最晚几点要到机场？",  # a time, not a colon
    "写一首关于秋天的现代诗，要求有三节。",
])
def test_split_leaves_plain_prompts_whole(prompt):
    assert split_inline_context(prompt) == (prompt, "")


def test_greeting_is_not_the_task():
    assert strip_greeting("你好！帮我写一首诗") == "帮我写一首诗"
    assert strip_greeting("嗨，我想问一下") == "我想问一下"
    assert strip_greeting("你好") == "你好"  # all it says: left for the chit-chat rule
    assert label_task_type("你好") == "other"


def test_history_context_only_for_follow_ups():
    hist = json.dumps([["记一下今天的购物清单：牛奶两盒、鸡蛋一打、面包一袋、苹果三斤，还有洗衣液。", "好的，已记下。"]], ensure_ascii=False)
    assert "牛奶两盒" in history_context(hist, "里面有哪些是鸡蛋？")
    assert "牛奶两盒" in history_context(json.loads(hist), "帮我概括一下")
    # a long request that does not point back stands on its own
    assert history_context(hist, "请为一家新开的咖啡店写一段开业宣传文案，风格要温馨一些，字数在两百字左右。") == ""
    # a short earlier question is not a text
    assert history_context([["你知道李清照吗？", "知道，她是宋代词人。"]], "她有哪些代表作？") == ""
    assert history_context("[]", "帮我概括一下") == "" and history_context(None) == "" and history_context("not json", "x") == ""
    # as pandas reads Parquet's list column: arrays of arrays, read as the lists they hold
    import numpy as np

    arr = np.array([np.array(t, dtype=object) for t in json.loads(hist)] + [np.array(["你好", "你好！"], dtype=object)],
                   dtype=object)
    assert history_context(arr, "里面有哪些是鸡蛋？") == history_context(hist, "里面有哪些是鸡蛋？") != ""
    assert history_context(np.array([], dtype=object), "帮我概括一下") == ""


def test_request_and_context_prefers_the_input():
    assert request_and_context("总结这段话。", "一段给定的文字，足够长，可以当作上下文来读。") == (
        "总结这段话。", "一段给定的文字，足够长，可以当作上下文来读。", "input")
    req, ctx, where = request_and_context("下面是一则通知：\n" + NEWS + "\n请问有多少人受伤？")
    assert where == "inline" and NEWS in ctx and "多少人受伤" in req
    assert request_and_context("为什么天空是蓝色的？") == ("为什么天空是蓝色的？", "", "")
    hist = [["我给你一篇短文：北极熊生活在北极地区，主要以海豹为食，海冰减少让它们捕猎更难。", "好的。"]]
    assert request_and_context("为什么捕猎变难了？", "", hist)[2] == "history"


@pytest.mark.parametrize("prompt,expected", [
    # the failure: a question about a passage written in the prompt was open qa / math
    ("阅读下面这段话，回答问题。\n" + NEWS + "\n问题：有没有人死亡？", "closed qa"),
    ("请阅读这则新闻并回答：事故造成了多少人受伤？“" + NEWS + "”", "closed qa"),
    ("阅读材料并回答问题：\n长江是中国第一长河，全长约6300公里，发源于青藏高原的唐古拉山脉，最后在上海注入东海。\n长江最终流入哪里？", "closed qa"),
    # extract / summarization / rewrite see the inline text
    ("从下面这段新闻中提取所有的人名和地名：\n昨天，张伟和李娜在杭州西湖边举行了婚礼，新郎的大学同学王强专程从成都赶来祝贺。", "extract"),
    ("把这段话中的动词全部找出来。\n妹妹跑进厨房，打开冰箱，拿出一盒牛奶，倒进杯子里，一口气喝完了。", "extract"),
    ("这段话讲了什么？用两三句话说明。\n2022年，我国粮食总产量达到13731亿斤，连续8年稳定在1.3万亿斤以上，为稳定经济大局提供了有力支撑。", "summarization"),
    ("请用一句话概括下面这段文字的主要内容：\n近年来，越来越多的农民开始通过直播销售自家的农产品，一些地方的农民收入因此大幅提高。", "summarization"),
    ("帮我把这段话改得更委婉一点：「你的企划书写得太烂了，根本不能用，重新写一份吧。」", "rewrite"),
    # numbers in a passage do not make a math problem; a word problem stays math
    ("请阅读这段说明，回答洗衣机的额定洗涤容量是多少。\n产品名称：滚筒洗衣机；额定洗涤容量：10公斤；额定脱水容量：7公斤。", "closed qa"),
    ("小红有25元钱，买了3支铅笔，每支2.5元，又买了一个笔记本花了8元，她还剩多少钱？", "math"),
    # an exam blank "（ ）" is not a Scratch block; a video script is not a program
    ("下列哪一项是可再生能源？\n（ ）A. 煤炭  B. 石油  C. 风能  D. 天然气", "classification"),
    ("2、4、8、16、（ ），括号里应该填什么数？", "math"),
    ("写一个短视频脚本：一个上班族早上赶地铁的搞笑经历。", "generation"),
    # chat turns: advice to the asker is brainstorming, small talk is other
    ("最近总是失眠，晚上躺在床上脑子停不下来，有什么办法能让我睡得好一点吗？", "brainstorming"),
    ("孩子不爱吃蔬菜怎么办？", "brainstorming"),
    ("如何办理居住证？", "open qa"),
    ("谢谢，我没有其他问题了。", "other"),
    ("哈哈，我刚才是开玩笑的，别当真。", "other"),
])
def test_labels_on_hand_made_prompts(prompt, expected):
    assert label_task_type(prompt) == expected, match_rule(prompt)


def test_follow_up_turn_reads_the_earlier_text():
    hist = [["这是我写的一段产品介绍：这款智能手环可以监测心率、血氧和睡眠质量，支持50米防水，续航长达14天。", "介绍写得很清楚。"]]
    assert label_task_type("帮我用一句话概括一下", "", "", hist) == "summarization"
    assert label_task_type("帮我用一句话概括一下") != "summarization"  # no text anywhere: nothing to summarise
