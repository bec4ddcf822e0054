"""Volunteer tasks in the store (志愿任务): published to the residents database (residents'
phones get them by their community, as notices), claimed and cancelled through the one
allocation of limited places (server/sync/allocation.py). The rules are
server/domain/volunteering.py; who a claimant is comes from the residents' index (their
active households) and the directory (their grids' communities), never from the phone."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from server.domain import volunteering as rules
from server.domain.allocation import Outcome, Terms
from server.domain.allowed_ids import RESIDENTS as RESIDENTS_LABEL
from server.domain.messages import Refused, bilingual
from server.domain.scope import CLAIMS_DB, RESIDENTS_DB, Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.allocation import CLAIMS_PLACEMENT, Allocator, event_id, subject_key
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused
from server.sync.party import Party

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

KIND = "volunteer_task"
MAX_WRONG_CODES = rules.MAX_WRONG_CODES
STANDING = ("confirmed", "awaiting_approval", "waiting")  # a claim one may still cancel
RELEASER = "linli-volunteering"  # the author of a moved-out claimant's cancellation (rule 7)
CHOICE = "volunteer_ranking"
RELEASE_SECONDS = 2.0  # how often the residents' index is looked at for move-outs


def secret_id(task_id: str) -> str:
    """The check-in secret's id, in the claims database (internal: it never reaches a phone
    but the organiser's, through their route)."""
    return f"task_secret:{subject_key(task_id)}"


def ledger_id(kind: str, account: str, source: str) -> str:
    return f"ledger_entry:{kind}:{account}:{subject_key(source)}"


def wrong_codes_id(account: str, now: datetime.datetime) -> str:
    """The day's count of an account's wrong check-in codes, whatever the task."""
    return f"wrong_codes:{account}:{now.date().isoformat()}"


def choice_id(account: str) -> str:
    """A resident's opt-in to appear by name in the rankings (rule 8), in the residents
    database, filed under them (their phone holds it)."""
    return f"{CHOICE}:{account}"


def no_such_task() -> Refused:
    return Refused(404, "not_found", bilingual("没有这个任务，或您无权查看",
                                               "No such task, or it is outside your scope."))


@dataclasses.dataclass
class Ledgers:
    """The ledgers' sums (rule 8) kept as the residents' index reads the residents database
    (its one pass at start, then its feed: server/sync/allowed.py), so a ranking or a city's
    summary reads sums, never the entries: each task's community (an entry counts in its
    task's), each entry added once (an entry is written once and never changed: a revision
    other than the first is not one), and the names residents chose to show."""

    sums: rules.Sums = dataclasses.field(default_factory=rules.Sums)
    communities: dict[str, str] = dataclasses.field(default_factory=dict)  # task -> community
    names: dict[str, str] = dataclasses.field(default_factory=dict)  # account -> name shown

    def take(self, doc: Mapping[str, Any]) -> None:
        """One document of the residents database, as the index applies it."""
        doc_id = str(doc.get("_id", ""))
        kind, _, rest = doc_id.partition(":")
        if kind == KIND and isinstance(doc.get("community"), str):
            self.communities[doc_id] = doc["community"]
        elif kind == CHOICE:
            if doc.get("show") is True and isinstance(doc.get("name"), str):
                self.names[rest] = doc["name"]
            else:
                self.names.pop(rest, None)
        elif kind == "ledger_entry" and doc.get("type") == "ledger_entry" and str(
                doc.get("_rev", "1-")).startswith("1-") and not doc.get("_deleted"):
            task = str(doc.get("source", "")).split(".fix.", 1)[0]
            amount = doc.get("amount")
            if doc.get("kind") in rules.KINDS and isinstance(amount, int) and isinstance(
                    doc.get("account"), str):
                self.sums.add(rules.Entry(doc["account"], str(doc["kind"]), amount,
                                          self.communities.get(task, ""),
                                          rules.month_of(str(doc.get("recorded_at", "")))))


