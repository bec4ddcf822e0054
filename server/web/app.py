"""The application factory: wires routes, middlewares and the resources opened at start and
closed at shutdown, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from server import errors
from server.config import Config, shipped
from server.domain.scope import DIRECTORY_DB, ENDED_SESSION, Directory, grid_db
from server.domain.validation import SchemaRegistry, shared_registry
from server.store import designs
from server.store.couch import CouchClient, CouchFailure, StoreUnavailable, db_path
from server.store.embedded import EmbeddedStore
from server.sync.aggregates import FILE as FIGURES_FILE
from server.sync.aggregates import Aggregates
from server.sync.conflicts import Resolver
from server.sync.feeds import MAX_WATCHED_DATABASES, LiveFeeds
from server.sync.installation import load_installation
from server.sync.lease import Leases
from server.sync.ordering import ReceiptCache, seq_number
from server.sync.receipts import Rebuilder, ReceiptLog, utc_now
from server.sync.replication import FeedLimiter
from server.sync.retention import NightlyList
from server.sync.supervisor import Lag, Supervisor
from server.web import (
    api,
    centre,
    deliberation,
    devices,
    fees,
    guard,
    health,
    liaison,
    mediation,
    mutual_aid,
    notices,
    open311,
    party,
    questionnaires,
    ratings,
    reports,
    residents,
    routing,
    shell,
    stars,
    users,
    volunteering,
    votes,
)
from server.web.auth import Authenticator
from server.web.keys import (
    AGGREGATES,
    AUTH,
    CONFIG,
    COUCH,
    DEMO_LOADER,
    DIRECTORY,
    FEEDS_HELD,
    INSTALLATION,
    LEASES,
    LIVE_FEEDS,
    POUCHDB_BACKEND,
    RECEIPT_TIMES,
    RECEIPTS,
    RESOLVER,
    SCHEMAS,
    STORE,
    SUPERVISOR,
    DemoLoader,
)

log = logging.getLogger(__name__)

PWA_DIR = shipped("pwa")
OTHER_CONNECTIONS = 100  # for writes and reads (the phones' reads of their changes included)
# PouchDB Server (node) closes a keep-alive connection idle for 5 s. A pooled connection reused
# just as it closes fails the request ("Server disconnected", a 503 to the phone), and under load
# whole bursts did (bench-load): reuse only connections idle for less than this.
STORE_KEEPALIVE_SECONDS = 2.0
STARTUP_RETRY_SECONDS = 30.0
STORE_PROBE_SECONDS = 2.0  # a health check waits no longer for the store's welcome
# The directory's feed, read again at most this often while accounts are being written (50
# sign-ups a second were 85 reads a second, each a few ms of the store's one core); a change
# after a quiet spell is read at once, so a logout or a disabled account is still seen within
# this much of the previous change at worst.
DIRECTORY_SETTLE_SECONDS = 0.1

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'")
COUCH_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, streamed ones included. What comes from /couch/ is data, never a page:
    an attachment that claims to be HTML still cannot run in this origin."""
    policy = COUCH_POLICY if request.path.startswith(routing.PREFIX) else CONTENT_SECURITY_POLICY
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The HTTP client to CouchDB and, without COUCHDB_URL, the embedded store it talks to."""
    config, supervisor = app[CONFIG], app[SUPERVISOR]
    url = config.couchdb_url
    store: EmbeddedStore | None = None
    if config.embedded:
        store = EmbeddedStore(config.data, config.store_port, config.pouchdb_server_bin)
        await store.start()
        app[STORE] = store
        url = store.url
    # A live feed holds no store connection while it waits: the server holds one longpoll per
    # database waited on (server/sync/feeds.py), so a connection per watched database, and the rest
    # for short requests. (It was one per phone: 1,000 phones, 1,100 connections.)
    watched = min(config.max_live_feeds, MAX_WATCHED_DATABASES)
    connections = watched + OTHER_CONNECTIONS
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections,
                                     keepalive_timeout=STORE_KEEPALIVE_SECONDS)
    async with aiohttp.ClientSession(connector=connector) as http:
        app[COUCH] = couch = CouchClient(
            url, http, on_io_error=store.note_io_error if store is not None else None,
            writes_held=store.writes_held if store is not None else None)
        app[LIVE_FEEDS] = LiveFeeds(couch, max_watched=watched)
        app[LEASES] = Leases(couch, config.lease_seconds, shared=config.leases)
        probe = functools.partial(store_lag, couch, store)
        tasks = [supervisor.start("store", store.supervise, probe=probe) if store is not None
                 else supervisor.watch("store", probe)]
        tasks.append(supervisor.start("feeds", app[LIVE_FEEDS].sweep, probe=app[LIVE_FEEDS].lag))
        tasks.append(supervisor.start("presence", app[LEASES].present))
        try:
            yield
        finally:
            await app[LIVE_FEEDS].close()
            await supervisor.stop(tasks)
            if store is not None:
                await store.stop()


async def store_lag(couch: CouchClient, store: EmbeddedStore | None) -> Lag:
    """Failing while the store does not answer its welcome (or the embedded one's process is
    not running: its supervisor is restarting it)."""
    if store is not None and (store.process is None or store.process.poll() is not None):
        return Lag(failing=True)
    try:
        async with asyncio.timeout(STORE_PROBE_SECONDS):
            await couch.request("GET", "/", read_timeout=STORE_PROBE_SECONDS)
    except (StoreUnavailable, CouchFailure, TimeoutError):
        return Lag(failing=True)
    return Lag()


async def directory_ctx(app: web.Application) -> AsyncIterator[None]:
    """The installation record, the demo city if asked for, and the in-memory directory, kept
    current by following the directory database's changes feed."""
    config, couch = app[CONFIG], app[COUCH]
    started = utc_now()  # before this server acknowledged anything: what rebuilt receipts say
    welcome = await retry_while_starting(lambda: couch.get("/"))
    app[POUCHDB_BACKEND] = "express-pouchdb" in welcome
    installation = await retry_while_starting(lambda: load_installation(couch))
    app[INSTALLATION] = installation
    if config.demo:
        if DEMO_LOADER not in app:
            raise RuntimeError("the demo city was asked for, but create_app had no load_demo")
        # python-couchdb, so in a thread
        await asyncio.to_thread(app[DEMO_LOADER], config, config.couchdb_url or app[STORE].url)
    directory = Directory()
    since = await load_directory(couch, directory)
    app[DIRECTORY] = directory
    app[AUTH] = Authenticator(
        secret=installation.secret, session_seconds=config.session_hours * 3600,
        failures_per_account=config.login_failures_per_account,
        failures_per_address=config.login_failures_per_address,
        window_seconds=config.login_window_seconds,
        hash_concurrency=config.password_hash_concurrency,
        lookup=directory.user, ended=directory.ended_sessions,
        revoked=directory.revoked_sessions)
    receipts = ReceiptLog(couch)
    app[RECEIPTS] = receipts
    rebuilder = Rebuilder(couch, receipts)
    # Receipts a kill of the last server lost (written in batches after the acknowledgement)
    passes = config.grid_passes_at_start
    grids = sorted(directory.grids) if passes else []
    await retry_while_starting(lambda: rebuilder.starting(
        [grid_db(code) for code in grids], started))
    resolver = Resolver(couch, app[SCHEMAS], directory, receipts,
                        sweep_seconds=config.conflict_sweep_seconds, sweep_at_start=passes)
    app[RESOLVER] = resolver
    figures = Aggregates(couch, directory, config.census_campaign,
                         refresh_seconds=config.aggregates_refresh_seconds,
                         path=config.data / FIGURES_FILE)
    app[AGGREGATES] = figures
    # with other processes on the store, a grid's figures are checked against the store at a
    # query: this process is not told of what the others wrote
    figures.shared = lambda: app[LEASES].others > 0
    resolver.on_written = figures.notice
    app[RECEIPT_TIMES] = ReceiptCache(resolver.receipts_for)
    figures.flush_receipts = receipts.flush
    supervisor = app[SUPERVISOR]
    follower = DirectoryFollower(couch, directory, since)
    warm = figures if config.aggregates_warm_up else None
    # Per process: the directory it follows, the receipts of what it acknowledged (and their
    # rebuild). Under a lease, so one process of several at a time: the conflict resolver,
    # the figures' refresh and the retention list (docs/deployment.md).
    leases = app[LEASES]
    tasks = [supervisor.start("directory", follower.run, probe=follower.lag),
             supervisor.start("receipts", receipts.run, probe=receipts.lag),
             supervisor.start("rebuilds", rebuilder.run, probe=rebuilder.lag),
             supervisor.start("conflicts", resolver.run, probe=resolver.lag, lease=leases),
             supervisor.start("aggregates", figures.run, probe=figures.lag, lease=leases),
             supervisor.start("sessions", functools.partial(prune_ended_sessions, couch),
                              forever=False),
             supervisor.start("designs", functools.partial(
                 install_then_warm, couch, grids, warm), forever=False),
             supervisor.start("retention", NightlyList(
                 couch, directory, config.retention_list_hours).run, lease=leases)]
    yield
    await figures.stop_rebuild()  # an admin's rebuild not finished: the last figures stay
    await supervisor.stop(tasks)
    # Every receipt written (the writer flushes as it stops), none left to rebuild: clean,
    # unless other processes still serve the store (the last to stop says so).
    if not receipts.pending() and not rebuilder.wanted and rebuilder.idle.is_set():
        with contextlib.suppress(CouchFailure, StoreUnavailable):
            if not await leases.count_others():
                await rebuilder.stopped()


