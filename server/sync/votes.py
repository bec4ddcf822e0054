"""Owners' votes in the store (业主表决): motions in `linli-votes` beside the property register,
and each motion's ballots in a database of its own (`linli-vote-<key>`), so that the order of
receipt is that database's update sequence: the store's, never a phone's clock, the same for
every server process. The rules are server/domain/votes.py; this module reads and writes.

A motion's database holds, in the order written: `electorate` (the register of the compound as
it stood at the opening), the ballots (`ballot:<digest of account and request>`, never changed:
a retry of the phone's queued request is the same document), `close` (written once, by the
first request at or after the closing time: a ballot written after it is late), and `result`
(the canonical bytes of the count). The count reads the raw ballots from the changes feed, so a
server killed between `close` and `result` counts the same ballots again at the next request,
and `linli vote recount` (server/admin/votes.py) reproduces the bytes from the same feed.

A secret vote writes who voted (`voted:<unit>`, with a digest of the voter's key) in the
motion's database and how (`ballot_choice:<another digest of the key>`, area and a share of a
head, no unit) in `linli-vote-<key>-box`, copied at the close in one batch into
`linli-vote-<key>-sealed` and the box dropped; docs/votes.md says what this protects and what
not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from server.domain import audience, votes
from server.domain.messages import Refused, bilingual
from server.domain.rules import Problem
from server.domain.scope import DIRECTORY_DB, VOTES_DB, Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.notices import household_in
from server.sync.supervisor import Lag

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

# Seconds a vote's participation is served before it is read again, in the background, for
# ballots another server process took (this process's own are in it at once), and how many
# such reads run at once: a city-wide list must not wait for a read per vote.
PARTICIPATION_TTL = 10.0
CLOSE_SWEEP_SECONDS = 5.0  # how often the supervised task looks for votes past their close
LIST_TTL = 1.0  # seconds a list trusts its motions before asking the store for new ones
BACKGROUND_READS = 4
CHANGES_PAGE = 5000
# A secret vote's hows wait, pending, until this many can go into the box together in a
# shuffled order: the box's order then says nothing of who voted first within a batch of them.
BOX_BATCH = 10
# Ballots a unit takes in one vote (changes of mind, co-owners' and paper together): each is
# kept for good, and a unit that changed its mind twenty times has made it up.
MAX_BALLOTS_PER_UNIT = 20
Clock = Callable[[], datetime.datetime]


def refused(problems: list[Problem]) -> Refused:
    return Refused(400, "bad_request", "；".join(bilingual(p.zh, p.en) for p in problems))


def no_such_motion() -> Refused:
    return Refused(404, "not_found", bilingual("没有这项表决，或您不在其范围内",
                                               "No such vote, or it is not yours to see."))


def box_db(ballots_db: str) -> str:
    return f"{ballots_db}-box"


def sealed_db(ballots_db: str) -> str:
    """A closed secret vote's hows, copied in the order of their ids (`Votes.seal`)."""
    return f"{ballots_db}-sealed"


def ballot_id(account: str, request: str) -> str:
    """One id per account and request: a retry is the same ballot, and no one else's request
    id can take it."""
    return "ballot:" + hashlib.sha256(f"{account}\x1f{request}".encode()).hexdigest()[:32]


async def changes(couch: CouchClient, db: str, since: str = "0") -> tuple[list[dict[str, Any]],
                                                                            str]:
    """Every change of `db` after `since` with its document, in the store's order."""
    rows: list[dict[str, Any]] = []
    while True:
        page = await couch.get(db_path(db, "_changes"), since=since, include_docs="true",
                               limit=str(CHANGES_PAGE))
        rows += page.get("results", [])
        since = str(page.get("last_seq", since))
        if len(page.get("results", [])) < CHANGES_PAGE:
            return rows, since


