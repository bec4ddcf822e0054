"""Limited places allocated by the server (名额分配): one rule for every feature that hands out
fewer places than people want them: volunteer tasks (任务抢单), and later car-pool seats,
group-buy stock, appointment slots, one vote per household. docs/allocation.md says how a
feature uses it.

The rule, for one subject (a task, a ride...) with `places` places:

1. Order. Claims, cancellations and an organiser's decisions are events, and the events are
   taken in the order the server received them: the store's update sequence of the one
   database they are written to (server/sync/allocation.py), never a phone's clock. Each event
   is written once under an id made from the phone's own id for it, so a retry or a
   duplicate is the same event, not a second one.
2. One claimant, one place. A claimant's first claim is theirs; a later claim while it stands
   (another phone of theirs, a retry under a new id) changes nothing. A claim received after
   their cancellation is a new claim, at the back of the queue.
3. Late and ineligible. A claim received after the deadline (`received_at` is the server's
   clock) is `late` and never queued; a claimant the subject is not open to is `ineligible`.
4. The queue. The standing claims in the order received, less those the organiser rejected:
   the first `places` of them hold the places, the rest wait (`waiting`, with their place in
   the line). Without approval a place holder is `confirmed`; with approval, `confirmed` once
   the organiser approved them and `awaiting_approval` until then (the place is kept for
   them: first come, first served, the organiser may only refuse). A refusal is final: a
   later claim of the rejected claimant changes nothing (else a rejection were undone by
   claiming again).
5. Promotion. A cancellation or a rejection frees a place, which goes to the first waiting:
   they are `confirmed` (or `awaiting_approval`) and `promoted`, which the phone tells them.
6. Never more than `places` hold a place, whatever the events; the outcome is a function of
   the events alone, so recomputing it after a crash, or in another server process, gives
   the same answer (`allocate` is pure and deterministic).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

Act = Literal["claim", "cancel", "approve", "reject"]
ACTS: tuple[Act, ...] = ("claim", "cancel", "approve", "reject")
Status = Literal["confirmed", "awaiting_approval", "waiting", "cancelled", "rejected", "late",
                 "ineligible"]
HOLDS_PLACE = ("confirmed", "awaiting_approval")
LABELS: dict[str, tuple[str, str]] = {  # what the phone says of each status
    "confirmed": ("成功", "Confirmed"),
    "awaiting_approval": ("已占名额，待组织者审核", "Place kept, awaiting the organiser"),
    "waiting": ("候补", "On the waiting list"),
    "cancelled": ("已取消", "Cancelled"),
    "rejected": ("未通过审核", "Not approved"),
    "late": ("报名已截止", "Too late: claims had closed"),
    "ineligible": ("不在报名范围内", "Not open to you"),
    "pending": ("已报名，等待确认", "Claimed, waiting for the server"),
}


def subject_key(subject: str) -> str:
    """A subject (`volunteer_task:ab12`) as it stands inside other ids (`volunteer_task.ab12`)."""
    return subject.replace(":", ".")


def event_id(subject: str, claimant: str, act: str, claim_id: str) -> str:
    """Rule 1's id of an event: the same for a retry of the same act under the phone's id."""
    return f"claim:{subject_key(subject)}:{claimant}:{act}:{claim_id}"


def outcome_id(subject: str, claimant: str) -> str:
    return f"allocation:{subject_key(subject)}:{claimant}"


@dataclasses.dataclass(frozen=True)
class Event:
    """One act as the server received it (rule 1). `event_id` is the stored id (the same for a
    retry); `received_at` the server's clock when it was stored."""

    event_id: str
    act: Act
    claimant: str
    received_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class Terms:
    """What the subject's own rules say: its places, deadline and whether the organiser
    approves each place holder."""

    places: int
    deadline: datetime.datetime | None = None
    needs_approval: bool = False


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Where a claimant stands. `claim` is the event id of the claim that stands (or stood);
    `line` the place in the waiting line (1 is next), 0 when not waiting."""

    status: Status
    claim: str
    promoted: bool = False
    line: int = 0


def allocate(terms: Terms, events: Iterable[Event],
             eligible: Callable[[str], bool] = lambda _: True) -> dict[str, Outcome]:
    """The rule above: each claimant's outcome after `events` (in the order received)."""
    queue: dict[str, str] = {}  # claimant -> standing claim, in the order they entered
    entered_waiting: dict[str, bool] = {}  # rule 5: the line was full when they entered
    approved: set[str] = set()
    ended: dict[str, Outcome] = {}  # cancelled, rejected, late, ineligible
    seen: set[str] = set()
    for event in events:
        if event.event_id in seen:  # rule 1: the same event twice is once
            continue
        seen.add(event.event_id)
        who = event.claimant
        if event.act == "claim":
            if who in queue or (who in ended and ended[who].status == "rejected"):
                continue  # rule 2; rule 4: the organiser's refusal is final
            if terms.deadline is not None and event.received_at > terms.deadline:
                ended.setdefault(who, Outcome("late", event.event_id))
                continue
            if not eligible(who):
                ended[who] = Outcome("ineligible", event.event_id)
                continue
            entered_waiting[who] = len(queue) >= terms.places
            queue[who] = event.event_id
            approved.discard(who)
            ended.pop(who, None)
        elif who not in queue:
            continue  # a cancellation or decision about no standing claim changes nothing
        elif event.act in ("cancel", "reject"):
            status: Status = "cancelled" if event.act == "cancel" else "rejected"
            ended[who] = Outcome(status, queue.pop(who))
            approved.discard(who)
        else:
            approved.add(who)
    outcomes = dict(ended)
    for index, (who, claim) in enumerate(queue.items()):
        if index < terms.places:
            waiting_before = entered_waiting[who]
            status = ("confirmed" if not terms.needs_approval or who in approved
                      else "awaiting_approval")
            outcomes[who] = Outcome(status, claim, promoted=waiting_before)
        else:
            outcomes[who] = Outcome("waiting", claim, line=index - terms.places + 1)
    return outcomes


def holders(outcomes: Mapping[str, Outcome]) -> list[str]:
    """The claimants holding a place (never more than the places: rule 6)."""
    return [who for who, outcome in outcomes.items() if outcome.status in HOLDS_PLACE]


def counts(outcomes: Mapping[str, Outcome]) -> dict[str, int]:
    """How many claimants stand in each status, for the organiser's screen."""
    found: dict[str, int] = {}
    for outcome in outcomes.values():
        found[outcome.status] = found.get(outcome.status, 0) + 1
    return found
