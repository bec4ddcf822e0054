"""The demo's mediation (老娘舅调解): 周建国 (`zhou.tiaojie`, a demo login), a grid worker of
坊门街社区 holding the right to mediate; the community's supervisor 陈静 (`chen.jing`) given
the right to oversee its cases; and one case between the demo resident and a neighbour over
water dripping from an air conditioner: two sessions, an agreement signed by the demo resident
in the app and by the neighbour on paper (a photo of the page), and a follow-up. Written only
where missing: loading twice changes nothing."""

from __future__ import annotations

import base64
import datetime
import io
from typing import Any

import couchdb
from PIL import Image

from server.admin import directory
from server.demo.volunteering import neighbours
from server.domain import mediation as rules
from server.domain.scope import DIRECTORY_DB, MEDIATION_DB, User
from server.domain.validation import shared_registry

MEDIATOR = "zhou.tiaojie"
OVERSEER = "chen.jing"
CASE = "mediation_case:d000000000000001"


def paper_photo() -> bytes:
    """A grey page, pixels only (no EXIF): what the reports' photo check would store."""
    out = io.BytesIO()
    Image.new("RGB", (120, 160), (236, 236, 230)).save(out, "JPEG", quality=80)
    return out.getvalue()


def plan_case(me: str, neighbour: str, community: str,
              now: datetime.datetime) -> dict[str, Any]:
    """Pure: the case, walked through its acts as the server applies them."""
    day = datetime.timedelta(days=1)
    case = rules.new_case({"kind": "neighbours", "community": community, "mediator": MEDIATOR,
                           "request": "demo-case-0001",
                           "matter": "楼上空调外机冷凝水滴到楼下阳台，双方多次沟通未果。"},
                          [{"kind": "resident", "account": me, "name": "王伟"},
                           {"kind": "resident", "account": neighbour, "name": "刘阿姨"}],
                          OVERSEER, CASE, now - 12 * day)
    mediator = User(MEDIATOR, "worker")
    agreement = ("一、楼上住户于一周内加装空调冷凝水接水管；\n"
                 "二、楼下阳台清洗费用由楼上承担 200 元；\n三、双方今后友好相处。")
    steps: list[tuple[User, dict[str, Any], int]] = [
        (mediator, {"act": "session", "note": "双方到场，各自说明情况；约定下周查看外机位置。"},
         11),
        (mediator, {"act": "session", "note": "现场查看：冷凝水管脱落。双方同意由楼上加装接水管。"},
         8),
        (mediator, {"act": "agreement", "text": agreement}, 8),
        (User(me, "resident"), {"act": "sign"}, 7),
        (mediator, {"act": "paper", "party": "p2", "photo": {}}, 7),
        (mediator, {"act": "follow_up", "note": "回访：接水管已装好，费用已付，双方满意。"}, 2),
    ]
    for n, (actor, body, ago) in enumerate(steps):
        sent = {**body, "request": f"demo-act-{n:04d}"}
        case = rules.applied(case, sent, actor, now - ago * day,
                             photo="paper-p2-1.jpg" if body["act"] == "paper" else "")
    return case


def seed_mediation(server: couchdb.Server, community: str, resident_phone: str,
                   password: str, now: datetime.datetime | None = None) -> int:
    """The mediator, the supervisor's right and the case, where missing; cases written."""
    users = server[DIRECTORY_DB]
    if f"user:{MEDIATOR}" not in users:
        grid = sorted(g for g in (row.id.removeprefix("grid:") for row in users.view(
            "_all_docs", startkey="grid:", endkey="grid:\ufff0"))
            if (users.get(f"grid:{g}") or {}).get("community") == community)[:1]
        directory.add_user(server, MEDIATOR, "worker", password, grids=grid,
                           rights=["mediate"], full_name="周建国")
    if f"user:{OVERSEER}" in users and "mediation" not in (users[f"user:{OVERSEER}"].get(
            "rights") or []):
        directory.set_rights(server, OVERSEER, grant=["mediation"])
    if MEDIATION_DB not in server:
        server.create(MEDIATION_DB)
    login = users.get(f"login:{resident_phone}")
    if login is None or CASE in server[MEDIATION_DB]:
        return 0
    me = str(login["account"])
    others = neighbours(server, community, me)
    if not others:
        return 0
    case = plan_case(me, others[0], community, now or datetime.datetime.now(datetime.UTC))
    problems = shared_registry().problems(case)
    if problems:
        raise ValueError(f"{CASE}: {problems}")
    case["_attachments"] = {"paper-p2-1.jpg": {"content_type": "image/jpeg", "data":
                                               base64.b64encode(paper_photo()).decode()}}
    server[MEDIATION_DB].save(case)
    return 1
