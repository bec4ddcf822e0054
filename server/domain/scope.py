"""Who may reach which database. A grid (网格) is the unit of work and of access: one database per
grid, so a worker's replication is a plain, unfiltered replication and isolation is a matter of
which database a user may reach. The directory (hierarchy and users) is server-only.

Roles:
- admin (管理员): every grid, plus databases created outside Linli's naming scheme (raw CouchDB);
- supervisor (社区/街道工作人员): the grids of their communities or streets;
- worker (网格员): the grids they are assigned;
- secretary (支部书记): no database; the party branches they are given (`branches`), through
  the party routes (server/web/party.py);
- assessor (第三方评估): no database; the star-rating sheets (三类五星) of the compounds of the
  streets they are commissioned for (`streets`), through the star routes (server/web/stars.py);
- resident (居民): no database; the ids their phone may hold, through one resident endpoint
  (server/sync/allowed.py, server/web/resident_sync.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

GRID_DB_PREFIX = "grid-"
DIRECTORY_DB = "linli-directory"
RECEIPTS_DB = "linli-receipts"
# The residents database (居民库): what crosses grids or is a resident's own (notices, receipts,
# data requests). Internal like the directory: residents reach it only through their routes.
RESIDENTS_DB = "linli-residents"
# Owners' votes (业主表决): the property register's units and the motions; each motion's ballots
# are in a database of their own (`linli-vote-<key>`), whose order of receipt is the count's.
VOTES_DB = "linli-votes"
# The claims database (名额申请库): every claim on something limited, written once, in the order
# received (server/domain/allocation.py). Internal: written by the server's routes only.
CLAIMS_DB = "linli-claims"
# Deliberation (议事协商): topics, comments, support. Internal: reached through its routes only.
DELIBERATION_DB = "linli-deliberation"
# Party members (党员双报到): the letters about a member's conduct (函告抄告). Internal: reached
# through the party routes only, by supervisors and the member's branch secretary.
PARTY_DB = "linli-party"
# Property fees (智缴): bill rolls, payment orders, the ledger. Internal: its routes only.
FEES_DB = "linli-fees"
# Community star rating (三类五星): each compound's sheet per round, its evidence and scores.
# Internal: reached through the star routes only (server/web/stars.py).
STARS_DB = "linli-stars"
# The audit of reveals (审计库): append-only, written by the server's routes only, reached by
# no `/couch/` route (server/domain/reveals.py).
AUDIT_DB = "linli-audit"
# Mediation (老娘舅调解): cases, strictly confidential. Internal: reached through its routes only,
# by the case's circle (server/domain/mediation.py); never on a phone.
MEDIATION_DB = "linli-mediation"
# Enforcement liaison (执法进小区): compounds' officers, their messages with residents, patrol
# routes and checks. Internal: reached through its routes only (server/domain/liaison.py).
LIAISON_DB = "linli-liaison"
# Leases (租约): which server process runs each background job that must run once, when several
# serve one store (server/domain/lease.py). Internal: the server's own, never on a phone.
LEASES_DB = "linli-leases"
# made at start when missing
INTERNAL_DBS = (DIRECTORY_DB, RECEIPTS_DB, RESIDENTS_DB, VOTES_DB, FEES_DB, AUDIT_DB, STARS_DB)
INTERNAL_PREFIXES = ("linli-", "_")

# `property` (物业公司) and `department` (联络部门: 综合执法, 公安, 住建, 市场监管, 消防) handle
# problem reports routed to them (server/domain/reports.py), and reach no grid database.
# `provider` (邻里中心服务方): a neighbourhood centre provider's staff (server/domain/centre.py).
ROLES = ("admin", "supervisor", "worker", "resident", "secretary", "property", "department",
         "assessor", "provider")
Role = Literal["admin", "supervisor", "worker", "resident", "secretary", "property",
               "department", "assessor", "provider"]

GRID_CODE = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
# CouchDB's own rule for database names.
COUCH_DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")


AREA_LEVELS = ("district", "street", "community")  # directory ids `<level>:<code>`, with a name
# Per-user rights beyond the role: `unmask` reveals sensitive data with a reason; `purge` purges
# an ended campaign's personal records (server/domain/campaigns.py); `mediate` makes a worker or
# supervisor a mediator (调解员) of their communities, `mediation` lets a community's supervisor
# oversee its mediation cases (server/domain/mediation.py).
RIGHTS = ("unmask", "purge", "mediate", "mediation")

DEVICE = "device"  # directory ids `device:<user>:<device id>`: a login (domain/devices.py)
ENDED_SESSION = "ended_session"  # directory ids `ended_session:<session id>`: logged out
RETIRED_SCHEMA = "retired_schema"  # directory ids `retired_schema:<type>.v<version>`
# Directory ids `login:<phone>` -> {"account": <user name>}: the login a resident types (their
# phone), claimed once in the store, for an account whose name is not their phone: a user name
# is shown wherever a record says who wrote it, a phone number must not be.
LOGIN = "login"
# Directory ids `party_branch:<code>`: a workplace's party branch (机关支部 or other), as data.
PARTY_BRANCH = "party_branch"
RETIRED_KEY = re.compile(r"^(?P<type>[a-z][a-z_]*)\.v(?P<version>[1-9][0-9]*)$")
T = TypeVar("T")  # what a directory document is parsed into


def retired_key(key: str) -> tuple[str, int] | None:
    match = RETIRED_KEY.match(key)
    return (match["type"], int(match["version"])) if match else None


def grid_db(code: str) -> str:
    if not GRID_CODE.match(code):
        raise ValueError(f"grid code {code!r}: use 1–63 lowercase letters, digits or _")
    return GRID_DB_PREFIX + code


def grid_of_db(db: str) -> str | None:
    if db.startswith(GRID_DB_PREFIX):
        code = db[len(GRID_DB_PREFIX):]
        if GRID_CODE.match(code):
            return code
    return None


def is_internal(db: str) -> bool:
    return db.startswith(INTERNAL_PREFIXES)


def is_linli_name(db: str) -> bool:
    """Names Linli owns: grid databases (validated) and internal ones (never exposed)."""
    return db.startswith(GRID_DB_PREFIX) or is_internal(db)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A grid (网格) in the directory, with the community (社区) and street (街道) above it."""

    code: str
    name: str
    community: str = ""
    street: str = ""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Grid:
        return cls(code=str(doc["code"]), name=str(doc.get("name", "")),
                   community=str(doc.get("community") or ""), street=str(doc.get("street") or ""))