def log_failure(task: asyncio.Future[Any]) -> None:
    """A background read that failed is logged; the next look reads again."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("participation not read: %s", task.exception())


@dataclasses.dataclass
class MotionState:
    """A motion as this process holds it: the document, its electorate, the owners' units,
    and its live participation (re-read after PARTICIPATION_TTL)."""

    doc: dict[str, Any]
    electorate: votes.Electorate
    owner_units: dict[str, list[str]]
    community: str
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # its feed so far
    since: str = "0"
    read_at: float = -1e9
    result: bytes | None = None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    closing: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    boxing: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)  # a secret flush
    refreshing: asyncio.Future[Any] | None = None  # the background read of participation
    shown: tuple[int, dict[str, Any]] = (-1, {})  # participation, for rows read so far
    outcome: dict[str, Any] | None = None  # the published result, parsed once
    # The vote as a list shows it, as JSON bytes, and the version it was made for (open with
    # that many rows read, or closed): made again only when its participation changes
    listed: tuple[tuple[bool, int], bytes] | None = None

    @property
    def key(self) -> str:
        return str(self.doc["_id"]).removeprefix("motion:")

    @property
    def db(self) -> str:
        return str(self.doc["ballots"])


class Votes:
    """The store's side of owners' votes; one per app. `clock` is the server's time (tests
    set it); order among ballots is the store's, whatever the clock says."""

    def __init__(self, couch: CouchClient, directory: Directory, schemas: SchemaRegistry,
                 clock: Clock) -> None:
        self.couch, self.directory, self.schemas, self.clock = couch, directory, schemas, clock
        self.motions: dict[str, MotionState] = {}
        self.listed_since = "0"
        self.listed_at = -1e9
        self._phones: tuple[int, dict[str, set[str]]] = (-1, {})
        self.background = asyncio.Semaphore(BACKGROUND_READS)
        # One look for new motions at a time: requests arriving together at a process that
        # has not loaded a vote yet (a restart during a flood) load it once, so they share one
        # state, one closing lock and one count.
        self.looking = asyncio.Lock()
        self.box_batch = BOX_BATCH

    # -- who is who ---------------------------------------------------------------------------

    def phones(self, account: str) -> set[str]:
        """The phones an account logs in with (its owner keys on the register)."""
        seen, index = self._phones
        if seen != self.directory.logins_changed:  # a phone moved to another account too
            index = {}
            for phone, owner in self.directory.logins.items():
                index.setdefault(owner, set()).add(phone)
            self._phones = (self.directory.logins_changed, index)
        return index.get(account, set())

    def units_of(self, state: MotionState, account: str) -> list[str]:
        return sorted({u for p in self.phones(account) for u in state.owner_units.get(p, ())})

    def sees(self, user: User, state: MotionState) -> bool:
        if user.disabled:
            return False
        if user.role == "resident":
            return bool(self.units_of(state, user.name))
        if user.is_admin:
            return True
        return any(g.community == state.community and self.directory.reaches(user, g.code)
                   for g in self.directory.grids.values())

    async def community_of(self, compound: str) -> str | None:
        try:
            doc = await self.couch.get(db_path(DIRECTORY_DB, f"compound:{compound}"))
        except NotFound:
            return None
        return str(doc.get("community") or "") or None

    # -- motions ------------------------------------------------------------------------------

    async def open_motion(self, user: User, draft: Mapping[str, Any]) -> dict[str, Any]:
        """A motion checked, its electorate frozen from the register, its database made; the
        motion document is written last, so a motion seen has its ballots' database."""
        now = self.clock()
        problems = votes.motion_problems(draft, now)
        if problems:
            raise refused(problems)
        community = await self.community_of(draft["compound"])
        reach = community is not None and (user.is_admin or any(
            g.community == community and self.directory.reaches(user, g.code)
            for g in self.directory.grids.values()))
        if not reach:
            raise refused([Problem("/compound", "scope", "“小区”不在您的管辖范围内（或不存在）",
                                   "Compound is outside your area (or does not exist)")])
        prefix = f"property_unit:{draft['compound']}:"
        page = await self.couch.get(db_path(VOTES_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(prefix),
                                    endkey=json.dumps(prefix + "\ufff0"))
        units = [row["doc"] for row in page.get("rows", []) if row.get("doc")]
        if not units:
            raise refused([Problem("/compound", "register", "“小区”在产权登记中没有房屋",
                                   "Compound has no units on the property register")])
        key = secrets.token_hex(8)
        doc = votes.motion_doc(draft, user.name, key, now)
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        await self.couch.ensure_db(doc["ballots"])
        if doc["secret"]:
            await self.couch.ensure_db(box_db(doc["ballots"]))
        await self.couch.put(db_path(doc["ballots"], "electorate"), votes.electorate_doc(units))
        await self.couch.put(db_path(VOTES_DB, doc["_id"]), doc)
        audit.info("%s opened %s (%s) in %s", user.name, doc["_id"], doc["matter"],
                   doc["compound"])
        return doc

    async def refresh_list(self, ttl: float = 0.0) -> None:
        """Motions opened since the last look (by any process), from linli-votes' feed; with
        `ttl`, not looked for again within that many seconds (this process's own are known
        at once)."""
        asked = asyncio.get_running_loop().time()
        if ttl and asked - self.listed_at < ttl:
            if self.looking.locked():  # a look under way (the first loads every vote): its
                async with self.looking:  # motions, not the part of them loaded so far
                    pass
            return
        async with self.looking:
            if self.listed_at >= asked:  # another caller's look began after this one asked
                return
            self.listed_at = asyncio.get_running_loop().time()
            await self.look_for_motions()

    async def look_for_motions(self) -> None:
        """One look (under `looking`): the motions by id the first time, then the feed."""
        if self.listed_since == "0":  # the first look: the motions by their ids, not the
            info = await self.couch.get(db_path(VOTES_DB))  # register's feed of every unit
            page = await self.couch.get(db_path(VOTES_DB, "_all_docs"), include_docs="true",
                                        startkey=json.dumps("motion:"),
                                        endkey=json.dumps("motion:\ufff0"))
            for row in page.get("rows", []):
                if row.get("doc") and row["id"].removeprefix("motion:") not in self.motions:
                    await self.load(row["doc"])
            self.listed_since = str(info.get("update_seq", "0"))
        rows, since = await changes(self.couch, VOTES_DB, self.listed_since)
        for row in rows:
            if str(row.get("id", "")).startswith("motion:") and row.get("doc"):
                key = row["id"].removeprefix("motion:")
                if key not in self.motions:
                    await self.load(row["doc"])
        self.listed_since = since

    async def load(self, doc: dict[str, Any]) -> MotionState:
        key = str(doc["_id"]).removeprefix("motion:")
        electorate_raw = await self.couch.get(db_path(doc["ballots"], "electorate"))
        electorate = votes.electorate_of(electorate_raw)
        owners: dict[str, list[str]] = {}
        for unit in electorate.units.values():
            for phone in unit.phones:
                owners.setdefault(phone, []).append(unit.id)
        state = MotionState(doc, electorate, owners,
                            await self.community_of(doc["compound"]) or "")
        await self.catch_up(state)  # read once when loaded: a list never waits for it
        return self.motions.setdefault(key, state)  # loaded meanwhile: that one is shared

    async def state(self, user: User, key: str) -> MotionState:
        """A motion the user may see; any other answers as one that does not exist."""
        if key not in self.motions:
            await self.refresh_list()
        state = self.motions.get(key)
        if state is None or not self.sees(user, state):
            raise no_such_motion()
        return state

    def is_open(self, state: MotionState, now: datetime.datetime) -> bool:
        closes = votes.when(state.doc["closes_at"])
        return closes is not None and now < closes

    async def catch_up(self, state: MotionState, ttl: float = 0.0) -> list[dict[str, Any]]:
        """The motion's feed, read on from where this process last read it; with `ttl`, not
        re-read within that many seconds. A read that started after the caller's write ended
        holds that write: callers waiting together share one read (a flood of ballots costs
        a read per wave, not per ballot)."""
        loop = asyncio.get_running_loop()
        asked = loop.time()
        if ttl and asked - state.read_at < ttl:
            return state.rows
        async with state.lock:
            if state.read_at >= asked:  # another caller's read began after this one asked
                return state.rows
            started = loop.time()
            rows, since = await changes(self.couch, state.db, state.since)
            state.rows += [{"id": r.get("id"), "seq": r.get("seq"), "doc": {
                k: v for k, v in (r.get("doc") or {}).items() if k != "_attachments"}}
                for r in rows]
            state.since, state.read_at = since, started
        return state.rows

    async def refresh(self, state: MotionState) -> None:
        async with self.background:
            await self.catch_up(state, PARTICIPATION_TTL)

    async def participation(self, state: MotionState) -> dict[str, Any]:
        """Live while open: the units that voted so far. Read once, then served from memory
        and read on in the background after PARTICIPATION_TTL (a city-wide list does not wait
        for a read per vote)."""
        if state.read_at < 0:
            await self.catch_up(state)
        elif asyncio.get_running_loop().time() - state.read_at >= PARTICIPATION_TTL and (
                state.refreshing is None or state.refreshing.done()):
            state.refreshing = asyncio.ensure_future(self.refresh(state))
            state.refreshing.add_done_callback(log_failure)
        if state.shown[0] != len(state.rows):  # computed again only when ballots came
            state.shown = (len(state.rows), votes.participation(state.electorate, {
                str(r["doc"].get("unit")) for r in state.rows
                if str(r.get("id", "")).startswith(("ballot:", "voted:"))}))
        return state.shown[1]

    # -- closing and the count ----------------------------------------------------------------

    def due(self) -> list[MotionState]:
        now = self.clock()
        return [s for s in self.motions.values() if s.result is None and not self.is_open(s, now)]

    async def close_due(self) -> None:
        """The supervised task `votes`: a vote past its closing time is closed and counted
        even when nobody asks (a request after the close does the same, whichever is first)."""
        while True:
            await self.refresh_list(LIST_TTL)
            for state in self.due():
                await self.ensure_closed(state)
            await asyncio.sleep(CLOSE_SWEEP_SECONDS)

    def lag(self) -> Lag:
        """Votes past their closing time not counted yet."""
        return Lag(items=len(self.due()))

    async def ensure_closed(self, state: MotionState) -> bytes | None:
        """Closed at or after its time: the close marker written once, then the count from the
        raw ballots stored as `result` (any process, any number of times: the same bytes).
        None while the vote is open."""
        if state.result is not None:
            return state.result
        if self.is_open(state, self.clock()):
            return None
        async with state.closing:
            if state.result is not None:
                return state.result
            try:
                stored = await self.couch.get(db_path(state.db, "result"))
                if state.doc.get("secret"):
                    await self.drop(box_db(state.db))  # a crash after the result kept it
                state.result = str(stored["canonical"]).encode()
                return state.result
            except NotFound:
                pass
            with contextlib.suppress(Conflict):  # closed before a restart, or by another process
                await self.couch.put(db_path(state.db, "close"), {
                    "closed_at": self.clock().isoformat(timespec="seconds")})
            if state.doc.get("secret"):
                await self.flush_box(state, 1)  # the last hows, however few
                await self.seal(state.db)
            body = await self.recount(state.doc)
            result = {"canonical": body.decode(), "sha256": hashlib.sha256(body).hexdigest()}
            try:
                await self.couch.put(db_path(state.db, "result"), result)
            except Conflict:  # another process counted first: its bytes are the published ones
                body = str((await self.couch.get(db_path(state.db, "result")))[
                    "canonical"]).encode()
            if state.doc.get("secret"):
                await self.drop(box_db(state.db))  # with it, the order the hows came in
            state.result = body
            audit.info("%s closed and counted", state.doc["_id"])
            return body

    async def drop(self, db: str) -> None:
        with contextlib.suppress(NotFound):
            await self.couch.request("DELETE", db_path(db))

    async def seal(self, ballots: str) -> None:
        """A secret vote at its close: the hows of its box copied into a new database in one
        batch, sorted by id (the store orders a batch as it likes: either way, not as they
        came in), so that no order of receipt is left to pair them with who voted; the box is
        dropped once the result is stored. A copy half made by a crash is made again."""
        await self.drop(sealed_db(ballots))
        rows, _ = await changes(self.couch, box_db(ballots))
        hows = sorted(({k: v for k, v in doc.items() if k != "_rev"}
                       for doc in votes.box_hows(rows)), key=lambda d: str(d["_id"]))
        await self.couch.ensure_db(sealed_db(ballots))
        if hows:
            await self.couch.post(db_path(sealed_db(ballots), "_bulk_docs"), {"docs": hows})

    async def recount(self, motion_doc: Mapping[str, Any]) -> bytes:
        """The count from the raw ballots (a secret vote's hows from its sealed copy)."""
        rows, _ = await changes(self.couch, str(motion_doc["ballots"]))
        if not motion_doc.get("secret"):
            return votes.count_from(motion_doc, rows, None)
        box, _ = await changes(self.couch, sealed_db(str(motion_doc["ballots"])))
        return votes.count_from(motion_doc, rows, votes.box_hows(box))

    # -- ballots ------------------------------------------------------------------------------

    async def cast(self, user: User, key: str, body: Mapping[str, Any], *,
                   photo: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A ballot from an owner's phone (or, with `photo`, a worker's record of a paper
        ballot), stored in the order received; the answer says whether it counts for now, is
        late, or replaced a co-owner's."""
        state = await self.state(user, key)
        problems = votes.ballot_problems(body, state.doc, paper=photo is not None)
        if problems:
            raise refused(problems)
        unit = self.ballot_unit(user, state, body)
        if photo is not None:
            image = audience.one_image_problem("photo", photo)
            if image is not None:
                raise refused([Problem("/photo", image.code,
                                       image.zh.replace("图片", "纸质票照片"), image.en)])
            await self.paper_allowed(user, state, unit, str(body["signed_by"]).strip())
        now = self.clock()
        opens = votes.when(state.doc["opens_at"])
        if opens is not None and now < opens:
            raise Refused(409, "not_open", bilingual("表决尚未开始", "This vote has not opened."))
        if not self.is_open(state, now):
            await self.ensure_closed(state)
        doc: dict[str, Any] = {
            "_id": ballot_id(user.name, body["request"]), "type": "ballot", "schema_version": 1,
            "created_by": user.name, "motion": state.doc["_id"], "unit": unit,
            "channel": "paper" if photo is not None else "online",
            "received_at": now.isoformat(timespec="milliseconds"), "request": body["request"]}
        if photo is not None:
            doc["signed_by"] = str(body["signed_by"]).strip()
            audit.info("%s recorded a paper ballot for %s in %s, signed by %s", user.name, unit,
                       state.doc["_id"], doc["signed_by"])
        if state.doc.get("secret"):
            return await self.cast_secret(state, doc, body, photo)
        field = "picks" if state.doc.get("candidates") else "choice"
        doc[field] = body[field]
        rows = state.rows if state.read_at >= 0 else await self.catch_up(state)
        if doc["_id"] not in {r.get("id") for r in rows} and sum(
                1 for r in rows if (r.get("doc") or {}).get("unit") == unit
                and str(r.get("id", "")).startswith("ballot:")) >= MAX_BALLOTS_PER_UNIT:
            raise Refused(429, "too_many_requests", bilingual(
                f"该房屋在本次表决中已投 {MAX_BALLOTS_PER_UNIT} 次，不能再更改",
                f"This unit has cast {MAX_BALLOTS_PER_UNIT} ballots in this vote: no more "
                "changes."))
        stored = await self.write_once(state.db, doc, photo)
        if stored is not None:
            if stored.get("unit") != unit or stored.get(field) != doc[field]:
                raise Refused(409, "conflict", bilingual(
                    "这个请求编号已用于另一张选票", "This request id was used for another "
                    "ballot."))
            doc = stored
        return await self.answer(state, doc)

    async def write_once(self, db: str, doc: dict[str, Any],
                         photo: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A ballot checked by its schema and written without a revision, with the paper's
        photo: None when written, the stored one when its id was taken (a retry, or not)."""
        if photo is not None:
            doc["_attachments"] = {"photo": {"content_type": photo["content_type"],
                                             "data": photo["data"]}}
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        try:
            await self.couch.put(db_path(db, doc["_id"]), doc)
        except Conflict:
            stored: dict[str, Any] = await self.couch.get(db_path(db, doc["_id"]))
            return stored
        return None

    async def paper_allowed(self, user: User, state: MotionState, unit: str,
                            signer: str) -> None:
        """A worker records a paper ballot only for a unit where a household of their own
        grids lives (door to door in their grid), never for the developer's units (its named
        representative votes), signed by an owner on the register, and never over the unit's
        owner's own online ballot; in a secret vote, only for a unit none of whose owners has a
        phone on the register (one voted:<unit> per unit: paper must not lock them out)."""
        try:
            doc = await self.couch.get(db_path(VOTES_DB, unit))
        except NotFound:
            doc = {}
        if doc.get("developer_held") or not doc.get("owners"):
            raise Refused(403, "forbidden", bilingual(
                "开发商的房屋由其指定代表投票，网格员不能录入纸质票",
                "The developer's units vote through its named representative, not on paper."))
        if not any([await household_in(self.couch, grid, state.doc["compound"],
                                       str(doc.get("building"))) for grid in sorted(user.grids)]):
            raise Refused(403, "forbidden", bilingual(
                "该房屋不在您负责的网格内", "That unit is not in a grid of yours."))
        owners = doc.get("owners") or []
        if signer not in {str(o.get("name")) for o in owners}:
            raise refused([Problem("/signed_by", "owner", "“签名业主”不是该房屋登记的产权人",
                                   "Signed by: not a registered owner of that unit")])
        if state.doc.get("secret") and any(o.get("phone") in self.directory.logins
                                           for o in owners):
            raise Refused(409, "conflict", bilingual(
                "该房屋的业主有手机账号，不记名投票须本人在线投票",
                "An owner of that unit has a phone account: in a secret vote they vote "
                "themselves."))
        ballots, _ = votes.raw_ballots(await self.catch_up(state))
        if any(b.unit == unit and not b.paper and not b.late for b in ballots):
            raise Refused(409, "conflict", bilingual(
                "业主本人已在线投票，纸质票不能替代", "The owner voted online: a paper ballot "
                "cannot replace it."))

    def ballot_unit(self, user: User, state: MotionState, body: Mapping[str, Any]) -> str:
        """The unit a ballot is for: an owner's own (named, or their only one); for a worker's
        paper ballot, a unit of the compound (paper_allowed says which). One answer for a unit
        that is not theirs and one that does not exist."""
        if user.role == "worker":
            mine = sorted(state.electorate.units)
        else:
            mine = self.units_of(state, user.name)
        wanted = body.get("unit")
        if wanted is None and len(mine) == 1:
            return mine[0]
        if wanted is None:
            raise refused([Problem("/unit", "choose", "“房屋”：您有多处房屋，请选择一处",
                                   "Unit: you own several; choose one")])
        if wanted not in mine:
            raise Refused(403, "forbidden", bilingual(
                "您不是该房屋登记的产权人", "You are not a registered owner of that unit."))
        return str(wanted)

    async def answer(self, state: MotionState, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Where a stored ballot stands: its receipt, late or not (its place against `close`),
        and, read from the feed so far, whether it counts now or a co-owner's came later."""
        ballots, _ = votes.raw_ballots(await self.catch_up(state))
        mine = next(b for b in ballots if b.id == doc["_id"])
        tally = votes.tally(state.electorate, ballots)
        status = tally.status.get(mine.id, "counted")
        later = tally.counted.get(mine.unit)
        answer: dict[str, Any] = {
            "id": mine.id, "unit": mine.unit, "receipt": votes.receipt(mine),
            "received_at": doc.get("received_at"), "status": status}
        if status == "late":
            answer["told"] = bilingual("表决已截止，您的选票已保存但不计入结果",
                                       "The vote had closed: your ballot is kept, not counted.")
        clashed = [c for c in tally.clashes if mine.id in c]
        if clashed and later is not None and later.id == mine.id:
            answer["told"] = bilingual("共有人此前投了不同的票；以服务器后收到的您这张为准，"
                                       "共有人也会收到通知",
                                       "A co-owner voted otherwise earlier; yours, received "
                                       "later, counts, and they are told.")
        elif clashed:
            answer["told"] = bilingual("共有人后来投了不同的票，以其为准",
                                       "A co-owner voted otherwise later; theirs counts.")
        return answer

    async def my_ballots(self, user: User, state: MotionState) -> list[dict[str, Any]]:
        """The account's units' ballots and where each stands (a co-owner told of a clash)."""
        if state.doc.get("secret"):
            return []
        units = set(self.units_of(state, user.name))
        ballots, _ = votes.raw_ballots(await self.catch_up(state))
        tally = votes.tally(state.electorate, ballots)
        clashed = {i for pair in tally.clashes for i in pair}
        return [{"id": b.id, "unit": b.unit, "choice": b.choice, "receipt": votes.receipt(b),
                 "status": tally.status[b.id], "mine": b.by == user.name,
                 "clash": b.id in clashed, "paper": b.paper, "signed_by": b.signed_by}
                for b in ballots if b.unit in units]

    async def cast_secret(self, state: MotionState, who: dict[str, Any],
                          body: Mapping[str, Any],
                          photo: Mapping[str, Any] | None) -> dict[str, Any]:
        """Who in the motion's database (`voted:<unit>`, once: a secret ballot cannot be
        changed; no request id, no time), then how as a pending entry of the box, moved into
        the box with others in a shuffled batch (flush_box). A retry with the same key finds
        its who and writes a missing how (a server killed between the two)."""
        key = body.get("secret_key") or secrets.token_hex(32)  # paper: a key for this ballot
        who = {k: v for k, v in who.items() if k not in ("request", "received_at")}
        who.update({"_id": f"voted:{who['unit']}", "sealed": votes.sealed(key, "who")})
        stored = await self.write_once(state.db, who, photo)
        if stored is not None and stored.get("sealed") != who["sealed"]:
            raise Refused(409, "conflict", bilingual(
                "该房屋已投票；不记名投票不能更改", "This unit has voted; a secret ballot "
                "cannot be changed."))
        rows = await self.catch_up(state)
        mine = next(b for b in votes.raw_ballots(rows)[0] if b.id == who["_id"])
        answer: dict[str, Any] = {"id": who["_id"], "unit": who["unit"], "status": "late"
                                  if mine.late else "counted",
                                  "receipt": votes.sealed(key, "receipt")[:20]}
        if mine.late:
            answer["told"] = bilingual("表决已截止，您的投票已记录但不计入结果",
                                       "The vote had closed: your vote is recorded, not counted.")
            return answer
        field = "picks" if state.doc.get("candidates") else "choice"
        how = {"_id": f"ballot_choice:{votes.sealed(key, 'how')}", "type": "ballot_choice",
               "schema_version": 1, "created_by": "votes", "motion": state.doc["_id"],
               field: body[field], "area_cm2": state.electorate.units[who["unit"]].area_cm2,
               "head": str(votes.head_share(state.electorate, who["unit"])),
               "receipt": answer["receipt"]}
        if how["head"] == "1":
            how["head"] = "1/1"
        stated = self.schemas.problems(how)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        box = box_db(state.db)
        try:  # the retry of a ballot whose how is in the box already
            await self.couch.get(db_path(box, how["_id"]))
            return answer
        except NotFound:
            pass
        try:
            await self.couch.put(db_path(box, f"pending:{votes.sealed(key, 'pending')}"),
                                 {"type": "ballot_pending", "how": how})
        except Conflict:  # the retry of a ballot whose how is pending
            pass
        except NotFound:  # the vote closed and its box was sealed meanwhile (a retry after a
            return answer  # crash): not in the published count
        await self.flush_box(state, self.box_batch)
        return answer

    async def flush_box(self, state: MotionState, at_least: int) -> None:
        """The box's pending hows, once there are `at_least` of them (any number at the close):
        `flush_pending`."""
        await flush_pending(self.couch, box_db(state.db), at_least, state.boxing)


async def flush_pending(couch: CouchClient, box: str, at_least: int,
                        boxing: asyncio.Lock) -> None:
    """A box's pending hows (`pending:<digest>` entries holding `how`), once there are
    `at_least` of them, written as their own documents in one shuffled _bulk_docs, then
    deleted and the box compacted: the box's order says nothing of the order they came in,
    within a batch. The pending entries are the store's, not this process's: a server killed
    before the flush leaves them for the next one, and a how's id (a digest of the sender's
    key) makes writing it twice a conflict, never a second one. Shared by secret ballots and
    anonymous questionnaires (server/sync/questionnaires.py)."""
    async with boxing:
        try:
            page = await couch.get(db_path(box, "_all_docs"), include_docs="true",
                                   startkey=json.dumps("pending:"),
                                   endkey=json.dumps("pending:\ufff0"))
        except NotFound:  # sealed and dropped at the close
            return
        pending = [row["doc"] for row in page.get("rows", []) if row.get("doc")]
        if not pending or len(pending) < at_least:
            return
        secrets.SystemRandom().shuffle(pending)
        written = await couch.post(db_path(box, "_bulk_docs"), {
            "docs": [doc["how"] for doc in pending]})
        failed = [r for r in written if r.get("error") not in (None, "conflict")]
        if failed:  # kept pending: the next flush writes them
            raise Refused(503, "unavailable", bilingual(
                "票箱暂时无法写入，请稍后重试", "The ballot box could not be written; "
                "try again."))
        await couch.post(db_path(box, "_bulk_docs"), {"docs": [
            {"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True} for doc in pending]})
        await couch.post(db_path(box, "_compact"), {})
