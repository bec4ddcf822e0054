"""Questionnaires (issue 16) through the real app on the real embedded store: who publishes,
bad input refused by label with nothing stored, one answer per household decided by the order
the server receives them (a retry is the same answer, a family member's later one is told so,
two family phones racing count once), a closed questionnaire storing nothing, an anonymous
questionnaire keeping who apart from what, results with the small-count rule, the export safe
and masked, versions, the phone holding the definition, and the XLSForm import."""

from __future__ import annotations

import asyncio
import base64
import datetime
import io
import json
import secrets
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user
from openpyxl import Workbook, load_workbook
from test_notices import Town, a_resident
from test_volunteering import ready_town, stored_ids

from server.domain.scope import CLAIMS_DB, RESIDENTS_DB
from server.sync.questionnaires import Questionnaires
from server.web.keys import QUESTIONNAIRES, RESIDENT_INDEX

PREFIX = "/api/questionnaires"


def later(days: float) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)).isoformat(
        timespec="seconds")


def draft(town: Town, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "停车满意度调查", "audience": {"level": "community", "codes": [town.c1]},
        "per": "household", "anonymous": False, "closes_at": later(3),
        "questions": [
            {"name": "car", "label": "家里有车吗", "kind": "single", "required": True,
             "choices": [{"value": "yes", "label": "有"}, {"value": "no", "label": "没有"}]},
            {"name": "spot", "label": "停车位够用吗", "kind": "rating", "required": True,
             "show_if": {"question": "car", "op": "=", "value": "yes"}},
            {"name": "note", "label": "其他建议", "kind": "text"}]}
    body.update(changes)
    return body


async def post(client: TestClient, user: str | None, path: str,
               body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(path, json=body, headers=basic(user) if user else {})
    return resp.status, await resp.json()


async def published(client: TestClient, town: Town, **changes: Any) -> dict[str, Any]:
    got, answer = await post(client, town.sup1, PREFIX, draft(town, **changes))
    assert got == 201, answer
    return answer["questionnaire"]


def answer_body(doc: dict[str, Any], request: str, answers: Any, **more: Any) -> dict[str, Any]:
    return {"request": request, "version": doc["version"], "answers": answers, **more}


async def send(client: TestClient, user: str, doc: dict[str, Any], request: str,
               answers: Any, **more: Any) -> tuple[int, dict[str, Any]]:
    return await post(client, user, f"{PREFIX}/{doc['key']}/answers",
                      answer_body(doc, request, answers, **more))


async def stored_answers(city: City, key: str, box: bool = False) -> list[dict[str, Any]]:
    db = f"linli-questionnaire-{key}" + ("-box" if box else "")
    return await city.run(lambda: [city.couch[db][i] for i in city.couch[db]
                                   if i.startswith("questionnaire_answer:")])


async def test_who_publishes_and_bad_definitions_store_nothing(client: TestClient,
                                                                city: City) -> None:
    town = await ready_town(client, city)
    before = await stored_ids(city, RESIDENTS_DB, "questionnaire:")
    for user, status in ((town.ra, 403), (town.worker1, 403), (None, 401)):
        got, body = await post(client, user, PREFIX, draft(town))
        assert got == status and set(body) == {"error", "reason"}, body
    bad_kind = draft(town)
    bad_kind["questions"][0]["kind"] = "slider"
    for body, words in (
            (draft(town, created_by=town.ra), "不允许的字段 created_by"),
            (draft(town, audience={"level": "community", "codes": [town.c3]}),
             "不在您的管辖范围内"),
            (draft(town, audience={"level": "city"}), "只有市级管理员"),
            (draft(town, per="everyone"), "填写方式"),
            (draft(town, closes_at=later(-1)), "截止时间"),
            (draft(town, title="\ud800"), "标题"),
            (bad_kind, "“家里有车吗”的题型无效"),
            ([1], "JSON 对象")):
        got, answer = await post(client, town.sup1, PREFIX, body)
        assert got == 400 and words in answer["reason"] and " / " in answer["reason"], (
            words, answer)
    assert await stored_ids(city, RESIDENTS_DB, "questionnaire:") == before
    doc = await published(client, town)
    assert doc["version"] == 1 and doc["status"] == "published" and doc["created_by"] == town.sup1
    # The residents of its audience hold it offline; another community's do not.
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: doc["_id"] in index.allowed(town.ra).get("residents", ()),
                     what="the questionnaire filed for the resident's phone")
    assert doc["_id"] not in index.allowed(town.rc).get("residents", frozenset())