async def prune_ended_sessions(couch: CouchClient) -> None:
    """Forget logouts whose every cookie has lapsed by itself, once at start, so the directory
    does not grow by one record per logout for ever. Several processes may prune at once: a
    409 only means another one did it."""
    try:
        page = await couch.get(db_path(DIRECTORY_DB, "_all_docs"), include_docs="true",
                               startkey=json.dumps(f"{ENDED_SESSION}:"),
                               endkey=json.dumps(f"{ENDED_SESSION}:\ufff0"))
        now = time.time()
        lapsed = [{"_id": row["id"], "_rev": row["value"]["rev"], "_deleted": True}
                  for row in page.get("rows", [])
                  if isinstance((row.get("doc") or {}).get("expires"), int | float)
                  and row["doc"]["expires"] < now]
        if lapsed:
            await couch.post(db_path(DIRECTORY_DB, "_bulk_docs"), {"docs": lapsed})
            log.info("forgot %d lapsed logouts", len(lapsed))
    except (CouchFailure, StoreUnavailable) as exc:
        log.warning("lapsed logouts not pruned (%s); next start will", exc)


async def retry_while_starting(make: Any) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_RETRY_SECONDS
    while True:
        try:
            return await make()
        except StoreUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def load_directory(couch: CouchClient, directory: Directory) -> str:
    since = "0"
    while True:
        page = await couch.get(db_path(DIRECTORY_DB, "_changes"), since=since, limit="1000",
                               include_docs="true")
        for change in page["results"]:
            if "doc" in change:
                directory.apply(change["doc"])
        since = str(page["last_seq"])
        if not page["results"]:
            return since


