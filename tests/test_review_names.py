"""Issue 22, items 8 and 9, on the server: every record type is reviewable (a household's and a
person's profile too), the queue is newest first unless asked otherwise and its filters never
reach outside the supervisor's scope; the queue, a record and every sheet name grids,
communities and people by their names, enum values by their schema labels, and times in the
city's time (Asia/Shanghai), never a code, a login or UTC."""

from __future__ import annotations

import csv
import io
import random
from typing import Any

from conftest import PASSWORD, City, basic, wait_for_user
from openpyxl import load_workbook

from server.admin import directory
from server.domain.masking import HIDDEN
from server.domain.scope import grid_db

PHONE_TIME = "2026-11-2{}T09:30:00+08:00"


def community_code() -> str:
    """A community code of its own (GB/T 2260 shape: 12 digits), so tests never share one."""
    return f"339996{random.randrange(10 ** 6):06d}"


async def named_scene(client: Any, city: City) -> dict[str, Any]:
    """A named community with one grid, its worker 王芳 (wang.*) and its supervisor; another
    community's grid and worker beside it."""
    community = community_code()
    await city.run(directory.add_area, city.couch, "community", community, "坊门街社区")
    grid = await city.grid(community=community)
    other = await city.grid(community=community_code())
    worker = f"wang{random.randrange(10 ** 9)}"
    stranger = f"li{random.randrange(10 ** 9)}"
    boss = f"chen{random.randrange(10 ** 9)}"
    await city.run(directory.add_user, city.couch, worker, "worker", PASSWORD,
                   grids=[grid], full_name="王芳")
    await city.run(directory.add_user, city.couch, stranger, "worker", PASSWORD,
                   grids=[other], full_name="李强")
    await city.run(directory.add_user, city.couch, boss, "supervisor", PASSWORD,
                   communities=[community], full_name="陈静")
    for name in (worker, stranger, boss):
        await wait_for_user(client, name)
    return {"community": community, "grid": grid, "other": other, "worker": worker,
            "stranger": stranger, "boss": boss}


def household(grid: str, author: str, n: int, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"household:{grid}-{n:04d}", "type": "household", "schema_version": 2,
           "grid": grid, "created_by": author, "registry": {"source": "grid_survey"},
           "address": {"compound": "fmj", "compound_name": "坊门街公寓", "building": "3",
                       "unit": "2", "room": f"30{n}"},
           "head_name": f"户主{n}", "phone": "13905700000", "household_type": "family",
           "tenure": "rented", "status": "active", "special_groups": ["elderly_alone"],
           "device_time": PHONE_TIME.format(n)}
    doc.update(fields)
    return doc


def person(grid: str, author: str, n: int) -> dict[str, Any]:
    return {"_id": f"person:{grid}-{n:04d}-1", "type": "person", "schema_version": 1,
            "grid": grid, "created_by": author, "household": f"household:{grid}-{n:04d}",
            "name": "严福根", "relationship": "0", "sex": "1", "birth_year": 1951,
            "birth_month": 6, "id_number": "330602195106047697", "phone": "13905701234",
            "status": "present", "device_time": PHONE_TIME.format(n)}


async def send(client: Any, grid: str, worker: str, docs: list[dict[str, Any]]) -> dict[str, str]:
    """The worker's phone sends records through the gateway; their revisions by id."""
    resp = await client.post(f"/couch/{grid_db(grid)}/_bulk_docs", json={"docs": docs},
                             headers=basic(worker))
    answer = await resp.json()
    assert resp.status == 201 and all(r.get("ok") for r in answer), answer
    return {r["id"]: r["rev"] for r in answer}


