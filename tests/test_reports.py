"""Problem reports (issue 16) through the real app on the real embedded store: a resident's
report with a photo stored once whatever the retries, its EXIF (GPS included) gone; each class
of bad input refused by label, zh-CN first, with nothing stored; resident B sees nothing of
A's on any path; a handler sees what is routed to them only; the workflow step by step with
its refusals; two intake phones dispatching offline to two handlers go to the supervisors'
queue; the reporter's phone holds its report, steps and status through the resident sync."""

from __future__ import annotations

import base64
import io
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, eventually, wait_for_user
from openpyxl import load_workbook
from PIL import Image
from test_notices import Town
from test_volunteering import ready_town

from server.domain.scope import DIRECTORY_DB, RESIDENTS_DB

PREFIX = "/api/reports"
DB = "/couch/linli-resident"


def jpeg(secret: str = "WHERE-I-LIVE", size: tuple[int, int] = (64, 48)) -> bytes:
    """A phone photo with EXIF: a description and a GPS position."""
    exif = Image.Exif()
    exif[0x010E] = secret
    exif[0x8825] = {1: "N", 2: (30.0, 15.0, 10.0), 3: "E", 4: (118.0, 52.0, 1.0)}
    out = io.BytesIO()
    Image.new("RGB", size, "red").save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def b64(data: bytes) -> dict[str, str]:
    return {"data": base64.b64encode(data).decode()}


def body(n: int, **changes: Any) -> dict[str, Any]:
    sent: dict[str, Any] = {"category": "sanitation", "description": "3号楼楼道堆满杂物",
                            "request": f"req-{n:08d}", "building": "3"}
    sent.update(changes)
    return sent


async def ready(client: TestClient, city: City) -> Town:
    town = await ready_town(client, city)
    for account in (town.street_sup, town.worker3):
        await wait_for_user(client, account)
    return town


async def post(client: TestClient, user: str, path: str, sent: Any) -> tuple[int, Any]:
    resp = await client.post(path, json=sent, headers=basic(user))
    return resp.status, await resp.json()


async def get(client: TestClient, user: str, path: str) -> tuple[int, Any]:
    resp = await client.get(path, headers=basic(user))
    return resp.status, await resp.json()


async def stored(city: City, prefix: str) -> list[str]:
    return await city.run(lambda: [i for i in city.couch[RESIDENTS_DB] if i.startswith(prefix)])


async def step(client: TestClient, user: str, report: str, base: str, to: str, n: int,
               **more: Any) -> tuple[int, Any]:
    return await post(client, user, f"{PREFIX}/{report}/steps",
                      {"from": base, "to": to, "request": f"step-{n:08d}", **more})


async def test_a_report_with_a_photo_is_stored_once_without_its_exif(client: TestClient,
                                                                      city: City) -> None:
    town = await ready(client, city)
    sent = body(1, photos=[b64(jpeg())])
    got, answer = await post(client, town.ra, PREFIX, sent)
    assert got == 201, answer
    report = answer["report"]
    assert (report["reporter"], report["grid"], report["assignee"]) == (town.ra, town.g1,
                                                                        "grid")
    again, repeat = await post(client, town.ra, PREFIX, sent)
    assert (again, repeat["repeated"], repeat["report"]["_id"]) == (200, True, report["_id"])
    assert await stored(city, "report:") == [report["_id"]] or report["_id"] in await stored(
        city, "report:")
    doc = await city.run(lambda: city.couch[RESIDENTS_DB].get(report["_id"],
                                                                attachments=True))
    (name, att), = doc["_attachments"].items()
    clean = base64.b64decode(att["data"])
    assert att["content_type"] == "image/jpeg" and clean[:3] == b"\xff\xd8\xff"
    assert b"WHERE-I-LIVE" not in clean and b"Exif" not in clean
    assert not Image.open(io.BytesIO(clean)).getexif()
    resp = await client.get(f"{PREFIX}/{report['_id']}/photos/{report['_id']}/{name}",
                            headers=basic(town.worker1))
    assert resp.status == 200 and (await resp.read()) == clean
    # The reporter's phone holds the report, its photo and its status; the neighbour's none.
    phone = await eventually(lambda: phone_docs(client, town.ra, report["_id"]),
                             what="the report on the phone")
    assert phone[f"report_status:{report['_id'][7:]}"]["state"] == "submitted"
    neighbour = await phone_docs(client, town.rb, "")
    assert not [i for i in neighbour if i.startswith("report")]


