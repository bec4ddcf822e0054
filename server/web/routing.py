"""Every endpoint of `/couch/`, the CouchDB-compatible API the phones replicate with, in two
tables read top to bottom: the server's own endpoints, then a database's. Each route is named as
CouchDB's API reference names it, with the methods it answers; a method not listed is a 405 in
CouchDB's shape naming those that are, unless the route says what else answers it.

Before any route runs, guard.py has said who is asking and refused cross-site requests (one
middleware for every route); a database is then resolved to what the user may do there (one
outside their scope answers exactly like a missing one; one outside Linli's naming scheme is
relayed as it came, to admins only), and personal.py refuses or audits reads of records
unmasked. A grid database's endpoints not in the table are refused (403), except to admins,
whose maintenance calls (`_security`, `_compact`, `_find`...) are relayed as they came."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar
from urllib.parse import unquote

from aiohttp import web

from server import errors
from server.sync import personal
from server.web import couch_server as server
from server.web import gateway as db
from server.web import resident_sync as phone
from server.web.gateway import Target
from server.web.guard import require_user
from server.web.keys import DIRECTORY
from server.web.parsing import PREFIX, path_segments
from server.web.resident_sync import RESIDENT_DB, Phone

ServerHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DatabaseHandler = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]
ResidentHandler = Callable[[web.Request, Phone], Awaitable[web.StreamResponse]]
H = TypeVar("H", ServerHandler, DatabaseHandler, ResidentHandler)

# What a placeholder in a route's name matches: one segment of the path, decoded. A database's
# or a document's name never starts with "_" (such names are CouchDB's own endpoints). An
# attachment's name is the rest of the path, slashes and all, as CouchDB reads it.
PLACEHOLDERS = {"db": "[^_].*", "doc": "[^_].*", "id": ".+", "ddoc": ".+", "view": ".+"}
REST = "attachment"


def segment_pattern(part: str) -> re.Pattern[str]:
    """`_design%2F{ddoc}` → the segment `_design/` (decoded) followed by the `ddoc` part."""
    pieces = re.split(r"\{(\w+)\}", part)  # literal, name, literal, name, ..., literal
    return re.compile("".join(
        re.escape(unquote(piece)) if i % 2 == 0 else f"(?P<{piece}>{PLACEHOLDERS[piece]})"
        for i, piece in enumerate(pieces)), re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Route(Generic[H]):
    """One endpoint: its name (the path after /couch/, `{...}` for its parts), the handler of
    each method it answers, and what answers any other method (None: a 405)."""

    name: str
    methods: Mapping[str, H]
    otherwise: H | None = None
    allow: str = ""  # the methods a 405 names, when not those listed (CouchDB's, for _changes)
    # The query parameters checked before the method, so a bad one is a 400 whatever the
    # method; the handler finds them in `Target.query`.
    query: Callable[[web.Request], Mapping[str, str]] | None = None
    patterns: tuple[re.Pattern[str] | None, ...] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        parts = [part for part in self.name.split("/") if part]
        patterns = [None if part == "{" + REST + "}" else segment_pattern(part) for part in parts]
        object.__setattr__(self, "patterns", tuple(patterns))

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The parts of the path this route names, or None when the path is not this route."""
        found: dict[str, str] = {}
        for i, pattern in enumerate(self.patterns):
            if pattern is None:  # the rest of the path, at least one segment
                if i >= len(segments):
                    return None
                found[REST] = "/".join(segments[i:])
                return found
            matched = pattern.fullmatch(segments[i]) if i < len(segments) else None
            if matched is None:
                return None
            found.update(matched.groupdict())
        return found if len(segments) == len(self.patterns) else None

    def handler(self, method: str) -> H:
        handler = self.methods.get(method, self.otherwise)
        if handler is None:
            raise db.method_not_allowed(self.allow or ",".join(self.methods))
        return handler


def either(*methods: str, to: H) -> dict[str, H]:
    return dict.fromkeys(methods, to)


READ = ("GET", "HEAD")
DOCUMENT: dict[str, DatabaseHandler] = {**either(*READ, to=db.read_document),
                                        "PUT": db.put_document, "DELETE": db.delete_document}

SERVER_ROUTES: tuple[Route[ServerHandler], ...] = (
    # CouchDB's welcome; answered to any method, as it always was here (CouchDB says 405).
    Route("/", either(*READ, to=server.welcome), otherwise=server.welcome),
    # Login (a cookie), who is logged in, logout (for every server process).
    Route("_session", {"GET": server.session_info, "POST": server.login,
                       "DELETE": server.logout}),
    # The databases the user may see (their grids), never the others' names.
    Route("_all_dbs", either(*READ, to=server.all_dbs), otherwise=server.unknown_endpoint),
    Route("_uuids", either(*READ, to=server.uuids), otherwise=server.unknown_endpoint),
    # For load balancers: the store answers. No login needed.
    Route("_up", either(*READ, to=server.up), otherwise=server.unknown_endpoint),
)

