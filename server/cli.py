"""The `linli` command: serve, and the administration tasks (users, grids). Every command acts
on the installation named by --data or LINLI_DATA (default ./var), also while `linli serve` runs
on it."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import couchdb
from aiohttp import web
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from server import errors
from server.admin import directory, property_register, registry_import
from server.admin import votes as vote_admin
from server.config import SETTINGS, Config, ConfigError, MiB, Setting
from server.demo.seed import seed_city, seed_summary
from server.domain import retention
from server.domain.accounts import ACCOUNT_ACTIONS
from server.domain.matching import HouseholdIndex, match
from server.domain.reports import DEPARTMENTS
from server.domain.scope import AREA_LEVELS, DIRECTORY_DB, RIGHTS, ROLES, grid_db
from server.sync import retention as retention_job


def settings_epilog() -> str:
    lines = ["settings (environment variables):"]
    lines += [f"  {s.env:<36} {s.help} (default: {s.default!r})" for s in SETTINGS]
    return "\n".join(lines)


def shown_default(setting: Setting) -> str:
    """A default as a reader would write it: 32 MiB rather than 33554432, true rather than True."""
    value = setting.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if setting.name.endswith("_bytes") and value % MiB == 0:
        return f"{value // MiB} MiB"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`" if value != "" else "(empty)"


def table_cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_markdown() -> str:
    """docs/settings.md, built from SETTINGS so that the page cannot drift from the code
    (tests/test_docs.py compares the two)."""
    lines = [
        "# Settings",
        "",
        "Settings are environment variables; `linli --help` prints the same list. This page is",
        "the output of `.venv/bin/linli settings --markdown` (from `server/config.py`): change a",
        "setting there, then run that command into this file.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{s.env}` | {shown_default(s)} | {table_cell(s.help)} |" for s in SETTINGS]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linli", description="Linli (邻里): offline-first community platform.",
        epilog=settings_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="installation folder (LINLI_DATA, default ./var)")
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("settings", help="list the settings (environment variables)")
    listing.add_argument("--markdown", action="store_true",
                         help="as the table of docs/settings.md")

    serve = commands.add_parser("serve", help="run the server (and the embedded store)")
    serve.add_argument("--host", help="listen address (LINLI_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (LINLI_PORT, default 8080)")
    serve.add_argument("--data", dest="serve_data", help="installation folder")
    serve.add_argument("--demo", action="store_true", default=None,
                       help="load the demo city and its logins")

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True)
    add = user.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--full-name", default="", help="the name screens and sheets show (姓名)")
    add.add_argument("--grid", action="append", default=[], help="grid code (workers; repeat)")
    add.add_argument("--community", action="append", default=[],
                     help="community code (supervisors; repeat)")
    add.add_argument("--street", action="append", default=[],
                     help="street code (supervisors; repeat)")
    add.add_argument("--branch", action="append", default=[],
                     help="party branch code (secretaries; grid-<grid> for a grid's; repeat)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of prompting")
    add.add_argument("--department", default="", choices=("", *DEPARTMENTS),
                     help="liaison department of a department user (zhzf 综合执法, police 公安, "
                     "housing 住建, market 市场监管, fire 消防)")
    add.add_argument("--company", action="append", default=[],
                     help="property company id of a property user (repeat)")
    add.add_argument("--provider", default="",
                     help="neighbourhood centre provider code of a provider user (邻里中心)")
    add.add_argument("--right", action="append", default=[], choices=RIGHTS,
                     help="a right beyond the role (unmask: export personal data unmasked)")
    for action, text in (("grant", "give a user a right (e.g. unmask)"),
                         ("revoke", "take a right from a user")):
        change = user.add_parser(action, help=text)
        change.add_argument("name")
        change.add_argument("right", choices=RIGHTS)
    passwd = user.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    for action, text in (("disable", "stop a user logging in (ends their sessions at once)"),
                         ("enable", "let a disabled user log in again"),
                         ("remove", "remove a user for good (their name stays on what they "
                                    "wrote and is never reused)")):
        user.add_parser(action, help=text).add_argument("name")
    user.add_parser("list", help="list users")

    grid = commands.add_parser("grid", help="manage grids").add_subparsers(
        dest="action", required=True)
    gadd = grid.add_parser("add", help="add a grid and create its database")
    gadd.add_argument("code")
    gadd.add_argument("--name", required=True)
    gadd.add_argument("--community", default="", help="community (社区) code")
    gadd.add_argument("--street", default="", help="street (街道) code")
    grid.add_parser("list", help="list grids")

    area = commands.add_parser("area", help="name districts, streets and communities"
                               ).add_subparsers(dest="action", required=True)
    aadd = area.add_parser("add", help="name an area (or rename it)")
    aadd.add_argument("level", choices=AREA_LEVELS)
    aadd.add_argument("code", help="GB/T 2260 code (district 6, street 9, community 12 digits)")
    aadd.add_argument("--name", required=True)
    aadd.add_argument("--parent", default="", help="the district of a street, the street of a "
                      "community (default: from the code)")

    branch = commands.add_parser("branch", help="party branches members declare (党支部)"
                                 ).add_subparsers(dest="action", required=True)
    badd = branch.add_parser("add", help="add a party branch (or rename it)")
    badd.add_argument("code", help="lowercase letters, digits or _")
    badd.add_argument("name")
    badd.add_argument("--kind", choices=("organ", "other"), default="organ",
                      help="organ: a department's branch (机关支部); other")
    badd.add_argument("--street", default="", help="the street whose supervisors see it")

    schema = commands.add_parser("schema", help="record forms (schemas) and their versions"
                                 ).add_subparsers(dest="action", required=True)
    schema.add_parser("list", help="every form and version, and which are retired")
    for action, text in (("retire", "refuse records on this form version from now on"),
                         ("restore", "accept a retired form version again")):
        sub = schema.add_parser(action, help=text)
        sub.add_argument("type", help="record type, e.g. household_visit")
        sub.add_argument("version", type=int)

    seed = commands.add_parser("seed-demo", help="write a synthetic city (deterministic)")
    seed.add_argument("--households", type=int, default=500,
                      help="households (500 for the demo, 164253 for the city benchmark)")
    seed.add_argument("--seed", type=int, default=2020)
    seed.add_argument("--logins", action="store_true",
                      help="a login per grid's worker (w_<grid>, the demo password)")

    matching = commands.add_parser(
        "match", help="match a resident's sign-up to the household registry of a community")
    matching.add_argument("--community", required=True, help="community code")
    matching.add_argument("--name", required=True)
    matching.add_argument("--phone", default="")
    matching.add_argument("--address", required=True, help="as the resident typed it")

    imports = commands.add_parser("import", help="import data").add_subparsers(
        dest="action", required=True)
    households = imports.add_parser(
        "households", help="import the household registry from a CSV or XLSX file")
    households.add_argument("file", type=Path)
    households.add_argument("--dry-run", action="store_true",
                            help="check every row and report; write nothing")
    households.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD",
                            help="read FIELD from a column named HEADER (repeat)")
    households.add_argument("--errors", type=Path, help="where refused rows go "
                            "(default FILE.errors.csv)")
    households.add_argument("--template", action="store_true",
                            help="write the template to FILE instead of importing")
    units = imports.add_parser(
        "units", help="import the property register (units, areas, owners) for owners' votes")
    units.add_argument("file", type=Path)
    units.add_argument("--dry-run", action="store_true",
                       help="check every row and report; write nothing")
    units.add_argument("--errors", type=Path, help="where refused rows go "
                       "(default FILE.errors.csv)")
    units.add_argument("--replace", action="store_true",
                       help="the file is each named compound's whole register: remove the "
                       "units it no longer lists (listed by --dry-run first)")
    units.add_argument("--template", action="store_true",
                       help="write the template to FILE instead of importing")
    kept = commands.add_parser("retention", help="what is past its retention (保存期限)"
                               ).add_subparsers(dest="action", required=True)
    due = kept.add_parser("list", help="list what every grid holds past its retention rule "
                          "now (as the nightly job does); a supervisor approves it in the app")
    due.add_argument("--today", type=datetime.date.fromisoformat,
                     help="the day to judge by, YYYY-MM-DD (default: today in China)")

    vote = commands.add_parser("vote", help="owners' votes").add_subparsers(
        dest="action", required=True)
    recount = vote.add_parser("recount", help="count a closed vote again from its raw ballots "
                              "and compare it with the published result, byte for byte")
    recount.add_argument("vote", help="the vote's id (16 hex digits, or motion:<id>)")
    return parser


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码 / password: ")
    if getpass.getpass("再输一次 / again: ") != first:
        raise directory.DirectoryError("两次输入的密码不一致 / the passwords differ")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "settings":
        print(settings_markdown().rstrip("\n") if args.markdown else settings_epilog())
        return 0
    data = getattr(args, "serve_data", None) or args.data
    overrides = {"data": data}
    if args.command == "serve":
        overrides.update(host=args.host, port=args.port, demo=args.demo)
    try:
        config = Config.from_env(overrides)
    except ConfigError as exc:
        print(f"linli: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(config)
    if args.command == "import" and args.template:
        (property_register if args.action == "units" else registry_import).write_template(
            args.file)
        print(f"template written to {args.file}")
        return 0
    try:
        return administer(args, config)
    except (directory.DirectoryError, registry_import.ImportError_,
            vote_admin.RecountError) as exc:
        print(f"linli: {exc}", file=sys.stderr)
        return 1


class ProblemAccessLogger(AccessLogger):
    """Logs the requests worth a look (errors, and anything slower than a second) and not the
    thousands of routine replication requests a day of syncing makes: formatting those took a
    tenth of the server's time in the sync benchmark."""

    SLOW_SECONDS = 1.0

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if request.get(errors.WENT_AWAY):
            return  # logged once already, as the client going away
        if response.status >= 400 or time >= self.SLOW_SECONDS:
            super().log(request, response, time)