async def phone_docs(client: TestClient, user: str, wanted: str) -> dict[str, Any] | None:
    resp = await client.get(f"{DB}/_all_docs", params={"include_docs": "true"},
                            headers=basic(user))
    docs = {row["id"]: row["doc"] for row in (await resp.json())["rows"]}
    return docs if not wanted or wanted in docs else None


async def test_bad_reports_are_refused_by_label_and_store_nothing(client: TestClient,
                                                                  city: City) -> None:
    town = await ready(client, city)
    before = await stored(city, "report")
    pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\n" + b"x" * 2000
    big = b"\xff\xd8\xff\xe0" + b"\0" * 1_100_000  # over the setting's 1 MiB
    cases = [
        (body(2, photos=[b64(big)]), "第 1 张过大"),
        (body(3, photos=[b64(pdf)]), "不是 JPEG、PNG 或 WebP"),  # a PDF named .jpg
        (body(4, photos=[{"data": "not base64!", "name": "a.jpg"}]), "base64"),
        (body(5, photos=[b64(b"\xff\xd8\xff" + b"garbage" * 100)]), "无法作为图片读取"),
        (body(6, photos=[b64(jpeg())] * 4), "最多 3 张"),
        (body(7, category="ufo"), "类别"),
        (body(8, reporter=town.rb), "上报人"),
        (body(9, grid=town.g3), "网格"),
        (body(10, description="a\ud800b"), "问题描述"),
        (body(11, anonymous=True), "匿名"),
        (body(12, request="../../_design/x"), "请求编号"),
        ([body(13)], ""),
        ("text", ""),
    ]
    for sent, words in cases:
        got, answer = await post(client, town.ra, PREFIX, sent)
        assert got == 400 and set(answer) == {"error", "reason"}, (sent, answer)
        assert words in answer["reason"] and " / " in answer["reason"], answer
    # 20 MB: refused before it is read (413 when above max_request_bytes, else as above).
    huge = body(14, photos=[b64(b"\xff\xd8\xff\xe0" + b"\0" * (20 * 1024 * 1024))])
    got, answer = await post(client, town.ra, PREFIX, huge)
    assert got in (400, 413) and "过大" in answer["reason"] and " / " in answer["reason"]
    assert await stored(city, "report") == before
    for user in (town.sup1, town.admin):  # staff other than grid workers do not report
        got, answer = await post(client, user, PREFIX, body(20))
        assert got == 403, answer
    got, answer = await post(client, town.worker1, PREFIX, body(21, grid=town.g3))
    assert got == 400 and "网格" in answer["reason"]
    got, answer = await post(client, town.worker1, PREFIX, body(22, grid=town.g1))
    assert got == 201 and answer["report"]["reporter_kind"] == "worker"


