"""Deliberation (issue 18) through the real app on the real embedded store: a compound's topics
seen by its residents and staff only (to anyone else the same 404 as no topic), retries and two
phones making one topic, one comment, one support; the server's count moving a topic to the red
council's agenda once at its compound's threshold; replies one level deep; moderation shown to
the author with its reason; every class of bad input refused by label with nothing stored."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic
from test_notices import Town
from test_volunteering import ready_town

from server.domain.scope import DELIBERATION_DB

PREFIX = "/api/deliberation"
TOPICS = PREFIX + "/topics"


async def call(client: TestClient, user: str | None, path: str, body: Any = None,
               method: str = "POST") -> tuple[int, dict[str, Any]]:
    resp = await client.request(method, path, json=body,
                                headers=basic(user) if user else {})
    return resp.status, await resp.json()


async def stored(city: City, prefix: str) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        db = city.couch[DELIBERATION_DB]
        return [dict(db[i]) for i in db if i.startswith(prefix)]
    return await city.run(read)


async def a_topic(client: TestClient, town: Town, request: str) -> str:
    got, answer = await call(client, town.ra, TOPICS, {
        "request": request, "title": "楼道灯坏了", "body": "3幢楼道灯坏了一个月。\n请修。"})
    assert got == 201, answer
    return str(answer["topic"]["id"])


async def test_a_compounds_topics_are_its_own(client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    topic = await a_topic(client, town, f"{town.c1}-raise-1")
    got, again = await call(client, town.ra, TOPICS, {
        "request": f"{town.c1}-raise-1", "title": "另一个标题", "body": "重发"})
    assert got == 200 and again["repeated"] and again["topic"]["id"] == topic
    assert again["topic"]["title"] == "楼道灯坏了"  # the first arrival's, never overwritten
    assert [t["_id"] for t in await stored(city, "topic:")].count(topic) == 1
    got, listed = await call(client, town.rb, TOPICS, method="GET")
    mine = [t for t in listed["topics"] if t["id"] == topic]
    assert got == 200 and mine and mine[0]["author"] == "坊门小区 3幢2单元301"
    assert mine[0]["kind"] == "resident" and mine[0]["support"] == 0
    assert mine[0]["threshold"] == 20 and mine[0]["status"] == "open"
    for user in (town.sup1, town.street_sup, town.admin, town.worker1):
        got, answer = await call(client, user, f"{TOPICS}/{topic}", method="GET")
        assert got == 200 and answer["topic"]["author"] == "坊门小区 3幢2单元301", user
    # Another compound's resident, another community's worker: the topic is not there, and
    # its answer is byte for byte that of a key that never existed (no oracle).
    missing = await call(client, town.rc, f"{TOPICS}/topic:0123456789abcdef", method="GET")
    assert missing[0] == 404 and set(missing[1]) == {"error", "reason"}
    for user in (town.rc, town.worker3):
        assert await call(client, user, f"{TOPICS}/{topic}", method="GET") == missing
        assert (await call(client, user, f"{TOPICS}/{topic}/comments",
                           {"request": "req-00000009", "body": "看看"}))[0] == 404
        got, listed = await call(client, user, TOPICS, method="GET")
        assert topic not in {t["id"] for t in listed["topics"]}
        assert "坊门小区 3幢2单元301" not in str(listed)
    assert (await call(client, None, TOPICS, method="GET"))[0] == 401


async def test_bad_topics_store_nothing(client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    good = {"request": f"{town.c1}-bad-1", "title": "停车位", "body": "车位不够"}
    cases: list[tuple[str, Any, str]] = [
        (town.ra, {**good, "created_by": town.rb}, "“发起人”由服务器填写"),
        (town.ra, {**good, "support": 1000}, "“附议数”由服务器填写"),
        (town.ra, {**good, "status": "agenda"}, "“状态”由服务器填写"),
        (town.ra, {**good, "threshold": 1}, "“附议门槛”由服务器填写"),
        (town.ra, {**good, "title": "\ud800"}, "U+D800"),
        (town.ra, {**good, "title": "a\x1bb"}, "U+001B"),
        (town.ra, {**good, "body": "长" * 2001}, "“内容”太长"),
        (town.ra, {**good, "title": {"$ne": 1}}, "“标题”应为文字"),
        (town.ra, {**good, "request": "x"}, "“请求编号”"),
        (town.ra, {**good, "compound": "c9"}, "“小区”不是您家所在的小区"),
        (town.ra, {**good, "community": town.c3}, "“小区”不是您家所在的小区"),
        (town.sup1, {**good, "community": town.c3, "compound": "c1"}, "不在您的管辖范围内"),
        (town.sup1, {**good, "community": town.c1}, "不在您的管辖范围内"),  # no compound
        (town.ra, [1, 2], ""), (town.ra, "text", ""),
    ]
    before = await stored(city, "topic:")
    for user, body, words in cases:
        got, answer = await call(client, user, TOPICS, body)
        assert got == 400 and set(answer) == {"error", "reason"}, (body, answer)
        assert words in answer["reason"] and " / " in answer["reason"], (words, answer)
        assert "/title" not in answer["reason"]  # by label, never a JSON pointer
    assert await stored(city, "topic:") == before
    got, answer = await call(client, town.worker1, TOPICS, {
        **good, "community": town.c1, "compound": "c1"})
    assert got == 201 and answer["topic"]["kind"] == "grid_branch"


async def test_support_is_counted_once_and_moves_the_topic_once(client: TestClient,
                                                                city: City) -> None:
    town = await ready_town(client, city)
    path = f"{PREFIX}/threshold/{town.c1}/c1"
    assert (await call(client, town.worker1, path, {"support": 2}, "PUT"))[0] == 403
    assert (await call(client, town.sup1, path, {"support": 0}, "PUT"))[0] == 400
    assert (await call(client, town.sup1, path, {"support": True}, "PUT"))[0] == 400
    assert (await call(client, town.sup1, path, {"support": 2}, "PUT"))[0] == 200
    topic = await a_topic(client, town, f"{town.c1}-support-1")
    support = f"{TOPICS}/{topic}/support"
    got, first = await call(client, town.ra, support, {})
    assert got == 201 and first["support"] == 1 and first["status"] == "open"
    # A replay and a second phone of the same account: one support, counted by the server.
    answers = await asyncio.gather(*(call(client, town.ra, support, {}) for _ in range(6)))
    assert {a[0] for a in answers} == {200} and {a[1]["support"] for a in answers} == {1}
    assert (await call(client, town.rb, support, {"support": 99}))[0] == 400  # forged count
    assert (await call(client, town.sup1, support, {}))[0] == 403  # staff do not support
    assert (await call(client, town.rc, support, {}))[0] == 404  # another compound's
    got, second = await call(client, town.rb, support, {})
    assert got == 201 and second["support"] == 2 and second["status"] == "agenda"
    docs = {d["_id"]: d for d in await stored(city, "topic:")}
    assert docs[topic]["agenda_support"] == 2 and docs[topic]["_rev"].startswith("2-")
    assert len(await stored(city, f"support:{topic.removeprefix('topic:')}:")) == 2
    # The council: staff of the community only, once, with the minutes and outcome.
    council = f"{TOPICS}/{topic}/council"
    body = {"minutes": "议事会讨论：物业一周内修灯。", "outcome": "adopted"}
    assert (await call(client, town.ra, council, body))[0] == 403
    assert (await call(client, town.sup1, council, {**body, "outcome": "maybe"}))[0] == 400
    got, decided = await call(client, town.sup1, council, body)
    assert got == 200 and decided["topic"]["status"] == "decided"
    assert decided["topic"]["council"]["outcome"] == "adopted"
    got, again = await call(client, town.sup1, council, {**body, "outcome": "rejected"})
    assert got == 400 and "不在红色议事会议程上" in again["reason"]
    assert (await call(client, town.rb, support, {}))[0] == 200  # stored before: its answer
    got, closed = await call(client, town.ra, f"{TOPICS}/{topic}/comments",
                             {"request": "req-late-0001", "body": "晚了"})
    assert got == 409 and "已由红色议事会议定" in closed["reason"]


async def test_two_residents_racing_past_the_threshold_move_it_once(client: TestClient,
                                                                    city: City) -> None:
    town = await ready_town(client, city)
    assert (await call(client, town.sup1, f"{PREFIX}/threshold/{town.c1}/c1",
                       {"support": 1}, "PUT"))[0] == 200
    topic = await a_topic(client, town, f"{town.c1}-race-1")
    support = f"{TOPICS}/{topic}/support"
    answers = await asyncio.gather(*(call(client, who, support, {})
                                     for who in (town.ra, town.rb) * 3))
    assert sorted(a[0] for a in answers) == [200, 200, 200, 200, 201, 201]
    doc = next(d for d in await stored(city, "topic:") if d["_id"] == topic)
    assert doc["status"] == "agenda" and doc["_rev"].startswith("2-")  # moved exactly once
    assert doc["agenda_support"] in (1, 2)


async def test_comments_one_level_deep_and_moderation(client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    topic = await a_topic(client, town, f"{town.c1}-comment-1")
    other = await a_topic(client, town, f"{town.c1}-comment-2")
    comments = f"{TOPICS}/{topic}/comments"
    got, top = await call(client, town.ra, comments, {"request": "req-top-0001", "body": "同意"})
    assert got == 201 and top["comment"]["author"] == "坊门小区 3幢2单元301"
    got, replayed = await call(client, town.ra, comments, {"request": "req-top-0001",
                                                           "body": "改了"})
    assert got == 200 and replayed["comment"]["body"] == "同意"
    parent = top["comment"]["id"]
    got, reply = await call(client, town.rb, comments, {"request": "req-rep-0001",
                                                        "body": "我也同意", "parent": parent})
    assert got == 201
    got, deeper = await call(client, town.ra, comments, {
        "request": "req-rep-0002", "body": "回复的回复", "parent": reply["comment"]["id"]})
    assert got == 400 and "只能回复一级评论" in deeper["reason"]
    got, elsewhere = await call(client, town.ra, f"{TOPICS}/{other}/comments", {
        "request": "req-rep-0003", "body": "串台", "parent": parent})
    assert got == 400 and "不是本议题的评论" in elsewhere["reason"]
    for body, words in (({"request": "req-bad-0001", "body": "a\ud800"}, "U+D800"),
                        ({"request": "req-bad-0002", "body": "a\u200bb"}, "U+200B"),
                        ({"request": "req-bad-0003", "body": "x" * 501}, "太长"),
                        ({"request": "req-bad-0004", "body": "x", "created_by": town.rb},
                         "由服务器填写"),
                        ({"request": "req-bad-0005", "body": "x", "hidden": None},
                         "由服务器填写")):
        got, answer = await call(client, town.ra, comments, body)
        assert got == 400 and words in answer["reason"] and " / " in answer["reason"], answer
    assert len(await stored(city, f"comment:{topic.removeprefix('topic:')}:")) == 2
    hide = f"{comments}/{reply['comment']['id']}/hide"
    assert (await call(client, town.worker1, hide, {"reason": "人身攻击"}))[0] == 403
    assert (await call(client, town.ra, hide, {"reason": "人身攻击"}))[0] == 403
    assert (await call(client, town.sup1, hide, {"reason": "a\x00"}))[0] == 400
    assert (await call(client, town.sup1, f"{comments}/comment:nope/hide",
                       {"reason": "人身攻击"}))[0] == 404
    got, hidden = await call(client, town.sup1, hide, {"reason": "人身攻击"})
    assert got == 200 and hidden["comment"]["hidden"] is True
    _, seen = await call(client, town.ra, f"{TOPICS}/{topic}", method="GET")
    shown = {c["id"]: c for c in seen["comments"]}[reply["comment"]["id"]]
    assert shown == {"id": reply["comment"]["id"], "parent": parent, "hidden": True,
                     "created_at": shown["created_at"]}
    _, own = await call(client, town.rb, f"{TOPICS}/{topic}", method="GET")
    told = {c["id"]: c for c in own["comments"]}[reply["comment"]["id"]]
    assert told["hidden_reason"] == "人身攻击" and told["body"] == "我也同意"
    kept = await stored(city, reply["comment"]["id"])
    assert kept[0]["body"] == "我也同意" and kept[0]["hidden"]["by"] == town.sup1


async def test_the_same_compound_code_in_another_community_is_another_place(
        client: TestClient, city: City) -> None:
    """Compound codes are a community's own: town two's residents of its own "c1" neither see
    nor support town one's topic; and once decided, a first support is refused (409) while a
    support stored before still answers as stored."""
    town = await ready_town(client, city)
    other = await ready_town(client, city)
    assert (await call(client, town.sup1, f"{PREFIX}/threshold/{town.c1}/c1",
                       {"support": 1}, "PUT"))[0] == 200
    topic = await a_topic(client, town, f"{town.c1}-twin-1")
    for act in ((f"{TOPICS}/{topic}", None, "GET"), (f"{TOPICS}/{topic}/support", {}, "POST")):
        got, answer = await call(client, other.ra, act[0], act[1], act[2])
        assert got == 404 and "坊门小区" not in str(answer), answer
    assert (await call(client, town.ra, f"{TOPICS}/{topic}/support", {}))[0] == 201
    assert (await call(client, town.sup1, f"{TOPICS}/{topic}/council",
                       {"minutes": "议定。", "outcome": "referred"}))[0] == 200
    got, late = await call(client, town.rb, f"{TOPICS}/{topic}/support", {})
    assert got == 409 and "已由红色议事会议定" in late["reason"]
    assert (await call(client, town.ra, f"{TOPICS}/{topic}/support", {}))[0] == 200
    assert len(await stored(city, f"support:{topic.removeprefix('topic:')}:")) == 1
