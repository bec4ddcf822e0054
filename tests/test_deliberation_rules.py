"""The deliberation rules (server/domain/deliberation.py) as cases, one per rule and class of
bad input: forged server fields, wrong types, sizes, controls and lone surrogates, a reply to
a reply, the agenda threshold at its boundary, hidden comments and names by reader."""

from __future__ import annotations

from typing import Any

import pytest

from server.domain import deliberation as rules
from server.domain.scope import Directory, Grid, User

DIRECTORY = Directory()
DIRECTORY.grids.update({"g1": Grid("g1", "网格一", "c1", "s1"),
                        "g9": Grid("g9", "网格九", "c9", "s9")})
HERE = rules.Place("c1", "fm")


def topic(**changes: Any) -> dict[str, Any]:
    return {"title": "楼道灯坏了", "body": "3幢楼道灯坏了一个月。\n请物业修。",
            "request": "req-00000001", **changes}


@pytest.mark.parametrize(("changes", "words"), [
    ({"created_by": "r1"}, "“发起人”由服务器填写"),
    ({"support": 999}, "“附议数”由服务器填写"),
    ({"status": "agenda"}, "“状态”由服务器填写"),
    ({"author_name": "王伟"}, "“署名”由服务器填写"),
    ({"x": 1}, "不允许的字段 x"),
    ({"title": 5}, "“标题”应为文字"),
    ({"title": ["a"]}, "“标题”应为文字"),
    ({"title": "x" * 61}, "“标题”太长"),
    ({"title": "a\u0000b"}, "U+0000"),
    ({"title": "a\ud800"}, "U+D800"),
    ({"title": "a\u202eb"}, "U+202E"),
    ({"title": "a\nb"}, "U+000A"),  # a title is one line; the body has paragraphs
    ({"title": "   "}, "请填写“标题”"),
    ({"body": "y" * 2001}, "“内容”太长"),
    ({"request": "short"}, "“请求编号”"),
    ({"request": "../../etc/passwd"}, "“请求编号”"),
    ({"request": None}, "“请求编号”"),
    ({"compound": "a/b"}, "“小区”应为编号"),
    ({"community": {"$gt": ""}}, "“社区”应为编号"),
])
def test_bad_topics_are_refused_by_label(changes: dict[str, Any], words: str) -> None:
    problems = rules.topic_problems(topic(**changes))
    assert problems and any(words in p.zh for p in problems), problems
    assert all(p.en and "/" not in p.zh for p in problems)


def test_a_good_topic_passes_with_paragraphs_in_its_body() -> None:
    assert rules.topic_problems(topic()) == []
    assert rules.topic_problems(topic(compound="fm", community="c1")) == []


def test_who_raises_as_what() -> None:
    assert rules.raiser_kind(User("r", "resident")) == "resident"
    assert rules.raiser_kind(User("w", "worker", grids=frozenset({"g1"}))) == "grid_branch"
    assert rules.raiser_kind(User("s", "supervisor")) == "community"
    assert rules.raiser_kind(User("s", "supervisor", disabled=True)) is None


def test_who_sees_a_compounds_topic() -> None:
    resident, admin = User("r", "resident"), User("a", "admin")
    assert rules.sees(resident, HERE, frozenset({HERE}), DIRECTORY)
    assert not rules.sees(resident, HERE, frozenset({rules.Place("c1", "other")}), DIRECTORY)
    assert not rules.sees(resident, HERE, frozenset({rules.Place("c9", "fm")}), DIRECTORY)
    assert rules.sees(User("s", "supervisor", communities=frozenset({"c1"})), HERE,
                      frozenset(), DIRECTORY)
    assert not rules.sees(User("s", "supervisor", communities=frozenset({"c9"})), HERE,
                          frozenset(), DIRECTORY)
    assert rules.sees(User("w", "worker", grids=frozenset({"g1"})), HERE, frozenset(), DIRECTORY)
    assert not rules.sees(User("w", "worker", grids=frozenset({"g9"})), HERE, frozenset(),
                          DIRECTORY)
    assert rules.sees(admin, HERE, frozenset(), DIRECTORY)
    assert rules.moderates(admin, "c1", DIRECTORY)
    assert not rules.moderates(User("w", "worker", grids=frozenset({"g1"})), "c1", DIRECTORY)


def test_replies_go_one_level_deep() -> None:
    top = {"_id": "comment:k:1", "topic": "topic:k"}
    reply = {"_id": "comment:k:2", "topic": "topic:k", "parent": "comment:k:1"}
    assert rules.reply_problem(top, "topic:k") is None
    problem = rules.reply_problem(reply, "topic:k")
    assert problem is not None and problem.code == "reply_depth"
    assert rules.reply_problem(top, "topic:other") is not None  # another topic's comment
    assert rules.reply_problem(None, "topic:k") is not None
    assert rules.comment_problems({"body": "好", "request": "req-00000001",
                                   "parent": 3})[0].code == "parent"


def test_the_agenda_at_the_threshold_exactly_and_once() -> None:
    open_topic = {"status": "open", "threshold": 3}
    assert not rules.reaches_agenda(open_topic, 2)
    assert rules.reaches_agenda(open_topic, 3)
    assert not rules.reaches_agenda({**open_topic, "status": "agenda"}, 4)  # moved already
    assert not rules.reaches_agenda({"status": "open", "threshold": "3"}, 9)


def test_the_council_only_for_a_topic_on_the_agenda() -> None:
    body = {"minutes": "会议讨论后决定修灯。", "outcome": "adopted"}
    assert rules.council_problems(body, {"status": "agenda"}) == []
    assert [p.code for p in rules.council_problems(body, {"status": "open"})] == ["not_on_agenda"]
    assert [p.code for p in rules.council_problems(body, {"status": "decided"})] == [
        "not_on_agenda"]
    assert rules.council_problems({**body, "outcome": "maybe"}, {"status": "agenda"})[0].code == (
        "outcome")
    assert rules.closed_problem({"status": "decided"}) is not None


def test_a_hidden_comment_is_its_authors_only_with_the_reason() -> None:
    comment = {"_id": "comment:k:1", "created_by": "ra", "author_name": "王伟", "body": "骂人的话",
               "created_at": "2026-12-01T08:00:00+00:00",
               "hidden": {"reason": "人身攻击", "by": "s1", "at": "2026-12-01T09:00:00+00:00"}}
    seen = rules.shown_comment(comment, "rb")
    assert seen["hidden"] is True and "body" not in seen and "author" not in seen
    own = rules.shown_comment(comment, "ra")
    assert own["body"] == "骂人的话" and own["hidden_reason"] == "人身攻击"
    assert rules.shown_author(comment, False) is None
    assert rules.hide_problems({"reason": "a\u0085b"})[0].code == "text_character"
