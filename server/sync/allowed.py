"""The residents' allowed-ids index kept current from the changes feeds (居民同步索引), and the
changes a resident's phone is owed, answered from memory.

No database per resident (CHT's shape): one `AllowedIds` (server/domain/allowed_ids.py) for
the whole city, built once at start from the grid databases, the residents database and the
directory's grids, then fed every change: the residents database is followed by one longpoll,
a grid database is read at once when this server wrote to it (`notice`) and every
`resident_sweep_seconds` (server/config.py) in any case (writes by another process, an
import, the command line). Each applied change wakes the held resident feeds whose keys it
touches (`AllowedIds.apply/keys`), through the live-feeds machinery (server/sync/feeds.py),
never every feed.

A resident's changes feed is computed here, not read from the store per phone: 3,000 phones
woken by one community notice cost 3,000 set unions, not 3,000 store reads. Its seq
(`ResidentSeq`) is this process's own counter of applied changes:
- a notice's change is remembered with its revision (`notices`), so a phone behind is sent the
  notices changed since its seq;
- any other change a resident may hold (their household, its members, their link, their own
  submissions, their grid's place in the directory) stamps the key it touches (`stamps`); a
  phone whose household or account was stamped after its seq is sent every id it may hold
  (a "resend", with the revisions read from the store in one `_all_docs` per database). PouchDB
  then asks its own database which revisions it lacks and fetches only those, so a resend of
  ~50 ids costs the phone one round trip, and it is what makes a newly allowed document (a
  household activated, a member moved in, a notice newly matching a changed address) arrive
  although its own change is older than the phone's checkpoint.
- A seq of another process (or of before a restart) cannot be compared: the phone gets a resend.
What a phone may no longer hold is never sent as a change: `purge` lists it (the PWA removes
it locally, the embedded store having no `_purge`), and a held feed whose allowed set changed
without any row to send answers the constant `linli-sync` document, so a live replication
passes a batch and the PWA asks for its purge list (docs/residents.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from server.domain.allowed_ids import (
    DIRECTORY,
    OWNED_BY,
    RESIDENTS,
    SHARED,
    Allowed,
    AllowedIds,
)
from server.domain.scope import RESIDENTS_DB, Directory, grid_db, grid_of_db
from server.store.couch import CouchClient, CouchFailure, NotFound, StoreUnavailable, db_path
from server.sync.feeds import json_seq, seq_number
from server.sync.grouped import GroupedReads
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)

PAGE = "1000"  # changes (or documents) read at once while building or catching up
KEPT = ("correction_request", "household", "person", "resident")  # what a grid gives the index
SWEEP_SECONDS = 10.0  # the setting `resident_sweep_seconds`' default
SYNC_ID = "linli-sync"  # the constant document every resident's phone holds (a doorbell)
SYNC_DOC: dict[str, Any] = {"_id": SYNC_ID, "type": "sync",
                            "purge": "/api/residents/purge"}
SYNC_DOC["_rev"] = "1-" + hashlib.md5(json.dumps(SYNC_DOC, sort_keys=True).encode(),
                                      usedforsecurity=False).hexdigest()
VIRTUAL = "virtual"  # the database label of SYNC_ID
EPOCH_CHARS = 8
FRESH = 10_000  # first revisions this server wrote to the residents database, kept for phones


class GridFollower(Protocol):
    """Told every change of a grid database this index reads (server/sync/authors.py), so the
    same changes are not read from the store twice."""

    def observe(self, db: str, change: Mapping[str, Any]) -> None: ...

    def caught_up(self, db: str, seq: Any) -> None: ...


@dataclasses.dataclass(frozen=True)
class ResidentSeq:
    """A resident feed's seq: everything changed up to `counter` of process `epoch` is on the
    phone, but for a resend in progress (`after`: the ids up to it, in order, are sent).
    Written `<counter>-<epoch><after as base64url>` so it reads as a CouchDB 3 seq."""

    counter: int
    epoch: str
    after: str = ""

    def __str__(self) -> str:
        tail = base64.urlsafe_b64encode(self.after.encode()).decode().rstrip("=")
        return f"{self.counter}-{self.epoch}{tail}"

    @classmethod
    def parse(cls, raw: str | None) -> ResidentSeq | None:
        """None for anything but a seq this kind of server wrote (0, now, garbage): a resend."""
        if raw is None:
            return None
        counter, _, rest = raw.partition("-")
        if not counter.isdecimal() or len(counter) > 18 or len(rest) < EPOCH_CHARS:
            return None
        tail = rest[EPOCH_CHARS:]
        try:
            after = base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return cls(int(counter), rest[:EPOCH_CHARS], after)


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a resident's changes feed: the document, its revision and where it lives."""

    id: str
    rev: str
    db: str  # the store database, or VIRTUAL
    seq: ResidentSeq


