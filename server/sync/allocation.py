"""Limited places in the store (名额分配): claims written once to the claims database, whose
update sequence is the order received, and the outcome each claimant's phone pulls written to
the residents database. The rule is server/domain/allocation.py; docs/allocation.md says how a
feature (volunteer tasks now; rides, slots, stock, votes later) plugs in.

Why it is exact whatever happens:
- A claim's id is made from its subject, its claimant, its act and the phone's own id for it
  (`event_id`), and it is written without a revision: a retry, a duplicate sent by two
  clients, a replay after a server died before answering all meet the stored one (a
  conflict) and are the same event. Nothing ever changes a stored claim.
- The order is the store's: `settle` reads the claims database's changes in sequence and
  appends each new claim to its subject's events; neither a phone's clock nor the order in
  which this process's requests happened to run decides anything.
- The outcome is recomputed from all of a subject's events (`allocation.allocate`, pure) and
  only what differs from what is stored is written (`changed`: a waiting claimant's `line`
  alone moving up is not a change, so one cancellation rewrites the canceller's and the
  promoted one's documents, not the whole line's); outcome documents hold no time, so two
  server processes, or one restarted after `kill -9`, compute and write the same documents.
  After a crash, the next start reads every claim from the first (`run`) and writes what the
  dead process had not."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from server.domain.allocation import (
    ACTS,
    Event,
    Outcome,
    Terms,
    allocate,
    event_id,
    outcome_id,
    subject_key,
)
from server.domain.scope import CLAIMS_DB, RESIDENTS_DB
from server.store.couch import Conflict, CouchClient, NotFound, StoreUnavailable, db_path
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)
__all__ = ["CLAIMS_PLACEMENT", "Allocator", "event_id", "outcome_id", "subject_key"]

AUTHOR = "linli-allocation"  # the outcomes' `created_by`: the server's, not a person's
PAGE = 1000  # claims read at once
POLL_SECONDS = 1.0  # how soon claims stored by another server process are allocated
WRITE_TRIES = 5
MINE_MOST = 100_000  # claims kept from this process's writes until the feed brings them

# One shard, one copy: on a CouchDB cluster each copy of a shard orders concurrent writes as
# they reached it, and a `_changes` read takes whichever copy answers first, so two server
# processes could read two orders of the same claims. One copy has one order, which is the
# allocation's (docs/deployment.md). PouchDB Server ignores these.
CLAIMS_PLACEMENT = {"q": "1", "n": "1"}

TermsOf = Callable[[str], Awaitable[Terms | None]]
"""A feature's terms for one of its subjects (None: no such subject, its claims wait)."""


def outcome_doc(subject: str, claimant: str, outcome: Outcome) -> dict[str, Any]:
    """What the claimant's phone receives; no time in it, so every process writes the same."""
    return {"_id": outcome_id(subject, claimant), "type": "allocation", "schema_version": 1,
            "created_by": AUTHOR, "subject": subject, "claimant": claimant,
            "status": outcome.status, "claim": outcome.claim, "promoted": outcome.promoted,
            "line": outcome.line}