@dataclasses.dataclass
class Volunteering:
    """The store's side of tasks; one per app. Its tasks' terms feed the allocator."""

    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    # A task's terms never change once published: read once per process.
    terms_held: dict[str, Terms] = dataclasses.field(default_factory=dict)
    tasks_held: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    ledgers: Ledgers = dataclasses.field(default_factory=Ledgers)
    party: Party | None = None  # who belongs to which branch (server/sync/party.py)

    async def publish(self, user: User, draft: Mapping[str, Any],
                      now: datetime.datetime) -> dict[str, Any]:
        """Rules 1 and 2: checked, then stored published; nothing stored when refused."""
        problems = rules.task_problems(draft, now)
        if problems:
            raise refused(problems)
        if not rules.may_publish(user, draft["community"], self.directory):
            raise refused([rules.problem("community", "community_scope",
                                         "不在您的管辖范围内（或不存在）",
                                         "is outside your area (or does not exist)")])
        doc = rules.task_doc(draft, user.name, f"{KIND}:{secrets.token_hex(8)}", now)
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        await self.couch.ensure_db(CLAIMS_DB, **CLAIMS_PLACEMENT)
        await self.couch.put(db_path(CLAIMS_DB, secret_id(doc["_id"])),
                             {"secret": secrets.token_hex(32)})
        await self.couch.put(db_path(RESIDENTS_DB, doc["_id"]), doc)
        audit.info("%s published %s in %s (%d places)", user.name, doc["_id"],
                   doc["community"], doc["places"])
        return doc

    async def task(self, task_id: str) -> dict[str, Any] | None:
        if not task_id.startswith(f"{KIND}:"):
            return None
        try:
            doc = await self.couch.get(db_path(RESIDENTS_DB, task_id))
        except NotFound:
            return None
        return doc if isinstance(doc, dict) and doc.get("type") == KIND else None

    async def task_held(self, task_id: str, index: ResidentIndex) -> dict[str, Any] | None:
        """The task as stored, read again only when the residents' index has seen it change
        (a claim flood reads it once, not once a claim)."""
        seen = index.notices.get(task_id)
        held = self.tasks_held.get(task_id)
        if seen is not None and held is not None and held.get("_rev") == seen[1]:
            return held
        doc = await self.task(task_id)
        if doc is not None:
            self.tasks_held[task_id] = doc
        return doc

    async def terms(self, subject: str) -> Terms | None:
        """The allocator's terms of a task (places, deadline, approval)."""
        held = self.terms_held.get(subject)
        if held is not None:
            return held
        doc = await self.task(subject)
        if doc is None:
            return None
        held = Terms(int(doc["places"]), rules.parse_time(doc.get("deadline")),
                     doc.get("needs_approval") is True)
        self.terms_held[subject] = held
        return held

    def claimant(self, account: str, index: ResidentIndex) -> rules.Claimant:
        """Who a resident is, from the index: the communities of their active households, and
        whether they registered as a volunteer (their `volunteer:` record, which the index
        files under them). Their party branches are read by `claimant_for`."""
        grids = self.directory.grids
        held = index.allowed(account).get(RESIDENTS_LABEL, frozenset())
        return rules.Claimant(account, frozenset(
            grids[grid].community for grid in index.ids.homes(account).values()
            if grid in grids), volunteer=f"volunteer:{account}" in held)

    async def claimant_for(self, task: Mapping[str, Any], account: str,
                           index: ResidentIndex) -> rules.Claimant:
        """The claimant, with their confirmed party branches when the task is open to party
        members or a branch (read then only: other tasks' claim floods cost nothing more)."""
        who = self.claimant(account, index)
        if task.get("open_to") in ("party_members", "branch") and self.party is not None:
            who = dataclasses.replace(who, branches=await self.party.branches(account, index))
        return who

    async def register(self, account: str, index: ResidentIndex,
                       now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """A resident registers as a volunteer of their community, once (志愿者注册)."""
        who = self.claimant(account, index)
        if not who.communities:
            raise Refused(403, "forbidden", bilingual("请先激活您的住户，再注册志愿者",
                                                      "Activate your household first."))
        doc = {"_id": f"volunteer:{account}", "type": "volunteer", "schema_version": 1,
               "created_by": account, "community": sorted(who.communities)[0],
               "registered_at": now.isoformat(timespec="seconds")}
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        path = db_path(RESIDENTS_DB, doc["_id"])
        try:
            await self.couch.put(path, doc)
        except Conflict:
            return dict(await self.couch.get(path)), False
        audit.info("%s registered as a volunteer", account)
        return doc, True

    async def act(self, allocator: Allocator, index: ResidentIndex, account: str,
                  task_id: str, act: str, claim_id: str,
                  now: datetime.datetime) -> tuple[Outcome | None, bool]:
        """A resident's claim or cancellation (rule 3), stored once and allocated: (their
        outcome, or None when not yet allocated; whether this call stored it). A task they
        may not see answers as one that does not exist; a retry of a stored claim answers
        what it stands for, whatever the deadline since."""
        doc = await self.task_held(task_id, index)
        who = self.claimant(account, index) if doc is None else await self.claimant_for(
            doc, account, index)
        if doc is None or (doc.get("community") not in who.communities
                           and not await self.standing(allocator, task_id, account, act)):
            raise no_such_task()
        problem = rules.claim_problem(doc, who, now) if act == "claim" else None
        created = False
        if problem is not None:  # a retry of a claim stored in time still answers
            if await allocator.stored_claim(event_id(task_id, account, act, claim_id)) is None:
                raise Refused(403, "forbidden", problem.message)
        else:  # stored once: a retry meets the stored one (one store request either way)
            created = await self.store_event(allocator, account, task_id, account, act,
                                             claim_id, now)
        await allocator.settle()
        return allocator.outcome(task_id, account), created

    @staticmethod
    async def standing(allocator: Allocator, task_id: str, account: str, act: str) -> bool:
        """Whether `act` is a cancellation by someone who claimed the task: one may always
        give up a place, even after moving out of the task's community (where the server
        may have released it already: rule 7; the answer is then what stands)."""
        if act != "cancel":
            return False
        await allocator.settle()
        return allocator.outcome(task_id, account) is not None

    async def store_event(self, allocator: Allocator, author: str, task_id: str,
                          claimant: str, act: str, claim_id: str,
                          now: datetime.datetime) -> bool:
        """A claim, cancellation or decision as the claims database keeps it, stored once."""
        event = {"_id": event_id(task_id, claimant, act, claim_id), "type": "claim",
                 "schema_version": 1, "created_by": author, "subject": task_id, "act": act,
                 "claimant": claimant, "claim_id": claim_id,
                 "received_at": now.isoformat(timespec="microseconds")}
        stated = self.schemas.problems(event)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        created = await allocator.record(event)
        if created:
            audit.info("%s: %s %s on %s (%s)", author, act, claimant, task_id, claim_id)
        return created

    async def decide(self, allocator: Allocator, user: User, task_id: str, claimant: str,
                     approve: bool, decision_id: str,
                     now: datetime.datetime) -> tuple[Outcome | None, bool]:
        """The organiser approves a claimant of a task that needs approval, or rejects the
        standing claim of any task's claimant: an event like a claim (the organiser's id for
        it makes a retry the same), taken in the order received; a rejection frees the place
        for the first waiting (a place is never held for someone who may not come)."""
        doc = await self.organised(user, task_id)
        if approve and doc.get("needs_approval") is not True:
            raise refused([rules.problem("needs_approval", "no_approval",
                                         "：此任务无须审核", "this task takes no approvals")])
        await allocator.settle()
        act = "approve" if approve else "reject"
        if await allocator.stored_claim(event_id(task_id, claimant, act, decision_id)):
            return allocator.outcome(task_id, claimant), False  # a retry of this decision
        standing = allocator.outcome(task_id, claimant)
        if standing is None or standing.status not in STANDING:
            raise refused([rules.problem("claimant", "no_claim", "没有报名此任务",
                                         "has no claim on this task")])
        created = await self.store_event(allocator, user.name, task_id, claimant, act,
                                         decision_id, now)
        await allocator.settle()
        return allocator.outcome(task_id, claimant), created

    async def release_moved(self, allocator: Allocator, index: ResidentIndex,
                            now: datetime.datetime, trusted_after: int = 0) -> int:
        """Rule 7: cancel, once, each standing claim on a task not yet begun whose claimant
        no longer lives in its community; how many were cancelled now. An index that reads
        grids only as they are written (`grid_passes_at_start` off) does not know everyone:
        it is trusted for an account whose links changed after `trusted_after` only."""
        await allocator.settle()
        released = 0
        for subject, outcomes in list(allocator.outcomes.items()):
            due = [(who, o.claim) for who, o in outcomes.items() if o.status in STANDING
                   and (index.every_grid or index.stamps.get(f"account:{who}", 0) > trusted_after)]
            task = await self.task_held(subject, index) if due else None
            for who, claim in due if task is not None else ():
                if rules.moved_out(task, self.claimant(who, index), now):
                    released += await self.store_event(
                        allocator, RELEASER, subject, who, "cancel",
                        rules.release_claim_id(claim), now)
        if released:
            await allocator.settle()
        return released

    async def releasing(self, allocator: Allocator, index: ResidentIndex,
                        seconds: float = RELEASE_SECONDS) -> None:
        """Supervised: `release_moved` whenever the residents' index has changed, at most
        every `seconds` (a move-out reaches the index within its sweep)."""
        await index.ready.wait()
        await allocator.ready.wait()
        trusted_after, seen = index.counter, -1
        while True:
            if index.counter != seen:
                seen = index.counter
                await self.release_moved(allocator, index, datetime.datetime.now(datetime.UTC),
                                         trusted_after)
            await asyncio.sleep(seconds)

    async def choose(self, account: str, show: bool, name: str | None,
                     now: datetime.datetime) -> dict[str, Any]:
        """Rule 8: a resident's opt-in (or out) to appear by name in the rankings; the last
        choice stands (a retry writes the same)."""
        doc: dict[str, Any] = {"_id": choice_id(account), "type": CHOICE, "schema_version": 1,
                               "created_by": account, "show": show,
                               "chosen_at": now.isoformat(timespec="seconds")}
        if show and name is not None:
            doc["name"] = name
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        path = db_path(RESIDENTS_DB, doc["_id"])
        while True:
            try:
                held = await self.couch.get(path)
                doc["_rev"] = held["_rev"]
            except NotFound:
                doc.pop("_rev", None)
            try:
                await self.couch.put(path, doc)
            except Conflict:
                continue
            self.ledgers.take(doc)  # at once: the index's feed brings it again, the same
            audit.info("%s chose %s in the rankings", account, "to be named" if show else
                       "to be anonymous")
            return doc

    async def tasks(self) -> list[dict[str, Any]]:
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(f"{KIND}:"),
                                    endkey=json.dumps(f"{KIND}:\ufff0"))
        return [row["doc"] for row in page.get("rows", [])
                if isinstance(row.get("doc"), dict) and row["doc"].get("type") == KIND]

    # -- check-in, hours and the ledgers ---------------------------------------------------

    async def secret(self, task_id: str) -> bytes:
        doc = await self.couch.get(db_path(CLAIMS_DB, secret_id(task_id)))
        return bytes.fromhex(str(doc["secret"]))

    async def organised(self, user: User, task_id: str) -> dict[str, Any]:
        """A task the user organises (its author, or an admin), or 404 as for none."""
        doc = await self.task(task_id)
        if doc is None or user.disabled or not (
                user.is_admin or doc.get("created_by") == user.name):
            raise no_such_task()
        return doc

    async def check(self, allocator: Allocator, index: ResidentIndex, account: str,
                    task_id: str, direction: str, code: Any,
                    now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rule 4: a confirmed volunteer's check-in or check-out by the organiser's code, once
        each (a retry, or a second code, answers the one stored); the time is the code's."""
        doc = await self.task(task_id)
        who = self.claimant(account, index)
        if doc is None or doc.get("community") not in who.communities:
            raise no_such_task()
        await allocator.settle()
        placed = allocator.outcome(task_id, account)
        if placed is None or placed.status != "confirmed":
            raise Refused(403, "forbidden", bilingual("您没有这个任务的名额，不能签到",
                                                      "You hold no place on this task."))
        base = f"checkin:{subject_key(task_id)}:{account}"
        path = db_path(RESIDENTS_DB, f"{base}:{direction}")
        try:
            return dict(await self.couch.get(path)), False
        except NotFound:
            pass
        counter = wrong_codes_id(account, now)
        if await self.count(counter, +1, MAX_WRONG_CODES) > MAX_WRONG_CODES:
            raise Refused(429, "too_many_requests", bilingual(
                "签到码错误次数过多，请让组织者帮您签到",
                "Too many wrong codes; ask the organiser."))
        at = rules.code_window(await self.secret(task_id), doc, code, now)
        if at is not None:
            await self.count(counter, -1)  # counted as wrong until it proved right
        else:
            raise refused([rules.problem("code", "code", "不对，或不是本任务此时的签到码",
                                         "is not this task's code for now")])
        if direction == "out":
            try:
                began = await self.couch.get(db_path(RESIDENTS_DB, f"{base}:in"))
            except NotFound:
                raise Refused(409, "conflict", bilingual("请先签到再签退",
                                                         "Check in before checking out.")) from None
            at = max(at, datetime.datetime.fromisoformat(str(began["at"])))
        record = {"_id": f"{base}:{direction}", "type": "checkin", "schema_version": 1,
                  "created_by": account, "task": task_id, "direction": direction,
                  "at": at.isoformat(timespec="seconds"),
                  "received_at": now.isoformat(timespec="seconds")}
        stated = self.schemas.problems(record)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        try:
            await self.couch.put(path, record)
        except Conflict:
            return dict(await self.couch.get(path)), False
        return record, True

    async def count(self, counter: str, step: int, most: int | None = None) -> int:
        """Add `step` to a counter in the claims database (internal), with its revision, so
        racing tries and server processes each count once; none is added past `most` (the
        answer is then most + 1). A try is counted before its code is compared, as logins
        are: tries sent at once cannot all be compared before the first was counted."""
        path = db_path(CLAIMS_DB, counter)
        while True:
            try:
                held = dict(await self.couch.get(path))
            except NotFound:
                held = {"type": "wrong_codes", "count": 0}
            if most is not None and int(held["count"]) + step > most:
                return most + 1
            held["count"] = max(0, int(held["count"]) + step)
            try:
                await self.couch.put(path, held)
            except Conflict:
                continue
            return int(held["count"])

    async def confirm_hours(self, allocator: Allocator, user: User, task_id: str,
                            volunteer: str, minutes: Any,
                            now: datetime.datetime) -> tuple[list[dict[str, Any]], bool]:
        """Rule 5: the organiser confirms a confirmed volunteer's hours (by default the minutes
        between their check-in and check-out); they enter both ledgers once (rule 6)."""
        doc = await self.organised(user, task_id)
        await allocator.settle()
        placed = allocator.outcome(task_id, volunteer)
        if placed is None or placed.status != "confirmed":
            raise refused([rules.problem("volunteer", "volunteer", "不是本任务已确认的志愿者",
                                         "is not a confirmed volunteer of this task")])
        ids = [ledger_id(kind, volunteer, task_id) for kind in ("hours", "points")]
        held = await self.couch.post(db_path(RESIDENTS_DB, "_all_docs"), {"keys": ids},
                                     include_docs="true")
        stored = [row["doc"] for row in held.get("rows", []) if isinstance(row.get("doc"), dict)]
        if stored:
            return stored, False
        if minutes is None:
            minutes = await self.checked_minutes(doc, volunteer)
        problem = rules.confirm_problem(doc, user, volunteer, minutes)
        if problem is not None:
            raise Refused(403 if problem.code in ("own_hours", "not_organiser") else 400,
                          "forbidden" if problem.code != "minutes" else "bad_request",
                          problem.message)
        reason = f"志愿服务：{doc['title']}"
        entries = [rules.ledger_entry("hours", volunteer, minutes, reason, task_id, user.name,
                                      now),
                   rules.ledger_entry("points", volunteer, rules.points_for(minutes), reason,
                                      task_id, user.name, now)]
        for entry in entries:
            entry["_id"] = ledger_id(entry["kind"], volunteer, task_id)
        written = await self.couch.post(db_path(RESIDENTS_DB, "_bulk_docs"), {"docs": entries})
        if not all(r.get("ok") for r in written):  # another confirmation came first
            return await self.confirm_hours(allocator, user, task_id, volunteer, minutes, now)
        audit.info("%s confirmed %d minutes of %s on %s", user.name, minutes, volunteer,
                   task_id)
        return entries, True

    async def checked_minutes(self, task: Mapping[str, Any], volunteer: str) -> int | None:
        base = f"checkin:{subject_key(str(task['_id']))}:{volunteer}"
        held = await self.couch.post(db_path(RESIDENTS_DB, "_all_docs"),
                                     {"keys": [f"{base}:in", f"{base}:out"]}, include_docs="true")
        docs = [row.get("doc") for row in held.get("rows", [])]
        if not all(isinstance(d, dict) for d in docs):
            return None
        return rules.hours_minutes(task, datetime.datetime.fromisoformat(docs[0]["at"]),
                                   datetime.datetime.fromisoformat(docs[1]["at"])) or None

    async def entries(self, account: str) -> list[dict[str, Any]]:
        """An account's ledger entries, both kinds."""
        found: list[dict[str, Any]] = []
        for kind in ("hours", "points"):
            prefix = f"ledger_entry:{kind}:{account}:"
            page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                        startkey=json.dumps(prefix),
                                        endkey=json.dumps(prefix + "\ufff0"))
            found += [row["doc"] for row in page.get("rows", [])
                      if isinstance(row.get("doc"), dict)
                      and row["doc"].get("type") == "ledger_entry"]
        return found

    async def correct(self, user: User, entry_id: Any, amount: Any, reason: Any, key: Any,
                      now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rule 6: a correction is a new entry naming the one it corrects, by the organiser
        of the entry's task (or an admin); the entry itself is never changed. Corrections are
        numbered (`.fix.<n>`) and written without a revision: two racing ones meet at the
        same number and the loser checks the bound again with the winner counted. A retry
        under the same key answers the stored one (whether this call stored it)."""
        problems = rules.correction_problems(entry_id, amount, reason, key)
        if problems:
            raise refused(problems)
        try:
            entry = await self.couch.get(db_path(RESIDENTS_DB, entry_id))
        except NotFound:
            entry = None
        if not isinstance(entry, dict) or entry.get("type") != "ledger_entry" or entry.get(
                "corrects"):
            raise Refused(404, "not_found", bilingual("没有这条台账记录", "No such ledger entry."))
        task = await self.organised(user, str(entry["source"]))
        while True:
            made = await self.corrections(entry)
            same = [fix for fix in made if fix.get("key") == key]
            if same:
                return same[0], False
            bound = rules.correction_bound(task, str(entry["kind"]), int(entry["amount"]),
                                           (int(fix["amount"]) for fix in made), amount)
            if bound is not None:
                raise refused([bound])
            fix = rules.ledger_entry(entry["kind"], entry["account"], amount, reason,
                                     f"{entry['source']}.fix.{len(made) + 1:03d}", user.name,
                                     now, corrects=entry_id)
            fix["_id"] = ledger_id(fix["kind"], fix["account"], fix["source"])
            fix["key"] = key
            stated = self.schemas.problems(fix)
            if stated:
                raise Refused(400, "bad_request", "；".join(stated))
            try:
                await self.couch.put(db_path(RESIDENTS_DB, fix["_id"]), fix)
            except Conflict:
                continue  # another correction took this number: count it, check again
            audit.info("%s corrected %s by %d (%s)", user.name, entry_id, amount, key)
            return fix, True

    async def corrections(self, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The corrections of an entry, in the order they were numbered."""
        prefix = f"{entry['_id']}.fix."
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(prefix),
                                    endkey=json.dumps(prefix + "\ufff0"))
        return [row["doc"] for row in page.get("rows", []) if isinstance(row.get("doc"), dict)
                and row["doc"].get("corrects") == entry["_id"]]