def serve(config: Config) -> int:
    from server.demo.loader import load_demo
    from server.web.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    store = config.couchdb_url.split("@")[-1] if config.couchdb_url else "embedded store"
    print(f"Linli: http://{config.host}:{config.port}/ (CouchDB API at /couch/; data "
          f"{config.data}; {store})", flush=True)
    web.run_app(create_app(config, load_demo=load_demo), host=config.host, port=config.port,
                print=None, access_log_class=ProblemAccessLogger)
    return 0


def community_index(server: couchdb.Server, community: str) -> HouseholdIndex:
    """The registry of one community (its grids' households and persons, its compounds),
    indexed for matching."""
    grids = [g.code for g in directory.list_grids(server) if g.community == community]
    if not grids:
        raise directory.DirectoryError(f"社区 {community} 没有网格 / no grids in community "
                                       f"{community}")
    households: list[dict[str, Any]] = []
    persons: list[dict[str, Any]] = []
    for code in grids:
        db = server[grid_db(code)]
        for prefix, into in (("household:", households), ("person:", persons)):
            into.extend(row.doc for row in db.view("_all_docs", startkey=prefix,
                                                   endkey=prefix + "\ufff0", include_docs=True))
    compounds = [row.doc for row in server[DIRECTORY_DB].view(
        "_all_docs", startkey="compound:", endkey="compound:\ufff0", include_docs=True)
        if row.doc.get("community") == community]
    return HouseholdIndex.build(households, persons, compounds)


