"""The demo's neighbourhood centre (邻里中心) of 坊门街社区: five providers (a bank, housekeeping,
training, a lawyer, the 96811 line) with their services and opening times; slots tomorrow and
the day after (the lawyer's consultation the demo resident booked, its matter theirs and the
lawyer's; the bank's last place taken by a neighbour, another waiting); an activity (插花课)
with sign-ups; and two provider logins, the lawyer's (`zhou.lawyer`) and the bank's
(`zhao.bank`). Bookings go to the claims database in order; the server allocates them at its
start. Written only where missing: loading twice changes nothing."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import couchdb

from server.admin import directory
from server.demo.volunteering import neighbours
from server.domain import centre as rules
from server.domain.allocation import event_id
from server.domain.centre import CENTRE_DB
from server.domain.scope import CLAIMS_DB, DIRECTORY_DB
from server.domain.validation import shared_registry
from server.store.bulk import save_many

Doc = dict[str, Any]
SUPERVISOR = "chen.jing"
WEEKDAYS = [["09:00", "11:30"], ["13:30", "17:00"]]
PROVIDERS = (  # code, kind, name, services (open weekdays; the 96811 line every day)
    ("fm-bank", "bank", "坊门农商银行服务点", (("cards", "社保卡办理"), ("pension", "养老金咨询"))),
    ("fm-home", "housekeeping", "邻家家政", (("clean", "上门保洁预约"), ("care", "老人陪护咨询"))),
    ("fm-class", "training", "社区学堂", (("phone", "智能手机课"), ("jobs", "就业技能培训"))),
    ("fm-law", "lawyer", "坊门法律服务站", (("advice", "法律咨询"),)),
    ("fm-96811", "line96811", "96811 生活服务热线", (("repair", "家电维修预约"),)),
)
LOGINS = (("zhou.lawyer", "fm-law", "周律师"), ("zhao.bank", "fm-bank", "赵经理"))
ACTIVITY = "centre_activity:d0000000000000c1"
MATTER = "房屋漏水，楼上邻居不肯赔偿，想咨询怎么维权"


def slot_id(n: int) -> str:
    return f"centre_slot:d0000000000000b{n}"


@dataclasses.dataclass
class Plan:
    centre: list[Doc] = dataclasses.field(default_factory=list)
    claims: list[Doc] = dataclasses.field(default_factory=list)  # in the order received


def plan_centre(community: str, me: str, others: list[str], now: datetime.datetime) -> Plan:
    """Pure: the demo's providers, slots, activity and bookings for the demo resident `me`
    and other active residents of `community` (at least 6)."""
    plan = Plan()
    stamp = (now - datetime.timedelta(days=7)).isoformat(timespec="seconds")
    for code, kind, name, services in PROVIDERS:
        days = range(1, 8) if kind == "line96811" else range(1, 6)
        plan.centre.append({
            "_id": f"{rules.PROVIDER}:{code}", "type": rules.PROVIDER, "schema_version": 1,
            "created_by": SUPERVISOR, "code": code, "kind": kind, "name": name,
            "community": community, "services": [{"code": c, "name": n} for c, n in services],
            "hours": {str(d): [["08:00", "20:00"]] if kind == "line96811" else WEEKDAYS
                      for d in days}, "registered_at": stamp})
    today = now.astimezone(rules.CHINA).date()
    weekday = next(today + datetime.timedelta(days=n) for n in range(1, 8)
                   if (today + datetime.timedelta(days=n)).isoweekday() <= 5)

    def at(hhmm: str, day: datetime.date = weekday) -> datetime.datetime:
        hour, minute = map(int, hhmm.split(":"))
        return datetime.datetime.combine(day, datetime.time(hour, minute), rules.CHINA)

    for n, (code, service, start, places, author) in enumerate((
            ("fm-law", "advice", "09:00", 2, "zhou.lawyer"),
            ("fm-bank", "cards", "10:00", 1, "zhao.bank"),
            ("fm-class", "phone", "14:00", 8, SUPERVISOR),
            ("fm-home", "clean", "15:00", 3, SUPERVISOR)), start=1):
        plan.centre.append({
            "_id": slot_id(n), "type": rules.SLOT, "schema_version": 1, "created_by": author,
            "provider": code, "community": community, "service": service, "places": places,
            "starts_at": at(start).isoformat(timespec="seconds"),
            "ends_at": (at(start) + datetime.timedelta(minutes=45)).isoformat(
                timespec="seconds"), "created_at": stamp})
    plan.centre.append(rules.activity_doc({
        "title": "邻里中心插花课", "description": "花材由社区学堂提供，欢迎带孩子一起来",
        "place": "邻里中心二楼活动室", "community": community, "places": 12,
        "starts_at": at("14:00", weekday + datetime.timedelta(days=2)).isoformat(),
        "ends_at": at("16:00", weekday + datetime.timedelta(days=2)).isoformat()},
        SUPERVISOR, "fm-class", ACTIVITY.partition(":")[2], now - datetime.timedelta(days=2)))
    plan.centre.append({"_id": rules.matter_id(slot_id(1), me), "type": rules.MATTER,
                        "schema_version": 1, "created_by": me, "slot": slot_id(1),
                        "matter": MATTER, "written_at": stamp})
    received = now - datetime.timedelta(hours=30)
    for n, (subject, who) in enumerate(((slot_id(1), me), (slot_id(2), others[0]),
                                        (slot_id(2), others[1]), (slot_id(3), others[2]),
                                        (ACTIVITY, me), *((ACTIVITY, o) for o in others[3:6]))):
        claim_id = f"demo{n:04d}"
        plan.claims.append({
            "_id": event_id(subject, who, "claim", claim_id), "type": "claim",
            "schema_version": 1, "created_by": who, "subject": subject, "act": "claim",
            "claimant": who, "claim_id": claim_id,
            "received_at": (received + n * datetime.timedelta(minutes=7)).isoformat(
                timespec="microseconds")})
    return plan


def seed_centre(server: couchdb.Server, community: str, resident_phone: str,
                password: str, now: datetime.datetime | None = None) -> int:
    """Write the demo's centre where missing (none if the lawyer is there), and the two
    provider logins; how many documents were written."""
    centre_db = server[CENTRE_DB] if CENTRE_DB in server else server.create(CENTRE_DB)
    login = server[DIRECTORY_DB].get(f"login:{resident_phone}")
    if f"{rules.PROVIDER}:fm-law" in centre_db or login is None:
        return 0
    me = str(login["account"])
    others = neighbours(server, community, me)
    if len(others) < 6:
        return 0
    plan = plan_centre(community, me, others, now or datetime.datetime.now(datetime.UTC))
    forms = shared_registry()
    wrong = {d["_id"]: found for d in (*plan.centre, *plan.claims)
             if (found := forms.problems(d))}
    if wrong:
        raise ValueError(f"the demo's centre: {wrong}")
    claims_db = server[CLAIMS_DB] if CLAIMS_DB in server else server.create(CLAIMS_DB)
    save_many(claims_db, plan.claims)  # in order: the store's sequence is the order received
    save_many(centre_db, plan.centre)
    existing = {u.name for u in directory.list_users(server)}
    for name, code, full_name in LOGINS:
        if name not in existing:
            directory.add_user(server, name, "provider", password, communities=[community],
                               provider=code, full_name=full_name)
    return len(plan.claims) + len(plan.centre)