async def test_one_answer_per_household_first_received_counts(client: TestClient,
                                                              city: City) -> None:
    town = await ready_town(client, city)
    family = await a_resident(city, town.g1, town.household(town.g1, 1))
    await ready_town_member(client, family)
    doc = await published(client, town)
    got, first = await send(client, town.ra, doc, "ra-answer-1", {"car": "yes", "spot": 4})
    assert got == 201 and first["status"] == "counted" and first["counted"] is True
    got, again = await send(client, town.ra, doc, "ra-answer-1", {"car": "yes", "spot": 4})
    assert got == 200 and again["repeated"] is True and again["status"] == "counted"
    got, other = await send(client, town.ra, doc, "ra-answer-1", {"car": "no"})
    assert got == 409 and "另一份答卷" in other["reason"]  # one request id, one answer
    got, late = await send(client, family, doc, "fam-answer-1", {"car": "no"})
    assert got == 200 and late["status"] == "answered_by_family" and not late["counted"]
    assert late["told"] == "已由家人填写 / Already answered by a family member"
    got, own = await send(client, town.rb, doc, "rb-answer-1", {"car": "no"})
    assert got == 201 and own["counted"]
    stored = await stored_answers(city, doc["key"])
    assert sorted(a["household"] for a in stored) == [town.household(town.g1, 1),
                                                      town.household(town.g1, 2)]
    assert {a["answers"]["car"] for a in stored} == {"yes", "no"}
    assert next(a for a in stored if a["account"] == town.ra)["answers"] == {
        "car": "yes", "spot": 4}


async def ready_town_member(client: TestClient, account: str) -> None:
    await wait_for_user(client, account)
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: index.ids.households(account), what="the link indexed")


