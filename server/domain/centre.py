"""The neighbourhood centre's services (邻里中心): providers (服务方: a bank, housekeeping,
training, a lawyer, the 96811 life-service line) offer appointment slots residents book, and
the centre runs activities residents sign up for. The rules, pure:

1. A provider (`centre_provider:<code>`) is registered by its community's supervisor (or the
   city admin): a kind, a name, its services (1–12, each a code and a name) and its opening
   times (营业时间: per ISO weekday 1–7, up to 3 spans "HH:MM"–"HH:MM", Beijing time). Its
   staff log in with the role `provider` (`linli user add --role provider --provider <code>
   --community <c>`): a provider user acts for its own provider only, and in no grid.
2. A slot (预约时段, `centre_slot:<16 hex>`) is the provider's: one of its services, a start
   in the future (at most 60 days), 10 minutes to 4 hours, wholly inside one opening span of
   the start's Beijing day, 1–50 places. `created_by`, `community` and the id are the server's.
3. A booking is a claim on the slot through the one allocation of limited places
   (server/domain/allocation.py): places in the order the server received the bookings, one
   per resident, until the slot starts; the provider confirms (`approve`) or declines
   (`reject`: the place goes to the first waiting); a resident cancels their own (the place
   frees). A resident books only slots of a provider of a community where they live now; the
   booker is the logged-in account, never a field of the body (`resident`, `household`,
   `claimant`, `created_by`... are refused by name).
4. Confidential (保密): what a resident writes with a booking (`matter`, 1–500 characters of
   plain text, optional) is read by that resident and by the staff of the slot's provider
   only. A legal consultation (a `lawyer` provider) is confidential whole: its bookings are
   never named to anyone but the resident and the lawyer's staff, and the supervisors' figures
   count its slots and places, never who.
5. An activity (活动, `centre_activity:<16 hex>`) is published by a supervisor of the
   community, or by a provider's staff for their own community: a volunteer task's terms
   (server/domain/volunteering.py rule 2: title, place, span, places, deadline) without
   hours or check-in; sign-ups go through the same allocation, without approval.
6. Bad input is refused by label, zh-CN first, and nothing is stored: a past slot, 0 places, a
   slot outside the opening times, wrong types, control characters and lone surrogates.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain import volunteering
from server.domain.allocation import Terms
from server.domain.rules import Problem
from server.domain.scope import User
from server.domain.text import text_problem, unknown_fields

# The centre's own internal database (no `/couch/` route reaches it): providers, slots,
# activities and matters.
CENTRE_DB = "linli-centre"
PROVIDER = "centre_provider"
SLOT = "centre_slot"
ACTIVITY = "centre_activity"
MATTER = "centre_matter"
KINDS: dict[str, tuple[str, str]] = {
    "bank": ("银行", "Bank"), "housekeeping": ("家政", "Housekeeping"),
    "training": ("培训", "Training"), "lawyer": ("律师", "Lawyer"),
    "line96811": ("96811 生活服务热线", "96811 life-service line"),
}
CONFIDENTIAL = frozenset({"lawyer"})  # rule 4: the whole booking is between two
CHINA = volunteering.CHINA
CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,31}$")
KEY = re.compile(r"^[0-9a-f]{16}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_SERVICES = 12
MAX_SPANS = 3  # opening spans a day (morning, afternoon, evening)
MAX_PLACES = 50  # a slot's; more people at once is an activity
MAX_AHEAD = datetime.timedelta(days=60)
SHORTEST, LONGEST = datetime.timedelta(minutes=10), datetime.timedelta(hours=4)
MAX_MATTER = 500
DATE_TIME = ("应为带时区的日期时间，例如 2026-12-31T09:00:00+08:00",
             "must be a date and time with its zone, e.g. 2026-12-31T09:00:00+08:00")
PROVIDER_FIELDS = frozenset({"code", "kind", "name", "community", "services", "hours"})
SLOT_FIELDS = frozenset({"service", "starts_at", "ends_at", "places"})
BOOK_FIELDS = frozenset({"claim_id", "matter"})
ACTIVITY_FIELDS = frozenset({"title", "description", "place", "community", "starts_at",
                             "ends_at", "places", "deadline"})
FORGED = ("resident", "household", "claimant", "created_by", "account", "received_at",
          "community", "provider", "status", "grid")
LABELS: dict[str, tuple[str, str]] = {
    "code": ("服务方编号", "Provider code"), "kind": ("服务类别", "Kind of service"),
    "name": ("服务方名称", "Provider name"), "community": ("社区", "Community"),
    "services": ("服务项目", "Services"), "hours": ("营业时间", "Opening times"),
    "service": ("服务项目", "Service"), "starts_at": ("开始时间", "Starts at"),
    "ends_at": ("结束时间", "Ends at"), "places": ("名额", "Places"),
    "claim_id": ("预约编号", "Booking number"), "matter": ("咨询事项", "Matter"),
    "resident": ("居民", "Resident"), "household": ("住户", "Household"),
    "claimant": ("预约人", "Booked by"), "created_by": ("创建人", "Created by"),
    "account": ("账号", "Account"), "received_at": ("收到时间", "Received at"),
    "provider": ("服务方", "Provider"), "status": ("状态", "Status"), "grid": ("网格", "Grid"),
    "slot": ("预约时段", "Slot"), "booking": ("预约", "Booking"), "approve": ("确认", "Confirm"),
    "date": ("日期", "Date"), "title": ("标题", "Title"),
}


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    """A problem naming the field by its label, zh-CN first."""
    lz, le = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


def forged_problem(body: Mapping[str, Any], forged: Iterable[str]) -> list[Problem]:
    found = [k for k in forged if k in body]
    return [problem(found[0], "server_field", "由服务器填写，不能提交",
                    "is filled in by the server and cannot be sent")] if found else []


def whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_time(value: Any) -> datetime.datetime | None:
    return volunteering.parse_time(value)


# -- providers (rule 1) -----------------------------------------------------------------------

def provider_problems(draft: Mapping[str, Any]) -> list[Problem]:
    found = forged_problem(draft, ("created_by", "status", "_id", "type"))
    if found:
        return found
    found = unknown_fields(draft, PROVIDER_FIELDS)
    if not isinstance(draft.get("code"), str) or not CODE.match(draft["code"]):
        found.append(problem("code", "code", "应为 2–32 位小写字母、数字、- 或 _",
                             "must be 2–32 lowercase letters, digits, - or _"))
    if draft.get("kind") not in KINDS:
        found.append(problem("kind", "kind", "应为银行、家政、培训、律师或 96811 热线",
                             "must be bank, housekeeping, training, lawyer or line96811"))
    bad = text_problem(draft.get("name"), "/name", LABELS["name"], max_chars=40)
    if bad is not None:
        found.append(bad)
    if not isinstance(draft.get("community"), str) or not volunteering.BRANCH.match(
            draft["community"]):
        found.append(problem("community", "community", "应为社区编号", "must be a community code"))
    found += services_problems(draft.get("services"))
    found += hours_problems(draft.get("hours"))
    return found


def services_problems(services: Any) -> list[Problem]:
    if not isinstance(services, list) or not 1 <= len(services) <= MAX_SERVICES:
        return [problem("services", "services", f"应为 1 到 {MAX_SERVICES} 项",
                        f"must be 1 to {MAX_SERVICES} services")]
    codes = set()
    for service in services:
        if not isinstance(service, dict) or set(service) != {"code", "name"} or not isinstance(
                service["code"], str) or not CODE.match(service["code"]) or text_problem(
                service["name"], "/services", LABELS["services"], max_chars=40) is not None:
            return [problem("services", "services", "每项应有编号和名称",
                            "each must have a code and a name")]
        codes.add(service["code"])
    if len(codes) != len(services):
        return [problem("services", "services", "编号不能重复", "codes must differ")]
    return []


def hours_problems(hours: Any) -> list[Problem]:
    """Opening times: {"1".."7": [["09:00", "12:00"], ...]}, spans in order, not overlapping."""
    wrong = [problem("hours", "hours", "应为每周各天的营业时段，例如 09:00–17:00",
                     "must be each weekday's opening spans, e.g. 09:00–17:00")]
    if not isinstance(hours, dict) or not hours or set(hours) - {str(d) for d in range(1, 8)}:
        return wrong
    for spans in hours.values():
        if not isinstance(spans, list) or len(spans) > MAX_SPANS:
            return wrong
        last = ""
        for span in spans:
            if not isinstance(span, list) or len(span) != 2 or not all(
                    isinstance(t, str) and HHMM.match(t) for t in span) or not (
                    last <= span[0] < span[1]):
                return wrong
            last = span[1]
    return []


def provider_doc(draft: Mapping[str, Any], author: str, now: datetime.datetime
                 ) -> dict[str, Any]:
    return {"_id": f"{PROVIDER}:{draft['code']}", "type": PROVIDER, "schema_version": 1,
            "created_by": author, **{k: draft[k] for k in sorted(PROVIDER_FIELDS)},
            "registered_at": now.isoformat(timespec="seconds")}


def acts_for(user: User, provider: Mapping[str, Any]) -> bool:
    """Rule 1: a provider's staff act for their own provider, in its community."""
    return (user.role == "provider" and not user.disabled
            and user.provider == provider.get("code")
            and provider.get("community") in user.communities)


