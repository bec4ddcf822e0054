"""Notices in the store (公告): written to the residents database (`linli-residents`, server
only: it is never reached through /couch/), withdrawn there, their receipts taken there one per
resident and notice, and the follow-up read from the grids they reach. The rules are
server/domain/notices.py and audience.py; this module reads and writes.

A receipt is taken in the order the server receives it (`take_receipt`): written without a
revision, a second arrival finds the first (a conflict), reads it and adds only what the rules
let it add, so any number of replays or racing phones leave one receipt."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain import audience, notices
from server.domain.messages import Refused, bilingual
from server.domain.resident_writes import resident_write_problem
from server.domain.rules import Problem
from server.domain.scope import DIRECTORY_DB, RESIDENTS_DB, Directory, Grid, User, grid_db
from server.domain.validation import SchemaRegistry
from server.store import designs
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.residents import all_of_type

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

RECEIPT_TRIES = 5  # a receipt meets at most one conflict per racing writer of its account


def refused(problems: list[Problem]) -> Refused:
    """A 400 naming every field wrong by its label, each "zh / en" (never a JSON pointer),
    joined by "；" as the schema's problems are, so the PWA shows one language."""
    return Refused(400, "bad_request", "；".join(bilingual(p.zh, p.en) for p in problems))


async def household_in(couch: CouchClient, grid: str, compound: str, building: str) -> bool:
    """Whether a household of `grid` says it lives in that building of the compound."""
    try:
        rows = await couch.get(
            db_path(grid_db(grid), "_design/linli", "_view", "households_by_address"),
            startkey=json.dumps([compound, building]),
            endkey=json.dumps([compound, building, {}]), limit="1")
    except NotFound:
        return False
    return bool(rows.get("rows"))


@dataclasses.dataclass(frozen=True)
class GridHouseholds:
    """A grid's households as the follow-up reads them (网格住户)."""

    households: dict[str, dict[str, Any]]
    places: dict[str, audience.Place]
    with_residents: frozenset[str]


def new_notice_id() -> str:
    return f"notice:{secrets.token_hex(8)}"


def receipt_id(notice_id: str, account: str) -> str:
    return f"notice_receipt:{notice_id.removeprefix('notice:')}:{account}"