async def test_two_family_phones_racing_count_once(client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    family = [await a_resident(city, town.g1, town.household(town.g1, 2)) for _ in range(3)]
    for account in family:
        await ready_town_member(client, account)
    doc = await published(client, town)
    racers = [town.rb, *family]
    answers = await asyncio.gather(*(send(client, who, doc, f"race-{n}-{who}"[:60],
                                          {"car": "no", "note": who})
                                     for n, who in enumerate(racers)))
    counted = [a for got, a in answers if a.get("counted")]
    assert len(counted) == 1, answers
    assert all(a["status"] == "answered_by_family" for _, a in answers if not a["counted"])
    stored = await stored_answers(city, doc["key"])
    assert len(stored) == 1
    # The one stored is the first claim in the store's order.
    claims = await city.run(lambda: [
        c["doc"] for c in city.couch[CLAIMS_DB].changes(include_docs=True)["results"]
        if c["doc"].get("subject") == f"questionnaire:{doc['key']}"])
    assert stored[0]["account"] == claims[0]["created_by"]


async def test_bad_answers_and_a_closed_questionnaire_store_nothing(client: TestClient,
                                                                    city: City) -> None:
    town = await ready_town(client, city)
    doc = await published(client, town)
    path = f"{PREFIX}/{doc['key']}/answers"
    for body, words in (
            (answer_body(doc, "ra-bad-1", {"car": 1}), "“家里有车吗”应选一个给出的选项"),
            (answer_body(doc, "ra-bad-1", {"car": "yes"}), "“停车位够用吗”为必答题"),
            (answer_body(doc, "ra-bad-1", {"car": "yes", "spot": "5"}), "1 到 5 分"),
            (answer_body(doc, "ra-bad-1", {"car": "no", "note": "长" * 2001}), "太长"),
            (answer_body(doc, "ra-bad-1", {"car": "no", "note": "\ud800"}), "不完整的字符"),
            (answer_body(doc, "ra-bad-1", {"car": {"$gt": ""}}), "应选一个给出的选项"),
            (answer_body(doc, "ra-bad-1", {"car": [[[["no"]]]]}), "应选一个给出的选项"),
            (answer_body(doc, "ra-bad-1", [1, 2]), "答案"),
            (answer_body(doc, "ra-bad-1", {"car": "no", "x": 1}), "不允许的字段 x"),
            (answer_body(doc, "ra-bad-1", {"car": "no"}, created_by=town.rb), "created_by"),
            (answer_body(doc, "ra-bad-1", {"car": "no"}, secret_key="0" * 64), "匿名凭据"),
            (answer_body(doc, "x", {"car": "no"}), "请求编号"),
            (answer_body(doc, "ra-bad-1", {"car": "no"}, version="1"), "问卷版本")):
        got, answer = await post(client, town.ra, path, body)
        assert got == 400 and words in answer["reason"] and " / " in answer["reason"], (
            words, answer)
    # Another household's id, a made-up one, another community's resident, a made-up
    # questionnaire: one and the same 404.
    for user, key, more in (
            (town.ra, doc["key"], {"household": town.household(town.g1, 2)}),
            (town.ra, doc["key"], {"household": "household:nowhere-0001"}),
            (town.ra, doc["key"], {"household": ["x"]}),
            (town.rc, doc["key"], {}), (town.ra, "0" * 16, {})):
        got, answer = await post(client, user, f"{PREFIX}/{key}/answers",
                                 {**answer_body(doc, "ra-bad-2", {"car": "no"}), **more})
        assert got == 404 and "没有这份问卷" in answer["reason"], (more, answer)
    for user in (town.sup1, town.worker1):
        got, _ = await post(client, user, path, answer_body(doc, "ra-bad-3", {"car": "no"}))
        assert got == 403
    got, _ = await post(client, town.sup1, f"{PREFIX}/{doc['key']}/close", {})
    assert got == 200
    got, answer = await send(client, town.ra, doc, "ra-late-1", {"car": "no"})
    assert got == 409 and answer["reason"].startswith("问卷已截止，答卷未保存")
    assert await stored_answers(city, doc["key"]) == []


async def test_a_new_version_replaces_and_the_old_one_is_refused(client: TestClient,
                                                                 city: City) -> None:
    town = await ready_town(client, city)
    doc = await published(client, town)
    fixed = draft(town, title="停车满意度调查（修订）")
    got, answer = await post(client, town.rb, f"{PREFIX}/{doc['key']}/versions", fixed)
    assert got == 403
    got, answer = await post(client, town.sup1, f"{PREFIX}/{doc['key']}/versions", fixed)
    assert got == 201 and answer["questionnaire"]["version"] == 2
    v1 = await city.run(lambda: city.couch[RESIDENTS_DB][doc["_id"]])
    assert v1["status"] == "replaced" and v1["questions"] == doc["questions"]
    got, refused = await send(client, town.ra, doc, "ra-old-1", {"car": "no"})
    assert got == 409 and "新版本" in refused["reason"]
    got, counted = await send(client, town.ra, answer["questionnaire"], "ra-new-1",
                              {"car": "no"})
    assert got == 201 and counted["counted"]


async def test_anonymous_answers_keep_who_apart_from_what(client: TestClient,
                                                          city: City) -> None:
    town = await ready_town(client, city)
    doc = await published(client, town, anonymous=True, per="resident")
    keys = {}
    for who in (town.ra, town.rb):
        keys[who] = secrets.token_hex(32)
        got, answer = await send(client, who, doc, f"anon-{who}"[:60], {"car": "no",
                                 "note": "13912345678"}, secret_key=keys[who])
        assert got == 201 and answer["counted"], answer
    got, again = await send(client, town.ra, doc, "anon-retry", {"car": "no"},
                            secret_key=keys[town.ra])
    assert got == 200 and again["counted"] and again["repeated"]
    got, second = await send(client, town.ra, doc, "anon-2nd", {"car": "yes", "spot": 1},
                             secret_key=secrets.token_hex(32))
    assert got == 200 and second["status"] == "answered_already"
    got, missing = await send(client, town.rb, doc, "anon-nokey", {"car": "no"})
    assert got == 400 and "匿名凭据" in missing["reason"]
    assert await stored_answers(city, doc["key"], box=True) == []  # pending, not yet a batch
    got, _ = await post(client, town.sup1, f"{PREFIX}/{doc['key']}/close", {})
    assert got == 200
    hows = await stored_answers(city, doc["key"], box=True)
    assert len(hows) == 2 and await stored_answers(city, doc["key"]) == []
    for how in hows:
        assert set(how) - {"_id", "_rev"} == {"type", "schema_version", "created_by",
                                              "questionnaire", "version", "area", "answers"}
        assert how["created_by"] == "linli-questionnaires"
    claims = await city.run(lambda: [c for c in city.couch[CLAIMS_DB]
                                     if c.startswith(f"claim:questionnaire.{doc['key']}")])
    assert len(claims) == 3
    held = json.dumps(hows)
    assert not any(c.rsplit(":", 1)[1] in held for c in claims)  # no claim id in any answer
    assert town.ra not in held and town.rb not in held
    pending = await city.run(lambda: [i for i in city.couch[
        f"linli-questionnaire-{doc['key']}-box"] if i.startswith("pending:")])
    assert pending == []


async def many_answers(client: TestClient, city: City, town: Town, doc: dict[str, Any],
                       count: int, answers: dict[str, Any]) -> None:
    """`count` residents of g1 (household 3 onwards... each their own household) answering."""
    for n in range(count):
        household = f"household:{town.g1}-{100 + n:04d}"
        await city.save(town.g1, {
            "_id": household, "type": "household", "schema_version": 1, "grid": town.g1,
            "created_by": town.worker1, "head_name": "测试", "tenure": "owned",
            "status": "active", "address": {"compound": "c1", "compound_name": "坊门小区",
                                            "building": "3", "unit": "2",
                                            "room": f"{500 + n}"}})
        who = await a_resident(city, town.g1, household)
        await ready_town_member(client, who)
        got, answer = await send(client, who, doc, f"many-{n}-{who}"[:60], answers)
        assert got == 201, answer


async def test_results_by_area_and_the_safe_masked_export(client: TestClient,
                                                          city: City) -> None:
    town = await ready_town(client, city)
    doc = await published(client, town)
    await send(client, town.ra, doc, "ra-res-1", {"car": "no",
                                                   "note": "=HYPERLINK(\"x\") 13912345678"})
    await many_answers(client, city, town, doc, 5, {"car": "yes", "spot": 5})
    resp = await client.get(f"{PREFIX}/{doc['key']}/results", headers=basic(town.sup1))
    assert resp.status == 200
    figures = (await resp.json())["results"]
    assert figures["answers"] == 6
    # The 1 is withheld, and the 5 with it: 6 answers less 5 would give it away.
    assert figures["questions"]["car"]["counts"] == {"yes": None, "no": None}
    assert figures["questions"]["spot"]["counts"]["5"] == 5
    resp = await client.get(f"{PREFIX}/{doc['key']}/results?level=grid",
                            headers=basic(town.sup1))
    by_grid = (await resp.json())["results"]["areas"]
    assert [a["code"] for a in by_grid] == [town.g1] and by_grid[0]["answers"] == 6
    for bad in ("?level=household", "?level=grid&unmask=1", "?grid=" + town.g3):
        resp = await client.get(f"{PREFIX}/{doc['key']}/results{bad}", headers=basic(town.sup1))
        assert resp.status == 400, bad
    for user, status in ((town.ra, 403), (town.worker1, 403)):
        resp = await client.get(f"{PREFIX}/{doc['key']}/results", headers=basic(user))
        assert resp.status == status
    resp = await client.get(f"{PREFIX}/{doc['key']}/export", headers=basic(town.sup1))
    assert resp.status == 200
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0][:4] == ["街道 Street", "社区 Community", "网格 Grid", "住户 Household"]
    assert rows[0][4:] == ["家里有车吗", "停车位够用吗", "其他建议"]
    noted = next(r for r in rows if r[4] == "没有")
    assert noted[6].startswith("'=HYPERLINK") and "13912345678" not in noted[6]
    assert all(str(r[3]).endswith("**") for r in rows[1:])


