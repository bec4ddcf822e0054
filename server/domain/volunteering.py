"""Volunteering by task claiming (任务抢单), check-in by the organiser's code (签到码) and the
hours and points ledgers (志愿时长、积分台账). Places are allocated by server/domain/allocation.py;
this module says who may do what, and what a task, a claim and a ledger entry hold.

1. Publishing (发布任务). A community's or street's supervisor (社区/街道工作人员) for a community
   of their scope, or the city admin; residents and grid workers do not. A task is published
   to one community (its residents see it); `created_by`, `status`, the id and the code's
   secret are the server's, sent they are refused by name (`task_problems`).
2. A task (`task_problems`): title, description and place as plain text; start before end;
   places 1..MAX_PLACES; a deadline to claim, no later than the start (none given: the start);
   who may claim (`open_to`): all residents of the community, volunteers, party members, or
   the members of one branch (`branch`); whether the organiser approves each place holder.
3. Claiming (`claim_problem`). Only a resident for themself: the claimant is the logged-in
   account, never a field of the body (a `claimant` or `created_by` sent is refused by name);
   only an active resident of the task's community, and of the group it is open to
   (`eligible`); only before the deadline by the server's clock when the claim is received
   (a phone's offline claim synced after it is late: the phone's clock decides nothing);
   a published task only. The phone's claim id (`CLAIM_ID`) makes a retry the same claim.
4. Check-in and check-out (`checkin_code`, `code_window`). The organiser's phone shows a code,
   made offline from the task's secret and the current 5-minute window (an HMAC, like a
   bank's token); the volunteer's phone keeps the code typed and sends it when online. The
   server finds the window of the task's span (less LEAD before the start, plus LEAD after
   the end) whose code it is: that window's start is the time recorded, not the phone's.
   Only windows of the last QUEUE_ALLOWANCE before the server receives the code count (an
   offline phone's queue, bounded): a photo of the morning's code is worth nothing by the
   afternoon, and a guess matches one of a few dozen windows, not thousands. Wrong codes
   are counted in the store per account and day, across tasks (MAX_WRONG_CODES).
5. Hours (`hours_minutes`, `confirm_problem`): the minutes between check-in and check-out,
   within the task's span; confirmed by the task's organiser (or an admin), never by the
   volunteer themself, at most the span. Confirmed hours enter the ledgers.
6. The ledgers (`ledger_entry`, `balances`): hours (in minutes) and points (积分,
   POINTS_PER_HOUR for an hour, pro rata), append-only: each entry has its reason and its
   source document, its id is made from the source (a replay is the same entry), and no entry
   is ever changed: a correction is a new entry with a negative or positive amount naming the
   entry it corrects. Balances and rankings are sums over the entries. An entry and its
   corrections always sum within what the task could give (`correction_bound`): [0, span]
   minutes, [0, points_for(span)] points; each correction carries the organiser's phone's
   key (`CLAIM_ID`'s shape), so a retry is the same correction; the entry corrected is named
   by its id (`LEDGER_ENTRY`), never by a store path.
7. Moving out (迁出) gives up one's places (`moved_out`, `release_claim_id`): a claimant who is
   no longer a resident of a task's community, before the task begins, no longer stands on
   it. The server cancels their standing claim (a place held, awaiting approval, or in the
   waiting line) as if they had, so the first waiting is promoted and told; the cancellation's
   id is made from the claim it cancels, so every pass and every server process writes the
   same one: a place is released once. A task begun keeps its holders (their hours are still
   to be confirmed).
8. Rankings and summaries (`period_months`, `Sums.board`, `Sums.summary`): a period is a month
   (`2026-12`) or a year (`2026`) of China's calendar (an entry recorded at 23:30 UTC on 31
   December counts in January); a ranking is of one community, by hours or points; a resident
   appears by the name they chose (`ranking_choice_problems`: their opt-in, 1–20 characters
   of plain text, never their account, phone or address) only while they choose to, every
   other as 匿名志愿者 with no name nor unit. A supervisor's summary gives each community of
   their scope its volunteers, minutes and points in full, and each grid's (by where the
   volunteer lives now) with a grid of 0 < volunteers < SMALL withheld, and with it the
   community's next-smallest grid, so no community total less its other grids gives one
   back (`withhold_small`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from server.domain.figures import SMALL
from server.domain.rules import Problem, conforms
from server.domain.scope import Directory, User
from server.domain.text import text_problem, unknown_fields

PUBLISHER_ROLES = ("supervisor", "admin")
OPEN_TO = ("residents", "volunteers", "party_members", "branch")
MAX_PLACES = 1000  # a task for more is a campaign: several tasks, each with its organiser
MAX_DAYS = 31  # a task's span; longer ones are several tasks (and hours stay checkable)
CLAIM_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
BRANCH = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WINDOW_SECONDS = 300  # a check-in code lives 5 minutes on the organiser's screen
LEAD = datetime.timedelta(minutes=30)  # check in this long before the start, out after the end
CODE_DIGITS = 6
POINTS_PER_HOUR = 10
MAX_CORRECTION = 100_000  # minutes or points, as the schema's amount
MAX_CORRECTIONS = 50  # per entry: a mistake is fixed in a few, never in a stream
# An offline volunteer's phone sends the code it queued when it is online again: only codes of
# the last two hours count when the server receives them (a task site without signal, the
# way home), so a code passed on later, or guessed, is worth that little.
QUEUE_ALLOWANCE = datetime.timedelta(hours=2)
MAX_WRONG_CODES = 10  # per account and day, across tasks; a day's guesses barely scratch 10^6
# An original entry's id (`ledger_entry:<kind>:<account>:<task key>`); never a store path.
LEDGER_ENTRY = re.compile(r"^ledger_entry:(hours|points):[a-z0-9][a-z0-9_.-]{1,63}:"
                          r"volunteer_task\.[0-9a-f]{16}$")
FIELDS = frozenset({"title", "description", "place", "starts_at", "ends_at", "places",
                    "deadline", "open_to", "branch", "needs_approval", "community"})
SERVER_FIELDS = ("created_by", "status", "published_at", "_id", "_rev", "type",
                 "schema_version", "secret", "claimant", "account")
LABELS: dict[str, tuple[str, str]] = {
    "title": ("标题", "Title"), "description": ("任务说明", "Description"),
    "place": ("地点", "Place"), "starts_at": ("开始时间", "Starts at"),
    "ends_at": ("结束时间", "Ends at"), "places": ("名额", "Places"),
    "deadline": ("报名截止", "Claim deadline"), "open_to": ("报名范围", "Open to"),
    "branch": ("支部", "Branch"), "needs_approval": ("须审核", "Organiser approves"),
    "community": ("社区", "Community"), "created_by": ("发布人", "Organiser"),
    "status": ("状态", "Status"), "published_at": ("发布时间", "Published at"),
    "secret": ("签到密钥", "Check-in secret"), "claimant": ("报名人", "Claimant"),
    "account": ("账号", "Account"), "claim_id": ("报名编号", "Claim number"),
    "code": ("签到码", "Check-in code"), "minutes": ("时长（分钟）", "Minutes"),
    "amount": ("数量", "Amount"), "reason": ("事由", "Reason"),
    "volunteer": ("志愿者", "Volunteer"),
    "direction": ("签到/签退", "Check in or out"), "entry": ("台账记录", "Ledger entry"),
    "approve": ("通过", "Approve"), "key": ("更正编号", "Correction number"),
    "period": ("期间", "Period"), "kind": ("类别", "Kind"), "show": ("公开显示", "Show my name"),
    "name": ("显示名", "Name shown"),
}
CHINA = datetime.timezone(datetime.timedelta(hours=8))  # periods are China's months (no DST)
KINDS = ("hours", "points")
PERIOD = re.compile(r"^(20[0-9]{2})(?:-(0[1-9]|1[0-2]))?$")
TOP = 20  # a ranking's length
SHOWN_NAME_CHARS = 20
ANONYMOUS = ("匿名志愿者", "Anonymous volunteer")


@dataclasses.dataclass(frozen=True)
class Claimant:
    """Who a claiming resident is, as the server looked it up (never as the phone says):
    the communities of their active households, whether they are a registered volunteer,
    and the party branches that confirmed them."""

    account: str
    communities: frozenset[str]
    volunteer: bool = False
    branches: frozenset[str] = frozenset()


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    """A problem naming the field by its label, zh-CN first."""
    lz, le = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


def may_publish(user: User, community: str, directory: Directory) -> bool:
    """Rule 1: an admin anywhere known; a supervisor in a community of their scope."""
    if user.disabled or user.role not in PUBLISHER_ROLES:
        return False
    known = [g for g in directory.grids.values() if g.community == community]
    if user.is_admin:
        return bool(known)
    return community in user.communities or any(g.street in user.streets for g in known)


def scope_communities(user: User, directory: Directory) -> frozenset[str]:
    """The communities whose tasks and ledgers a publisher follows (rule 1's scope)."""
    known = {g.community for g in directory.grids.values()}
    return frozenset(c for c in known if may_publish(user, c, directory))


def parse_time(value: Any) -> datetime.datetime | None:
    """A date-time with its zone, or None."""
    if not isinstance(value, str) or not conforms("date-time", value):
        return None
    when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else None


def task_problems(draft: Mapping[str, Any], now: datetime.datetime) -> list[Problem]:
    """Rule 2: every problem of a task as sent, before anything is stored."""
    forged = [k for k in SERVER_FIELDS if k in draft]
    if forged:
        return [problem(forged[0], "server_field", "由服务器填写，不能提交",
                        "is filled in by the server and cannot be sent")]
    found = unknown_fields(draft, FIELDS)
    for name, most, paragraphs in (("title", 60, False), ("description", 2000, True),
                                   ("place", 120, False)):
        bad = text_problem(draft.get(name), f"/{name}", LABELS[name], max_chars=most,
                           paragraphs=paragraphs)
        if bad is not None:
            found.append(bad)
    if not isinstance(draft.get("community"), str) or not BRANCH.match(draft["community"]):
        found.append(problem("community", "community", "应为社区编号", "must be a community code"))
    places = draft.get("places")
    if isinstance(places, bool) or not isinstance(places, int) or not 1 <= places <= MAX_PLACES:
        found.append(problem("places", "places", f"应为 1 到 {MAX_PLACES} 的整数",
                             f"must be a whole number from 1 to {MAX_PLACES}"))
    found += _span_problems(draft, now)
    open_to = draft.get("open_to", "residents")
    if open_to not in OPEN_TO:
        found.append(problem("open_to", "open_to", "应为全体居民、志愿者、党员或某个支部",
                             "must be residents, volunteers, party members or a branch"))
    branch = draft.get("branch")
    if (open_to == "branch") != (branch is not None) or (
            branch is not None and (not isinstance(branch, str) or not BRANCH.match(branch))):
        found.append(problem("branch", "branch", "仅在报名范围为某个支部时填写支部编号",
                             "is a branch code, given when and only when the task is open to "
                             "a branch"))
    if not isinstance(draft.get("needs_approval", False), bool):
        found.append(problem("needs_approval", "boolean", "应为是或否", "must be yes or no"))
    return found


def _span_problems(draft: Mapping[str, Any], now: datetime.datetime) -> list[Problem]:
    found = []
    starts, ends = parse_time(draft.get("starts_at")), parse_time(draft.get("ends_at"))
    for name, when in (("starts_at", starts), ("ends_at", ends)):
        if when is None:
            found.append(problem(name, "date_time", "应为带时区的日期时间，例如 "
                                 "2026-12-31T09:00:00+08:00", "must be a date and time with "
                                 "its zone, e.g. 2026-12-31T09:00:00+08:00"))
    if starts is None or ends is None:
        return found
    if not now < starts < ends or ends - starts > datetime.timedelta(days=MAX_DAYS):
        found.append(problem("ends_at", "span", f"应在开始之后，任务在将来且不超过 {MAX_DAYS} 天",
                             f"must follow the start; a task is in the future and lasts at "
                             f"most {MAX_DAYS} days"))
    if "deadline" in draft:
        deadline = parse_time(draft["deadline"])
        if deadline is None or not now < deadline <= starts:
            found.append(problem("deadline", "deadline", "应在现在与任务开始之间",
                                 "must fall between now and the task's start"))
    return found


def task_doc(draft: Mapping[str, Any], organiser: str, task_id: str,
             now: datetime.datetime) -> dict[str, Any]:
    """The task to store from a draft that passed `task_problems` (rule 2): its audience is
    its community, as a notice's is, so residents' phones get it the same way."""
    doc: dict[str, Any] = {
        "_id": task_id, "type": "volunteer_task", "schema_version": 1, "created_by": organiser,
        "title": draft["title"], "description": draft["description"], "place": draft["place"],
        "community": draft["community"], "starts_at": draft["starts_at"],
        "ends_at": draft["ends_at"], "deadline": draft.get("deadline", draft["starts_at"]),
        "places": draft["places"], "open_to": draft.get("open_to", "residents"),
        "needs_approval": draft.get("needs_approval", False) is True,
        "audience": {"level": "community", "codes": [draft["community"]]},
        "status": "published", "published_at": now.isoformat(timespec="seconds")}
    if draft.get("branch") is not None:
        doc["branch"] = draft["branch"]
    return doc


def eligible(task: Mapping[str, Any], claimant: Claimant) -> bool:
    """Rule 3's "who": a resident of the task's community, of the group it is open to."""
    if task.get("community") not in claimant.communities:
        return False
    open_to = task.get("open_to", "residents")
    return (open_to == "residents" or (open_to == "volunteers" and claimant.volunteer)
            or (open_to == "party_members" and bool(claimant.branches))
            or (open_to == "branch" and task.get("branch") in claimant.branches))


def claim_body_problems(body: Mapping[str, Any]) -> list[Problem]:
    """A claim or cancellation as the phone sends it: `{claim_id}` and nothing else."""
    forged = [k for k in ("claimant", "created_by", "account", "received_at") if k in body]
    if forged:
        return [problem(forged[0], "server_field", "由服务器填写，不能提交",
                        "is filled in by the server and cannot be sent")]
    found = unknown_fields(body, frozenset({"claim_id"}))
    if not isinstance(body.get("claim_id"), str) or not CLAIM_ID.match(body["claim_id"]):
        found.append(problem("claim_id", "claim_id", "应为 8 到 64 位字母、数字、- 或 _",
                             "must be 8 to 64 letters, digits, - or _"))
    return found


def claim_problem(task: Mapping[str, Any], claimant: Claimant,
                  received_at: datetime.datetime) -> Problem | None:
    """Rule 3 for a new claim received now (a task the claimant may see)."""
    if task.get("status") != "published":
        return problem("status", "task_closed", "：任务已撤回", "the task was withdrawn")
    if not eligible(task, claimant):
        return problem("claimant", "ineligible", "：此任务不对您开放报名",
                       "this task is not open to you")
    deadline = parse_time(task.get("deadline"))
    if deadline is not None and received_at > deadline:
        return problem("deadline", "late", "已过，不能再报名", "has passed: claims are closed")
    return None


def moved_out(task: Mapping[str, Any], claimant: Claimant, now: datetime.datetime) -> bool:
    """Rule 7: whether a standing claimant's place is released: the task not yet begun, and
    they no longer an active resident of its community."""
    starts = parse_time(task.get("starts_at"))
    return starts is not None and now < starts and task.get("community") not in (
        claimant.communities)


def release_claim_id(claim: str) -> str:
    """Rule 7: the server's cancellation of `claim` (a stored claim's id) has this claim id,
    made from it, so it is written once however often and wherever it is decided."""
    return "moved-" + hashlib.sha256(claim.encode()).hexdigest()[:24]


# -- check-in codes (rule 4) ------------------------------------------------------------------

def window_of(when: datetime.datetime) -> int:
    return int(when.timestamp()) // WINDOW_SECONDS


def checkin_code(secret: bytes, task_id: str, window: int) -> str:
    """The code the organiser's phone shows during `window` (an HMAC of the task and window)."""
    digest = hmac.new(secret, f"{task_id}|{window}".encode(), hashlib.sha256).digest()
    return str(int.from_bytes(digest[:8], "big") % 10 ** CODE_DIGITS).zfill(CODE_DIGITS)


def code_window(secret: bytes, task: Mapping[str, Any], code: Any,
                now: datetime.datetime) -> datetime.datetime | None:
    """The start of the window of the task's span whose code `code` is (the earliest), or None.
    The time recorded is the code's, whatever the phone's clock said; a window not yet begun
    when the server receives the code counts for nothing (a code can only have been shown)."""
    starts, ends = parse_time(task.get("starts_at")), parse_time(task.get("ends_at"))
    if not isinstance(code, str) or not code.isascii() or not code.isdigit() or len(
            code) != CODE_DIGITS or starts is None or ends is None:
        return None
    last = min(window_of(ends + LEAD), window_of(now))
    first = max(window_of(starts - LEAD), window_of(now - QUEUE_ALLOWANCE))
    for window in range(first, last + 1):
        if hmac.compare_digest(checkin_code(secret, str(task["_id"]), window), code):
            return datetime.datetime.fromtimestamp(window * WINDOW_SECONDS, datetime.UTC)
    return None


def hours_minutes(task: Mapping[str, Any], checked_in: datetime.datetime,
                  checked_out: datetime.datetime) -> int:
    """Rule 5: the minutes between check-in and check-out, within the task's span."""
    starts, ends = parse_time(task.get("starts_at")), parse_time(task.get("ends_at"))
    if starts is None or ends is None:
        return 0
    began, ended = max(checked_in, starts), min(checked_out, ends)
    return max(0, int((ended - began).total_seconds()) // 60)


def confirm_problem(task: Mapping[str, Any], user: User, volunteer: str,
                    minutes: Any) -> Problem | None:
    """Rule 5: who confirms whose hours, and how many."""
    if user.name == volunteer:
        return problem("created_by", "own_hours", "：不能确认自己的时长",
                       "may not confirm their own hours")
    if user.disabled or not (user.is_admin or task.get("created_by") == user.name):
        return problem("created_by", "not_organiser", "：只有任务的组织者可以确认时长",
                       "only the task's organiser confirms hours")
    span = span_minutes(task)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 < minutes <= span:
        return problem("minutes", "minutes", f"应为 1 到 {span} 的整数",
                       f"must be a whole number from 1 to {span}")
    return None


def span_minutes(task: Mapping[str, Any]) -> int:
    """The task's span in minutes: the most hours it gives anyone."""
    starts, ends = parse_time(task.get("starts_at")), parse_time(task.get("ends_at"))
    return int((ends - starts).total_seconds()) // 60 if starts and ends else 0


# -- the ledgers (rule 6) -----------------------------------------------------------------------

def correction_problems(entry: Any, amount: Any, reason: Any, key: Any) -> list[Problem]:
    """A correction as the organiser sends it: an original entry's id, a whole amount, not
    zero, its reason and its key."""
    found = []
    if not isinstance(entry, str) or not LEDGER_ENTRY.match(entry):
        found.append(problem("entry", "entry", "应为一条志愿时长或积分台账记录的编号",
                             "must be the id of an hours or points entry"))
    if not isinstance(key, str) or not CLAIM_ID.match(key):
        found.append(problem("key", "key", "应为 8 到 64 位字母、数字、- 或 _",
                             "must be 8 to 64 letters, digits, - or _"))
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 or abs(
            amount) > MAX_CORRECTION:
        found.append(problem("amount", "amount", f"应为非零整数，绝对值不超过 {MAX_CORRECTION}",
                             f"must be a whole number, not zero, at most {MAX_CORRECTION} "
                             "either way"))
    bad = text_problem(reason, "/reason", LABELS["reason"], max_chars=120)
    if bad is not None:
        found.append(bad)
    return found


def points_for(minutes: int) -> int:
    return minutes * POINTS_PER_HOUR // 60


def correction_bound(task: Mapping[str, Any], kind: str, entry: int,
                     corrections: Iterable[int], amount: int) -> Problem | None:
    """Rule 6: the entry and all its corrections, this one included, within [0, the most the
    task gives]: its span in minutes, or the points of its span; and few corrections."""
    cap = span_minutes(task) if kind == "hours" else points_for(span_minutes(task))
    made = list(corrections)
    now = entry + sum(made)
    if len(made) >= MAX_CORRECTIONS:
        return problem("entry", "corrections", f"已更正 {len(made)} 次，不能再更正",
                       f"was corrected {len(made)} times already; no more")
    if not 0 <= now + amount <= cap:
        return problem("amount", "bound", f"更正后应在 0 到 {cap} 之间（现为 {now}）",
                       f"must leave the entry between 0 and {cap} (it is {now})")
    return None


def ledger_entry(kind: str, account: str, amount: int, reason: str, source: str,
                 author: str, now: datetime.datetime,
                 corrects: str | None = None) -> dict[str, Any]:
    """One entry, its id made from its kind, account and source: written twice, it is one."""
    doc: dict[str, Any] = {
        "_id": f"ledger_entry:{kind}:{account}:{source}", "type": "ledger_entry",
        "schema_version": 1, "created_by": author, "kind": kind, "account": account,
        "amount": amount, "reason": reason, "source": source,
        "recorded_at": now.isoformat(timespec="seconds")}
    if corrects is not None:
        doc["corrects"] = corrects
    return doc


@dataclasses.dataclass(frozen=True)
class Entry:
    """An entry as the summaries read it."""

    account: str
    kind: str
    amount: int
    community: str = ""
    recorded_at: str = ""


def balances(entries: Iterable[Entry]) -> dict[tuple[str, str], int]:
    """Each account's balance by kind: the sum of its entries, corrections included."""
    found: dict[tuple[str, str], int] = {}
    for entry in entries:
        key = (entry.account, entry.kind)
        found[key] = found.get(key, 0) + entry.amount
    return found


def ranking(entries: Iterable[Entry], kind: str, community: str, since: str, until: str,
            shown: frozenset[str], top: int = 20) -> list[tuple[str, int]]:
    """A community's ranking for a period (recorded_at in [since, until)): the `top` accounts
    by their sum, each named only if they chose to appear (`shown`), else "" (匿名)."""
    sums: dict[str, int] = {}
    for entry in entries:
        if entry.kind == kind and entry.community == community and (
                since <= entry.recorded_at < until):
            sums[entry.account] = sums.get(entry.account, 0) + entry.amount
    best = sorted(sums.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [(account if account in shown else "", total) for account, total in best]


class Sums:
    """The ledgers' sums kept as entries are appended (rule 6), so a city's summary reads
    sums, not a million entries: each account's balance by kind, and by community, kind and
    month (`recorded_at`'s first 7 characters) each account's sum for the rankings, kept for
    the month and for its year both (rule 8's periods), so a period's sums are read, never
    added up when asked. An entry is never changed, so adding is all there is; a correction
    is one more entry."""

    def __init__(self) -> None:
        self.balance: dict[tuple[str, str], int] = {}
        self.months: dict[tuple[str, str, str], dict[str, int]] = {}
        # (community, kind, yyyy-mm or yyyy) -> each account's sum over that period
        self.periods: dict[tuple[str, str, str], dict[str, int]] = {}

    def add(self, entry: Entry) -> None:
        key = (entry.account, entry.kind)
        self.balance[key] = self.balance.get(key, 0) + entry.amount
        month = entry.recorded_at[:7]
        self.months[(entry.community, entry.kind, month)] = by_month = self.periods.setdefault(
            (entry.community, entry.kind, month), {})
        by_month[entry.account] = by_month.get(entry.account, 0) + entry.amount
        by_year = self.periods.setdefault((entry.community, entry.kind, month[:4]), {})
        by_year[entry.account] = by_year.get(entry.account, 0) + entry.amount

    def community_total(self, community: str, kind: str, since: str, until: str) -> int:
        """A community's sum of a kind over the months in [since, until) (`yyyy-mm`)."""
        return sum(sum(by_account.values()) for (c, k, m), by_account in self.months.items()
                   if c == community and k == kind and since <= m < until)

    def ranking(self, kind: str, community: str, since: str, until: str, shown: frozenset[str],
                top: int = 20) -> list[tuple[str, int]]:
        """As `ranking`, from the kept sums: months in [since, until) (`yyyy-mm`)."""
        sums: dict[str, int] = {}
        for (c, k, m), by_account in self.months.items():
            if c == community and k == kind and since <= m < until:
                for account, amount in by_account.items():
                    sums[account] = sums.get(account, 0) + amount
        best = sorted(sums.items(), key=lambda item: (-item[1], item[0]))[:top]
        return [(account if account in shown else "", total) for account, total in best]

    def board(self, kind: str, community: str, period: str, names: Mapping[str, str], me: str,
              top: int = TOP) -> dict[str, Any]:
        """Rule 8: a community's ranking of a period (`yyyy` or `yyyy-mm`), each row named
        only by the name its volunteer chose to show (`names`), else anonymous; `mine` is the
        asking resident's own place."""
        sums = self.periods.get((community, kind, period), {}) if community else {}
        order = sorted(sums.items(), key=lambda item: (-item[1], item[0]))
        rows = [{"rank": n, "name": names.get(account), "amount": total,
                 "me": account == me} for n, (account, total) in enumerate(order[:top], 1)]
        place = next((n for n, (account, _) in enumerate(order, 1) if account == me), None)
        return {"rows": rows, "mine": {"rank": place, "amount": sums.get(me, 0)},
                "volunteers": len(order)}

    def summary(self, communities: Iterable[str], period: str,
                grid_of: Callable[[str, str], str]) -> dict[str, Any]:
        """Rule 8: each community's volunteers, minutes and points over the period, and each
        grid's (`grid_of(account, community)`: where the volunteer lives now, "" if not in
        the community any more), small grids withheld (`withhold_small`)."""
        found: list[dict[str, Any]] = []
        grids: dict[tuple[str, str], dict[str, Any]] = {}
        for community in sorted(set(communities)):
            hours = self.periods.get((community, "hours", period), {})
            points = self.periods.get((community, "points", period), {})
            where = {account: grid_of(account, community) for account in hours}
            for account in points.keys() - where.keys():
                where[account] = grid_of(account, community)
            by_grid = {grid: [volunteers, 0, 0]
                       for grid, volunteers in Counter(where.values()).items()}
            for n, sums in ((1, hours), (2, points)):
                for account, amount in sums.items():
                    by_grid[where[account]][n] += amount
            found.append({"community": community, "volunteers": len(where),
                          "minutes": sum(row[1] for row in by_grid.values()),
                          "points": sum(row[2] for row in by_grid.values())})
            for grid, (volunteers, minutes, points_sum) in by_grid.items():
                grids[(community, grid)] = {"community": community, "grid": grid,
                                            "volunteers": volunteers, "minutes": minutes,
                                            "points": points_sum}
        hidden = withhold_small({f"{c}/{g}": (c, r["volunteers"])
                                 for (c, g), r in grids.items()})
        rows = [r if f"{c}/{g}" not in hidden else {
            **r, "volunteers": None, "minutes": None, "points": None, "withheld": True}
            for (c, g), r in sorted(grids.items())]
        return {"communities": found, "grids": rows}


# -- rankings and summaries (rule 8) --------------------------------------------------------------

def month_of(recorded_at: str) -> str:
    """The month (`yyyy-mm`) of China's calendar an entry's time falls in ("" if none)."""
    when = parse_time(recorded_at)
    return when.astimezone(CHINA).strftime("%Y-%m") if when is not None else ""


def period_months(period: Any) -> tuple[str, str] | None:
    """Rule 8: a period (`yyyy` or `yyyy-mm`) as months [since, until), or None."""
    found = PERIOD.match(period) if isinstance(period, str) else None
    if found is None:
        return None
    year, month = int(found.group(1)), found.group(2)
    if month is None:
        return f"{year:04d}-01", f"{year + 1:04d}-01"
    nxt = (year + 1, 1) if month == "12" else (year, int(month) + 1)
    return f"{year:04d}-{month}", f"{nxt[0]:04d}-{nxt[1]:02d}"


def period_problem(period: Any) -> Problem | None:
    if period_months(period) is None:
        return problem("period", "period", "应为年份（2026）或月份（2026-12）",
                       "must be a year (2026) or a month (2026-12)")
    return None


def ranking_choice_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rule 8's opt-in as the phone sends it: `{show: true, name}` or `{show: false}`; the
    account is the logged-in one, never a field."""
    forged = [k for k in ("created_by", "account", "_id", "type") if k in body]
    if forged:
        return [problem(forged[0], "server_field", "由服务器填写，不能提交",
                        "is filled in by the server and cannot be sent")]
    found = unknown_fields(body, frozenset({"show", "name"}))
    show = body.get("show")
    if not isinstance(show, bool):
        found.append(problem("show", "boolean", "应为是或否", "must be yes or no"))
    elif show:
        bad = text_problem(body.get("name"), "/name", LABELS["name"],
                           max_chars=SHOWN_NAME_CHARS)
        if bad is not None:
            found.append(bad)
    elif "name" in body:
        found.append(problem("name", "name_hidden", "仅在公开显示时填写",
                             "is given only when the name is shown"))
    return found


def withhold_small(grids: Mapping[str, tuple[str, int]]) -> frozenset[str]:
    """Rule 8: the grids (code -> (community, volunteers)) whose figures are withheld: those
    with 0 < volunteers < SMALL, and in a community with exactly one such grid, its smallest
    other grid with volunteers as well (its total less the others would give it back)."""
    withheld = {g for g, (_, n) in grids.items() if 0 < n < SMALL}
    by_community: dict[str, list[str]] = {}
    for grid, (community, _) in grids.items():
        by_community.setdefault(community, []).append(grid)
    for members in by_community.values():
        hidden = [g for g in members if g in withheld]
        others = sorted((grids[g][1], g) for g in members if g not in withheld and grids[g][1])
        if len(hidden) == 1 and others:
            withheld.add(others[0][1])
    return frozenset(withheld)