def changed(held: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether a stored outcome must be rewritten. A waiting claimant's document keeps the
    line it was written with: the line only moves up while they wait (later claims join
    behind them), so it is an honest "at most", and a cancellation ahead does not rewrite
    every waiting claimant's document and wake every phone in the line."""
    if held is None:
        return True
    if wanted.get("status") == "waiting" and held.get("status") == "waiting":
        return any(held.get(k) != v for k, v in wanted.items() if k != "line")
    return dict(held) != dict(wanted)


def body_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_") or k == "_id"}


def claim_fates(batch: list[tuple[dict[str, Any], asyncio.Future[bool]]],
                sent: Mapping[str, Mapping[str, Any]], results: list[Mapping[str, Any]],
                ) -> list[tuple[dict[str, Any], asyncio.Future[bool], bool | Exception]]:
    """Each queued claim's fate from the store's answers, matched by id, never by position:
    True for the copy that was sent and stored, False for a claim stored before (a conflict)
    and for the other copies of a claim sent once, the store's error otherwise (for every
    copy). A claim the store did not answer is unavailable (the phone retries), never
    "stored"."""
    answers = {str(result.get("id")): result for result in results}
    fates: list[tuple[dict[str, Any], asyncio.Future[bool], bool | Exception]] = []
    for doc, done in batch:
        doc_id = str(doc["_id"])
        answer = answers.get(doc_id)
        if answer is None:
            fate: bool | Exception = StoreUnavailable(f"no answer for {doc_id}")
        elif answer.get("ok"):
            fate = sent[doc_id] is doc
        elif answer.get("error") == "conflict":
            fate = False
        else:
            fate = Conflict(409, dict(answer))
        fates.append((doc, done, fate))
    return fates


class Allocator:
    """The store's side of allocation; one per app, shared by every feature with places."""

    def __init__(self, couch: CouchClient, terms: Mapping[str, TermsOf],
                 poll_seconds: float = POLL_SECONDS,
                 written: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.couch = couch
        # told the outcomes as written (with their revisions): the residents' index wakes
        # the phones at once rather than when the store's feed brings them back
        self.written = written
        self.terms = terms  # by the subject's kind (`volunteer_task`)
        self.poll_seconds = poll_seconds
        self.since = "0"
        self.events: dict[str, list[Event]] = {}  # subject -> events in the order received
        self.outcomes: dict[str, dict[str, Outcome]] = {}
        self.stored: dict[str, tuple[str, dict[str, Any]]] = {}  # outcome id -> (rev, body)
        self.read_subjects: set[str] = set()  # whose stored outcomes were read once
        self.unsettled: set[str] = set()  # subjects whose outcomes are not all written
        self.lock = asyncio.Lock()
        self.queued: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        # claims this process stored, by id, until the claims' feed brings them: a settle
        # reads the feed's order only, not the documents it wrote itself
        self.mine: dict[str, dict[str, Any]] = {}
        self.writing: asyncio.Future[None] | None = None
        self.asked = 0  # settles asked for, in order
        self.settled = 0  # every settle asked for up to this one is done
        self.ready = asyncio.Event()
        self.nudge = asyncio.Event()

    # -- writing claims --------------------------------------------------------------------

    async def record(self, claim: Mapping[str, Any]) -> bool:
        """Store a claim once; whether this call stored it. A retry, or the loser of two
        racing copies, meets the one stored first (its id is the same) and stores nothing.
        Claims arriving while a write is under way go together in the next `_bulk_docs`, in
        the order they arrived (the store's sequence keeps a batch's order): a flood of
        claims costs the store a few writes, not one each."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queued.append((dict(claim), done))
        if self.writing is None or self.writing.done():
            self.writing = asyncio.ensure_future(self.write_queued())
        return await asyncio.shield(done)

    async def write_queued(self) -> None:
        """Write what is queued, batch after batch, until nothing is; each caller is told
        its own claim's fate (stored now, stored before, or the store's error). A batch
        sends each id once (racing copies of one claim are one write) and reads the answers
        by id: PouchDB Server answers a batch holding a conflict out of input order, and
        answers taken by position told two copies of one claimant's claim "stored now" and
        the other claimant's none (docs/allocation.md)."""
        while self.queued:
            batch, self.queued = self.queued[:PAGE], self.queued[PAGE:]
            sent: dict[str, dict[str, Any]] = {}
            for doc, _ in batch:
                sent.setdefault(str(doc["_id"]), doc)
            try:
                results = await self.couch.post(db_path(CLAIMS_DB, "_bulk_docs"),
                                                {"docs": list(sent.values())})
            except Exception as exc:  # every caller of the batch hears it (a 503, a retry)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                        done.exception()  # retrieved, whether its caller still waits or not
                continue
            for doc, done, fate in claim_fates(batch, sent, results):
                if fate is True:
                    self.remember(doc)
                if done.done():
                    continue
                if isinstance(fate, bool):
                    done.set_result(fate)
                else:
                    done.set_exception(fate)
                    done.exception()

    def remember(self, doc: dict[str, Any]) -> None:
        """A claim this process stored, until the feed brings it (`changes`)."""
        if len(self.mine) > MINE_MOST:  # left over by a settle that read them first: forget
            self.mine.clear()
        self.mine[str(doc["_id"])] = doc

    async def stored_claim(self, claim_id: str) -> dict[str, Any] | None:
        try:
            return dict(await self.couch.get(db_path(CLAIMS_DB, claim_id)))
        except NotFound:
            return None

    # -- allocating ------------------------------------------------------------------------

    async def settle(self) -> None:
        """Read the claims stored since the last read, in the store's order, and write the
        outcomes they change. One at a time, and shared: a settle begun after a caller asked
        reads everything that caller stored before asking, so 500 racing claims wait for a
        few settles, not 500 in a row."""
        self.asked += 1
        mine = self.asked
        async with self.lock:
            if self.settled >= mine:
                return  # a settle that began after this call asked has read its claim
            covering = self.asked
            await self._settle()
            self.settled = covering

    async def _settle(self) -> None:
        """Under the lock: read what is new, allocate each subject it touched."""
        touched = set(self.unsettled)
        while True:
            page = await self.changes()
            for change in page.get("results", []):
                event = self.event_of(change.get("doc"))
                if event is not None:
                    subject, found = event
                    self.events.setdefault(subject, []).append(found)
                    touched.add(subject)
            self.since = str(page.get("last_seq", self.since))
            if len(page.get("results", [])) < PAGE:
                break
        self.unsettled = set(touched)
        outcomes: dict[str, dict[str, Outcome]] = {}
        for subject in sorted(touched):
            found = await self.allocate(subject)
            if found is not None:
                outcomes[subject] = found
        await self.write(outcomes)  # every subject's in one `_bulk_docs`
        self.unsettled -= set(outcomes)

    async def changes(self) -> dict[str, Any]:
        """The claims' next page of changes in the store's order, each with its document: the
        ones this process stored from memory (2,000 orders at once: no 2,000 documents read
        back), else the page read again with them."""
        path = db_path(CLAIMS_DB, "_changes")
        page = await self.couch.get(path, since=self.since, limit=str(PAGE))
        rows = page.get("results", [])
        if any(r.get("id") not in self.mine for r in rows if not r.get("deleted")):
            return dict(await self.couch.get(path, since=self.since, include_docs="true",
                                             limit=str(PAGE)))
        for row in rows:
            row["doc"] = self.mine.pop(str(row.get("id")), None)
        return dict(page)

    def event_of(self, doc: Any) -> tuple[str, Event] | None:
        """A stored claim as an event of its subject; anything else in the database, none."""
        if not isinstance(doc, Mapping) or doc.get("type") != "claim" or doc.get(
                "act") not in ACTS:
            return None
        try:
            received = datetime.datetime.fromisoformat(str(doc.get("received_at")))
        except ValueError:
            return None
        return str(doc["subject"]), Event(str(doc["_id"]), doc["act"], str(doc["claimant"]),
                                          received)

    async def allocate(self, subject: str) -> dict[str, Outcome] | None:
        """Recompute one subject's outcomes; None when its terms are not known yet (its
        claims are kept and allocated at the next settle)."""
        terms_of = self.terms.get(subject.split(":", 1)[0])
        terms = await terms_of(subject) if terms_of is not None else None
        if terms is None:
            return None
        outcomes = allocate(terms, self.events.get(subject, []))
        self.outcomes[subject] = outcomes
        return outcomes

    async def write(self, outcomes: Mapping[str, Mapping[str, Outcome]]) -> None:
        """Write what changed of the subjects' outcomes, all subjects in one `_bulk_docs`: a
        flood of orders over a group-buy's five items costs the store one write, not five
        in a row while every buyer waits."""
        unread = [s for s in outcomes if s not in self.read_subjects]
        await asyncio.gather(*(self.read_stored(s) for s in unread))
        self.read_subjects.update(unread)
        wanted = {doc["_id"]: doc for subject, found in outcomes.items() for doc in (
            outcome_doc(subject, who, outcome) for who, outcome in found.items())}
        for _ in range(WRITE_TRIES):
            due = [{**doc, **({"_rev": self.stored[i][0]} if i in self.stored else {})}
                   for i, doc in wanted.items() if changed(self.stored.get(i, ("", None))[1], doc)]
            if not due:
                return
            results = await self.couch.post(db_path(RESIDENTS_DB, "_bulk_docs"), {"docs": due})
            stale, done = [], []
            for result in results:
                doc_id = str(result.get("id"))
                if result.get("ok"):
                    self.stored[doc_id] = (str(result["rev"]), wanted[doc_id])
                    done.append({**wanted[doc_id], "_rev": str(result["rev"])})
                else:
                    stale.append(doc_id)  # another process wrote it: read, compare, go on
            if done and self.written is not None:
                self.written(done)
            for doc_id in stale:
                await self.read_one(doc_id)
        raise Conflict(409, {"error": "conflict", "reason": f"outcomes of "
                                                            f"{', '.join(outcomes)} kept changing"})

    async def read_stored(self, subject: str) -> None:
        prefix = outcome_id(subject, "")
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=f'"{prefix}"', endkey=f'"{prefix}\ufff0"')
        for row in page.get("rows", []):
            doc = row.get("doc")
            if isinstance(doc, Mapping) and str(doc.get("_id", "")).startswith(prefix):
                self.stored[str(doc["_id"])] = (str(doc["_rev"]), body_of(doc))

    async def read_one(self, doc_id: str) -> None:
        try:
            doc = await self.couch.get(db_path(RESIDENTS_DB, doc_id))
        except NotFound:
            self.stored.pop(doc_id, None)
            return
        self.stored[doc_id] = (str(doc["_rev"]), body_of(doc))

    def outcome(self, subject: str, claimant: str) -> Outcome | None:
        return self.outcomes.get(subject, {}).get(claimant)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """`prepare`, then `follow`: one process alone."""
        await self.prepare()
        await self.follow()

    async def prepare(self) -> None:
        """Supervised, once per process: every claim from the first (a restart recomputes
        everything, so what a killed process left unwritten is written now)."""
        await self.couch.ensure_db(CLAIMS_DB, **CLAIMS_PLACEMENT)
        await self.settle()
        self.ready.set()

    async def follow(self) -> None:
        """Supervised under a lease (one process of several): claims stored by another process
        every `poll_seconds`, or at once when nudged, so the outcome of a claim whose process
        died before settling it is written. Every process settles on each request it serves
        too; the outcomes are the store's order's, so two processes write the same ones."""
        await self.ready.wait()
        while True:
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await self.nudge.wait()
            except TimeoutError:
                pass
            self.nudge.clear()
            await self.settle()

    async def wait_ready(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.ready.wait()
        except TimeoutError:
            return False
        return True

    def lag(self) -> Lag:
        if not self.ready.is_set():
            return Lag(seconds=None, items=None)
        return Lag(items=len(self.unsettled))