async def queue(client: Any, boss: str, **query: str) -> dict[str, Any]:
    resp = await client.get("/api/review", params=query, headers=basic(boss))
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def test_profiles_are_reviewed_newest_first_by_name(client: Any, city: City) -> None:
    scene = await named_scene(client, city)
    grid, boss, worker = scene["grid"], scene["boss"], scene["worker"]
    revs = await send(client, grid, worker, [household(grid, worker, 1),
                                             household(grid, worker, 3), person(grid, worker, 2)])
    await send(client, scene["other"], scene["stranger"], [
        household(scene["other"], scene["stranger"], 4)])

    # Persons and households are listed when asked for, newest first by default.
    listed = (await queue(client, boss, type="household,person"))["records"]
    assert [r["record"] for r in listed] == [
        f"household:{grid}-0003", f"person:{grid}-0002-1", f"household:{grid}-0001"]
    assert [r["date"] for r in listed] == ["2026-11-23", "2026-11-22", "2026-11-21"]
    assert {r["state"] for r in listed} == {"received"}
    oldest = (await queue(client, boss, type="household,person", sort="oldest"))["records"]
    assert [r["record"] for r in oldest] == [r["record"] for r in reversed(listed)]
    # Without a type, the queue is the visits', census forms' and screenings' as before.
    assert (await queue(client, boss, grid=grid))["records"] == []
    # Filters never reach another community: its grid, worker and community give nothing.
    for query in ({"worker": scene["stranger"]}, {"community": "339996999999"},
                  {"street": "000000000"}):
        assert (await queue(client, boss, type="household", **query))["records"] == [], query
    resp = await client.get(f"/api/review?grid={scene['other']}&type=household",
                            headers=basic(boss))
    assert resp.status == 404
    by_date = await queue(client, boss, type="household", **{"from": "2026-11-22",
                                                             "to": "2026-11-23"})
    assert [r["record"] for r in by_date["records"]] == [f"household:{grid}-0003"]

    # A profile takes a verdict like any record, and reaches the worker's phone the same way.
    target = f"household:{grid}-0001"
    resp = await client.post("/api/review/verdicts", headers=basic(boss), json={
        "grid": grid, "verdicts": [{"record": target, "record_rev": revs[target],
                                    "decision": "has_issues", "comment": "门牌号请核对"}]})
    assert resp.status == 200, await resp.text()
    answer = await queue(client, boss, type="household", state="has_issues")
    assert [r["record"] for r in answer["records"]] == [target]
    # People by their names: the worker and the reviewer.
    assert answer["people"] == {worker: "王芳", boss: "陈静"}
    resp = await client.get("/api/review/record", params={"grid": grid, "id": target},
                            headers=basic(boss))
    found = await resp.json()
    assert found["state"] == "has_issues" and found["people"] == {worker: "王芳", boss: "陈静"}

    # The review sheet: names, labels and the city's time.
    resp = await client.get("/api/export", params={"what": "review", "type": "household",
                                                   "format": "xlsx"},
                            headers=basic(boss))
    assert resp.status == 200, await resp.text()
    rows = list(load_workbook(io.BytesIO(await resp.read()), read_only=True).active.iter_rows(
        values_only=True))
    head, cells = rows[0], {row[2]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    judged = cells[target]
    assert judged["网格 grid"] == f"测试网格 {grid}" and judged["社区 community"] == "坊门街社区"
    assert judged["类型 type"] == "住户" and judged["审核状态 state"] == "有问题"
    assert judged["网格员 worker"] == "王芳" and judged["审核人 reviewer"] == "陈静"
    reviewed_at = judged["审核时间（北京时间）reviewed at (UTC+8)"]
    assert reviewed_at.endswith("+08:00") and "T" not in reviewed_at, reviewed_at
    assert cells[f"household:{grid}-0003"]["审核状态 state"] == "待审核"
    assert len(head) == len(rows[1])


async def test_record_sheets_show_names_and_labels(client: Any, city: City) -> None:
    scene = await named_scene(client, city)
    grid, boss, worker = scene["grid"], scene["boss"], scene["worker"]
    await send(client, grid, worker, [household(grid, worker, 1, status="moved_out")])
    await send(client, grid, worker, [person(grid, worker, 1)])
    resp = await client.get("/api/export", params={"what": "households", "grid": grid},
                            headers=basic(boss))
    table = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    row = dict(zip(table[0], table[1], strict=True))
    # Each cell that used to hold a code holds its name or its label.
    assert row["网格 grid"] == f"测试网格 {grid}" and row["社区 community"] == "坊门街社区"
    assert row["户类型 household_type"] == "家庭户" and row["住房性质 tenure"] == "租住"
    assert row["状态 status"] == "已迁出" and row["特殊人群 special_groups"] == HIDDEN
    households_row = row
    resp = await client.get("/api/export", params={"what": "persons", "grid": grid},
                            headers=basic(boss))
    table = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    row = dict(zip(table[0], table[1], strict=True))
    assert row["性别 sex"] == "男" and row["状态 status"] == "在册"
    assert row["身份证号 id_number"] == "330***********7697"
    # 户 names the household by its address, as the households' sheet does, not by its key.
    assert row["户 household"] == households_row["地址 address"], row
    assert not row["户 household"].startswith("household:")