def week_of(value: Any) -> str | None:
    """The Monday (ISO date, Beijing) of the week a slot or an activity starts in: the
    supervisors' figures count by week (rule 4)."""
    at = parse_time(value)
    if at is None:
        return None
    day = at.astimezone(CHINA).date()
    return (day - datetime.timedelta(days=day.weekday())).isoformat()


def weekly(slots: Iterable[Mapping[str, Any]], held: Mapping[str, int]) -> list[dict[str, Any]]:
    """Rule 4: a provider's slots counted by week and service: slots, places and places held
    (`held`: slot id → places confirmed or awaiting the provider). Counts only, never who
    booked nor a matter; oldest week first."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for slot in slots:
        week = week_of(slot.get("starts_at"))
        if week is None:
            continue
        row = rows.setdefault((week, str(slot["service"])), {
            "week": week, "service": str(slot["service"]), "slots": 0, "places": 0,
            "booked": 0})
        row["slots"] += 1
        row["places"] += int(slot["places"])
        row["booked"] += held.get(str(slot["_id"]), 0)
    return [rows[k] for k in sorted(rows)]


def confidential(provider: Mapping[str, Any] | None) -> bool:
    return provider is None or provider.get("kind") in CONFIDENTIAL


# -- slots (rule 2) ---------------------------------------------------------------------------

def open_at(hours: Mapping[str, Any], starts: datetime.datetime,
            ends: datetime.datetime) -> bool:
    """Whether [starts, ends] lies inside one opening span of the start's Beijing day."""
    start, end = starts.astimezone(CHINA), ends.astimezone(CHINA)
    if start.date() != end.date():
        return False
    begin, finish = start.strftime("%H:%M"), end.strftime("%H:%M")
    return any(span[0] <= begin and finish <= span[1]
               for span in hours.get(str(start.isoweekday()), []))


