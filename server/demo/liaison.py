"""The demo's enforcement liaison (执法进小区): in the demo resident's compound, two liaison
officers (demo logins): 张警官 (`ga.zhang`, 公安) and 吴消防 (`xf.wu`, 消防), named by the
community's supervisor; a message of the demo resident to the police officer and its answer;
and the fire officer's route 消防通道巡查 (three checkpoints, twice a week) with a patrol done
this week, one checkpoint with a problem found (a blocked fire lane), filed as a problem report
routed to 消防. Written only where missing: loading twice changes nothing."""

from __future__ import annotations

import datetime
from typing import Any

import couchdb

from server.admin import directory
from server.domain import liaison as rules
from server.domain import reports
from server.domain.scope import DIRECTORY_DB, LIAISON_DB, RESIDENTS_DB, grid_db
from server.domain.validation import shared_registry
from server.store.bulk import save_many

POLICE, FIRE, SUPERVISOR = "ga.zhang", "xf.wu", "chen.jing"
ROUTE = "patrol_route:d000000000000001"
REPORT = "report:d0000000000000f1"
Doc = dict[str, Any]


def home_of(server: couchdb.Server, me: str) -> tuple[str, str] | None:
    """(grid, compound) of the demo resident's active household."""
    user = server[DIRECTORY_DB].get(f"user:{me}") or {}
    for grid in (user.get("resident") or {}).get("grids") or []:
        db = server[grid_db(grid)]
        for row in db.view("_all_docs", startkey=f"resident:{me}-",
                           endkey=f"resident:{me}-\ufff0", include_docs=True):
            household = db.get(str(row.doc.get("household")))
            if row.doc.get("status") == "active" and household:
                return grid, str(household["address"]["compound"])
    return None


def plan_liaison(me: str, grid: str, compound: str, community: str, street: str,
                 now: datetime.datetime, secret: bytes | None = None) -> list[Doc]:
    """Pure: the officers, the thread (keyed with the installation's `secret`, as the server
    keys it; none without one), the route, its patrol and the problem's report."""
    hour = datetime.timedelta(hours=1)
    week = now.astimezone(rules.SHANGHAI)
    started = max(week - datetime.timedelta(days=week.weekday()) + 9 * hour -
                  datetime.timedelta(hours=week.hour, minutes=week.minute), now - 2 * hour)
    docs: list[Doc] = [rules.officer_doc(compound, dep, officer, SUPERVISOR, now - 30 * 24 * hour)
                       for dep, officer in (("police", POLICE), ("fire", FIRE))]
    for n, (sender, by, text) in enumerate((
            ("resident", me, "小区南门晚上常有人占道摆摊，影响通行。"),
            ("officer", POLICE, "收到，今晚巡逻时到南门查看处理。")) if secret else ()):
        thread = rules.thread_id(secret, me, compound, "police")
        docs.append(rules.message_doc(thread, compound, "police", me, sender, by,
                                      {"text": text, "key": f"demo-msg-{n:04d}"},
                                      now - (3 - n) * hour))
    docs.append(rules.route_doc({"compound": compound, "grid": grid, "department": "fire",
                                 "name": "消防通道巡查", "checkpoints": ["南门消防通道",
                                                                  "地下车库", "3号楼楼道"],
                                 "per_week": 2, "request": "demo-route-0001"},
                                FIRE, ROUTE, now - 30 * 24 * hour))
    route = docs[-1]
    key = "d0000000000000a1"
    for n in range(3):
        body: dict[str, Any] = {"checkpoint": n, "ok": n != 2,
                                "at": (started + n * datetime.timedelta(minutes=10)).isoformat()}
        if n == 2:
            body["problem"] = {"category": "safety",
                               "description": "楼道堆放电动车，堵塞消防通道。"}
        check = rules.check_doc(body, route, FIRE, key, started + n * datetime.timedelta(
            minutes=10))
        if n == 2:
            check["report"] = REPORT
        docs.append(check)
    report: Doc = {"_id": REPORT, "type": "report", "schema_version": 1, "created_by": FIRE,
                 "reporter": FIRE, "reporter_kind": "department", "category": "safety",
                 "description": "楼道堆放电动车，堵塞消防通道。", "grid": grid,
                 "community": community, "street": street, "anonymous": False,
                 "assignee": "department:fire", "request": f"patrol-{key}-02",
                 "submitted_at": started.isoformat(), "compound": compound, "spot": "3号楼楼道"}
    return [*docs, report, reports.status_doc(report, reports.fold([]), [], now)]


def seed_liaison(server: couchdb.Server, community: str, street: str, resident_phone: str,
                 password: str, now: datetime.datetime | None = None) -> int:
    """The officers' logins and the documents, where missing; how many were written."""
    users = server[DIRECTORY_DB]
    for name, dep, full in ((POLICE, "police", "张警官"), (FIRE, "fire", "吴消防")):
        if f"user:{name}" not in users:
            directory.add_user(server, name, "department", password, department=dep,
                               communities=[community], full_name=full)
    if LIAISON_DB not in server:
        server.create(LIAISON_DB)
    login = users.get(f"login:{resident_phone}")
    if login is None or ROUTE in server[LIAISON_DB]:
        return 0
    me = str(login["account"])
    home = home_of(server, me)
    if home is None:
        return 0
    installation = users.get("_local/installation") or {}
    secret = bytes.fromhex(str(installation["secret"])) if installation.get("secret") else None
    docs = plan_liaison(me, home[0], home[1], community, street,
                        now or datetime.datetime.now(datetime.UTC), secret)
    registry = shared_registry()
    wrong = {d["_id"]: found for d in docs if (found := registry.problems(d))}
    if wrong:
        raise ValueError(f"demo liaison: {wrong}")
    filed = [d for d in docs if d["type"] in ("report", "report_status")]
    save_many(server[LIAISON_DB], [d for d in docs if d not in filed])
    if REPORT not in server[RESIDENTS_DB]:
        save_many(server[RESIDENTS_DB], filed)
    return len(docs)
