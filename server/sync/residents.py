"""The residents' side of the store (居民): the registry a sign-up is matched against, the
account, sign-up and link written when a phone is verified, activation by code, and what a
resident's `/api/me` shows. The rules are the domain's (signup.py, activation.py,
matching.py); this module reads and writes, and keeps the matcher's index.

Every record is written through the checks of any grid write (`check_document` with the
server as its writer, `linli-signup`) and stamped in the receipts, as a phone's would be."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from server.domain import activation, signup
from server.domain.activation import link_id
from server.domain.household_view import resident_view
from server.domain.matching import HouseholdIndex, match, normalise_address
from server.domain.scope import DIRECTORY_DB, LOGIN, Directory, User, grid_db
from server.domain.validation import SchemaRegistry, WriteLimits, check_document, write_context
from server.store.couch import Conflict, CouchClient, NotFound, StoreUnavailable, db_path
from server.sync.receipts import ReceiptLog
from server.sync.replication import encoded_size

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

INDEX_SECONDS = 60.0  # a community's index is rebuilt when older: new households are matched
SERVER = User(name=signup.SIGNUP_AUTHOR, role="admin")
PAGE = 2000
MAX_LINKS = 20  # links of one account to one household: moved out and back, 19 times


class AlreadyRegistered(Exception):
    """The phone has an account already."""


class Unwritable(Exception):
    """The server's own record failed its checks: a bug, never the resident's input."""


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass
class CommunityRegistry:
    """One community's households for matching (社区住户索引): the matcher's index, each
    household's grid and record with its present members (for the name check), and the grids
    of each compound (for the worker's queue)."""

    grids: tuple[str, ...]
    index: HouseholdIndex
    households: dict[str, dict[str, Any]]
    members: dict[str, list[dict[str, Any]]]
    grid_of: dict[str, str]
    compound_grids: dict[str, set[str]]
    built: float

    def queue_grid(self, candidates: Iterable[str], address: str) -> str | None:
        key = normalise_address(address, self.index.compounds)
        compound = key.compound if key is not None else None
        return signup.queue_grid((self.grid_of[c] for c in candidates if c in self.grid_of),
                                 self.compound_grids.get(compound or "", ()), self.grids)


async def all_of_type(couch: CouchClient, db: str, doc_type: str) -> list[dict[str, Any]]:
    """Every `<doc_type>:` document of a grid database, a page at a time."""
    found: list[dict[str, Any]] = []
    start = json.dumps(f"{doc_type}:")
    while True:
        try:
            page = await couch.get(db_path(db, "_all_docs"), include_docs="true",
                                   startkey=start, endkey=json.dumps(f"{doc_type}:\ufff0"),
                                   limit=str(PAGE + 1))
        except NotFound:
            return found
        rows = [r for r in page.get("rows", []) if isinstance(r.get("doc"), dict)]
        found.extend(r["doc"] for r in rows[:PAGE])
        if len(rows) <= PAGE:
            return found
        start = json.dumps(rows[PAGE]["id"])


class RegistryIndexes:
    """The matcher's index of each community, built from its grids when first asked for and
    rebuilt after INDEX_SECONDS; one build at a time per community, however many sign-ups
    wait for it. Owned by the app, never module state."""

    def __init__(self, couch: CouchClient, directory: Directory) -> None:
        self.couch = couch
        self.directory = directory
        self._built: dict[str, asyncio.Future[CommunityRegistry]] = {}

    def grids_of(self, community: str) -> tuple[str, ...]:
        return tuple(sorted(code for code, grid in self.directory.grids.items()
                            if grid.community == community))

    async def get(self, community: str) -> CommunityRegistry | None:
        """The community's registry, or None when no grid of the directory is in it."""
        if not self.grids_of(community):
            return None
        building = self._built.get(community)
        if building is not None and (not building.done() or (
                not building.cancelled() and building.exception() is None
                and time.monotonic() - building.result().built < INDEX_SECONDS)):
            return await asyncio.shield(building)
        building = asyncio.ensure_future(self._build(community))
        self._built[community] = building
        return await asyncio.shield(building)

    async def _build(self, community: str) -> CommunityRegistry:
        grids = self.grids_of(community)
        households: dict[str, dict[str, Any]] = {}
        persons: list[dict[str, Any]] = []
        compounds: list[dict[str, Any]] = []
        grid_of: dict[str, str] = {}
        for code in grids:
            db = grid_db(code)
            for doc in await all_of_type(self.couch, db, "household"):
                households[doc["_id"]] = doc
                grid_of[doc["_id"]] = code
            persons.extend(await all_of_type(self.couch, db, "person"))
            compounds.extend(await all_of_type(self.couch, db, "compound"))
        members: dict[str, list[dict[str, Any]]] = {}
        for person in persons:
            members.setdefault(str(person.get("household")), []).append(person)
        compound_grids: dict[str, set[str]] = {}
        for hid, doc in households.items():
            compound = (doc.get("address") or {}).get("compound")
            if compound:
                compound_grids.setdefault(str(compound), set()).add(grid_of[hid])
        index = HouseholdIndex.build(households.values(), persons, compounds)
        return CommunityRegistry(grids, index, households, members, grid_of, compound_grids,
                                 time.monotonic())


@dataclasses.dataclass
class Registration:
    """What a verified sign-up writes: the grid of its records and the records themselves."""

    grid: str
    outcome: signup.Outcome
    docs: list[dict[str, Any]]


class Residents:
    """Accounts, sign-ups and links of residents in the store."""

    def __init__(self, couch: CouchClient, directory: Directory, schemas: SchemaRegistry,
                 limits: WriteLimits, receipts: ReceiptLog) -> None:
        self.couch = couch
        self.directory = directory
        self.schemas = schemas
        self.limits = limits
        self.receipts = receipts
        self.indexes = RegistryIndexes(couch, directory)
        # Told of each database written and what was, so the residents' sync index has it
        # at once.
        self.on_written: Callable[[str, list[dict[str, Any]]], None] | None = None

    async def known_community(self, community: str) -> bool:
        return bool(self.indexes.grids_of(community))

    async def registration(self, cleaned: Mapping[str, str], account: str,
                           now: datetime.datetime) -> Registration | None:
        """Match the sign-up and make its records, writing nothing (None: the community has
        no grid). The matcher runs for every sign-up, so a match and a miss cost alike."""
        registry = await self.indexes.get(cleaned["community"])
        if registry is None:
            return None
        found = dataclasses.asdict(match(cleaned, registry.index))
        household = registry.households.get(str(found.get("household")))
        decision = signup.decide(found, cleaned["name"], cleaned["phone"], household,
                                 registry.members.get(str(found.get("household")), ()))
        grid = registry.queue_grid(decision.candidates, cleaned["address"])
        if grid is None:
            return None
        record = signup.signup_record(f"signup:{account}", cleaned, account, grid, found,
                                      decision, now)
        docs = [record]
        if decision.outcome == "activated" and household is not None:
            link = signup.automatic_link(link_id(account, str(decision.household)), decision,
                                         account, cleaned["name"], household, now)
            docs.append({**link, "signup": record["_id"]})
        return Registration(grid, decision.outcome, docs)

    async def create_account(self, account: str, phone: str, password_hash: str, salt: str,
                             community: str, grid: str, now: datetime.datetime) -> None:
        """The resident's account in the directory, shaped as `linli user add` makes one, with
        where their records are, under a name of its own, and the phone's claim on it as its
        login (`login:<phone>`): the store lets one claim per phone through, however many
        verifies race on however many server processes (AlreadyRegistered).

        Both in one `_bulk_docs`, all or nothing: one round trip, not two, and no phone
        claimed without an account (the embedded store writes a batch at once; a store that
        takes half of it, CouchDB with a full disk, has the half taken back here)."""
        stamp = now.isoformat(timespec="seconds")
        login = {"_id": f"{LOGIN}:{phone}", "type": LOGIN, "account": account,
                 "created_at": stamp}
        user = {"_id": f"user:{account}", "type": "user", "name": account, "role": "resident",
                "grids": [], "communities": [], "streets": [], "password": password_hash,
                "session_salt": salt, "disabled": False, "created_at": stamp,
                "resident": {"community": community, "grids": [grid]}}
        answers = await self.couch.post(db_path(DIRECTORY_DB, "_bulk_docs"),
                                        {"docs": [login, user]})
        by_id = {str(a.get("id")): a for a in answers if isinstance(a, dict)}
        taken = {i: str(a["rev"]) for i, a in by_id.items()
                 if "error" not in a and i in (login["_id"], user["_id"])}
        if len(taken) == 2:
            return
        if taken:  # half written: taken back, so a retry finds the phone free
            await self.couch.post(db_path(DIRECTORY_DB, "_bulk_docs"), {"docs": [
                {"_id": i, "_rev": rev, "_deleted": True} for i, rev in taken.items()]})
        if by_id.get(login["_id"], {}).get("error") == "conflict":
            raise AlreadyRegistered(phone)
        raise StoreUnavailable(f"account {account} not written: {answers}")

    async def write(self, grid: str, docs: list[dict[str, Any]],
                    writer: User = SERVER) -> list[dict[str, Any]]:
        """Records checked as any grid write is, written together, and receipted: the
        server's, or a resident's own request (`writer`) made by a resident route."""
        ctx = write_context(writer, grid, self.limits, self.directory.retired_schemas,
                            self.directory.purged_campaigns(grid))
        for doc in docs:
            refusal = check_document(doc, ctx, self.schemas, encoded_size(doc))
            if refusal is not None:
                raise Unwritable(f"{doc.get('_id')}: {refusal.reason}")
        db = grid_db(grid)
        with self.receipts.writing(writer.name, db):
            results = await self.couch.post(db_path(db, "_bulk_docs"), {"docs": docs})
            self.receipts.record(writer.name, db, [[r["id"], r["rev"]] for r in results
                                                   if r.get("ok")])
        if self.on_written is not None:  # answers matched by id: the store's order is its own
            revs = {str(r["id"]): r["rev"] for r in results if r.get("ok")}
            self.on_written(db, [{**doc, "_rev": revs[doc["_id"]]} for doc in docs
                                 if doc.get("_id") in revs])
        return list(results)

    async def account_doc(self, account: str) -> dict[str, Any] | None:
        try:
            doc = await self.couch.get(db_path(DIRECTORY_DB, f"user:{account}"))
        except NotFound:
            return None
        return doc if isinstance(doc, dict) else None

    async def find_code(self, community: str, code: str) -> dict[str, Any] | None:
        """The stored activation code typed, among the grids of the resident's community (a
        code opens a household of the community the resident signed up in)."""
        for grid in self.indexes.grids_of(community):
            try:
                rows = await self.couch.get(
                    db_path(grid_db(grid), "_design/linli", "_view", "by_type"),
                    key=json.dumps(["activation_code", 1]), include_docs="true",
                    reduce="false")
            except NotFound:
                continue
            for row in rows.get("rows", []):
                doc = row.get("doc")
                if isinstance(doc, dict) and doc.get("code") == code:
                    return doc
        return None

    async def redeem(self, stored: Mapping[str, Any], account: str,
                     now: datetime.datetime) -> dict[str, Any] | None:
        """A valid code spent by `account`: the code first (a code spent meanwhile is a
        conflict: None), then the link, then the account told where its records are. An
        account already active in the household keeps its link and leaves the code unspent;
        one removed from it (moved out, back again) gets a new link beside the removed one,
        which stays on record."""
        grid = str(stored["grid"])
        new_id, live = await self.free_link_id(grid, account, str(stored["household"]))
        if live is not None:
            return live
        link, used = activation.redeem(stored, account, new_id, now)
        spent = await self.write(grid, [used])
        if not spent or not spent[0].get("ok"):
            return None
        written = await self.write(grid, [link])
        if not written or not written[0].get("ok"):
            log.error("code %s spent but link %s not written: %s", stored["_id"], link["_id"],
                      written)
            return None
        await self.add_grid(account, grid)
        audit.info("%s activated household %s by code %s", account, stored["household"],
                   stored["_id"])
        return link

    async def free_link_id(self, grid: str, account: str,
                           household: str) -> tuple[str, dict[str, Any] | None]:
        """The id a new link of `account` to `household` takes, or the live link it has."""
        base = link_id(account, household)
        for n in range(1, MAX_LINKS + 1):
            candidate = base if n == 1 else f"{base}-{n}"
            try:
                found = await self.couch.get(db_path(grid_db(grid), candidate))
            except NotFound:
                return candidate, None
            if found.get("status") != "removed":
                return candidate, dict(found)
        raise Unwritable(f"{base}: {MAX_LINKS} links already")

    async def add_grid(self, account: str, grid: str) -> None:
        for _ in range(3):
            doc = await self.account_doc(account)
            if doc is None:
                return
            held = doc.setdefault("resident", {}).setdefault("grids", [])
            if grid in held:
                return
            held.append(grid)
            try:
                await self.couch.put(db_path(DIRECTORY_DB, doc["_id"]), doc)
                return
            except Conflict:
                continue

    async def state(self, account: str) -> dict[str, Any]:
        """What a resident's `/api/me` shows: pending or active, and their own links with the
        household as their phone would hold it; nothing of any other household."""
        doc = await self.account_doc(account) or {}
        grids = [g for g in (doc.get("resident") or {}).get("grids") or [] if isinstance(g, str)]
        links: list[dict[str, Any]] = []
        signup_status = None
        for grid in grids:
            db = grid_db(grid)
            try:
                page = await self.couch.get(
                    db_path(db, "_all_docs"), include_docs="true",
                    startkey=json.dumps(f"resident:{account}-"),
                    endkey=json.dumps(f"resident:{account}-\ufff0"))
            except NotFound:
                continue  # a grid removed since
            if signup_status is None:
                # The sign-up is in one grid only, and the retention deletes it a year after it
                # was decided: a grid without it still holds the account's links.
                with contextlib.suppress(NotFound):
                    signup_status = (await self.couch.get(db_path(db, f"signup:{account}"))
                                     ).get("status")
            for row in page.get("rows", []):
                link = row.get("doc") or {}
                if link.get("account") != account or link.get("status") == "removed":
                    continue
                links.append(await self.shown_link(db, link))
        active = any(link["status"] == "active" for link in links)
        return {"state": "active" if active else "pending",
                "signup": signup_status or ("activated" if active else "pending"),
                "households": links}

    async def shown_link(self, db: str, link: Mapping[str, Any]) -> dict[str, Any]:
        shown = {k: link.get(k) for k in ("household", "role", "status", "activation",
                                          "activated_at")}
        shown["grid"] = link.get("grid")
        if link.get("status") == "active":
            try:
                household = await self.couch.get(db_path(db, str(link["household"])))
                shown["record"] = resident_view(household)
            except NotFound:
                shown["record"] = None
        return shown


def new_account() -> str:
    """A resident's user name: random, so the records that name their author name no phone."""
    return f"r{secrets.token_hex(6)}"
