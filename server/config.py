"""Settings: one list of name, default and help, from which the config, `--help` and
docs/settings.md (`linli settings --markdown`) are all built; a test fails when the page differs."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str

    @property
    def env(self) -> str:
        return self.name.upper() if self.name == "couchdb_url" else f"LINLI_{self.name.upper()}"


MiB = 1024 * 1024
MIN_LEASE_SECONDS = 3.0  # shorter, and a renewal's round trip under load takes a third of it
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the checkout, when run from one


def shipped(name: str) -> Path:
    """The folder `schemas` or `pwa`: inside the installed package when installed from a wheel
    (setup.py copies them there), else the checkout's own top-level folder (an editable
    install, or the tests)."""
    inside = Path(__file__).resolve().parent / name
    return inside if inside.is_dir() else SOURCE_ROOT / name


SETTINGS: tuple[Setting, ...] = (
    Setting("data", "./var", "Folder of this installation: the embedded store's data, its lock and "
            "the store address file. `linli` commands act on the installation named here."),
    Setting("host", "127.0.0.1", "Address the HTTP server listens on."),
    Setting("port", 8080, "Port the HTTP server listens on (0 picks a free one)."),
    Setting("couchdb_url", "", "Apache CouchDB 3.x to use, as http://user:pass@host:5984 (an admin "
            "account). Empty: start the embedded PouchDB Server on loopback."),
    Setting("store_port", 0, "Loopback port of the embedded store (0 picks a free one)."),
    Setting("pouchdb_server", "", "PouchDB Server's start script for the embedded store "
            "(node_modules/pouchdb-server/bin/pouchdb-server). Empty: the one scripts/setup "
            "installed in the checkout; set it when Linli is installed from a wheel."),
    Setting("max_request_bytes", 32 * MiB, "Largest request body accepted; above it: 413. "
            "Sized for a PouchDB push batch of 100 documents with photos."),
    Setting("max_document_bytes", 4 * MiB, "Largest single document (JSON, inline attachments "
            "included); a larger one is refused on its own and the rest of its batch is written."),
    Setting("max_attachment_bytes", 2 * MiB, "Largest single attachment (a phone photo after the "
            "PWA has scaled it). Its name: at most 255 bytes, with no slash, backslash or control "
            "character, and not starting with an underscore."),
    Setting("max_document_attachments_bytes", 8 * MiB, "Largest total of one document's "
            "attachments, those it keeps from its stored revision (stubs) counted at their "
            "stored size; above it the document is refused on its own. Which content types a "
            "record may carry is its form's `x-attachments` (schemas/)."),
    Setting("max_batch_docs", 1000, "Most items in one `_bulk_docs`, `_bulk_get`, "
            "`_revs_diff`, `_all_docs` keys or `doc_ids` request, 413 above it (PouchDB sends 100 "
            "by default)."),
    Setting("max_live_feeds", 1000, "Live changes feeds (longpoll) held open at once (they wait "
            "in the server: the store sees one per grid); one more gets 429 with Retry-After."),
    Setting("max_resident_feeds", 10000, "Residents' live feeds held open at once, apart from "
            "the staff's (each waits in the server on its account's keys, about 15 KB, no store "
            "connection); one more gets 429 with Retry-After."),
    Setting("max_feeds_per_user", 10, "Live changes feeds one user may hold at once (a phone "
            "holds one per grid)."),
    Setting("session_hours", 72.0, "How long a login lasts without use; use renews the cookie, "
            "at most once an hour. Long, because a grid worker may be offline for days between "
            "syncs."),
    Setting("login_failures_per_account", 10, "Failed logins allowed per account per window "
            "before 429."),
    Setting("login_failures_per_address", 50, "Failed logins allowed per client address per "
            "window before 429 (addresses behind one NAT share it)."),
    Setting("login_window_seconds", 900, "Window of the login failure counters."),
    Setting("password_hash_concurrency", 2, "Password hashes computed at once; each takes 19 MiB, "
            "so this bounds the memory a login storm can take."),
    Setting("verification_sender", "log", "Who delivers a resident's sign-up verification code: "
            "`log` (development: the code is written to the server log, logger "
            "linli.verification, never to the answer). A real SMS provider is added as in "
            "docs/residents.md."),
    Setting("signups_per_phone", 3, "Sign-ups (each sends a code) allowed per phone number per "
            "window before 429."),
    Setting("signups_per_address", 20, "Sign-ups allowed per client address per window before "
            "429."),
    Setting("signup_window_seconds", 3600, "Window of the sign-up counters."),
    Setting("trust_proxy", False, "Trust X-Forwarded-For/-Proto from a reverse proxy (for the "
            "client address and the Secure cookie flag). Only behind a proxy you run."),
    Setting("demo", False, "Load the demo city (grids and logins) at start."),
    Setting("production", False, "A real installation holding residents' personal data: the "
            "server refuses to start unless it runs behind a TLS proxy (trust_proxy) and "
            "without the demo city, and every session cookie is Secure (docs/privacy.md)."),
    Setting("conflict_sweep_seconds", 30.0, "How often the conflict resolver looks at every grid "
            "(writes through this server are looked at at once; this catches the others)."),
    Setting("grid_passes_at_start", True, "At start, go through every grid once: bring its "
            "design documents up to date, look for conflicts written while no server ran, "
            "write the resident links of sign-ups decided at the door meanwhile, and (after a "
            "server was killed) rebuild lost receipts. Off only where hundreds of servers "
            "start one after another on one store (the test suite), each test turning it on for "
            "what it checks."),
    Setting("resident_sweep_seconds", 10.0, "How often the residents' sync index reads every "
            "grid database's changes (writes through this server are read at once and the "
            "residents database is followed live; this catches the others: another server "
            "process, an import), at one small request per grid."),
    Setting("aggregates_warm_up", True, "At start, read every grid's changes since the figures' "
            "checkpoint (`figures.sqlite3` in the data folder; all of them without one) in the "
            "background, so the first dashboard query does not wait for it."),
    Setting("aggregates_refresh_seconds", 2.0, "How often at most the figures of a grid being "
            "written to are brought up to date in the background (each time, the grid's new "
            "changes are folded in); a dashboard query brings its area up to date itself."),
    Setting("lagging_seconds", 30.0, "A background task whose oldest work has waited longer than "
            "this is reported `lagging` in GET /api/health (the figures of a grid written to, a "
            "receipt not yet written, a live feed whose store longpoll keeps failing)."),
    Setting("leases", True, "Jobs that must run once run under a lease in the store (below). "
            "Off only where this process is the store's one server for certain: the tests run "
            "many apps in one process on one store, each with its own clock, each running its "
            "own jobs, as every process did before leases."),
    Setting("lease_seconds", 15.0, "Length of a background job's lease (租约) in the store: with "
            "several server processes on one store, each job that must run once (conflicts, "
            "figures, allocation sweep, retention...) runs in the process holding its lease, "
            "renewed every third of this; another process takes over at most this long after "
            "the holder dies (docs/deployment.md). At least 3 s."),
    Setting("deliberation_support_threshold", 20, "Support (附议) a compound's topic needs to "
            "reach the red council's agenda (红色议事会), where the compound's staff have not set "
            "their own; frozen in each topic when it is raised."),
    Setting("report_photo_max_bytes", 1 * MiB, "Largest photo of a problem report (问题上报) "
            "or of its handling, in bytes after base64 decoding; the PWA scales photos to 1600 "
            "px and about 300 KB before queueing them. A larger one is refused by the photo's "
            "number, and nothing of the report is stored."),
    Setting("report_photo_max_pixels", 4096 * 4096, "Most pixels a report photo may decode to "
            "(width × height; the phone sends ≤ 1600 px); above it, or above 200 pixels a byte, "
            "the photo is refused from its header before it is decoded, so a small file that "
            "unpacks to gigabytes cannot take the server's memory or CPU."),
    Setting("reports_per_account_day", 20, "Problem reports (问题上报) one account may file in "
            "24 hours; more answer 429 with the time to try again (a retry of a stored one is "
            "not counted)."),
    Setting("census_campaign", "2026-census-pilot", "The census enumeration (人口普查) under way: "
            "the campaign the workers' census forms are filed under."),
    Setting("screening_campaign", "2026-screening", "The door-to-door screening (入户排查) under "
            "way: the campaign the workers' screening forms are filed under."),
    Setting("fees_provider", "", "Payment provider of property fees (智缴, docs/fees.md): empty "
            "for none (owners see their bills; paying answers 503; with `demo` on a loopback "
            "host, the demo's own test network, which pays at once), or `test`, the provider for "
            "tests and demos, whose notifications are signed with `fees_test_secret`. Never "
            "`test` where real money is meant (refused in production): whoever knows its "
            "secret can mark a bill paid."),
    Setting("fees_test_secret", "", "The `test` payment provider's signing key (hex, at least "
            "32 characters); required when `fees_provider` is `test`."),
    Setting("retention_list_hours", 24.0, "How often the retention job (保存期限) lists what "
            "every grid holds past its retention rule (server/domain/retention.py), the first "
            "list one period after the server starts; nothing goes until a supervisor with the "
            "`purge` right approves a list (docs/privacy.md). `linli retention list` makes one "
            "at once."),
    Setting("phone_grid_max_documents", 50_000, "A phone's budget per grid (手机容量): a grid "
            "holding more documents is refused to a device's first download (413), so no phone "
            "is asked to carry more than one worker's round needs; the admin splits the grid "
            "(docs/privacy.md)."),
    Setting("phone_grid_max_bytes", 512 * MiB, "A phone's budget per grid in bytes, checked "
            "with the documents where the store reports a database's size (Apache CouchDB's "
            "`sizes.external`; the embedded store reports none)."),
    Setting("reveal_minutes", 10.0, "How long a reveal (查看敏感信息, with a reason) of one "
            "record's sensitive fields holds for the user who asked; then it is masked again "
            "and a new reason is needed (docs/privacy.md)."),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
# The verification senders server/sync/verification.py ships (a test holds the two together).
VERIFICATION_SENDERS = ("log",)
FEES_PROVIDERS = ("", "test")  # the payment providers server/sync/fees.py ships


class ConfigError(ValueError):
    """A setting has a value the server cannot start with."""


@dataclasses.dataclass(frozen=True)
class Config:
    data: Path
    host: str
    port: int
    couchdb_url: str
    store_port: int
    pouchdb_server: str
    max_request_bytes: int
    max_document_bytes: int
    max_attachment_bytes: int
    max_document_attachments_bytes: int
    max_batch_docs: int
    max_live_feeds: int
    max_resident_feeds: int
    max_feeds_per_user: int
    session_hours: float
    login_failures_per_account: int
    login_failures_per_address: int
    login_window_seconds: int
    password_hash_concurrency: int
    verification_sender: str
    signups_per_phone: int
    signups_per_address: int
    signup_window_seconds: int
    trust_proxy: bool
    demo: bool
    production: bool
    conflict_sweep_seconds: float
    resident_sweep_seconds: float
    grid_passes_at_start: bool
    aggregates_warm_up: bool
    aggregates_refresh_seconds: float
    lagging_seconds: float
    leases: bool
    lease_seconds: float
    deliberation_support_threshold: int
    report_photo_max_bytes: int
    report_photo_max_pixels: int
    reports_per_account_day: int
    census_campaign: str
    screening_campaign: str
    fees_provider: str
    fees_test_secret: str
    reveal_minutes: float
    retention_list_hours: float
    phone_grid_max_documents: int
    phone_grid_max_bytes: int

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None) -> Config:
        """Defaults overridden by `values` (tests pass a dict); every value checked once here."""
        values = dict(values or {})
        unknown = set(values) - SETTINGS_BY_NAME.keys()
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = values.get(setting.name, setting.default)
            kwargs[setting.name] = _coerce(setting, raw)
        config = cls(**kwargs)
        config._check()
        return config

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> Config:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {s.name: environ[s.env] for s in SETTINGS if s.env in environ}
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(values)

    def _check(self) -> None:
        for name in ("max_request_bytes", "max_document_bytes", "max_attachment_bytes",
                     "max_document_attachments_bytes", "max_batch_docs", "max_live_feeds",
                     "max_resident_feeds",
                     "max_feeds_per_user", "password_hash_concurrency", "login_window_seconds",
                     "signups_per_phone", "signups_per_address", "signup_window_seconds",
                     "report_photo_max_bytes", "report_photo_max_pixels",
                     "reports_per_account_day", "phone_grid_max_documents",
                     "phone_grid_max_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.production and not self.trust_proxy:
            raise ConfigError("production needs TLS in front: run behind an https reverse proxy "
                              "and set LINLI_TRUST_PROXY=true, so session cookies are Secure")
        if self.production and self.demo:
            raise ConfigError("production cannot load the demo city: its logins are public")
        for name in ("aggregates_refresh_seconds", "lagging_seconds", "resident_sweep_seconds",
                     "reveal_minutes", "retention_list_hours"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.lease_seconds < MIN_LEASE_SECONDS:
            raise ConfigError(f"lease_seconds must be at least {MIN_LEASE_SECONDS:g}")
        if self.max_document_bytes > self.max_request_bytes:
            raise ConfigError("max_document_bytes cannot exceed max_request_bytes")
        if self.verification_sender not in VERIFICATION_SENDERS:
            raise ConfigError(f"verification_sender must be one of "
                              f"{', '.join(VERIFICATION_SENDERS)}")
        if self.fees_provider not in FEES_PROVIDERS:
            raise ConfigError("fees_provider must be empty or one of: "
                              f"{', '.join(FEES_PROVIDERS[1:])}")
        if self.fees_provider == "test" and (len(self.fees_test_secret) < 32 or any(
                c not in "0123456789abcdef" for c in self.fees_test_secret.lower())):
            raise ConfigError("fees_test_secret: at least 32 hex characters for the test provider")
        if self.production and self.fees_provider == "test":
            raise ConfigError("production cannot use the test payment provider: whoever knows "
                              "its secret can mark a bill paid")
        if self.couchdb_url and not self.couchdb_url.startswith(("http://", "https://")):
            raise ConfigError("COUCHDB_URL must start with http:// or https://")

    @property
    def embedded(self) -> bool:
        return not self.couchdb_url

    @property
    def pouchdb_server_bin(self) -> Path | None:
        """PouchDB Server's start script when set (None: the checkout's)."""
        return Path(self.pouchdb_server).expanduser() if self.pouchdb_server else None


def _coerce(setting: Setting, raw: Any) -> Any:
    default = setting.default
    try:
        if isinstance(default, bool):
            if isinstance(raw, str):
                return raw.strip().lower() in {"1", "true", "yes", "on"}
            return bool(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{setting.name}: {raw!r} is not a number") from exc
    if setting.name == "data":
        return Path(raw).expanduser().resolve()
    return str(raw)