@dataclasses.dataclass
class DirectoryFollower:
    """Applies the directory database's changes to the in-memory directory. Restarted after a
    failure, it reads again from the last change it applied."""

    couch: CouchClient
    directory: Directory
    since: str

    async def run(self) -> None:
        async for change, seq in self.couch.follow(DIRECTORY_DB, self.since,
                                                   settle=DIRECTORY_SETTLE_SECONDS):
            doc = change.get("doc")
            if doc is not None:
                self.directory.apply(doc)
            elif change.get("deleted"):
                self.directory.apply({"_id": change["id"], "_deleted": True})
            self.since = seq

    async def lag(self) -> Lag:
        """How many changes of the directory are not applied yet: the store's update sequence
        against the last change applied (unknown while the store does not answer)."""
        try:
            info = await self.couch.get(db_path(DIRECTORY_DB))
        except (CouchFailure, StoreUnavailable):
            return Lag()
        now, done = seq_number(info.get("update_seq")), seq_number(self.since)
        return Lag(items=max(0, now - done) if now is not None and done is not None else None)


async def install_then_warm(couch: CouchClient, grids: list[str],
                            figures: Aggregates | None) -> None:
    await install_designs(couch, grids)
    if figures is not None:
        await figures.warm_up()


async def install_designs(couch: CouchClient, grids: list[str]) -> None:
    """Bring every grid database's design documents up to date, in the background: a city has
    hundreds of grids, and serving should not wait for them."""
    for code in grids:
        try:
            await designs.install(couch, grid_db(code), designs.GRID)
        except (CouchFailure, StoreUnavailable) as exc:
            log.warning("designs of grid %s not installed: %s", code, exc)