def workbook(survey: list[list[Any]], choices: list[list[Any]]) -> str:
    book = Workbook()
    book.active.title = "survey"
    for row in survey:
        book.active.append(row)
    sheet = book.create_sheet("choices")
    for row in choices:
        sheet.append(row)
    settings = book.create_sheet("settings")
    settings.append(["form_title"])
    settings.append(["垃圾分类调查"])
    out = io.BytesIO()
    book.save(out)
    return base64.b64encode(out.getvalue()).decode()


SURVEY = [["type", "name", "label::中文 (zh)", "required", "relevant", "hint"],
          ["start", "start", "", "", "", ""],
          ["select_one yn", "sort", "您家会垃圾分类吗", "yes", "", "单选"],
          ["select_multiple bins", "bins", "缺少哪些垃圾桶", "", "${sort} = 'no'", ""],
          ["integer", "people", "家庭人数", "true", "", ""],
          ["decimal", "kg", "每周垃圾（公斤）", "", "selected(${bins}, 'kitchen')", ""],
          ["date", "since", "何时开始分类", "", "${sort} != 'no'", ""],
          ["text", "note", "建议", "", "", ""]]
CHOICES = [["list_name", "name", "label"], ["yn", "yes", "会"], ["yn", "no", "不会"],
           ["bins", "kitchen", "厨余"], ["bins", "other", "其他"]]