DATABASE_ROUTES: tuple[Route[DatabaseHandler], ...] = (
    # The database's info; POST writes a document with a new id; PUT: it exists already.
    Route("{db}", {**either(*READ, to=db.database_info), "POST": db.post_document,
                   "PUT": db.database_exists}),
    # Replication reads: the changes feed (normal or longpoll, waited in the server) ...
    Route("{db}/_changes", either(*READ, "POST", to=db.changes), allow="GET,POST"),
    # ... which revisions the server lacks, and the missing revisions fetched.
    Route("{db}/_revs_diff", {"POST": db.revs_diff}),
    Route("{db}/_bulk_get", {"POST": db.bulk_get}),
    Route("{db}/_all_docs", {**either(*READ, to=db.all_docs), "POST": db.all_docs_by_keys},
          query=db.all_docs_query),
    # Replication writes: validated per document, each acknowledged with a receipt.
    Route("{db}/_bulk_docs", {"POST": db.bulk_docs}),
    # A client's checkpoint, kept apart per user.
    Route("{db}/_local/{id}", {**either(*READ, to=db.read_local), "PUT": db.put_local,
                               "DELETE": db.delete_local}),
    # Design documents (written by admins only: validation.py) and their views.
    Route("{db}/_design/{ddoc}", DOCUMENT),
    Route("{db}/_design%2F{ddoc}", DOCUMENT),  # the client encoded the slash
    Route("{db}/_design/{ddoc}/_view/{view}", either(*READ, to=db.view),
          otherwise=db.beyond_gateway),
    # A record: read, written or deleted alone, checked as in a batch.
    Route("{db}/{doc}", DOCUMENT),
    # An attachment: read alone; written inside its record (alone by admins only).
    Route("{db}/{doc}/{attachment}", {**either(*READ, to=db.read_attachment),
                                      "PUT": db.put_attachment,
                                      "DELETE": db.delete_attachment},
          query=db.attachment_query),
)


# The resident's one database (居民同步, resident_sync.py): the ids their account may hold, from
# whichever grid or residents database, households and persons as the resident view. Read-only
# (a push is denied document by document); any other endpoint is refused alike.
RESIDENT_ROUTES: tuple[Route[ResidentHandler], ...] = (
    Route("{db}", {**either(*READ, to=phone.info), "PUT": phone.database_exists},
          otherwise=phone.refused),
    Route("{db}/_changes", either(*READ, "POST", to=phone.changes), allow="GET,POST"),
    Route("{db}/_revs_diff", {"POST": phone.revs_diff}),
    Route("{db}/_bulk_get", {"POST": phone.bulk_get}),
    Route("{db}/_all_docs", {**either(*READ, "POST", to=phone.all_docs)},
          query=phone.all_docs_query),
    Route("{db}/_bulk_docs", {"POST": phone.bulk_docs}),
    Route("{db}/_local/{id}", {**either(*READ, to=phone.read_local), "PUT": phone.put_local,
                               "DELETE": phone.delete_local}),
    Route("{db}/{doc}", either(*READ, to=phone.read_document), otherwise=phone.refused),
    Route("{db}/{doc}/{attachment}", either(*READ, to=phone.read_attachment),
          otherwise=phone.refused),
)


def find(routes: tuple[Route[H], ...],
         segments: list[str]) -> tuple[Route[H], dict[str, str]] | None:
    """The first route of `routes` the path is, and the parts it names."""
    for route in routes:
        parts = route.match(segments)
        if parts is not None:
            return route, parts
    return None


async def couch_endpoint(request: web.Request) -> web.StreamResponse:
    segments = path_segments(request)
    if not segments or segments[0].startswith("_"):
        return await server_endpoint(request, segments)
    return await database_endpoint(request, segments)


async def server_endpoint(request: web.Request, segments: list[str]) -> web.StreamResponse:
    if len(segments) > 1:  # the server's endpoints have no sub-paths
        raise errors.doc_not_found()
    found = find(SERVER_ROUTES, segments)
    if found is None:
        return await server.unknown_endpoint(request)
    return await found[0].handler(request.method)(request)


async def database_endpoint(request: web.Request, segments: list[str]) -> web.StreamResponse:
    user = require_user(request)
    if segments[0] == RESIDENT_DB and user.role == "resident":
        return await resident_endpoint(request, segments)
    access = request.app[DIRECTORY].access(user, segments[0])
    if access is None:
        return db.database_out_of_scope(request, user, segments[0], segments[1:])
    if access.raw:
        return await db.raw_proxy(request, segments)
    rest = segments[1:]
    personal.refuse_masked_reader(request, user, access, rest)
    personal.audit_grid_read(request, user, access, rest)
    found = find(DATABASE_ROUTES, segments)
    if found is None:
        target = Target(user, access, tuple(segments), {}, {})
        return await db.beyond_gateway(request, target)
    route, parts = found
    query = route.query(request) if route.query is not None else {}
    return await route.handler(request.method)(request, Target(user, access, tuple(segments),
                                                                parts, query))


async def resident_endpoint(request: web.Request, segments: list[str]) -> web.StreamResponse:
    """A resident's only database; to anyone else it is one of Linli's reserved names."""
    user = phone.require_resident(request)
    found = find(RESIDENT_ROUTES, segments)
    if found is None:
        return await phone.refused(request, Phone(user, tuple(segments), {}, {}))
    route, parts = found
    query = route.query(request) if route.query is not None else {}
    return await route.handler(request.method)(request, Phone(user, tuple(segments), parts,
                                                               query))


def setup_routes(app: web.Application) -> None:
    phone.setup(app)  # the resident endpoint's index, opened after the store and directory
    app.router.add_route("*", PREFIX, couch_endpoint)
    app.router.add_route("*", PREFIX + "/{tail:.*}", couch_endpoint)