def administer(args: argparse.Namespace, config: Config) -> int:
    with directory.open_store(config) as server:
        if args.command == "grid" and args.action == "add":
            grid = directory.add_grid(server, args.code, args.name, args.community, args.street)
            print(f"grid {grid.code} ({grid.name}) ready")
        elif args.command == "grid" and args.action == "list":
            for grid in directory.list_grids(server):
                print(f"{grid.code}\t{grid.name}\t{grid.community}\t{grid.street}")
        elif args.command == "user" and args.action == "add":
            password = read_password(args.password_stdin)
            user = directory.add_user(server, args.name, args.role, password, grids=args.grid,
                                      communities=args.community, streets=args.street,
                                      rights=args.right, branches=args.branch,
                                      department=args.department, companies=args.company,
                                      full_name=args.full_name, provider=args.provider)
            print(f"user {user.name} ({user.role}) added")
        elif args.command == "user" and args.action in ("grant", "revoke"):
            changes = {args.action: [args.right]}
            user = directory.set_rights(server, args.name, **changes)
            print(f"rights of {user.name}: {', '.join(sorted(user.rights)) or '-'}")
        elif args.command == "branch" and args.action == "add":
            directory.add_branch(server, args.code, args.name, args.kind, args.street)
            print(f"branch {args.code} named {args.name}")
        elif args.command == "user" and args.action in ACCOUNT_ACTIONS:
            user = directory.change_account(server, args.name, args.action)
            print(f"user {user.name} {args.action}d" + ("; their sessions have ended"
                                                        if args.action != "enable" else ""))
        elif args.command == "area" and args.action == "add":
            directory.add_area(server, args.level, args.code, args.name, args.parent)
            print(f"{args.level} {args.code} named {args.name}")
        elif args.command == "user" and args.action == "passwd":
            directory.set_password(server, args.name, read_password(args.password_stdin))
            print(f"password of {args.name} changed; their sessions have ended")
        elif args.command == "import" and args.action == "households":
            summary = registry_import.import_households(
                server, args.file, dry_run=args.dry_run,
                mapping=registry_import.parse_mapping(args.map), error_file=args.errors,
                progress=sys.stderr)  # the progress bar, as the import goes
            print(summary.text(args.dry_run))
            return 1 if summary.refused else 0
        elif args.command == "import" and args.action == "units":
            summary = property_register.import_units(server, args.file, dry_run=args.dry_run,
                                                     error_file=args.errors,
                                                     replace=args.replace)
            print(summary.text(args.dry_run))
            return 1 if summary.refused else 0
        elif args.command == "vote" and args.action == "recount":
            again = vote_admin.recount(server, args.vote)
            sys.stdout.buffer.write(again.body + b"\n")
            print("与公布结果逐字节相同 / identical to the published result, byte for byte"
                  if again.identical else "与公布结果不同！/ DIFFERS from the published result!",
                  file=sys.stderr)
            return 0 if again.identical else 4
        elif args.command == "retention" and args.action == "list":
            today = args.today or datetime.datetime.now(retention.CHINA).date()
            entry = asyncio.run(retention_job.list_now(
                config.couchdb_url or server.resource.url, today))
            print(f"{entry['_id']}\t{entry['today']}")
            for code, due in entry["grids"].items():
                counts = ", ".join(f"{t} {len(ids)}" for t, ids in due["records"].items())
                print(f"{code}\t{counts or '-'}\tcampaigns: {','.join(due['campaigns']) or '-'}")
        elif args.command == "seed-demo":
            if args.households < 1:
                raise directory.DirectoryError("--households 至少为 1 / must be at least 1")
            result = seed_city(server, config, args.households, args.seed, logins=args.logins)
            print("\n".join(seed_summary(result)))
        elif args.command == "match":
            index = community_index(server, args.community)
            result = match({"name": args.name, "phone": args.phone, "address": args.address},
                           index)
            print(f"{result.status}\t{result.household or ''}\t{','.join(result.candidates)}"
                  f"\t{result.reason}")
            return 0 if result.status == "matched" else 3
        elif args.command == "schema" and args.action == "list":
            for doc_type, version, retired in directory.schema_versions(server):
                print(f"{doc_type}\tv{version}\t{'retired' if retired else 'in use'}")
        elif args.command == "schema" and args.action == "retire":
            directory.retire_schema(server, args.type, args.version)
            print(f"{args.type} v{args.version} retired: records on it are refused from now on")
        elif args.command == "schema" and args.action == "restore":
            restored = directory.restore_schema(server, args.type, args.version)
            print(f"{args.type} v{args.version} " + ("accepted again" if restored
                                                     else "was not retired"))
        elif args.command == "user" and args.action == "list":
            for user in directory.list_users(server):
                scope = ",".join(sorted(user.grids | user.communities | user.streets))
                state = "removed" if user.removed else (
                    "disabled" if user.disabled else "active")
                print(f"{user.name}\t{user.role}\t{scope}\t{','.join(sorted(user.rights))}"
                      f"\t{state}")
    return 0
