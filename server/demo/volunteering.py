"""The demo's volunteer tasks (志愿任务): three tasks of 坊门街社区 published by its supervisor
(chen.jing): one open with places left, one full with a waiting list (the demo resident on
it, second in line), and one past whose volunteers checked in and out and had their hours
confirmed into the hours and points ledgers (one with a correction). The claims go to the
claims database in order; the server allocates them at its start (server/sync/allocation.py),
so the outcomes the phones see are the server's own. Written only where missing: loading
twice changes nothing."""

from __future__ import annotations

import dataclasses
import datetime
import secrets
from typing import Any

import couchdb

from server.domain import volunteering as rules
from server.domain.allocation import event_id, subject_key
from server.domain.scope import CLAIMS_DB, DIRECTORY_DB, RESIDENTS_DB
from server.domain.validation import shared_registry
from server.store.bulk import save_many

Doc = dict[str, Any]
ORGANISER = "chen.jing"
OPEN, FULL, PAST = ("volunteer_task:d000000000000001", "volunteer_task:d000000000000002",
                    "volunteer_task:d000000000000003")


@dataclasses.dataclass
class Plan:
    residents: list[Doc] = dataclasses.field(default_factory=list)  # tasks, check-ins, entries
    claims: list[Doc] = dataclasses.field(default_factory=list)  # in the order received


def task(task_id: str, community: str, title: str, place: str, starts: datetime.datetime,
         hours: int, places: int, published: datetime.datetime) -> Doc:
    draft = {"title": title, "description": f"{title}：请准时到达，穿便于活动的衣服。",
             "place": place, "community": community, "starts_at": starts.isoformat(),
             "ends_at": (starts + datetime.timedelta(hours=hours)).isoformat(),
             "places": places}
    return rules.task_doc(draft, ORGANISER, task_id, published)


def plan_volunteering(community: str, me: str, others: list[str],
                      now: datetime.datetime) -> Plan:
    """Pure: the demo's tasks for the demo resident `me` and other active residents."""
    plan = Plan()
    day = datetime.timedelta(days=1)
    published = now - 2 * day
    open_task = task(OPEN, community, "周末清扫楼道", "坊门小区各楼道", now + 5 * day, 3, 10,
                     published)
    full = task(FULL, community, "敬老院陪伴", "坊门街敬老院", now + 3 * day, 2, 3, published)
    past = task(PAST, community, "防汛值守", "社区防汛点", now - 10 * day, 3, 4,
                now - 14 * day)
    past["deadline"] = (now - 11 * day).isoformat()
    plan.residents += [open_task, full, past]
    received = now - day

    def claim(subject: Doc, account: str, n: int, at: datetime.datetime) -> None:
        claim_id = f"demo{n:04d}"
        plan.claims.append({
            "_id": event_id(subject["_id"], account, "claim", claim_id), "type": "claim",
            "schema_version": 1, "created_by": account, "subject": subject["_id"],
            "act": "claim", "claimant": account, "claim_id": claim_id,
            "received_at": at.isoformat(timespec="microseconds")})

    for n, account in enumerate(others[:3]):  # the open task: 3 of 10 places taken
        claim(open_task, account, n, received + datetime.timedelta(minutes=n))
    # The full task: 3 places taken, then a waiting line with the demo resident second.
    for n, account in enumerate([*others[3:7], me]):
        claim(full, account, 10 + n, received + datetime.timedelta(minutes=10 + n))
    volunteers = others[7:11]
    for n, account in enumerate(volunteers):  # the past task: 4 of 4, all served
        at = now - 12 * day + datetime.timedelta(minutes=n)
        claim(past, account, 20 + n, at)
        began = rules.parse_time(past["starts_at"])
        assert began is not None
        for direction, when in (("in", began), ("out", began + datetime.timedelta(hours=3))):
            plan.residents.append({
                "_id": f"checkin:{subject_key(PAST)}:{account}:{direction}", "type": "checkin",
                "schema_version": 1, "created_by": account, "task": PAST,
                "direction": direction, "at": when.isoformat(timespec="seconds"),
                "received_at": when.isoformat(timespec="seconds")})
        confirmed = began + datetime.timedelta(hours=4)
        for kind, amount in (("hours", 180), ("points", rules.points_for(180))):
            entry = rules.ledger_entry(kind, account, amount, "志愿服务：防汛值守", PAST,
                                       ORGANISER, confirmed)
            entry["_id"] = f"ledger_entry:{kind}:{account}:{subject_key(PAST)}"
            plan.residents.append(entry)
    if volunteers:
        first = f"ledger_entry:hours:{volunteers[0]}:{subject_key(PAST)}"
        fix = rules.ledger_entry("hours", volunteers[0], -30, "更正：提前半小时离开",
                                 f"{PAST}.fix.demo", ORGANISER, now - 9 * day, corrects=first)
        fix["_id"] = f"ledger_entry:hours:{volunteers[0]}:{subject_key(PAST)}.fix.demo"
        plan.residents.append(fix)
    return plan


def neighbours(server: couchdb.Server, community: str, me: str) -> list[str]:
    """The other resident accounts of `community`, sorted: the demo's cast of volunteers and
    party members around the demo resident `me`."""
    return sorted(row.doc["name"] for row in server[DIRECTORY_DB].view(
        "_all_docs", include_docs=True, startkey="user:", endkey="user:\ufff0")
        if (row.doc.get("resident") or {}).get("community") == community
        and row.doc["name"] != me)


def seed_volunteering(server: couchdb.Server, community: str, resident_phone: str,
                      now: datetime.datetime | None = None) -> int:
    """Write the demo's tasks where missing (none if the open one is there); how many
    documents were written."""
    residents_db = server[RESIDENTS_DB]
    if OPEN in residents_db:
        return 0
    login = server[DIRECTORY_DB].get(f"login:{resident_phone}")
    if login is None:
        return 0
    me = str(login["account"])
    others = neighbours(server, community, me)
    plan = plan_volunteering(community, me, others,
                             now or datetime.datetime.now(datetime.UTC))
    registry = shared_registry()
    for doc in plan.residents + plan.claims:
        problems = registry.problems(doc)
        if problems:
            raise ValueError(f"{doc['_id']}: {problems}")
    if CLAIMS_DB not in server:
        server.create(CLAIMS_DB)
    claims_db = server[CLAIMS_DB]
    save_many(claims_db, [{"_id": f"task_secret:{subject_key(t)}",
                           "secret": secrets.token_hex(32)} for t in (OPEN, FULL, PAST)])
    save_many(claims_db, plan.claims)  # in order: the store's sequence is the order received
    save_many(residents_db, plan.residents)
    return len(plan.claims) + len(plan.residents)