def store_db(label: str) -> str:
    """The store database of an `AllowedIds` label (`grid:<code>`, `residents`)."""
    return RESIDENTS_DB if label == RESIDENTS else grid_db(label.removeprefix("grid:"))


def source_of(db: str) -> str:
    grid = grid_of_db(db)
    return f"grid:{grid}" if grid is not None else RESIDENTS


class ResidentIndex:
    """The index, the notices' revisions and the stamps, fed from the feeds; asked by the
    resident endpoint (server/web/resident_sync.py)."""

    def __init__(self, couch: CouchClient, directory: Directory, *,
                 sweep_seconds: float = SWEEP_SECONDS, every_grid: bool = True,
                 wake: Callable[[frozenset[str]], None] | None = None,
                 observers: Iterable[Callable[[Mapping[str, Any]], None]] = ()) -> None:
        self.couch = couch
        # told every document of the residents database as it is applied, from the first
        # pass on: features that keep sums of it (volunteering's ledgers) read no feed of
        # their own
        self.observers = tuple(observers)
        # the residents database's documents other than notices (an account's own: its
        # outcomes, entries...), read for the phones in groups (server/sync/grouped.py)
        self.own_reads = GroupedReads(couch, RESIDENTS_DB)
        # ... and the first revisions of them this server just wrote (`written`), served from
        # memory while the index holds that revision (`own_docs`)
        self.fresh: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.directory = directory
        self.sweep_seconds = sweep_seconds
        self.wake = wake  # the live feeds' `wake_keys`
        self.ids = AllowedIds()
        self.epoch = secrets.token_hex(EPOCH_CHARS // 2)
        self.counter = 0
        self.stamps: dict[str, int] = {}  # reset key -> counter of its last change
        self.notices: dict[str, tuple[int, str]] = {}  # notice id -> (counter, rev)
        self.owned: dict[str, tuple[int, str]] = {}  # an account's allocation... -> (counter, rev)
        # notice id -> (rev, its shared read by the phones: server/web/resident_sync.py)
        self.notice_reads: dict[str, tuple[str, asyncio.Future[dict[str, Any] | None]]] = {}
        self.since: dict[str, str] = {}  # store database -> the last seq applied
        self.grids: dict[str, tuple[str, str]] = {}  # the directory's grids as applied
        # False (`grid_passes_at_start` off: the test suite, where hundreds of servers start on
        # one store): a grid is read from its first write through this server on, not at start.
        self.every_grid = every_grid
        self.wanted: set[str] = set()
        self.nudge = asyncio.Event()
        self.ready = asyncio.Event()
        self.pending_since: float | None = None
        self.reading: set[str] = set()  # the databases whose changes are being read
        # database -> {id: rev} applied as written, not yet read back (`written`)
        self.told: dict[str, dict[str, str]] = {}
        self.followers: list[GridFollower] = []  # told every grid change read (`catch_up`)
        self.locks: dict[str, asyncio.Lock] = {}  # one reader of a database's changes at once

    # -- feeding -------------------------------------------------------------------------------

    def notice(self, db: str) -> None:
        """This server wrote to `db`: read its changes now rather than at the next sweep."""
        if db == RESIDENTS_DB or grid_of_db(db) is not None:
            self.wanted.add(db)
            if self.pending_since is None:
                self.pending_since = asyncio.get_running_loop().time()
            self.nudge.set()

    def written(self, db: str, docs: Iterable[Mapping[str, Any]]) -> None:
        """This server wrote `docs` (with their new revisions) to `db`: into the index at
        once, not read back (reading a grid's changes after each sign-up was a fifth of the
        store's work for it). A database the index has not read yet is read instead; the
        sweep reads these again, and applying a document twice changes nothing. While the
        database is being read, a page read before the write may be applied after it: read
        again then, after that page."""
        if db == RESIDENTS_DB:
            docs = list(docs)
            self.keep_fresh(docs)
        if db not in self.since or db in self.reading:
            self.notice(db)
            return
        told = self.told.setdefault(db, {})
        for doc in docs:
            told[str(doc.get("_id"))] = str(doc.get("_rev"))
            self.apply({"doc": doc}, source_of(db))

    def keep_fresh(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """First revisions written: their whole history is their own revision, so the store's
        `_bulk_get?revs=true` would answer them exactly as kept here."""
        for doc in docs:
            rev = str(doc.get("_rev", ""))
            if rev.startswith("1-") and not doc.get("_deleted") and "_attachments" not in doc:
                self.fresh[str(doc["_id"])] = {**doc, "_revisions": {
                    "start": 1, "ids": [rev.partition("-")[2]]}}
                self.fresh.move_to_end(str(doc["_id"]))
        while len(self.fresh) > FRESH:
            self.fresh.popitem(last=False)

    async def own_docs(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """An account's own documents of the residents database for its phone (an outcome, a
        ledger entry): a first revision this server wrote from memory while the index holds
        that revision, so 2,000 phones woken at once by their new outcomes cost the store no
        read; the rest from the store, grouped (server/sync/grouped.py)."""
        found: dict[str, dict[str, Any]] = {}
        rest: list[str] = []
        for doc_id in ids:
            doc = self.fresh.get(doc_id)
            if doc is not None and self.owned.get(doc_id, (0, ""))[1] == doc["_rev"]:
                found[doc_id] = dict(doc)
            else:
                rest.append(doc_id)
        found.update(await self.own_reads.get(rest))
        return found

    def already_told(self, db: str, change: Mapping[str, Any]) -> bool:
        """A change this server wrote and `written` applied: applied again, it would stamp
        its household anew and every phone of it would be sent the household again."""
        told = self.told.get(db)
        doc = change.get("doc")
        if not told or not isinstance(doc, Mapping):
            return False
        rev = told.pop(str(change.get("id")), None)
        if not told:
            del self.told[db]
        return rev is not None and rev == doc.get("_rev")

    def apply(self, change: Mapping[str, Any], source: str) -> None:
        """One change of a feed (`include_docs`), or a directory grid, into the index."""
        doc = change.get("doc")
        if not isinstance(doc, Mapping):
            if not change.get("deleted") or not isinstance(change.get("id"), str):
                return
            doc = {"_id": change["id"], "_deleted": True}
        self.counter += 1
        touched = self.ids.apply(doc, source)
        if source == RESIDENTS:
            for observe in self.observers:
                observe(doc)
        doc_id = str(doc.get("_id"))
        kind = doc_id.split(":", 1)[0]
        if kind in SHARED and source == RESIDENTS:
            if doc.get("_deleted") is True:
                self.notices.pop(doc_id, None)
                self.notice_reads.pop(doc_id, None)
            else:
                self.notices[doc_id] = (self.counter, str(doc.get("_rev")))
        # The server's answers to one account (an allocation, a ledger entry) are allowed from
        # their first revision on: sent as changes, like notices, never by a resend of all.
        owned = kind in OWNED_BY and source == RESIDENTS and doc.get("_deleted") is not True
        if owned:
            self.owned[doc_id] = (self.counter, str(doc.get("_rev")))
        elif kind in OWNED_BY:
            self.owned.pop(doc_id, None)
        # Before the index is ready no phone has a seq of this process (every route waits for
        # it), so a stamp then is older than any seq it will compare with: none is kept (at the
        # full city, 164,253 households' stamps were 22 MiB).
        for key in touched if self.ready.is_set() else ():
            if source == DIRECTORY:
                self.stamps[f"reset:{key}"] = self.counter
            elif key.startswith(("household:", "account:")) and not owned:
                self.stamps[key] = self.counter
        if touched and self.wake is not None:
            self.wake(touched)

    def sync_grids(self) -> None:
        """The directory's grids (their community and street) as the index knows them."""
        for code, grid in list(self.directory.grids.items()):
            area = (grid.community, grid.street)
            if self.grids.get(code) != area:
                self.grids[code] = area
                self.apply({"doc": {"_id": f"grid:{code}", "code": code,
                                    "community": grid.community, "street": grid.street}},
                           DIRECTORY)

    async def load(self, db: str) -> str | None:
        """A grid's first read: only the kinds the index keeps, by id range (its visits and
        screenings, most of a grid, are never read), from the seq noted first, so a change
        made meanwhile is read again by `catch_up` (applying a document twice changes
        nothing). None when the database does not exist (yet)."""
        try:
            info = await self.couch.get(db_path(db))
        except NotFound:
            return None
        source = source_of(db)
        for kind in KEPT:
            start = json.dumps(f"{kind}:")
            while True:
                page = await self.couch.get(db_path(db, "_all_docs"), include_docs="true",
                                            startkey=start, endkey=json.dumps(f"{kind}:\ufff0"),
                                            limit=str(int(PAGE) + 1))
                rows = [r for r in page.get("rows", []) if isinstance(r.get("doc"), dict)]
                for row in rows[:int(PAGE)]:
                    self.apply({"doc": row["doc"]}, source)
                if len(rows) <= int(PAGE):
                    break
                start = json.dumps(rows[int(PAGE)]["id"])
                await asyncio.sleep(0)  # a city's build must not hold the loop for seconds
        return json_seq(info.get("update_seq", 0))

    async def reach(self, db: str, seq: int) -> None:
        """Read `db`'s changes until every one up to `seq` is applied (0: read it at least
        once). Asked before a batch by the author index (server/sync/authors.py): the batches
        waiting meanwhile are answered by one read."""
        async with self.locks.setdefault(db, asyncio.Lock()):
            done = seq_number(self.since.get(db))
            if done is None or done < seq or db not in self.since:
                await self.read_changes(db)

    async def catch_up(self, db: str) -> int:
        """Apply every change of `db` after the last one applied; how many there were."""
        async with self.locks.setdefault(db, asyncio.Lock()):
            return await self.read_changes(db)

    async def read_changes(self, db: str) -> int:
        """catch_up's work, under the database's lock."""
        seen = 0
        if db not in self.since and grid_of_db(db) is not None:
            loaded = await self.load(db)
            if loaded is None:
                return 0  # a grid listed before its database exists
            self.since[db] = loaded
        since = self.since.get(db, "0")
        source = source_of(db)
        self.reading.add(db)
        try:
            while True:
                try:
                    page = await self.couch.get(db_path(db, "_changes"), since=since,
                                                limit=PAGE, include_docs="true")
                except NotFound:
                    return seen  # a grid listed before its database exists
                for change in page.get("results", []):
                    if source != RESIDENTS:
                        for follower in self.followers:
                            follower.observe(db, change)
                    if not self.already_told(db, change):
                        self.apply(change, source)
                seen += len(page.get("results", []))
                since = str(page.get("last_seq", since))
                self.since[db] = since
                for follower in self.followers if source != RESIDENTS else ():
                    follower.caught_up(db, since)
                if len(page.get("results", [])) < int(PAGE):
                    return seen
                await asyncio.sleep(0)  # a city's build must not hold the loop for seconds
        finally:
            self.reading.discard(db)

    def databases(self) -> list[str]:
        """The databases read at start and at each sweep."""
        if not self.every_grid:
            return [RESIDENTS_DB, *sorted(self.since.keys() - {RESIDENTS_DB})]
        return [RESIDENTS_DB, *(grid_db(code) for code in sorted(self.directory.grids))]

    async def build(self) -> None:
        began = time.monotonic()
        await self.couch.ensure_db(RESIDENTS_DB)
        self.sync_grids()
        for db in self.databases():
            await self.catch_up(db)
        self.ready.set()
        log.info("resident index built in %.1f s: %s", time.monotonic() - began,
                 self.ids.sizes())

    async def run(self) -> None:
        """Supervised (server/web/resident_sync.py): build once, then follow for ever."""
        if not self.ready.is_set():
            await self.build()
        follower = asyncio.create_task(self.follow_residents(), name="resident-notices")
        try:
            await self.sweep()
        finally:
            follower.cancel()

    async def follow_residents(self) -> None:
        async for change, seq in self.couch.follow(RESIDENTS_DB,
                                                   self.since.get(RESIDENTS_DB, "0")):
            if not self.already_told(RESIDENTS_DB, change):  # the allocator's, say: applied
                self.apply(change, RESIDENTS)
            self.since[RESIDENTS_DB] = seq

    async def sweep(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep_seconds
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_sweep - loop.time())):
                    await self.nudge.wait()
            except TimeoutError:
                pass
            self.nudge.clear()
            self.sync_grids()
            if loop.time() >= next_sweep:
                wanted = set(self.databases()) - {RESIDENTS_DB}
                next_sweep = loop.time() + self.sweep_seconds
            else:
                wanted = self.wanted - {RESIDENTS_DB}
            self.wanted.clear()
            self.pending_since = None
            for db in sorted(wanted):
                try:
                    await self.catch_up(db)
                except (StoreUnavailable, CouchFailure) as exc:
                    log.warning("resident index: %s not read (%s)", db, exc)
                    self.wanted.add(db)

    def lag(self) -> Lag:
        if not self.ready.is_set():
            return Lag(seconds=None, items=None)
        if self.pending_since is None:
            return Lag()
        return Lag(seconds=asyncio.get_running_loop().time() - self.pending_since,
                   items=len(self.wanted))

    # -- asking --------------------------------------------------------------------------------

    def allowed(self, account: str) -> Allowed:
        """The ids the account's phone may hold by label, the constant `linli-sync` among
        them."""
        return {**self.ids.allowed(account), VIRTUAL: frozenset({SYNC_ID})}

    def reset_at(self, account: str) -> int:
        """The counter of the last change that may have given the account an id older than
        its phone's seq: its account, a household of it, the place of that household's grid."""
        keys = [f"account:{account}"]
        for home, grid in self.ids.homes(account).items():
            keys += [f"household:{home}", f"reset:grid:{grid}"]
        return max((self.stamps.get(key, 0) for key in keys), default=0)

    def fingerprint(self, account: str) -> int:
        """Changes when the account's allowed ids do: a held feed compares it to know that
        something left the phone's set although no row is due."""
        return hash(frozenset().union(*self.allowed(account).values()))

    def candidates(self, account: str, since: ResidentSeq | None,
                   doc_ids: frozenset[str] | None) -> tuple[list[tuple[str, str, ResidentSeq]],
                                                           ResidentSeq]:
        """The rows due (id, label, seq), in feed order, and the seq after the last of them:
        a resend of every allowed id when the phone's seq cannot be trusted for this account,
        then the notices changed since."""
        now = self.counter
        allowed = self.allowed(account)
        label_of = {i: label for label, ids in allowed.items() for i in ids}
        if since is None or since.epoch != self.epoch or since.counter > now:
            resend: ResidentSeq | None = ResidentSeq(now, self.epoch)
        elif self.reset_at(account) > since.counter:
            resend = ResidentSeq(now, self.epoch)
        elif since.after:
            resend = since
        else:
            resend = None
        rows: list[tuple[str, str, ResidentSeq]] = []
        base = since.counter if since is not None and resend is None else now
        if resend is not None:
            base = resend.counter
            rows += [(i, label_of[i], ResidentSeq(resend.counter, self.epoch, i))
                     for i in sorted(label_of) if i > resend.after]
        notices = allowed.get(RESIDENTS, frozenset())
        changed = {n: (self.notices.get(n) or self.owned.get(n) or (0, ""))[0] for n in notices}
        later = sorted((counter, n) for n, counter in changed.items() if counter > base)
        rows += [(n, RESIDENTS, ResidentSeq(counter, self.epoch)) for counter, n in later]
        if doc_ids is not None:
            rows = [row for row in rows if row[0] in doc_ids]
        return rows, ResidentSeq(now, self.epoch)

    async def revisions(self, candidates: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The current revision of each (id, label), the notices' from memory, the others from
        the store in one `_all_docs` per database; a deleted or missing one is left out."""
        found: dict[str, str] = {}
        asked: dict[str, list[str]] = {}
        for doc_id, label in candidates:
            if label == VIRTUAL:
                found[doc_id] = SYNC_DOC["_rev"]
            elif doc_id in self.notices and label == RESIDENTS:
                found[doc_id] = self.notices[doc_id][1]
            elif doc_id in self.owned and label == RESIDENTS:
                found[doc_id] = self.owned[doc_id][1]
            else:
                asked.setdefault(store_db(label), []).append(doc_id)
        for db, ids in asked.items():
            try:
                page = await self.couch.post(db_path(db, "_all_docs"), {"keys": ids})
            except NotFound:
                continue
            for row in page.get("rows", []):
                value = row.get("value")
                if isinstance(value, Mapping) and not value.get("deleted") and "id" in row:
                    found[str(row["id"])] = str(value.get("rev"))
        return found

    async def changes(self, account: str, since: ResidentSeq | None, limit: int | None,
                      doc_ids: frozenset[str] | None = None) -> tuple[list[Row], ResidentSeq]:
        """The rows of the account's feed after `since` (at most `limit`) and its last seq."""
        due, last = self.candidates(account, since, doc_ids)
        revs = await self.revisions((doc_id, label) for doc_id, label, _ in due)
        rows = [Row(doc_id, revs[doc_id], VIRTUAL if label == VIRTUAL else store_db(label), seq)
                for doc_id, label, seq in due if doc_id in revs]
        if limit is not None and len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1].seq
        return rows, last

    def located(self, account: str, ids: Iterable[str]) -> dict[str, str]:
        """Of `ids`, those the account may hold, with their store database (or VIRTUAL)."""
        label_of = {i: label for label, held in self.allowed(account).items() for i in held}
        return {i: (VIRTUAL if label_of[i] == VIRTUAL else store_db(label_of[i]))
                for i in ids if i in label_of}

    def purge(self, account: str, held: Iterable[str]) -> list[str]:
        """What a phone holds that it may no longer (server/domain/allowed_ids.py)."""
        keep = frozenset().union(*self.allowed(account).values())
        return sorted({i for i in held if not i.startswith("_") and i not in keep})