async def test_nobody_else_sees_a_report_on_any_path(client: TestClient, city: City) -> None:
    town = await ready(client, city)
    got, answer = await post(client, town.ra, PREFIX, body(30, category="noise",
                                                          anonymous=True))
    assert got == 201, answer
    rid = answer["report"]["_id"]
    made_up = "report:0123456789abcdef"
    police = await city.user("department", department="police", streets=[town.street])
    elsewhere = await city.user("department", department="zhzf", streets=[town.other_street])
    for user in (police, elsewhere):
        await wait_for_user(client, user)
    for user in (town.rb, town.rc, town.worker3, police, elsewhere):
        missing = await get(client, user, f"{PREFIX}/{made_up}")
        assert await get(client, user, f"{PREFIX}/{rid}") == missing, user
        assert missing[0] == 404
        got, listed = await get(client, user, PREFIX)
        assert got == 200 and rid not in str(listed), user
        got, answer = await step(client, user, rid, "submitted", "accepted", 31)
        assert (got, answer) == missing, user
        resp = await client.get(f"{PREFIX}/{rid}?reporter={town.ra}&all=1",
                                headers=basic(user))
        assert resp.status == 404
    # Anonymous to staff: the grid's worker handles it without learning who sent it.
    got, seen = await get(client, town.worker1, f"{PREFIX}/{rid}")
    assert got == 200 and town.ra not in str(seen), seen
    got, listed = await get(client, town.worker1, PREFIX)
    assert rid in str(listed) and town.ra not in str(listed)
    got, own = await get(client, town.ra, f"{PREFIX}/{rid}")
    assert own["report"]["reporter"] == town.ra
    # The photo route: another's report, another report's documents, names that are no photo.
    got, theirs = await post(client, town.rb, PREFIX, body(32, photos=[b64(jpeg())]))
    other = theirs["report"]["_id"]
    for user, holder, name in ((town.ra, other, "photo-1.jpg"), (town.rc, other, "photo-1.jpg"),
                               (town.rb, f"report_step:{rid[7:]}:x", "photo-1.jpg"),
                               (town.rb, other, "..%2F..%2F_all_docs"),
                               (town.rb, "_all_docs", "photo-1.jpg"),
                               (town.rb, other, "photo-9.jpg")):
        resp = await client.get(f"{PREFIX}/{other}/photos/{holder}/{name}",
                                headers=basic(user))
        assert resp.status == 404, (user, holder, name, resp.status)
    resp = await client.get(f"{PREFIX}/{other}/photos/{other}/photo-1.jpg",
                            headers=basic(town.rb))
    assert resp.status == 200 and resp.content_type == "image/jpeg"


async def test_the_workflow_step_by_step(client: TestClient, city: City) -> None:
    town = await ready(client, city)
    await city.run(lambda: city.couch[DIRECTORY_DB].save(
        {"_id": "compound:c1", "type": "compound", "property_company": "property_company:wy1"}))
    handler = await city.user("property", companies=["property_company:wy1"])
    got, answer = await post(client, town.ra, PREFIX, body(40))
    rid = answer["report"]["_id"]
    assert answer["report"]["assignee"] == "property"
    await wait_for_user(client, handler)
    assert (await step(client, town.ra, rid, "submitted", "accepted", 41))[0] == 403
    assert (await step(client, town.worker1, rid, "submitted", "dispatched", 42))[0] == 400
    assert (await step(client, town.worker1, rid, "submitted", "accepted", 43))[0] == 201
    again = await step(client, town.worker1, rid, "submitted", "accepted", 43)
    assert again[0] == 200 and again[1]["repeated"]
    got, answer = await step(client, town.worker1, rid, "accepted", "dispatched", 44,
                             assignee="property")
    assert got == 201 and answer["status"]["state"] == "dispatched"
    got, answer = await step(client, town.worker1, rid, "dispatched", "in_progress", 45)
    assert got == 403 and " / " in answer["reason"]  # the worker is not the assignee
    got, answer = await step(client, handler, rid, "dispatched", "done", 46)
    assert got == 400 and "不能从" in answer["reason"]  # a jump
    assert (await step(client, handler, rid, "dispatched", "in_progress", 47))[0] == 201
    got, answer = await step(client, handler, rid, "in_progress", "done", 48,
                             note="已清理", photos=[b64(jpeg("AFTER"))])
    assert got == 201 and answer["status"]["state"] == "done", answer
    for rating in (0, 6, "5", 4.5):
        got, answer = await step(client, town.ra, rid, "done", "closed", 49, rating=rating)
        assert got == 400 and "1 到 5" in answer["reason"], answer
    got, answer = await step(client, town.ra, rid, "done", "closed", 50, rating=5,
                             comment="很快")
    assert got == 201 and answer["status"]["state"] == "closed"
    assert answer["status"]["rating"] == 5 and "closed_at" in answer["status"]
    got, seen = await get(client, handler, f"{PREFIX}/{rid}")
    assert got == 200 and [s["to"] for s in seen["steps"]] == [
        "accepted", "dispatched", "in_progress", "done", "closed"]
    after = next(s for s in seen["steps"] if s["to"] == "done")
    assert after["photos"] == ["after-1.jpg"]


