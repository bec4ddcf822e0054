"""My data's side of the store (我的数据): reading everything held about a resident and their
households, and keeping their data requests in the residents database. What is shown, how the
file reads and how a request moves are server/domain/mydata.py's rules; this module reads and
writes.

What is read for a resident: their account (the directory), their links and sign-up in the
grids their account names, and for each household an active link makes theirs, the household,
its members and every record naming it (the grid's `persons_by_household` and
`records_by_household` views); in the residents database their own receipts and requests (the
`by_author` view). The domain judges each document again before anything is shown."""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Iterable
from typing import Any

from server.domain import mydata
from server.domain.scope import DIRECTORY_DB, RESIDENTS_DB, Directory, User, grid_db
from server.domain.validation import SchemaRegistry
from server.store import designs
from server.store.couch import Conflict, CouchClient, NotFound, db_path

MAX_LISTED = 500  # requests a supervisor's list shows at once, oldest first


class MyData:
    """A resident's data, gathered; data requests, made, listed and answered."""

    def __init__(self, couch: CouchClient, directory: Directory,
                 schemas: SchemaRegistry) -> None:
        self.couch = couch
        self.directory = directory
        self.schemas = schemas
        self.titles, self.labels = mydata.schema_labels(
            {key: v.schema for key, v in schemas.validators.items()})
        self._installed = False

    # -- reading ---------------------------------------------------------------------------

    async def account(self, account: str) -> dict[str, Any]:
        try:
            doc = await self.couch.get(db_path(DIRECTORY_DB, f"user:{account}"))
        except NotFound:
            return {}
        return doc if isinstance(doc, dict) else {}

    @staticmethod
    def community_of(account_doc: dict[str, Any]) -> str:
        return str((account_doc.get("resident") or {}).get("community") or "")

    def grids_of(self, account_doc: dict[str, Any]) -> list[str]:
        """The grids the account names (where its sign-up and links are), that exist."""
        found = (account_doc.get("resident") or {}).get("grids") or []
        return [g for g in found if isinstance(g, str) and g in self.directory.grids]

    async def _range(self, db: str, prefix: str) -> list[dict[str, Any]]:
        try:
            page = await self.couch.get(db_path(db, "_all_docs"), include_docs="true",
                                        startkey=json.dumps(prefix),
                                        endkey=json.dumps(prefix + "\ufff0"))
        except NotFound:
            return []
        return [r["doc"] for r in page.get("rows", []) if isinstance(r.get("doc"), dict)]

    async def _view(self, db: str, design: str, view: str,
                    **params: str) -> list[dict[str, Any]]:
        try:
            page = await self.couch.get(db_path(db, f"_design/{design}", "_view", view),
                                        include_docs="true", **params)
        except NotFound:
            return []
        return [r["doc"] for r in page.get("rows", []) if isinstance(r.get("doc"), dict)]

    async def own_in_grids(self, account: str, grids: Iterable[str]) -> list[dict[str, Any]]:
        """The account's links and sign-up, in the grids its account names."""
        found: list[dict[str, Any]] = []
        for grid in grids:
            db = grid_db(grid)
            found += await self._range(db, f"resident:{account}-")
            found += [d for d in await self._range(db, f"signup:{account}")
                      if d.get("_id") == f"signup:{account}"]
        return found

    async def about_household(self, household: str, grid: str) -> list[dict[str, Any]]:
        """The household, its members and every record naming it, in its grid."""
        db = grid_db(grid)
        found: list[dict[str, Any]] = []
        with contextlib.suppress(NotFound):
            found.append(await self.couch.get(db_path(db, household)))
        key = json.dumps(household)
        found += await self._view(db, "linli", "persons_by_household", key=key)
        found += await self._view(db, "linli", "records_by_household",
                                  startkey=json.dumps([household]),
                                  endkey=json.dumps([household, {}]))
        return found

    async def own_in_residents(self, account: str) -> list[dict[str, Any]]:
        """The account's receipts and data requests."""
        await self.install()
        return await self._view(RESIDENTS_DB, "residents", "by_author",
                                startkey=json.dumps([account]),
                                endkey=json.dumps([account, {}]))

    async def install(self) -> None:
        if not self._installed:
            await designs.install(self.couch, RESIDENTS_DB, designs.RESIDENTS)
            self._installed = True

    async def gather(self, account: str, now: datetime.datetime) -> dict[str, Any]:
        """Everything held about the account and its households, as the resident is shown it."""
        account_doc = await self.account(account)
        own = await self.own_in_grids(account, self.grids_of(account_doc))
        homes = mydata.homes_of(account, own)
        docs: list[dict[str, Any]] = [account_doc, *own]
        for household, grid in sorted(homes.items()):
            if grid in self.directory.grids:
                docs += await self.about_household(household, grid)
        docs += await self.own_in_residents(account)
        return mydata.gathered(account, homes, docs, now)

    async def homes(self, account: str) -> tuple[str, dict[str, str]]:
        """The account's community and its households (with their grids)."""
        account_doc = await self.account(account)
        own = await self.own_in_grids(account, self.grids_of(account_doc))
        return self.community_of(account_doc), mydata.homes_of(account, own)

    # -- requests --------------------------------------------------------------------------

    async def requests_of(self, account: str, community: str) -> list[dict[str, Any]]:
        if not community:
            return []
        return await self._range(RESIDENTS_DB, mydata.day_prefix(community, account))

    async def make_request(self, doc: dict[str, Any], community: str,
                           now: datetime.datetime) -> tuple[dict[str, Any] | None, bool]:
        """The request stored in the first free slot of the day, or the open one it repeats
        (then True); (None, False) when the day's slots are all taken. The store decides:
        a slot taken meanwhile by another process is a conflict, and the next is tried."""
        account = str(doc["created_by"])
        today = await self._range(RESIDENTS_DB, mydata.day_prefix(community, account, now))
        repeated = mydata.replay_of(doc, today)
        if repeated is not None:
            return dict(repeated), True
        taken = {d.get("_id") for d in today}
        for slot in mydata.slot_ids(community, account, now):
            if slot in taken:
                continue
            stored = {"_id": slot, **doc}
            try:
                written = await self.couch.put(db_path(RESIDENTS_DB, slot), stored)
            except Conflict:
                continue
            return {**stored, "_rev": written["rev"]}, False
        return None, False

    def communities(self, user: User) -> list[str]:
        """The communities whose residents' requests the user answers: a supervisor's (of the
        community, or of its street), every one for an admin."""
        return sorted({g.community for code, g in self.directory.grids.items()
                       if g.community and self.directory.reaches(user, code)})

    async def listed(self, user: User, community: str | None,
                     final: bool) -> list[dict[str, Any]]:
        """The requests of the user's communities (or one), oldest first; the open and in
        progress ones only unless `final`."""
        found: list[dict[str, Any]] = []
        for code in self.communities(user):
            if community is not None and code != community:
                continue
            found += [d for d in await self._range(RESIDENTS_DB, mydata.community_prefix(code))
                      if final or d.get("status") in ("open", "in_progress")]
        found.sort(key=lambda d: (str(d.get("requested_at")), str(d.get("_id"))))
        return found

    async def request(self, user: User, request_id: str) -> dict[str, Any] | None:
        """The request, if it is one of the user's communities (None otherwise, exactly as for
        a request that does not exist)."""
        community = request_id.removeprefix("data_request:").partition(":")[0]
        if not request_id.startswith("data_request:") or community not in self.communities(
                user):
            return None
        try:
            doc = await self.couch.get(db_path(RESIDENTS_DB, request_id))
        except NotFound:
            return None
        return doc if isinstance(doc, dict) and doc.get("type") == "data_request" else None

    async def answer(self, doc: dict[str, Any]) -> str:
        """The answered request written over the revision answered; Conflict if it moved."""
        written = await self.couch.put(db_path(RESIDENTS_DB, str(doc["_id"])), doc)
        return str(written["rev"])