def slot_problems(draft: Mapping[str, Any], provider: Mapping[str, Any],
                  now: datetime.datetime) -> list[Problem]:
    found = forged_problem(draft, FORGED)
    if found:
        return found
    found = unknown_fields(draft, SLOT_FIELDS)
    if draft.get("service") not in {s["code"] for s in provider.get("services", [])}:
        found.append(problem("service", "service", "不是本服务方的服务项目",
                             "is not one of this provider's services"))
    if not whole(draft.get("places"), 1, MAX_PLACES):
        found.append(problem("places", "places", f"应为 1 到 {MAX_PLACES} 的整数",
                             f"must be a whole number from 1 to {MAX_PLACES}"))
    starts, ends = parse_time(draft.get("starts_at")), parse_time(draft.get("ends_at"))
    found += [problem(name, "date_time", *DATE_TIME) for name, when in (
        ("starts_at", starts), ("ends_at", ends)) if when is None]
    if starts is None or ends is None:
        return found
    if not now < starts <= now + MAX_AHEAD:
        found.append(problem("starts_at", "past", "应在将来 60 天之内（不能预约已过去的时段）",
                             "must be within the next 60 days (never in the past)"))
    elif not SHORTEST <= ends - starts <= LONGEST:
        found.append(problem("ends_at", "span", "应在开始后 10 分钟到 4 小时",
                             "must be 10 minutes to 4 hours after the start"))
    elif not open_at(provider.get("hours", {}), starts, ends):
        found.append(problem("starts_at", "closed", "不在营业时间内",
                             "is outside the opening times"))
    return found


def slot_doc(draft: Mapping[str, Any], provider: Mapping[str, Any], author: str, key: str,
             now: datetime.datetime) -> dict[str, Any]:
    starts, ends = parse_time(draft["starts_at"]), parse_time(draft["ends_at"])
    assert starts is not None and ends is not None  # slot_problems passed
    return {"_id": f"{SLOT}:{key}", "type": SLOT, "schema_version": 1, "created_by": author,
            "provider": provider["code"], "community": provider["community"],
            "service": draft["service"], "places": draft["places"],
            "starts_at": starts.isoformat(timespec="seconds"),
            "ends_at": ends.isoformat(timespec="seconds"),
            "created_at": now.isoformat(timespec="seconds")}