@dataclasses.dataclass(frozen=True)
class Branch:
    """A party branch (党支部) members declare: a department's (机关支部) or another; the grid
    branches (小区网格支部) are not listed, each grid has one (server/domain/party.py)."""

    code: str
    name: str
    kind: str = "organ"
    street: str = ""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Branch:
        return cls(code=str(doc["code"]), name=str(doc["name"]), kind=str(doc.get("kind") or
                   "organ"), street=str(doc.get("street") or ""))


def keep(table: dict[str, T], key: str, doc: Mapping[str, Any] | None,
         parse: Callable[[Mapping[str, Any]], T]) -> None:
    """A directory document's entry in `table`: parsed from `doc`, or gone when the document is
    deleted (None) or cannot be read (one bad record must not stop the directory)."""
    try:
        parsed = parse(doc) if doc is not None else None
    except (KeyError, ValueError):
        parsed = None
    if parsed is None:
        table.pop(key, None)
    else:
        table[key] = parsed


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    role: Role
    grids: frozenset[str] = frozenset()
    communities: frozenset[str] = frozenset()
    streets: frozenset[str] = frozenset()
    password: str = ""
    session_salt: str = ""
    disabled: bool = False
    rights: frozenset[str] = frozenset()
    """Rights given to this user beyond the role's (RIGHTS), e.g. `unmask`."""
    branches: frozenset[str] = frozenset()
    """A secretary's party branches (department codes, or `grid-<code>`)."""
    removed: bool = False
    """Removed for good (`linli user remove`): disabled, and the name kept for authorship."""
    department: str = ""
    """A liaison department's code (server/domain/reports.py DEPARTMENTS), role department."""
    companies: frozenset[str] = frozenset()
    """The property companies (`property_company:<code>`) a property user answers for."""
    full_name: str = ""
    """The person's name (姓名) as screens and sheets show them; the login name when not given."""
    provider: str = ""
    """A neighbourhood centre provider's code (server/domain/centre.py), role provider."""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> User:
        role = doc.get("role")
        if role not in ROLES:
            raise ValueError(f"user {doc.get('name')!r} has unknown role {role!r}")
        return cls(name=str(doc["name"]), role=role,
                   grids=frozenset(doc.get("grids") or ()),
                   communities=frozenset(doc.get("communities") or ()),
                   streets=frozenset(doc.get("streets") or ()),
                   password=str(doc.get("password", "")),
                   session_salt=str(doc.get("session_salt", "")),
                   disabled=bool(doc.get("disabled", False)),
                   rights=frozenset(r for r in doc.get("rights") or () if r in RIGHTS),
                   branches=frozenset(doc.get("branches") or ()),
                   removed=bool(doc.get("removed_at")),
                   department=str(doc.get("department") or ""),
                   companies=frozenset(doc.get("companies") or ()),
                   full_name=str(doc.get("full_name") or ""),
                   provider=str(doc.get("provider") or ""))

    @property
    def shown_name(self) -> str:
        """How people read who this is: the full name (姓名), else the login."""
        return self.full_name or self.name

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may(self, right: str) -> bool:
        """Whether the user was given `right`: a right is per person, never implied by a role,
        so an admin too is given `unmask` explicitly (and the audit log shows who has it)."""
        return right in self.rights and not self.disabled