def shell_extras(schemas: SchemaRegistry) -> dict[str, bytes]:
    """Served with the shell: the record schemas, their references inlined as the server
    validates with them, so the phone builds its forms and checks records offline, and labels
    a resident's notices and requests (the residents database's types) offline too."""
    grid_types: dict[str, dict[int, Any]] = {}
    for (doc_type, version), validator in sorted(schemas.validators.items()):
        if schemas.schemas[(doc_type, version)].get("x-database") in ("grid", "residents"):
            grid_types.setdefault(doc_type, {})[version] = validator.schema
    body = json.dumps({"types": grid_types}, ensure_ascii=False, separators=(",", ":"))
    return {"schemas.json": body.encode()}


async def wake_live_feeds(app: web.Application) -> None:
    """Waiting longpolls answer at once: shutdown does not wait out their minute."""
    if LIVE_FEEDS in app:
        app[LIVE_FEEDS].shutting_down()


def create_app(config: Config, pwa_dir: Path = PWA_DIR, *,
               load_demo: DemoLoader | None = None) -> web.Application:
    """The app; `load_demo` (server.demo.loader.load_demo) writes the demo city when the
    configuration asks for it, before the directory is read: the web layer does not know the demo
    city, the command line hands it over."""
    app = web.Application(
        client_max_size=config.max_request_bytes,
        middlewares=[errors.error_middleware, guard.guard_middleware,
                     guard.store_errors_middleware])
    app[CONFIG] = config
    if load_demo is not None:
        app[DEMO_LOADER] = load_demo
    # The schemas are the package's files, read and checked once per process (a deployment
    # is a restart): every app of a process shares them.
    app[SCHEMAS] = schemas = shared_registry()
    app[SUPERVISOR] = Supervisor(lagging_s=config.lagging_seconds)
    app[FEEDS_HELD] = FeedLimiter(config.max_feeds_per_user, config.max_live_feeds)
    app.on_response_prepare.append(security_headers)
    app.on_response_prepare.append(guard.renew_session)
    app.on_shutdown.append(wake_live_feeds)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(directory_ctx)
    routing.setup_routes(app)
    api.setup_routes(app)
    residents.setup(app)
    notices.setup(app)
    volunteering.setup(app)
    party.setup(app)
    votes.setup(app)
    fees.setup(app)
    questionnaires.setup(app)
    deliberation.setup(app)
    mutual_aid.setup(app)
    centre.setup(app)
    stars.setup(app)
    users.setup(app)
    devices.setup(app)  # a user's devices, and the revocation of a lost one
    reports.setup(app)
    ratings.setup(app)
    mediation.setup(app)  # after reports: it checks photos with theirs
    liaison.setup(app)  # after reports: a patrol's problem is filed as one
    open311.setup(app)
    health.setup_routes(app)
    shell.setup_routes(app, pwa_dir, shell_extras(schemas))
    return app