async def test_two_offline_dispatches_go_to_the_supervisors_queue(client: TestClient,
                                                                  city: City) -> None:
    town = await ready(client, city)
    got, answer = await post(client, town.ra, PREFIX, body(60, category="dispute"))
    rid = answer["report"]["_id"]
    assert (await step(client, town.worker1, rid, "submitted", "accepted", 61))[0] == 201
    got, _ = await step(client, town.worker1, rid, "accepted", "dispatched", 62,
                            assignee="grid")
    assert got == 201
    # The community's supervisor, offline since it was accepted, dispatches it elsewhere.
    got, second = await step(client, town.sup1, rid, "accepted", "dispatched", 63,
                             assignee="department:police")
    assert got == 201 and second["status"]["conflicts"] == 1
    assert second["status"]["assignee"] == "grid"
    # An earlier state never overwrites a later one: no conflict, nothing changes.
    got, late = await step(client, town.sup1, rid, "submitted", "accepted", 64)
    assert got == 201 and late["status"]["state"] == "dispatched"
    got, answer = await step(client, town.worker1, rid, "dispatched", "dispatched", 65,
                             assignee="department:police", resolve=True)
    assert got == 403  # a worker does not resolve
    got, answer = await step(client, town.sup1, rid, "dispatched", "dispatched", 66,
                             assignee="department:fire", resolve=True)
    assert got == 409  # not a state in dispute
    got, answer = await step(client, town.sup1, rid, "dispatched", "dispatched", 67,
                             assignee="department:police", resolve=True)
    assert got == 201, answer
    assert (answer["status"]["assignee"], answer["status"]["conflicts"]) == (
        "department:police", 0)
    got, answer = await step(client, town.worker1, rid, "in_progress", "done", 68)
    assert got in (403, 409)  # never in progress; and no longer the worker's


async def test_the_dashboard_and_its_export(client: TestClient, city: City) -> None:
    town = await ready(client, city)
    for n in range(6):
        got, answer = await post(client, town.ra if n % 2 else town.rb, PREFIX,
                                 body(90 + n, description=f"=HYPERLINK(\"http://x\") {n}"))
        assert got == 201, answer
    got, board = await get(client, town.sup1, f"{PREFIX}/dashboard?level=grid")
    assert got == 200 and board["level"] == "grid"
    (mine,) = [a for a in board["areas"] if a["code"] == town.g1]
    assert mine["reports"] >= 6 and mine["by_state"]["submitted"] >= 6
    assert "HYPERLINK" not in str(board) and town.ra not in str(board)
    for user, status in ((town.ra, 403), (town.worker1, 403)):
        assert (await get(client, user, f"{PREFIX}/dashboard"))[0] == status
    for query in ("?level=planet", "?level=grid&grid=g1", "?level=city&unmask=1"):
        got, answer = await get(client, town.sup1, f"{PREFIX}/dashboard{query}")
        assert got == 400 and set(answer) == {"error", "reason"}, query
    # Another community's supervisor does not count these.
    other = await city.user("supervisor", communities=[town.c3])
    await wait_for_user(client, other)
    got, theirs = await get(client, other, f"{PREFIX}/dashboard")
    assert got == 200 and theirs["total"]["reports"] == 0
    resp = await client.get(f"{PREFIX}/dashboard.xlsx?level=community",
                            headers=basic(town.sup1))
    assert resp.status == 200
    sheet = load_workbook(io.BytesIO(await resp.read()), read_only=True).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0][:3] == ["层级 level", "区域 area", "问题数 reports"]
    assert any(r[1] == town.c1 for r in rows[1:])
    assert not any(isinstance(v, str) and v.startswith("=") for r in rows for v in r)