def home_area(user: User, grids: Iterable[Grid] = ()) -> tuple[str, str]:
    """The area a user's figures open on (首页层级), (level, code): the smallest area that holds
    their whole scope, so a community's supervisor lands on the community and not on the city
    (全市), a street's on the street, a worker of one grid on the grid; admins on the city.
    `grids` are the grids the user reaches (for a worker's communities)."""
    if user.is_admin:
        return ("city", "")
    if user.role == "worker" and len(user.grids) == 1:
        return ("grid", next(iter(user.grids)))
    communities = set(user.communities) | {g.community for g in grids
                                           if user.role == "worker" and g.community}
    if not user.streets and len(communities) == 1:
        return ("community", next(iter(communities)))
    # GB/T 2260 and the ministry's codes: a community's street is its first 9 digits, a
    # street's district its first 6.
    streets = set(user.streets) | {c[:9] for c in communities}
    if len(streets) == 1:
        return ("street", next(iter(streets)))
    districts = {s[:6] for s in streets}
    if len(districts) == 1:
        return ("district", next(iter(districts)))
    return ("city", "")


@dataclasses.dataclass(frozen=True)
class DbAccess:
    """A database a user may reach (reading and writing, each write validated)."""

    db: str
    grid: str | None  # None for a raw (non-Linli) database, reached by admins only

    @property
    def raw(self) -> bool:
        return self.grid is None