class Notices:
    """The store's side of notices; one per app."""

    def __init__(self, couch: CouchClient, directory: Directory,
                 schemas: SchemaRegistry) -> None:
        self.couch = couch
        self.directory = directory
        self.schemas = schemas
        self._installed = False  # the residents database's design, before its first query

    # -- writing -----------------------------------------------------------------------------

    async def publish(self, user: User, draft: Mapping[str, Any],
                      now: datetime.datetime) -> dict[str, Any]:
        """A draft checked (its fields, its audience against the author's scope, its images)
        and stored published; nothing is stored when anything is refused."""
        problems = notices.draft_problems(draft, now)
        if problems:
            raise refused(problems)
        grids_of = await self.building_grids(user, draft["audience"])
        problems = notices.scope_problems(draft["audience"], user, self.directory,
                                          lambda code: grids_of.get(code, frozenset()))
        if problems:
            raise refused(problems)
        doc = notices.notice_doc(draft, user.name, new_notice_id(), now)
        if grids_of:  # a supervisor's buildings: only where they were found in their reach
            doc["audience"]["grids"] = sorted(set().union(*grids_of.values()))
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        await self.couch.ensure_db(RESIDENTS_DB)
        await self.couch.put(db_path(RESIDENTS_DB, doc["_id"]), doc)
        audit.info("%s published %s to %s", user.name, doc["_id"],
                   json.dumps(doc["audience"], ensure_ascii=False))
        return doc

    async def building_grids(self, user: User,
                             wanted: Mapping[str, Any]) -> dict[str, frozenset[str]]:
        """For a supervisor's building audience: each building code's grids among those they
        reach (a building is where a grid's households say they live), one key lookup per
        grid and building in the grids' address view. An admin's building is not looked up."""
        if wanted.get("level") != "building" or user.is_admin:
            return {}
        codes = sorted(set(wanted.get("codes") or ()))
        pairs = [(grid, code) for grid in self.reachable(user) for code in codes]
        found: dict[str, set[str]] = {}
        for (grid, code), there in zip(pairs, await asyncio.gather(
                *(self.lives_in(grid, code) for grid, code in pairs)), strict=True):
            if there:
                found.setdefault(code, set()).add(grid)
        return {code: frozenset(grids) for code, grids in found.items()}

    async def lives_in(self, grid: str, building: str) -> bool:
        """Whether a household of `grid` says it lives in `building` (`<compound>-<number>`)."""
        compound, _, number = building.partition("-")
        return await household_in(self.couch, grid, compound, number)

    async def withdraw(self, user: User, notice_id: str,
                       now: datetime.datetime) -> dict[str, Any] | None:
        """Rule 3: the notice marked withdrawn (None: no such notice for this user)."""
        for _ in range(3):
            doc = await self.notice(user, notice_id)
            if doc is None or not notices.may_withdraw(doc, user):
                return None
            if doc["status"] == "withdrawn":
                return doc
            doc["status"] = "withdrawn"
            try:
                await self.couch.put(db_path(RESIDENTS_DB, notice_id), doc)
            except Conflict:
                continue
            audit.info("%s withdrew %s", user.name, notice_id)
            return doc
        return None

    async def take_receipt(self, receipt: Mapping[str, Any]) -> dict[str, Any]:
        """Rule 4, for a receipt the resident's rules already let through
        (server/domain/resident_writes.py): the receipt as stored after it."""
        doc_id = str(receipt["_id"])
        path = db_path(RESIDENTS_DB, doc_id)
        for _ in range(RECEIPT_TRIES):
            try:
                stored = await self.couch.get(path)
            except NotFound:
                stored = None
            write = notices.merged_receipt(stored, receipt)
            if write is None:
                assert stored is not None
                return dict(stored)
            try:
                result = await self.couch.put(path, write)
            except Conflict:
                continue  # someone else's arrival came first: read it and decide again
            return {**write, "_rev": result["rev"]}
        raise Conflict(409, {"error": "conflict", "reason": "receipt kept changing"})

    async def resident_receipt(self, account: str, notice_id: str, confirmed: bool,
                               now: datetime.datetime) -> dict[str, Any] | None:
        """A resident's read (and confirm) of a notice they may see, made by the server from
        who they are: their household and grid are looked up, never taken from the phone.
        None when the notice is not theirs to see (the same as no such notice)."""
        notice = await self.published(notice_id)
        homes = await self.homes(account)
        wanted = notice.get("audience") if notice is not None else None
        if notice is None or not notices.is_live(notice, now) or not isinstance(wanted, Mapping):
            return None
        reached = sorted(hid for hid, (grid, place) in homes.items()
                         if audience.includes(wanted, place))
        if not reached:
            return None
        stamp = now.isoformat(timespec="seconds")
        receipt = {"_id": receipt_id(notice_id, account), "type": "notice_receipt",
                   "schema_version": 1, "created_by": account, "notice": notice_id,
                   "household": reached[0], "grid": homes[reached[0]][0], "read_at": stamp}
        if confirmed:
            receipt["confirmed_at"] = stamp
        problem = resident_write_problem(receipt, None, account,
                                         {hid: grid for hid, (grid, _) in homes.items()},
                                         frozenset({notice_id}))
        stated = self.schemas.problems(receipt)
        if problem is not None or stated:
            log.error("receipt %s refused by its own rules: %s %s", receipt["_id"], problem,
                      stated)
            return None
        return await self.take_receipt(receipt)

    async def published(self, notice_id: str) -> dict[str, Any] | None:
        try:
            doc = await self.couch.get(db_path(RESIDENTS_DB, notice_id))
        except NotFound:
            return None
        return doc if isinstance(doc, dict) and doc.get("type") == "notice" else None

    async def homes(self, account: str) -> dict[str, tuple[str, audience.Place]]:
        """The households an account is an active resident of: their grid and place."""
        try:
            doc = await self.couch.get(db_path(DIRECTORY_DB, f"user:{account}"))
        except NotFound:
            return {}
        grids = (doc.get("resident") or {}).get("grids") or []
        found: dict[str, tuple[str, audience.Place]] = {}
        for code in grids:
            grid = self.directory.grids.get(str(code))
            if grid is None:
                continue
            db = grid_db(grid.code)
            try:
                page = await self.couch.get(db_path(db, "_all_docs"), include_docs="true",
                                            startkey=json.dumps(f"resident:{account}-"),
                                            endkey=json.dumps(f"resident:{account}-\ufff0"))
            except NotFound:
                continue
            for row in page.get("rows", []):
                link = row.get("doc") or {}
                if link.get("account") != account or link.get("status") != "active":
                    continue
                try:
                    household = await self.couch.get(db_path(db, str(link["household"])))
                except NotFound:
                    continue
                place = audience.place_of(household, grid.community, grid.street)
                if place is not None and household.get("status") in (None, "active"):
                    found[str(link["household"])] = (grid.code, place)
        return found

    # -- reading -----------------------------------------------------------------------------

    def reachable(self, user: User) -> list[str]:
        return sorted(c for c in self.directory.grids if self.directory.reaches(user, c))

    async def all_notices(self) -> list[dict[str, Any]]:
        """Every notice; the type checked too, whatever a store's collation puts in the
        range of `notice:` ids."""
        return [doc for doc in await all_of_type(self.couch, RESIDENTS_DB, "notice")
                if doc.get("type") == "notice"]

    def sees(self, user: User, notice: Mapping[str, Any],
             mine: Iterable[Grid] | None = None) -> bool:
        """A notice a supervisor lists and follows up (in their own grids): their own, any
        for an admin, and another author's that reaches into their grids (`mine`, read from
        the directory when not given), a city notice too: its follow-up there is theirs."""
        if user.is_admin or notice.get("created_by") == user.name:
            return True
        wanted = notice.get("audience")
        if not notices.may_author(user) or not isinstance(wanted, Mapping):
            return False
        grids = self.directory.grids
        return notices.overlaps(wanted, mine if mine is not None else (
            grids[code] for code in self.reachable(user)))

    async def notice(self, user: User, notice_id: str) -> dict[str, Any] | None:
        if not notice_id.startswith("notice:"):
            return None
        try:
            doc = await self.couch.get(db_path(RESIDENTS_DB, notice_id))
        except NotFound:
            return None
        return doc if isinstance(doc, dict) and doc.get("type") == "notice" and self.sees(
            user, doc) else None

    async def receipt_counts(self) -> dict[str, dict[str, int]]:
        """How many residents read each notice, and how many confirmed it, in one read of the
        residents database's view (designs/residents.json), not one per notice."""
        if not self._installed:
            await designs.install(self.couch, RESIDENTS_DB, designs.RESIDENTS)
            self._installed = True
        rows = await self.couch.get(
            db_path(RESIDENTS_DB, "_design/residents", "_view", "receipts_by_notice"),
            group_level="2")
        counts: dict[str, dict[str, int]] = {}
        for row in rows.get("rows", []):
            notice, state = row["key"]
            found = counts.setdefault(str(notice), {"read": 0, "confirmed": 0})
            found["read"] += int(row["value"])
            if state == "confirmed":
                found["confirmed"] += int(row["value"])
        return counts

    async def receipts(self, notice_id: str) -> list[dict[str, Any]]:
        """Every receipt of a notice: their ids start with the notice's key."""
        return await all_of_type(self.couch, RESIDENTS_DB,
                                 receipt_id(notice_id, "").removesuffix(":"))

    async def buildings(self, grid: str) -> list[dict[str, str]]:
        """The buildings a grid's households live in, for the audience picker, by name."""
        names: dict[str, str] = {}
        for household in await all_of_type(self.couch, grid_db(grid), "household"):
            address = household.get("address")
            if not isinstance(address, Mapping) or household.get("grid") != grid:
                continue
            code = f"{address.get('compound')}-{address.get('building')}"
            names.setdefault(code, f"{address.get('compound_name') or address.get('compound')} "
                                   f"{address.get('building')}幢")
        return [{"code": code, "name": name, "grid": grid}
                for code, name in sorted(names.items())]

    def grids_reached(self, wanted: Mapping[str, Any], among: Iterable[str]) -> list[str]:
        """The grids among `among` whose households an audience may include (for a building,
        every grid: its households say where they live)."""
        level, codes = wanted.get("level"), set(wanted.get("codes") or ())
        found = []
        for code in among:
            grid = self.directory.grids.get(code)
            if grid is None:
                continue
            if level in ("city", "building") or (level == "street" and grid.street in codes) or (
                    level == "community" and grid.community in codes) or (
                    level == "grid" and code in codes):
                found.append(code)
        return found

    async def follow_up(self, notice: Mapping[str, Any], grids: Iterable[str],
                        unmasked: Mapping[str, bool],
                        held: dict[str, GridHouseholds] | None = None) -> list[dict[str, Any]]:
        """The follow-up of `notice` in `grids` (those its audience reaches among them): per
        grid its counts and the households to visit, names masked unless `unmasked[grid]`.
        `held`: grids already read, filled as more are (a worker's list reads each once for
        all notices); a notice none of whose households is in its audience reads no receipt."""
        wanted = notice.get("audience")
        if not isinstance(wanted, Mapping):
            return []
        held = {} if held is None else held
        codes = self.grids_reached(wanted, grids)
        missing = [code for code in codes if code not in held]
        for code, found in zip(missing, await asyncio.gather(
                *(self.grid_households(code) for code in missing)), strict=True):
            held[code] = found
        if not any(audience.includes(wanted, place) for code in codes
                   for place in held[code].places.values()):
            return []
        receipts = await self.receipts(str(notice["_id"]))
        shown = []
        for code in codes:
            grid, households = self.directory.grids[code], held[code].households
            lists = audience.follow_up(notice, held[code].places, held[code].with_residents,
                                       receipts).get(code)
            if lists is None:
                continue
            sees = unmasked.get(code, False)
            entries = [notices.visit_entry(hid, households[hid], state, sees)
                       for state, ids in (("unread", lists.unread),
                                          ("unconfirmed", lists.unconfirmed),
                                          ("without_account", lists.without_account))
                       for hid in ids] if notices.lists_households(notice, sees) else []
            shown.append({"grid": code, "name": grid.name, "community": grid.community,
                          "counts": {"unread": len(lists.unread),
                                     "unconfirmed": len(lists.unconfirmed),
                                     "without_account": len(lists.without_account),
                                     "done": lists.done},
                          "households": entries,
                          "listed": notices.lists_households(notice, sees)})
        return shown

    async def grid_households(self, grid: str) -> GridHouseholds:
        """A grid's households in use (not moved out, vacant or deleted), their places, and
        those of them with an active resident."""
        db = grid_db(grid)
        households, links = await asyncio.gather(all_of_type(self.couch, db, "household"),
                                                 all_of_type(self.couch, db, "resident"))
        found = {str(h["_id"]): h for h in households
                 if h.get("status") in (None, "active") and h.get("grid") == grid}
        active = {str(link.get("household")) for link in links if link.get("status") == "active"}
        area = self.directory.grids[grid]
        places = {hid: place for hid, doc in found.items() if (
            place := audience.place_of(doc, area.community, area.street)) is not None}
        return GridHouseholds(found, places, frozenset(active & set(found)))
