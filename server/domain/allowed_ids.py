"""The resident's allowed doc ids (居民可同步记录), CHT-style: for each resident account, the
documents their phone may hold, kept current from the changes feeds and never recomputed from
the store per request.

A resident may hold, per database:
- in their household's grid database: the household, its present members (a moved-out or
  deceased person's record is somebody else's now), their own link (`resident`) and their own
  submissions about that household (correction requests);
- in the residents database: the published notices whose audience includes their household
  (server/domain/audience.py), and their own receipts and data requests;
- the same way, the published volunteer tasks of their community (filed by their audience as
  notices are), and what the server allocated them (`allocation`, by its `claimant`) and
  entered in their ledgers (`ledger_entry`, by its `account`), which stay with the account;
  and their party membership (`party_member`, by its `account`; server/domain/party.py).
A link that is not active (pending, removed: moved out) gives nothing, nor does a household
moved out, vacant or deleted; a notice withdrawn or deleted reaches no one; a submission about
a household they no longer belong to leaves too, but a data request stays with the account
(PIPL arts. 45-47 answers are owed to the person).

Compact by construction, for 160,000 residents in ≤ 300 MB: nothing is stored per resident but
their links and own submissions. What residents share is stored once: a household's ids once
for all its residents, a notice once under each audience key (`community:330802001001`), never
copied into 160,000 lists. `allowed()` joins them when a phone syncs: a few set unions.
Ids are interned (`sys.intern`), so an id held in several maps is one string. Measured at
the full city (164,253 households, 443,617 present persons), the index was 260 of the
server's 377 MiB; small per-record objects were most of it, so a household's ids are a tuple
(most hold 2 to 5), members are filed per grid (no tuple key and value per person), and a
household's tags are one shared frozenset per distinct set.

What leaves a phone (`purge`): what it holds that it may no longer, per database; the
embedded store has no `_purge`, so the sync endpoint sends this list and the PWA removes the
documents locally. `apply()` answers the feed keys a change touches (`household:<id>`,
`account:<name>`, an audience key), so a live feed wakes only the phones concerned.

The index takes documents as the changes feeds give them, with the database they came from
(`grid:<code>`, `residents`, `directory`); deletions carry only their id, whose prefix names
the type (`household:...`), as every record id does (server/domain/validation.py).

A household, a member and a link are filed under their grid and their id together: an id is
the registry's code, not the grid's, so a worker of another grid can store a record under the
same id in their own grid; filed by id alone it would take the place of the real one (the
residents' view, their purge) or hand its members to the wrong phone. A link reaches only the
household of its own grid's database.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain.audience import Place, audience_keys, household_tags, includes, place_keys

RESIDENTS = "residents"
DIRECTORY = "directory"
SUBMISSIONS = frozenset({"correction_request", "notice_receipt", "data_request"})
# The server's answers to an account, filed by the field naming it; like a data request they
# stay with the account wherever it lives (a volunteer's hours are theirs).
OWNED_BY = {"allocation": "claimant", "ledger_entry": "account", "checkin": "created_by",
            "volunteer": "created_by", "volunteer_ranking": "created_by",
            "party_member": "account", "report": "reporter", "report_step": "reporter",
            "report_status": "reporter", "mutual_aid_listing": "created_by",
            "mutual_aid_deal": "taker", "mutual_aid_supplier": "account"}
SHARED = ("notice", "volunteer_task", "questionnaire")  # filed once under their audience's keys
ACTIVE_HOUSEHOLD = (None, "active")
PRESENT_PERSON = (None, "present")

Allowed = dict[str, frozenset[str]]
"""Doc ids by database label (`grid:<code>` or `residents`)."""
Filed = tuple[str, str]
"""A grid record as the index files it: (grid code, id)."""


def _i(value: Any) -> str:
    return sys.intern(str(value))


class _Household:
    """One household as residents see it: its grid, its place, and its ids (itself and its
    present members), shared by all of its residents. `ids` is a tuple, not a set: a few ids
    each, 160,000 times over (an empty set alone is 216 bytes)."""

    __slots__ = ("active", "building", "grid", "ids", "tags")

    def __init__(self, grid: str) -> None:
        self.grid = grid
        self.active = False  # stored, and neither deleted, moved out nor vacant
        self.building = ""
        self.tags: frozenset[str] = frozenset()
        self.ids: tuple[str, ...] = ()

    def add(self, doc_id: str) -> None:
        if doc_id not in self.ids:
            self.ids = (*self.ids, doc_id)

    def discard(self, doc_id: str) -> None:
        if doc_id in self.ids:
            self.ids = tuple(i for i in self.ids if i != doc_id)


class _Notice:
    __slots__ = ("audience", "keys")

    def __init__(self, audience: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        self.audience = audience
        self.keys = keys


class AllowedIds:
    """The index; fed by `apply`, asked by `allowed`, `purge` and `keys`."""

    def __init__(self) -> None:
        self._areas: dict[str, tuple[str, str]] = {}  # grid -> (community, street)
        self._households: dict[Filed, _Household] = {}  # (grid, household id)
        self._member_of: dict[str, dict[str, str]] = {}  # grid -> person id -> household id
        self._tagsets: dict[frozenset[str], frozenset[str]] = {}  # each distinct set, once
        # (grid, resident link id) -> (account, (grid, household id))
        self._links: dict[Filed, tuple[str, Filed]] = {}
        self._accounts: dict[str, tuple[Filed, ...]] = {}  # account -> active links
        self._notices: dict[str, _Notice] = {}
        self._by_key: dict[str, set[str]] = {}  # audience key -> published notice ids
        # account -> {submission id: (database, household or "")}
        self._own: dict[str, dict[str, tuple[str, str]]] = {}
        self._author: dict[str, str] = {}  # submission id -> account

    # -- feeding ---------------------------------------------------------------------------

    def apply(self, doc: Mapping[str, Any], source: str) -> frozenset[str]:
        """Take one change; answer the feed keys it touches."""
        doc_id = doc.get("_id")
        if not isinstance(doc_id, str) or doc_id.startswith("_"):
            return frozenset()
        kind = doc_id.split(":", 1)[0]
        deleted = doc.get("_deleted") is True
        if source == DIRECTORY:
            return self._grid(doc) if kind == "grid" and not deleted else frozenset()
        handler = {"household": self._household, "person": self._person,
                   "resident": self._link, "notice": self._notice,
                   "volunteer_task": self._notice, "questionnaire": self._notice}.get(kind)
        if handler is not None:
            return handler(_i(doc_id), None if deleted else doc, source)
        if kind in SUBMISSIONS or kind in OWNED_BY:
            return self._submission(_i(doc_id), None if deleted else doc, source)
        return frozenset()

    def _grid(self, doc: Mapping[str, Any]) -> frozenset[str]:
        code, community, street = doc.get("code"), doc.get("community"), doc.get("street")
        if isinstance(code, str):
            self._areas[_i(code)] = (_i(community or ""), _i(street or ""))
        return frozenset({f"grid:{code}"})

    def _household(self, doc_id: str, doc: Mapping[str, Any] | None,
                   source: str) -> frozenset[str]:
        touched = frozenset({f"household:{doc_id}"})
        filed = (_grid_of(source), doc_id)
        if doc is None or doc.get("status") not in ACTIVE_HOUSEHOLD:
            household = self._households.get(filed)
            if household is not None:  # its members stay filed, to come back with it
                household.active = False
            return touched
        household = self._household_at(filed)
        address = doc.get("address")
        if isinstance(address, Mapping):
            household.building = _i(f"{address.get('compound')}-{address.get('building')}")
        tags = household_tags(doc)
        household.tags = self._tagsets.setdefault(tags, tags)
        household.active = True
        household.add(doc_id)
        return touched

    def _person(self, doc_id: str, doc: Mapping[str, Any] | None,
                source: str) -> frozenset[str]:
        touched: set[str] = set()
        grid = _grid_of(source)
        members = self._member_of.setdefault(grid, {})
        before = members.pop(doc_id, None)
        if before is not None and (grid, before) in self._households:
            self._households[(grid, before)].discard(doc_id)
            touched.add(f"household:{before}")
        after = doc.get("household") if doc is not None else None
        if isinstance(after, str) and doc is not None and doc.get("status") in PRESENT_PERSON:
            home = _i(after)
            members[doc_id] = home
            self._household_at((grid, home)).add(doc_id)
            touched.add(f"household:{home}")
        return frozenset(touched)

    def _household_at(self, filed: Filed) -> _Household:
        household = self._households.get(filed)
        if household is None:
            household = self._households[filed] = _Household(filed[0])
        return household

    def _link(self, doc_id: str, doc: Mapping[str, Any] | None, source: str) -> frozenset[str]:
        touched: set[str] = set()
        grid = _grid_of(source)
        filed = (grid, doc_id)
        before = self._links.pop(filed, None)
        if before is not None:
            account = before[0]
            kept = tuple(link for link in self._accounts.get(account, ()) if link != filed)
            self._set_links(account, kept)
            touched.add(f"account:{account}")
        if doc is not None and doc.get("status") == "active" and isinstance(
                doc.get("account"), str) and isinstance(doc.get("household"), str):
            account, home = _i(doc["account"]), (grid, _i(doc["household"]))
            self._links[filed] = (account, home)
            self._set_links(account, (*self._accounts.get(account, ()), filed))
            self._household_at(home)
            touched.add(f"account:{account}")
        return frozenset(touched)

    def _set_links(self, account: str, links: tuple[Filed, ...]) -> None:
        if links:
            self._accounts[account] = links
        else:
            self._accounts.pop(account, None)

    def _notice(self, doc_id: str, doc: Mapping[str, Any] | None,
                source: str) -> frozenset[str]:
        del source
        touched: set[str] = set()
        before = self._notices.pop(doc_id, None)
        if before is not None:
            for key in before.keys:
                self._by_key[key].discard(doc_id)
                if not self._by_key[key]:
                    del self._by_key[key]
            touched.update(before.keys)
        audience = doc.get("audience") if doc is not None else None
        if doc is not None and doc.get("status") == "published" and isinstance(audience, Mapping):
            keys = tuple(_i(k) for k in audience_keys(audience))
            self._notices[doc_id] = _Notice(audience, keys)
            for key in keys:
                self._by_key.setdefault(key, set()).add(doc_id)
            touched.update(keys)
        return frozenset(touched)

    def _submission(self, doc_id: str, doc: Mapping[str, Any] | None,
                    source: str) -> frozenset[str]:
        touched: set[str] = set()
        before = self._author.pop(doc_id, None)
        if before is not None:
            own = self._own.get(before, {})
            own.pop(doc_id, None)
            if not own:
                self._own.pop(before, None)
            touched.add(f"account:{before}")
        kind = doc_id.split(":", 1)[0]
        author = doc.get(OWNED_BY.get(kind, "created_by")) if doc is not None else None
        if doc is not None and isinstance(author, str):
            author = _i(author)
            # A data request is the person's own (PIPL arts. 45-47): it stays with the account.
            household = None if kind == "data_request" or kind in OWNED_BY else doc.get(
                "household")
            self._author[doc_id] = author
            self._own.setdefault(author, {})[doc_id] = (
                _i(source), _i(household) if isinstance(household, str) else "")
            touched.add(f"account:{author}")
        return frozenset(touched)

    # -- asking ----------------------------------------------------------------------------

    def _homes(self, account: str) -> tuple[Filed, ...]:
        return tuple(home for home in (self._links[link][1] for link in self._accounts.get(
            account, ())) if self._households[home].active)

    def households(self, account: str) -> tuple[str, ...]:
        """The active households an account is an active resident of (usually one)."""
        return tuple(home for _, home in self._homes(account))

    def homes(self, account: str) -> dict[str, str]:
        """The account's active households and their grids: what its writes may name
        (server/domain/resident_writes.py)."""
        return {home: grid for grid, home in self._homes(account)}

    def places_of(self, account: str) -> dict[str, Place]:
        """The places of the account's active households that name a building."""
        return {home[1]: place for home in self._homes(account)
                if (place := self._place(home)) is not None}

    def _place(self, filed: Filed) -> Place | None:
        household = self._households.get(filed)
        if household is None or not household.active or not household.building:
            return None
        community, street = self._areas.get(household.grid, ("", ""))
        return Place(street, community, household.grid, household.building, household.tags)

    def places(self) -> dict[str, Place]:
        """Every active household's place, for a notice's follow-up (audience.follow_up)."""
        found = ((home, self._place(home)) for home in self._households)
        return {home[1]: place for home, place in found if place is not None}

    def with_residents(self) -> frozenset[str]:
        """The households with at least one active resident."""
        return frozenset(household for _, (_, household) in self._links.values())

    def allowed(self, account: str) -> Allowed:
        """Every id the account's phone may hold, by database."""
        out: dict[str, set[str]] = {}
        filed_homes = self._homes(account)
        homes = {home for _, home in filed_homes}
        for link in self._accounts.get(account, ()):
            household = self._households[self._links[link][1]]
            if not household.active:
                continue
            out.setdefault(f"grid:{household.grid}", set()).update((link[1], *household.ids))
        notices = out.setdefault(RESIDENTS, set())
        for home in filed_homes:
            place = self._place(home)
            if place is None:
                continue
            for key in ("city:", *place_keys(place)):
                notices.update(n for n in self._by_key.get(key, ())
                               if includes(self._notices[n].audience, place))
        for doc_id, (database, household) in self._own.get(account, {}).items():
            if not household or household in homes:
                out.setdefault(database, set()).add(doc_id)
        return {database: frozenset(ids) for database, ids in out.items() if ids}

    def purge(self, account: str, held: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        """What a phone holds (ids by database) that it may no longer: sent with the next sync
        so the PWA removes them. Design documents and `_local` checkpoints are the phone's."""
        allowed = self.allowed(account)
        out = {}
        for database, ids in held.items():
            keep = allowed.get(database, frozenset())
            gone = sorted(i for i in ids if not i.startswith("_") and i not in keep)
            if gone:
                out[database] = gone
        return out

    def keys(self, account: str) -> frozenset[str]:
        """The feed keys whose changes concern the account (`apply`'s answer is matched
        against them), so a held connection wakes for its own changes only."""
        keys = {f"account:{account}", "city:"}
        for home in self._homes(account):
            keys.add(f"household:{home[1]}")
            place = self._place(home)
            if place is not None:
                keys.update(place_keys(place))
        return frozenset(keys)

    def sizes(self) -> dict[str, int]:
        """How much the index holds, for the health page and the benchmark."""
        return {"accounts": len(self._accounts), "households": len(self._households),
                "notices": len(self._notices), "submissions": len(self._author)}


def _grid_of(source: str) -> str:
    return _i(source.removeprefix("grid:")) if source.startswith("grid:") else ""
