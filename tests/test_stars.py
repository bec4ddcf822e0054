"""Star rating through the real app and the real store (三类五星, server/web/stars.py,
server/sync/stars.py): a round walked from evidence to publication by the community, the
assessor and the street, each in their scope; the photos stripped as reports' are; the sheet
file checked at start; and the attacker's classes: wrong roles and scopes at every step, other
compounds' sheets, scores out of range, unknown indicators, broken text, bad photos, forged
fields, replays and concurrent scorers, each refused with nothing written."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, wait_for_user
from PIL import Image

from server.admin import directory
from server.domain import stars as rules
from server.domain.scope import DIRECTORY_DB, STARS_DB
from server.sync.stars import load_sheet

PREFIX = "/api/stars"
COMPANY = "property_company:91330800MA2STAR001"
_n = itertools.count()
SHEET = load_sheet()
BY_ASSESSOR = [i for i in SHEET.indicators if i.scored_by == "assessor"]
BY_STREET = [i for i in SHEET.indicators if i.scored_by == "street"]


def jpeg(secret: str = "WHERE-I-LIVE") -> bytes:
    """A phone photo with EXIF: a description and a GPS position."""
    exif = Image.Exif()
    exif[0x010E] = secret
    exif[0x8825] = {1: "N", 2: (30.0, 15.0, 10.0), 3: "E", 4: (118.0, 52.0, 1.0)}
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def b64(data: bytes) -> dict[str, str]:
    return {"data": base64.b64encode(data).decode()}


@dataclasses.dataclass
class Town:
    """A compound in a community of a street, its parts, and people outside them."""

    compound: str
    other: str  # a compound of another community in another street
    community: str
    street: str
    assessor: str
    other_assessor: str
    other_street: str
    other_community: str
    admin: str
    worker: str
    resident: str
    company: str

    def url(self, round_: str = "2026", compound: str = "", tail: str = "") -> str:
        return f"{PREFIX}/sheets/{compound or self.compound}/{round_}{tail}"


@pytest.fixture
async def town(city: City, client: TestClient) -> Town:
    tag = os.getpid() * 1000 + next(_n)
    # Codes of this module's own (test_ratings' places are r/s and 37..., in the same store
    # when both run on one worker: the compound written twice was a 409 in this fixture).
    community, other_community = f"39{tag:010d}"[:12], f"40{tag:010d}"[:12]
    street, other_street = community[:9], other_community[:9]
    code, other = f"st{tag}", f"su{tag}"

    def write() -> None:
        for c, comm in ((code, community), (other, other_community)):
            city.couch[DIRECTORY_DB].save({
                "_id": f"compound:{c}", "type": "compound", "schema_version": 1, "code": c,
                "name": "衢江花园", "community": comm, "property_company": COMPANY})
    await city.run(write)
    found = Town(code, other, await city.user("supervisor", communities=[community]),
                 await city.user("supervisor", streets=[street]),
                 await city.user("assessor", streets=[street]),
                 await city.user("assessor", streets=[other_street]),
                 await city.user("supervisor", streets=[other_street]),
                 await city.user("supervisor", communities=[other_community]),
                 await city.user("admin"), await city.user("worker", grids=[await city.grid()]),
                 await city.user("resident"),
                 await city.user("property", companies=[COMPANY]))
    for f in dataclasses.fields(found)[2:]:
        await wait_for_user(client, getattr(found, f.name))
    return found


async def call(client: TestClient, method: str, path: str, user: str | None = None,
               body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    headers = basic(user) if user else {}
    if raw is not None:
        headers["Content-Type"] = "application/json"
    resp = await client.request(method, path, json=body if raw is None else None, data=raw,
                                headers=headers)
    if resp.content_type == "application/json":
        return resp.status, await resp.json()
    return resp.status, await resp.read()


async def stored(city: City, town: Town, round_: str = "2026") -> Any:
    return await city.run(lambda: city.couch[STARS_DB].get(rules.sheet_id(round_,
                                                                           town.compound)))


async def opened(client: TestClient, town: Town, round_: str = "2026") -> dict[str, Any]:
    status, found = await call(client, "POST", f"{PREFIX}/sheets", town.street,
                               {"compound": town.compound, "round": round_})
    assert status == 201, found
    return found["sheet"]


async def score_all(client: TestClient, town: Town, points: int | None = None) -> None:
    for indicator in SHEET.indicators:
        who = town.assessor if indicator.scored_by == "assessor" else town.street
        status, found = await call(client, "PUT", town.url(tail="/scores"), who, {
            "indicator": indicator.id, "comment": "材料齐全",
            "points": indicator.max_points if points is None else min(points,
                                                                      indicator.max_points)})
        assert status == 200, found


async def moved(client: TestClient, town: Town, user: str, act: str, state: str,
                **more: Any) -> tuple[int, Any]:
    return await call(client, "POST", town.url(tail="/acts"), user,
                      {"act": act, "state": state, **more})


async def test_a_round_goes_from_evidence_to_published_with_its_history(
        client: TestClient, town: Town) -> None:
    sheet = await opened(client, town)
    assert (sheet["state"], sheet["parts"], sheet["history"][0]["act"]) == (
        "collecting", ["street"], "open")
    status, found = await call(client, "PUT", town.url(tail="/evidence"), town.community, {
        "indicator": "party-01", "text": "已成立小区党支部，见批复", "photos": [b64(jpeg())]})
    assert status == 200, found
    evidence = found["sheet"]["evidence"]["party-01"]
    assert evidence["by"] == town.community and len(evidence["photos"]) == 1
    status, data = await call(client, "GET", evidence["photos"][0], town.assessor)
    assert status == 200 and data[:2] == b"\xff\xd8"
    assert b"WHERE-I-LIVE" not in data and Image.open(io.BytesIO(data)).getexif() == {}

    assert (await moved(client, town, town.community, "submit_evidence", "collecting"))[0] == 200
    await score_all(client, town, points=2)
    status, found = await moved(client, town, town.assessor, "submit_scores", "scoring")
    assert status == 200 and found["sheet"]["state"] == "review", found
    status, found = await moved(client, town, town.street, "return", "review",
                                reason="党建指标佐证不足，请复核")
    assert status == 200 and found["sheet"]["state"] == "scoring"
    await score_all(client, town)  # everything at its full points: 100
    assert (await moved(client, town, town.assessor, "submit_scores", "scoring"))[0] == 200
    share = SHEET.awards_fen[5] * 30 // 100
    status, found = await moved(client, town, town.street, "approve", "review",
                                property_fen=share)
    assert status == 200, found
    published = found["sheet"]
    assert published["state"] == "published"
    assert {k: published["result"][k] for k in ("total", "stars", "type", "award_fen",
                                                "property_fen")} == {
        "total": 100, "stars": 5, "type": "示范引领", "award_fen": 5_000_000,
        "property_fen": 1_500_000}
    assert [h["act"] for h in published["history"]] == [
        "open", "submit_evidence", "submit_scores", "return", "submit_scores", "approve"]
    assert published["history"][3]["reason"] == "党建指标佐证不足，请复核"

    await opened(client, town, "2027")  # the next round; the last one stays as it was
    status, found = await call(client, "GET", town.url("2027"), town.community)
    assert status == 200
    assert [(r["round"], r["state"]) for r in found["rounds"]] == [
        ("2026", "published"), ("2027", "collecting")]
    assert found["rounds"][0]["result"]["stars"] == 5
    status, listed = await call(client, "GET", f"{PREFIX}/sheets", town.assessor)
    assert [(s["compound"], s["round"]) for s in listed["sheets"]
            if s["compound"] == town.compound] == [(town.compound, "2027"),
                                                   (town.compound, "2026")]


async def test_each_step_is_refused_to_the_wrong_part_and_nothing_is_written(
        client: TestClient, city: City, town: Town) -> None:
    for user in (town.community, town.assessor, town.other_street, town.admin):
        status, found = await call(client, "POST", f"{PREFIX}/sheets", user,
                                   {"compound": town.compound, "round": "2026"})
        assert status == 403 and set(found) == {"error", "reason"}, (user, found)
    await opened(client, town)
    evidence = {"indicator": "party-01", "text": "说明"}
    street_one, assessor_one = BY_STREET[0], BY_ASSESSOR[0]
    wrong = [  # (who, method, tail, body) refused 403 in collecting
        (town.street, "PUT", "/evidence", evidence), (town.assessor, "PUT", "/evidence", evidence),
        (town.assessor, "POST", "/acts", {"act": "submit_evidence", "state": "collecting"}),
        (town.street, "POST", "/acts", {"act": "submit_evidence", "state": "collecting"}),
        (town.community, "PUT", "/scores", {"indicator": assessor_one.id, "points": 1,
                                            "comment": "x"}),
        (town.admin, "PUT", "/evidence", evidence)]
    before = await stored(city, town)
    for user, method, tail, body in wrong:
        status, found = await call(client, method, town.url(tail=tail), user, body)
        assert status == 403, (user, tail, found)
    assert (await stored(city, town))["_rev"] == before["_rev"]
    # the right part, the wrong state: a score while collecting
    status, found = await call(client, "PUT", town.url(tail="/scores"), town.assessor,
                               {"indicator": assessor_one.id, "points": 1, "comment": "x"})
    assert status == 409 and "材料收集" in found["reason"]
    await moved(client, town, town.community, "submit_evidence", "collecting")
    for who, indicator in ((town.assessor, street_one), (town.street, assessor_one)):
        status, found = await call(client, "PUT", town.url(tail="/scores"), who,
                                   {"indicator": indicator.id, "points": 1, "comment": "x"})
        assert status == 403 and "为此指标评分" in found["reason"], found
    status, found = await moved(client, town, town.assessor, "submit_scores", "scoring")
    assert status == 409 and "项指标未评分" in found["reason"]
    await score_all(client, town)
    for user in (town.community, town.street):
        assert (await moved(client, town, user, "submit_scores", "scoring"))[0] == 403
    await moved(client, town, town.assessor, "submit_scores", "scoring")
    for user in (town.community, town.assessor, town.admin):
        assert (await moved(client, town, user, "approve", "review"))[0] == 403
    assert (await stored(city, town))["state"] == "review"


async def test_other_compounds_sheets_and_outsiders_get_nothing(
        client: TestClient, town: Town) -> None:
    await opened(client, town)
    for user in (town.other_assessor, town.other_street, town.other_community):
        for method, tail, body in (("GET", "", None), ("PUT", "/evidence", {}),
                                   ("PUT", "/scores", {}), ("POST", "/acts", {}),
                                   ("GET", "/photos/evidence-party-01-1.jpg", None)):
            status, found = await call(client, method, town.url(tail=tail), user, body)
            assert status == 404 and found["reason"].startswith("没有这个评星表"), (user, tail)
        status, listed = await call(client, "GET", f"{PREFIX}/sheets", user)
        assert town.compound not in json.dumps(listed)
    missing = await call(client, "GET", town.url("2031"), town.street)
    assert missing[0] == 404 and missing[1] == (await call(
        client, "GET", town.url(), town.other_street))[1]
    replies = set()
    for user in (town.worker, town.resident, town.company):
        for method, path in (("GET", town.url()), ("GET", f"{PREFIX}/sheets"),
                             ("GET", f"{PREFIX}/sheet"), ("PUT", town.url(tail="/evidence"))):
            status, found = await call(client, method, path, user, {})
            assert status == 403, (user, path)
            replies.add(json.dumps(found))
    assert len(replies) == 1
    assert (await call(client, "GET", town.url()))[0] == 401
    for query in ("?compound=" + town.other, "?unmask=1", "?round=2026&round=2027"):
        status, found = await call(client, "GET", f"{PREFIX}/sheets{query}", town.street)
        assert status == 400 and set(found) == {"error", "reason"}, (query, found)
    assert (await call(client, "GET", town.url(compound="../x"), town.street))[0] == 404


async def test_bad_scores_comments_and_fields_are_refused_by_label_with_nothing_written(
        client: TestClient, city: City, town: Town) -> None:
    await opened(client, town)
    await moved(client, town, town.community, "submit_evidence", "collecting")
    before = await stored(city, town)
    top = BY_ASSESSOR[0].max_points
    cases: list[tuple[dict[str, Any], str]] = [
        *(({"indicator": BY_ASSESSOR[0].id, "points": p, "comment": "x"}, "“得分”")
          for p in (top + 1, -1, 1.5, True, "1", None, [1], {"n": 1})),
        ({"indicator": "party-99", "points": 1, "comment": "x"}, "“指标”"),
        ({"indicator": ["party-01"], "points": 1, "comment": "x"}, "“指标”"),
        ({"indicator": BY_ASSESSOR[0].id, "points": 1, "comment": "a\x07b"}, "“评分说明”"),
        ({"indicator": BY_ASSESSOR[0].id, "points": 1, "comment": "a\u202eb"}, "“评分说明”"),
        ({"indicator": BY_ASSESSOR[0].id, "points": 1, "comment": "x" * 301}, "“评分说明”"),
        ({"indicator": BY_ASSESSOR[0].id, "points": 1, "comment": "x", "by": town.street},
         "不允许的字段"),
        ({"indicator": BY_ASSESSOR[0].id, "points": 1, "comment": "x", "at": "2020"},
         "不允许的字段")]
    for body, label in cases:
        status, found = await call(client, "PUT", town.url(tail="/scores"), town.assessor, body)
        assert status == 400 and label in found["reason"] and " / " in found["reason"], body
        assert "/points" not in found["reason"]
    raw = '{"indicator": "' + BY_ASSESSOR[0].id + '", "points": 1, "comment": "半个\\ud83d"}'
    status, found = await call(client, "PUT", town.url(tail="/scores"), town.assessor,
                               raw=raw.encode())
    assert status == 400 and "“评分说明”" in found["reason"], found
    for body in ([], "x", 1, [{"indicator": "party-01"}]):
        status, found = await call(client, "PUT", town.url(tail="/scores"), town.assessor, body)
        assert status == 400, body
    for body in ({"act": "approve", "state": "review", "result": {"stars": 5}},
                 {"act": "submit_scores", "state": "scoring", "history": []},
                 {"act": "return", "state": "scoring", "reason": "\x00"}):
        assert (await call(client, "POST", town.url(tail="/acts"), town.assessor,
                           body))[0] == 400, body
    assert (await stored(city, town))["_rev"] == before["_rev"]


async def test_evidence_photos_are_checked_as_reports_are(
        client: TestClient, city: City, town: Town) -> None:
    await opened(client, town)
    before = await stored(city, town)
    pdf = b"%PDF-1.4 " + b"x" * 200
    big = b"\xff\xd8\xff" + os.urandom(1024 * 1024 + 10)
    for photos, says in (([b64(pdf)], "不是 JPEG、PNG 或 WebP"), ([b64(big)], "过大"),
                         ([{"data": "%%%"}], "base64"), (["x.jpg"], "缺少图片数据"),
                         ([b64(jpeg())] * 4, "最多 3 张"), ("photo", "“照片”"),
                         ([{"data": base64.b64encode(b"\xff\xd8\xff\xe0junk").decode()}],
                          "无法作为图片读取")):
        status, found = await call(client, "PUT", town.url(tail="/evidence"), town.community,
                                   {"indicator": "party-01", "text": "x", "photos": photos})
        assert status == 400 and says in found["reason"], (says, found)
    assert (await stored(city, town))["_rev"] == before["_rev"]
    # a new upload replaces the indicator's photos; others' stay
    for indicator in ("party-01", "party-02", "party-01"):
        status, _ = await call(client, "PUT", town.url(tail="/evidence"), town.community,
                               {"indicator": indicator, "text": "见照片",
                                "photos": [b64(jpeg())]})
        assert status == 200
    doc = await stored(city, town)
    assert sorted(doc["_attachments"]) == ["evidence-party-01-1.jpg", "evidence-party-02-1.jpg"]
    status, _ = await call(client, "GET", town.url(tail="/photos/evidence-party-09-1.jpg"),
                           town.street)
    assert status == 404


async def test_replays_and_the_award_cap(client: TestClient, city: City, town: Town) -> None:
    await opened(client, town)
    assert (await moved(client, town, town.community, "submit_evidence", "collecting"))[0] == 200
    status, found = await moved(client, town, town.community, "submit_evidence", "collecting")
    assert status == 409 and "“评分”" in found["reason"]  # a replay meets the state it left
    await score_all(client, town)
    await moved(client, town, town.assessor, "submit_scores", "scoring")
    award = SHEET.awards_fen[5]
    before = await stored(city, town)
    for share in (award * 3001 // 10000, award * 30 // 100 + 1):  # 30.01 %, 1 fen over
        status, found = await moved(client, town, town.street, "approve", "review",
                                    property_fen=share)
        assert status == 400 and found["reason"] == (
            "“物业公司所得”不能超过奖励金额 50000.00 元的 30%（最多 15000.00 元） / Property "
            "company's share may be at most 30 % of the award of ¥50000.00 (at most ¥15000.00)")
    for share in (-1, 1.5, "1500000", True):
        status, found = await moved(client, town, town.street, "approve", "review",
                                    property_fen=share)
        assert status == 400 and "“物业公司所得”" in found["reason"]
    assert (await moved(client, town, town.street, "return", "review"))[0] == 400  # no reason
    assert (await stored(city, town))["_rev"] == before["_rev"]
    assert (await moved(client, town, town.street, "approve", "review",
                        property_fen=award * 30 // 100))[0] == 200
    after = await stored(city, town)
    status, found = await moved(client, town, town.street, "approve", "review", property_fen=0)
    assert status == 409 and "已发布" in found["reason"]
    assert (await stored(city, town))["_rev"] == after["_rev"]
    status, found = await call(client, "POST", f"{PREFIX}/sheets", town.street,
                               {"compound": town.compound, "round": "2026"})
    assert status == 400 and "“评价轮次”" in found["reason"]


async def test_concurrent_scorers_lose_nothing(client: TestClient, city: City,
                                               town: Town) -> None:
    await opened(client, town)
    await moved(client, town, town.community, "submit_evidence", "collecting")
    sent = [(town.assessor, i) for i in BY_ASSESSOR[:12]] + [(town.street, i)
                                                            for i in BY_STREET]
    answers = await asyncio.gather(*(
        call(client, "PUT", town.url(tail="/scores"), who, {
            "indicator": i.id, "points": i.max_points, "comment": "同时评分"})
        for who, i in sent))
    assert all(status == 200 for status, _ in answers), answers
    assert set((await stored(city, town))["scores"]) == {i.id for _, i in sent}


async def test_an_assessor_is_commissioned_for_streets(city: City) -> None:
    with pytest.raises(directory.DirectoryError, match="--street"):
        await city.user("assessor")
    with pytest.raises(directory.DirectoryError, match="--street"):
        await city.user("assessor", communities=["330802001001"])


def test_a_broken_sheet_file_stops_the_start_with_its_faults(tmp_path: Path) -> None:
    data = json.loads((Path(rules.__file__).parents[2] / "schemas" / "star_sheet.json")
                      .read_text("utf-8"))
    data["indicators"][5]["max_points"] = 0
    broken = tmp_path / "sheet.json"
    broken.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    with pytest.raises(rules.SheetError, match=r"indicators\[6\]：分值应为正整数"):
        load_sheet(broken)
    broken.write_text("{not json", "utf-8")
    with pytest.raises(rules.SheetError, match="无法读取"):
        load_sheet(broken)
    assert len(load_sheet().indicators) == 54
