"""A small demo city for `linli serve --demo`: one street (街道) of Quzhou, two communities
(社区), three grids (网格), their households, and logins for each role (listed in the README).
Deterministic and idempotent: loading it twice changes nothing. The full synthetic city at real
scale is `linli seed-demo`'s job."""

from __future__ import annotations

import random

import couchdb

from server import directory
from server.scope import grid_db
from server.validation import SchemaRegistry

DEMO_PASSWORD = "linli-demo-2026"
STREET = "fushan"
GRIDS = (  # code, name, community
    ("fmj01", "坊门街社区第一网格", "fangmenjie"),
    ("fmj02", "坊门街社区第二网格", "fangmenjie"),
    ("xxj01", "县学街社区第一网格", "xianxuejie"),
)
USERS = (  # name, role, grids, communities, streets
    ("admin", "admin", (), (), ()),
    ("wang.fang", "worker", ("fmj01",), (), ()),
    ("li.qiang", "worker", ("fmj02",), (), ()),
    ("zhao.min", "worker", ("xxj01",), (), ()),
    ("chen.jing", "supervisor", (), ("fangmenjie",), ()),
    ("sun.lei", "supervisor", (), (), (STREET,)),
)
HOUSEHOLDS_PER_GRID = 40
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
ROADS = ("坊门街", "县学街", "上营街", "下营街", "水亭街")


def demo_households(code: str, worker: str) -> list[dict[str, object]]:
    rng = random.Random(f"linli-demo-{code}")
    compound = f"{code}_yuan"
    docs: list[dict[str, object]] = []
    for n in range(1, HOUSEHOLDS_PER_GRID + 1):
        building, unit, room = 1 + (n - 1) // 12, 1 + ((n - 1) // 4) % 3, 101 + (n - 1) % 4
        tenure = rng.choice(("owned", "owned", "rented"))
        doc: dict[str, object] = {
            "_id": f"household:{code}-{n:04d}", "type": "household", "schema_version": 1,
            "grid": code, "created_by": worker,
            "registry": {"source": "street_office"},
            "address": {"compound": compound, "compound_name": f"{rng.choice(ROADS)}小区",
                        "building": str(building), "unit": str(unit), "room": str(room)},
            "head_name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
            "phone": f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}",
            "household_type": "family", "tenure": tenure, "status": "active",
        }
        if tenure == "owned":
            doc["area_m2"] = round(rng.uniform(45, 160), 1)
        docs.append(doc)
    return docs


def load_demo(url: str) -> None:
    server = directory.prepared(couchdb.Server(url))
    registry = SchemaRegistry()
    for code, name, community in GRIDS:
        directory.add_grid(server, code, name, community=community, street=STREET)
    existing = {u.name for u in directory.list_users(server)}
    for name, role, grids, communities, streets in USERS:
        if name not in existing:
            directory.add_user(server, name, role, DEMO_PASSWORD, grids=grids,
                               communities=communities, streets=streets)
    workers = {grids[0]: name for name, role, grids, _, _ in USERS if role == "worker"}
    for code, _name, _community in GRIDS:
        db = server[grid_db(code)]
        docs = [d for d in demo_households(code, workers[code]) if d["_id"] not in db]
        for doc in docs:
            problems = registry.problems(doc)
            if problems:
                raise ValueError(f"demo household {doc['_id']} is invalid: {problems}")
        if docs:
            db.update(docs)