class Directory:
    """The in-memory index of users and grids, kept current from the directory database's
    changes feed, so a scope check costs no database round trip."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.grids: dict[str, Grid] = {}
        self.retired_schemas: frozenset[tuple[str, int]] = frozenset()
        """(type, version) of the record forms an admin has retired (`linli schema retire`)."""
        self.area_names: dict[tuple[str, str], str] = {}
        """(level, code) -> name of the districts, streets and communities above the grids."""
        self.ended_sessions: dict[str, float] = {}
        """Session id -> until when (epoch seconds) its cookies must be refused: logged out."""
        self.logins: dict[str, str] = {}
        """A login other than a user name (a resident's phone) -> the user name."""
        self.logins_changed = 0
        """Counts the login documents taken: an index of `logins` is stale when it moved."""
        self.branches: dict[str, Branch] = {}
        """The party branches members may declare, by code."""
        self.campaigns: dict[str, Mapping[str, Any]] = {}
        """Campaigns (工作批次) by key: their end, retention and the grids purged of them."""
        self.revoked_sessions: set[str] = set()
        """The sessions of devices an admin revoked (server/domain/devices.py): for ever."""

    def apply(self, doc: Mapping[str, Any]) -> None:
        """Take one directory document (or its deletion) into account."""
        doc_id = str(doc.get("_id", ""))
        kind, _, key = doc_id.partition(":")
        deleted = bool(doc.get("_deleted"))
        if kind == "user":
            keep(self.users, key, None if deleted else doc, User.from_doc)
        elif kind == ENDED_SESSION:
            if deleted:
                self.ended_sessions.pop(key, None)
            else:
                expires = doc.get("expires")
                self.ended_sessions[key] = float(expires) if isinstance(
                    expires, int | float) else float("inf")
        elif kind == LOGIN:
            self.logins_changed += 1
            account = doc.get("account")
            if deleted or not isinstance(account, str):
                self.logins.pop(key, None)
            else:
                self.logins[key] = account
        elif kind == RETIRED_SCHEMA:
            retired = retired_key(key)
            if retired is not None:
                self.retired_schemas = (self.retired_schemas - {retired}) if deleted else (
                    self.retired_schemas | {retired})
        elif kind in AREA_LEVELS:
            name = doc.get("name")
            if deleted or not isinstance(name, str) or not name:
                self.area_names.pop((kind, key), None)
            else:
                self.area_names[(kind, key)] = name
        elif kind == "grid":
            keep(self.grids, key, None if deleted else doc, Grid.from_doc)
        elif kind == PARTY_BRANCH:
            keep(self.branches, key, None if deleted else doc, Branch.from_doc)
        elif kind == "campaign":
            keep(self.campaigns, key, None if deleted else doc, dict)
        elif kind == DEVICE and doc.get("revoked_at") and isinstance(doc.get("session"), str):
            self.revoked_sessions.add(str(doc["session"]))

    def purged_campaigns(self, grid: str) -> frozenset[str]:
        """The campaigns whose records were purged from `grid`."""
        return frozenset(key for key, doc in self.campaigns.items()
                         if grid in (doc.get("purged") or {}))

    def user(self, login: str) -> User | None:
        """Who logs in as `login`: a user name, else a login given to a user (a phone)."""
        found = self.users.get(login)
        if found is None and login in self.logins:
            found = self.users.get(self.logins[login])
        return found

    def person_name(self, login: str) -> str:
        """The full name (姓名) of the user `login`, else the login itself (a user removed
        from the directory still signs what they wrote)."""
        found = self.users.get(login)
        return found.shown_name if found else login

    def area_name(self, level: str, code: str) -> str:
        """The name of an area, or "" when the directory does not know it."""
        if level == "grid":
            grid = self.grids.get(code)
            return grid.name if grid else ""
        return self.area_names.get((level, code), "")

    def reaches(self, user: User, code: str) -> bool:
        """Whether `user` may reach grid `code`: one lookup, whatever the size of the city."""
        grid = self.grids.get(code)
        if grid is None or user.disabled:
            return False
        if user.role == "admin":
            return True
        if user.role == "supervisor":
            return grid.community in user.communities or grid.street in user.streets
        if user.role == "worker":
            return code in user.grids
        return False

    def access(self, user: User | None, db: str) -> DbAccess | None:
        """None means: answer exactly as for a database that does not exist."""
        if user is None or user.disabled:
            return None
        grid = grid_of_db(db)
        if grid is not None:
            return DbAccess(db=db, grid=grid) if self.reaches(user, grid) else None
        if user.is_admin and not is_linli_name(db) and COUCH_DB_NAME.match(db):
            return DbAccess(db=db, grid=None)
        return None

    def visible_dbs(self, user: User | None, all_dbs: Iterable[str]) -> list[str]:
        return [db for db in all_dbs if self.access(user, db) is not None]