def slot_terms(slot: Mapping[str, Any]) -> Terms:
    """Rule 3: the slot's places, until it starts, each booking confirmed by the provider."""
    return Terms(int(slot["places"]), parse_time(slot["starts_at"]), needs_approval=True)


def activity_terms(activity: Mapping[str, Any]) -> Terms:
    """Rule 5: the activity's places until its deadline, first come first served."""
    return Terms(int(activity["places"]), parse_time(activity["deadline"]))


# -- bookings (rules 3, 4) --------------------------------------------------------------------

def book_problems(body: Mapping[str, Any], act: str) -> list[Problem]:
    """A booking `{claim_id, matter?}` or a cancellation `{claim_id}` as the phone sends it."""
    found = forged_problem(body, FORGED)
    if found:
        return found
    found = unknown_fields(body, BOOK_FIELDS if act == "claim" else frozenset({"claim_id"}))
    if not isinstance(body.get("claim_id"), str) or not volunteering.CLAIM_ID.match(
            body["claim_id"]):
        found.append(problem("claim_id", "claim_id", "应为 8 到 64 位字母、数字、- 或 _",
                             "must be 8 to 64 letters, digits, - or _"))
    if "matter" in body:
        bad = text_problem(body["matter"], "/matter", LABELS["matter"], max_chars=MAX_MATTER,
                           paragraphs=True)
        if bad is not None:
            found.append(bad)
    return found


def past_problem(starts_at: Any, now: datetime.datetime) -> Problem | None:
    """A booking of a slot (a sign-up for an activity) whose time has passed."""
    when = parse_time(starts_at)
    if when is None or when <= now:
        return problem("slot", "past", "已过期，不能再预约",
                       "has passed: it can no longer be booked")
    return None


def matter_id(slot_id: str, account: str) -> str:
    return f"{MATTER}:{slot_id.partition(':')[2]}:{account}"


def booking_key(slot_id: str, account: str) -> str:
    """How the provider's day list names a booking (never by the resident's account)."""
    return hashlib.sha256(f"{slot_id}|{account}".encode()).hexdigest()[:16]


def day_bounds(day: str) -> tuple[datetime.datetime, datetime.datetime] | None:
    """A Beijing calendar day `YYYY-MM-DD` as [start, end) instants."""
    try:
        date = datetime.date.fromisoformat(day) if len(day) == 10 else None
    except ValueError:
        return None
    if date is None:
        return None
    start = datetime.datetime.combine(date, datetime.time(), CHINA)
    return start, start + datetime.timedelta(days=1)


# -- activities (rule 5) ----------------------------------------------------------------------

def activity_problems(draft: Mapping[str, Any], now: datetime.datetime) -> list[Problem]:
    """A volunteer task's checks (rule 5), less what an activity has not (open_to, approval)."""
    found = forged_problem(draft, ("created_by", "status", "_id", "type", "provider"))
    if found:
        return found
    extra = unknown_fields(draft, ACTIVITY_FIELDS)
    return extra + [p for p in volunteering.task_problems(draft, now)
                    if p.code != "unknown_field"]


def activity_doc(draft: Mapping[str, Any], author: str, provider: str | None, key: str,
                 now: datetime.datetime) -> dict[str, Any]:
    starts, ends = parse_time(draft["starts_at"]), parse_time(draft["ends_at"])
    assert starts is not None and ends is not None  # activity_problems passed
    deadline = parse_time(draft.get("deadline")) or starts
    doc = {"_id": f"{ACTIVITY}:{key}", "type": ACTIVITY, "schema_version": 1,
           "created_by": author, "title": draft["title"],
           "description": draft.get("description", ""), "place": draft["place"],
           "community": draft["community"], "places": draft["places"],
           "starts_at": starts.isoformat(timespec="seconds"),
           "ends_at": ends.isoformat(timespec="seconds"),
           "deadline": deadline.isoformat(timespec="seconds"),
           "published_at": now.isoformat(timespec="seconds")}
    if provider:
        doc["provider"] = provider
    return doc


def may_publish_activity(user: User, community: str, supervises: bool,
                         providers: Iterable[Mapping[str, Any]]) -> str | None:
    """Rule 5: who publishes an activity in `community`: "" for a supervisor of it (or the
    admin: `supervises`, volunteering's rule 1), the provider's code for its staff, None for
    anyone else."""
    if user.disabled:
        return None
    if supervises:
        return ""
    for provider in providers:
        if acts_for(user, provider) and provider.get("community") == community:
            return str(provider["code"])
    return None