async def test_an_xlsform_becomes_a_draft_and_one_outside_the_subset_is_refused(
        client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    got, answer = await post(client, town.sup1, f"{PREFIX}/xlsform",
                             {"xlsx": workbook(SURVEY, CHOICES)})
    assert got == 200, answer
    made = answer["draft"]
    assert made["title"] == "垃圾分类调查"
    assert [(q["name"], q["kind"]) for q in made["questions"]] == [
        ("sort", "single"), ("bins", "multiple"), ("people", "number"), ("kg", "number"),
        ("since", "date"), ("note", "text")]
    assert made["questions"][1]["show_if"] == {"question": "sort", "op": "=", "value": "no"}
    assert made["questions"][3]["show_if"] == {"question": "bins", "op": "=",
                                               "value": "kitchen"}
    assert made["questions"][2]["integer"] is True and made["questions"][2]["required"]
    got, doc = await post(client, town.sup1, PREFIX, {**draft(town), **made})
    assert got == 201, doc  # what the import made publishes as it is
    for survey, choices, words in (
            ([*SURVEY, ["calculate", "total", "", "", "", ""]], CHOICES,
             "survey 表第 9 行：不支持的题型“calculate”"),
            ([*SURVEY, ["begin_group", "g", "组", "", "", ""]], CHOICES, "第 9 行"),
            ([*SURVEY[:3], ["text", "why", "原因", "", "${sort} = 'no' and ${x} > 3", ""]],
             CHOICES, "relevant 只支持简单比较"),
            ([[*SURVEY[0], "constraint"], [*SURVEY[2], ". > 0"]], CHOICES,
             "不支持的列 constraint"),
            ([*SURVEY[:2], ["select_one missing", "m", "缺", "", "", ""]], CHOICES,
             "选项列表不存在"),
            ([*SURVEY[:2], ["text", "a", "x", "maybe", "", ""]], CHOICES, "required"),
            ([*SURVEY[:2], ["text", "a", "x", "", "${later} = 'y'", ""],
              ["text", "later", "y", "", "", ""]], CHOICES, "只能引用前面的题目")):
        got, answer = await post(client, town.sup1, f"{PREFIX}/xlsform",
                                 {"xlsx": workbook(survey, choices)})
        assert got == 400 and words in answer["reason"], (words, answer)
    for body in ({"xlsx": "not base64!"}, {"xlsx": base64.b64encode(b"%PDF-1.4").decode()},
                 {"xlsx": 5}, {"file": "x"}, {"xlsx": "A" * (3 * 1024 * 1024)}):
        got, answer = await post(client, town.sup1, f"{PREFIX}/xlsform", body)
        assert got in (400, 413) and set(answer) == {"error", "reason"}, answer
    got, _ = await post(client, town.ra, f"{PREFIX}/xlsform", {"xlsx": workbook(SURVEY,
                                                                                CHOICES)})
    assert got == 403


async def test_the_figures_are_kept_in_the_store_and_read_back(client: TestClient,
                                                              city: City) -> None:
    """A summary folds the answers by grid into `_local/summary` with the sequence read up to;
    another process (a new store object) starts from it and reads only what came since."""
    town = await ready_town(client, city)
    doc = await published(client, town)
    await send(client, town.ra, doc, "ra-fold-1", {"car": "no"})
    store = client.app[QUESTIONNAIRES]
    current = await store.current(doc["key"])
    assert current is not None
    grids = await store.fold(current)
    db = f"linli-questionnaire-{doc['key']}"
    saved = await city.run(lambda: city.couch[db].get("_local/summary"))
    assert saved is not None and saved["grids"][0][1]["answers"] == 1
    again = Questionnaires(store.couch, store.directory, store.schemas, store.notices)
    assert await again.fold(current) == grids
    await send(client, town.rb, doc, "rb-fold-1", {"car": "yes", "spot": 3})
    later = await again.fold(current)
    assert sum(f["answers"] for f in later.values()) == 2
    assert later[(town.street, town.c1, town.g1)]["questions"]["spot"]["counts"]["3"] == 1
