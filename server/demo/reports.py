"""The demo's problem reports (问题上报): the demo resident's reports of 坊门街社区, one in each
state of the workflow (已提交, 已受理, 已派单, 处理中, 已办结, 已关闭 with a rating) and one whose
two offline dispatches wait in the supervisors' queue; the grid's worker (wang.fang) accepts,
dispatches and handles them, and the community's supervisor (chen.jing) dispatches one twice
over. Their statuses are the domain's fold of their steps, as the server writes them. Written
only where missing: loading twice changes nothing."""

from __future__ import annotations

import datetime
from typing import Any

import couchdb

from server.domain import reports as rules
from server.domain.scope import DIRECTORY_DB, RESIDENTS_DB
from server.domain.validation import shared_registry
from server.store.bulk import save_many

Doc = dict[str, Any]
WORKER, SUPERVISOR = "wang.fang", "chen.jing"
FIRST = "report:d000000000000001"
WALK = (("submitted", "accepted", WORKER, ["intake"], {}),
        ("accepted", "dispatched", WORKER, ["intake"], {"assignee": "grid"}),
        ("dispatched", "in_progress", WORKER, ["assignee", "intake"], {}),
        ("in_progress", "done", WORKER, ["assignee", "intake"], {"note": "已清理完毕"}))
# (category, description, steps of WALK taken, closed with a rating)
REPORTS = (("sanitation", "3幢楼道堆满纸箱，影响通行", 0, None),
           ("parking", "小区东门消防通道常有车辆停放", 1, None),
           ("facility", "2单元门禁损坏，关不上门", 2, None),
           ("noise", "夜间广场舞音响声音过大", 3, None),
           ("other", "路灯不亮，晚上看不清台阶", 4, None),
           ("sanitation", "垃圾分类点满溢，无人清运", 4, 5),
           ("dispute", "楼上漏水到我家，沟通未果", 1, None))


def plan_reports(me: str, grid: str, community: str, street: str,
                 now: datetime.datetime) -> list[Doc]:
    """The reports, their steps and statuses, a day apart, the last one in dispute."""
    docs: list[Doc] = []
    for n, (category, text, walked, rating) in enumerate(REPORTS):
        rid = f"report:d{n + 1:015d}"
        at = now - datetime.timedelta(days=len(REPORTS) - n, hours=3)
        report = {"_id": rid, "type": "report", "schema_version": 1, "created_by": me,
                  "reporter": me, "reporter_kind": "resident", "category": category,
                  "description": text, "grid": grid, "community": community, "street": street,
                  "anonymous": False, "assignee": "grid", "request": f"demo{n + 1:08d}",
                  "submitted_at": at.isoformat(timespec="microseconds")}
        steps: list[Doc] = []
        moves = list(WALK[:walked])
        if rating is not None:
            moves.append(("done", "closed", me, ["reporter"], {"rating": rating,
                                                              "comment": "处理及时，谢谢"}))
        if n == len(REPORTS) - 1:  # dispatched twice offline: the supervisors' queue
            moves += [("accepted", "dispatched", WORKER, ["intake"], {"assignee": "grid"}),
                      ("accepted", "dispatched", SUPERVISOR, ["intake", "supervisor"],
                       {"assignee": "department:police"})]
        for k, (base, to, actor, parts, more) in enumerate(moves):
            when = at + datetime.timedelta(hours=2 * (k + 1))
            steps.append({"_id": f"report_step:{rules.key_of(rid)}:{k:016x}",
                          "type": "report_step", "schema_version": 1, "created_by": actor,
                          "report": rid, "reporter": me, "from": base, "to": to, "round": 0,
                          "parts": parts, "request": f"demo{n + 1:04d}{k:04d}",
                          "at": when.isoformat(timespec="microseconds"), **more})
        folded = rules.fold(rules.Step(s["_id"], s["created_by"], frozenset(s["parts"]),
                                       s["from"], 0, s["to"], s.get("assignee", ""))
                            for s in steps)
        docs += [report, *steps, rules.status_doc(report, folded, steps, now)]
    return docs


def seed_reports(server: couchdb.Server, resident_phone: str,
                 now: datetime.datetime | None = None) -> int:
    """Write the demo's reports where missing; how many documents were written."""
    residents_db = server[RESIDENTS_DB]
    login = server[DIRECTORY_DB].get(f"login:{resident_phone}")
    if login is None or FIRST in residents_db:
        return 0
    me = str(login["account"])
    user = server[DIRECTORY_DB].get(f"user:{me}") or {}
    grids = (user.get("resident") or {}).get("grids") or []
    grid_doc = server[DIRECTORY_DB].get(f"grid:{grids[0]}") if grids else None
    if grid_doc is None:
        return 0
    docs = plan_reports(me, grids[0], str(grid_doc.get("community", "")),
                        str(grid_doc.get("street", "")),
                        now or datetime.datetime.now(datetime.UTC))
    registry = shared_registry()
    wrong = {doc["_id"]: found for doc in docs if (found := registry.problems(doc))}
    if wrong:  # the demo is held to the schemas as any write
        raise ValueError(f"demo reports: {wrong}")
    save_many(residents_db, docs)
    return len(docs)
