"""Review (审核) of what grid workers synced: each survey, census and screening record has a review
state, kept in supervisor-owned verdict documents (so a verdict never collides with the
worker's edit), after ODK Central's review states:

    received → approved
    received → has_issues (with a comment) → edited (the worker changed the record since) → …
    received → rejected

Any state can take any verdict again (a rejected record approved after a phone call): the state
is always the latest verdict, the one the server received last (domain/ordering.py: its
receipt, never the phone's `device_time`), and `edited` when that verdict asked for changes and
the record has moved past the revision it judged. Supervisors (督导员) and admins give verdicts;
the verdict's schema (`schemas/verdict.v1.schema.json`) names its writers and decisions.
The store's side (the queue, a record's history) is server/sync/review.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from server.domain.masking import masked
from server.domain.messages import Refused, bilingual, refused
from server.domain.ordering import Verdict, latest
from server.domain.scope import User
from server.domain.validation import SchemaRegistry, WriteContext, check_record

# The records of a visit, a census or a screening, listed unless a queue asks for other types.
EVENTS = ("household_visit", "census_household", "screening")
# Every record type takes verdicts (issue 22, item 9): a household's or person's profile too,
# listed by the day a phone last saved it (its device_time; a profile imported and never edited
# on a phone has none, so it waits for no review).
REVIEWABLE = (*EVENTS, "household", "person")
STATES = ("received", "approved", "has_issues", "edited", "rejected")
DECISIONS = ("approved", "has_issues", "rejected")
REVIEWERS = ("supervisor", "admin")  # who reviews records and settles conflicts
OPENABLE = REVIEWABLE  # records a supervisor may open
SORTS = ("newest", "oldest")  # a queue's order by the records' dates; newest first by default
DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
MAX_WORKER = 64  # a login name's length (server/admin/directory.py USER_NAME)
MAX_VERDICTS = 500  # verdicts given in one request ("approve all" of a page)
MAX_PROBLEMS = 20  # problems named when a request's verdicts are refused
_ABSENT = object()
# Bookkeeping, not content: left out of the differences (the stamps say who changed a field).
NOT_COMPARED = frozenset({"_id", "_rev", "_revisions", "_revs_info", "_conflicts", "_deleted",
                          "edits"})


@dataclasses.dataclass(frozen=True)
class Filters:
    """What a review queue lists: record types, a state, a worker, and the records' own dates
    (visit, enumeration, screening), inclusive."""

    types: tuple[str, ...] = EVENTS
    state: str | None = None
    worker: str | None = None
    since: str | None = None
    until: str | None = None
    sort: str = "newest"


def _day(value: str | None) -> bool:
    """Whether a filter's date is absent or a real calendar day (YYYY-MM-DD)."""
    if not value:
        return True
    if not DAY.match(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def review_filters(types: str | None = None, state: str | None = None,
                   worker: str | None = None, since: str | None = None,
                   until: str | None = None, sort: str | None = None) -> Filters:
    """The filters of a queue as a request gives them (`types` comma-separated, the visits,
    census forms and screenings when not given), each checked as an attacker's input: refused
    (400, the field named by its label) when a type is not reviewable, the state not a state,
    a date not a day of the calendar or the range upside down, the worker not a login's
    length or the order neither newest nor oldest."""
    wanted = tuple(t for t in (",".join(EVENTS) if types is None else types).split(",") if t)
    if any(t not in REVIEWABLE for t in wanted) or len(wanted) > len(REVIEWABLE):
        raise refused(400, "bad_request", f"“记录类型”应为 {', '.join(REVIEWABLE)} 之一",
                      f"Record type must be among {', '.join(REVIEWABLE)}")
    if state and state not in STATES:
        raise refused(400, "bad_request", f"“审核状态”应为 {', '.join(STATES)} 之一",
                      f"State must be one of {', '.join(STATES)}")
    if not (_day(since) and _day(until)) or (since and until and since > until):
        raise refused(400, "bad_request", "“起始日期”“截止日期”应为 YYYY-MM-DD 格式的日期，"
                      "且起始不晚于截止", "From and to must be dates as YYYY-MM-DD, from not "
                      "after to")
    if worker and (len(worker) > MAX_WORKER or not worker.isprintable()):
        raise refused(400, "bad_request", f"“网格员”应为不超过 {MAX_WORKER} 个字符的用户名",
                      f"Worker must be a user name of at most {MAX_WORKER} characters")
    if sort and sort not in SORTS:
        raise refused(400, "bad_request", "“排序”应为 newest（最新在前）或 oldest（最早在前）",
                      "Order must be newest or oldest")
    return Filters(types=wanted, state=state or None, worker=worker or None,
                   since=since or None, until=until or None, sort=sort or "newest")


def may_review(user: User) -> bool:
    """Whether the user reviews records and settles conflicts: supervisors and admins."""
    return user.role in REVIEWERS


def reviewable(record_id: str) -> bool:
    """Whether a record, by its id (`<type>:<key>`), takes verdicts."""
    return record_id.startswith(tuple(f"{t}:" for t in REVIEWABLE))


def openable(record_id: str) -> bool:
    """Whether a supervisor may open a record, by its id."""
    return record_id.startswith(tuple(f"{t}:" for t in OPENABLE))


def state_of(rev: str, verdicts: Sequence[Verdict]) -> tuple[str, dict[str, Any] | None]:
    """The review state of a record at `rev`, from its verdicts (with their receipts), and the
    latest verdict as shown."""
    if not verdicts:
        return "received", None
    last = latest(verdicts)
    if last.decision == "has_issues" and last.record_rev != rev:
        return "edited", last.shown()
    return last.decision, last.shown()


def verdict_doc(by: str, grid: str, item: Mapping[str, Any], *, at: str,
                key: str) -> dict[str, Any]:
    """A verdict as a supervisor gives it (`item`: {record, record_rev, decision, comment}),
    under an id made unique by `key`; checked by `verdict_docs` like any write."""
    doc: dict[str, Any] = {
        "_id": f"verdict:{item['record']}:{key}", "type": "verdict",
        "schema_version": 1, "grid": grid, "created_by": by,
        "record": item["record"], "record_rev": item["record_rev"],
        "decision": item.get("decision"), "device_time": at}
    if item.get("comment"):
        doc["comment"] = item["comment"]
    return doc


def verdict_docs(items: Sequence[Mapping[str, Any]], live: Collection[str], ctx: WriteContext,
                 registry: SchemaRegistry, *, at: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """The verdicts of one request, on records of `ctx.grid` (`live`: the ids stored there and
    not deleted), each with its own `key`: every one checked first, and all refused (400, the
    first problems named) if any is wrong, so "approve all" never half-happens."""
    docs, problems = [], []
    for n, (item, key) in enumerate(zip(items, keys, strict=True)):
        record = str(item["record"])
        if record not in live or not reviewable(record):
            problems.append(f"#{n + 1} {record}: " + bilingual(
                "没有这条可审核的记录", "no such record to review"))
            continue
        doc = verdict_doc(ctx.user.name, ctx.grid, item, at=at, key=key)
        refusal = check_record(doc, ctx, registry)
        if refusal is not None:
            problems.append(f"#{n + 1} {record}: {refusal.reason}")
        docs.append(doc)
    if problems:
        raise Refused(400, "bad_request", "；".join(problems[:MAX_PROBLEMS]))
    return docs


def differences(before: Mapping[str, Any], after: Mapping[str, Any],
                unmasked: bool) -> list[dict[str, Any]]:
    """Field by field, what changed from one revision to the next, compared on the real values
    and shown masked: a changed phone number reads as changed even when its masks look alike."""
    shown_before, shown_after = masked(before, unmasked), masked(after, unmasked)
    changes = []
    for field in sorted((set(before) | set(after)) - NOT_COMPARED):
        if before.get(field, _ABSENT) == after.get(field, _ABSENT):
            continue
        change: dict[str, Any] = {"field": field}
        if field in before:
            change["from"] = shown_before[field]
        if field in after:
            change["to"] = shown_after[field]
        change["kind"] = ("added" if field not in before else "removed" if field not in after
                          else "changed")
        changes.append(change)
    return changes


def history(infos: Sequence[Mapping[str, Any]], bodies: Mapping[str, Mapping[str, Any]],
            sent: Mapping[str, tuple[str | None, str | None]],
            unmasked: bool) -> list[dict[str, Any]]:
    """A record's revisions, newest first (`infos`: the store's `_revs_info`, newest first):
    each with who sent it and when (`sent`, by revision), whether the store still keeps its body
    (`bodies`, until a compaction it does), and what changed from the kept revision before it,
    shown masked unless `unmasked`."""
    revisions: list[dict[str, Any]] = []
    older: Mapping[str, Any] | None = None
    for info in reversed(infos):  # oldest first, so each is compared with the one before
        rev = info["rev"]
        by, received_at = sent.get(rev, (None, None))
        body = bodies.get(rev)
        entry: dict[str, Any] = {"rev": rev, "kept": body is not None,
                                 "deleted": info.get("status") == "deleted" or bool(
                                     body and body.get("_deleted")),
                                 "by": by, "received_at": received_at}
        if body is not None:
            entry["compared_with"] = None if older is None else older["_rev"]
            entry["changes"] = differences(older or {}, body, unmasked)
            older = body
        revisions.append(entry)
    revisions.reverse()
    return revisions


def record_view(grid: str, current: Mapping[str, Any], revisions: list[dict[str, Any]],
                judged: Sequence[Verdict], unmasked: bool, *,
                older_revisions: int) -> dict[str, Any]:
    """One record as a supervisor opens it: masked unless `unmasked`, with its review state
    (for a reviewable record), its verdicts oldest first and its revisions."""
    state, latest = state_of(str(current["_rev"]), judged)
    return {"grid": grid, "id": current["_id"], "record_type": current.get("type"),
            "rev": current["_rev"], "record": masked(
                {k: v for k, v in current.items() if k != "_conflicts"}, unmasked),
            "masked": not unmasked, "state": state if current.get("type") in REVIEWABLE
            else None, "verdict": latest,
            "verdicts": [v.shown() for v in sorted(judged, key=lambda v: v.order)],
            "revisions": revisions, "older_revisions": older_revisions,
            "conflicts": current.get("_conflicts", [])}
