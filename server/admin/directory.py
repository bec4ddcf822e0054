"""The directory database (grids and users), written by the `linli` commands through
python-couchdb, whose plain synchronous API suits scripts. The running server does not need to be
told: it follows the directory's changes feed (app.py) and sees a new grid or user within a
second."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterable, Iterator
from typing import Any

import couchdb

from server.config import Config
from server.domain.accounts import changed_account, hash_password, new_session_salt
from server.domain.centre import CODE as PROVIDER_CODE
from server.domain.messages import Refused
from server.domain.reports import DEPARTMENTS
from server.domain.scope import (
    AREA_LEVELS,
    DIRECTORY_DB,
    GRID_CODE,
    INTERNAL_DBS,
    PARTY_BRANCH,
    RETIRED_SCHEMA,
    RIGHTS,
    ROLES,
    USER_NAME,
    Grid,
    User,
    grid_db,
    retired_key,
)
from server.domain.validation import shared_registry
from server.store import designs
from server.store.embedded import EmbeddedStore, running_store_url

MIN_PASSWORD_LENGTH = 8


class DirectoryError(ValueError):
    """A `linli` command was given something it cannot do; the message says what."""


@contextlib.contextmanager
def open_store(config: Config) -> Iterator[couchdb.Server]:
    """The installation's CouchDB: COUCHDB_URL, or the embedded store that `linli serve` runs
    for this data folder, or (when no server is running) the embedded store started just for
    this command."""
    if config.couchdb_url:
        yield prepared(couchdb.Server(config.couchdb_url))
        return
    url = running_store_url(config.data)
    if url is not None:
        yield prepared(couchdb.Server(url))
        return
    store = EmbeddedStore(config.data, config.store_port, config.pouchdb_server_bin)
    store.start_sync()
    try:
        yield prepared(couchdb.Server(store.url))
    finally:
        store.stop_sync()


RESERVED_USER_PREFIX = "linli-"  # the server's own writers, e.g. the conflict resolver
MAX_FULL_NAME = 40  # a full name (姓名) as screens show it: long Uyghur or Tibetan names fit


def prepared(server: couchdb.Server) -> couchdb.Server:
    for name in INTERNAL_DBS:
        if name not in server:
            with contextlib.suppress(couchdb.PreconditionFailed):
                server.create(name)
    return server


def directory_db(server: couchdb.Server) -> couchdb.Database:
    """The directory database, without asking the store whether it exists (`server[name]`
    does, a request each time): `prepared` made it, and every caller came through it."""
    return couchdb.Database(server.resource(DIRECTORY_DB), DIRECTORY_DB)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def add_grid(server: couchdb.Server, code: str, name: str, community: str = "",
             street: str = "") -> Grid:
    """Register a grid and create its database (idempotent for the database)."""
    if not GRID_CODE.match(code):
        raise DirectoryError(f"网格编码 {code!r} 无效：只用小写字母、数字和 _ / grid code {code!r} "
                             "is invalid: use lowercase letters, digits and _")
    if not name.strip():
        raise DirectoryError("网格名称不能为空 / the grid needs a name")
    directory = directory_db(server)
    doc_id = f"grid:{code}"
    doc: dict[str, Any] = dict(directory.get(doc_id) or {"_id": doc_id, "created_at": _now()})
    doc.update(type="grid", schema_version=1, code=code, name=name.strip())
    doc.update({k: v for k, v in (("community", community), ("street", street)) if v})
    problems = shared_registry().problems(doc)
    if problems:
        raise DirectoryError("；".join(problems))
    db = grid_db(code)
    with contextlib.suppress(couchdb.PreconditionFailed):  # it exists: a grid named again
        server.create(db)
    designs.install_blocking(server.resource.url, db, designs.GRID, server.resource.credentials)
    directory.save(doc)
    return Grid.from_doc(doc)


def add_area(server: couchdb.Server, level: str, code: str, name: str, parent: str = "") -> None:
    """Name a district, street or community (`<level>:<code>` in the directory), so the
    aggregates and the dashboard show its name and not only its code. A street's parent is its
    district, a community's its street; by default taken from the code (GB/T 2260: a street's
    district is its first 6 digits, a community's street its first 9)."""
    if level not in AREA_LEVELS:
        raise DirectoryError(f"级别 {level!r} 无效，应为 {', '.join(AREA_LEVELS)} / unknown level")
    if not name.strip():
        raise DirectoryError("名称不能为空 / the area needs a name")
    directory = directory_db(server)
    doc_id = f"{level}:{code}"
    doc: dict[str, Any] = dict(directory.get(doc_id) or {"_id": doc_id})
    doc.update(type=level, schema_version=1, code=code, name=name.strip())
    if level == "street":
        doc["district"] = parent or code[:6]
    elif level == "community":
        doc["street"] = parent or code[:9]
        doc.setdefault("district", doc["street"][:6])
    problems = shared_registry().problems(doc)
    if problems:
        raise DirectoryError("；".join(problems))
    directory.save(doc)


def list_grids(server: couchdb.Server) -> list[Grid]:
    directory = directory_db(server)
    rows = directory.view("_all_docs", startkey="grid:", endkey="grid:\ufff0", include_docs=True)
    return [Grid.from_doc(row.doc) for row in rows]


def unknown_grids(server: couchdb.Server, codes: list[str]) -> list[str]:
    """The codes no grid bears: their records only, not every grid's (a city has thousands, and
    an import adds users by the thousand)."""
    if not codes:
        return []
    rows = directory_db(server).view("_all_docs", keys=[f"grid:{code}" for code in codes])
    known = {row.key for row in rows
             if "error" not in row and not (row.value or {}).get("deleted")}
    return [code for code in codes if f"grid:{code}" not in known]


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DirectoryError(f"密码至少 {MIN_PASSWORD_LENGTH} 位 / the password needs at least "
                             f"{MIN_PASSWORD_LENGTH} characters")


def add_user(server: couchdb.Server, name: str, role: str, password: str, *,
             grids: Iterable[str] = (), communities: Iterable[str] = (),
             streets: Iterable[str] = (), rights: Iterable[str] = (),
             branches: Iterable[str] = (), department: str = "",
             companies: Iterable[str] = (), full_name: str = "", provider: str = "") -> User:
    if not USER_NAME.match(name):
        raise DirectoryError(f"用户名 {name!r} 无效：2–64 位小写字母、数字或 _ . - / user name "
                             f"{name!r} is invalid: 2–64 lowercase letters, digits, _ . -")
    if name.startswith(RESERVED_USER_PREFIX):
        raise DirectoryError(f"以 {RESERVED_USER_PREFIX} 开头的用户名留给服务器自己 / user names "
                             f"starting with {RESERVED_USER_PREFIX} are the server's own")
    full_name = full_name.strip()
    if len(full_name) > MAX_FULL_NAME or not full_name.isprintable():
        raise DirectoryError(f"姓名应为 1–{MAX_FULL_NAME} 个可见字符 / a full name is 1–"
                             f"{MAX_FULL_NAME} printable characters")
    if role not in ROLES:
        raise DirectoryError(f"角色 {role!r} 无效，应为 {', '.join(ROLES)} / unknown role")
    check_password_strength(password)
    grids, communities, streets = sorted(set(grids)), sorted(set(communities)), sorted(set(streets))
    rights = checked_rights(rights)
    if role == "worker" and not grids:
        raise DirectoryError("网格员至少要分配一个网格 (--grid) / a worker needs a --grid")
    if role == "supervisor" and not (communities or streets):
        raise DirectoryError("督导员要指定 --community 或 --street / a supervisor needs "
                             "--community or --street")
    if role == "department" and (department not in DEPARTMENTS or not (communities or streets)):
        raise DirectoryError(f"联络部门要指定 --department（{', '.join(DEPARTMENTS)}）和 "
                             "--community 或 --street / a department needs --department and "
                             "--community or --street")
    if role == "assessor" and not streets:  # commissioned per street (三类五星)
        raise DirectoryError("第三方评估要指定 --street / an assessor needs --street")
    if role == "property" and not companies:
        raise DirectoryError("物业账号要指定 --company / a property user needs --company")
    if (role == "provider") != bool(provider) or (provider and not (
            PROVIDER_CODE.match(provider) and communities)):
        raise DirectoryError("邻里中心服务方账号要指定 --provider 和 --community（仅此角色）/ a "
                             "provider user needs --provider and --community (only it)")
    unknown = unknown_grids(server, grids)
    if unknown:
        raise DirectoryError(f"没有这些网格：{', '.join(unknown)} / unknown grid(s)")
    branches = checked_branches(server, role, branches)
    directory = directory_db(server)
    doc_id = f"user:{name}"
    doc = {"_id": doc_id, "type": "user", "name": name, "role": role, "grids": grids,
           "communities": communities, "streets": streets, "password": hash_password(password),
           "session_salt": new_session_salt(), "disabled": False, "created_at": _now()}
    if rights:
        doc["rights"] = rights
    if full_name:
        doc["full_name"] = full_name
    if branches:
        doc["branches"] = branches
    if role == "department":
        doc["department"] = department
    if role == "property":
        doc["companies"] = sorted(set(companies))
    if role == "provider":
        doc["provider"] = provider
    try:  # a new document's write fails if the name is taken, even by a concurrent add
        directory.save(doc)
    except couchdb.ResourceConflict:
        raise DirectoryError(f"用户 {name} 已存在 / user {name} already exists") from None
    return User.from_doc(doc)


def checked_branches(server: couchdb.Server, role: str, branches: Iterable[str]) -> list[str]:
    """A secretary's branches (支部书记): at least one, each in the directory or a known grid's
    (`grid-<code>`); no other role keeps one."""
    wanted = sorted(set(branches))
    if role != "secretary":
        if wanted:
            raise DirectoryError("只有支部书记有 --branch / only a secretary takes --branch")
        return []
    if not wanted:
        raise DirectoryError("支部书记要指定 --branch / a secretary needs a --branch")
    grids = [b.removeprefix("grid-") for b in wanted if b.startswith("grid-")]
    rows = directory_db(server).view("_all_docs", keys=[f"{PARTY_BRANCH}:{b}" for b in wanted
                                                        if not b.startswith("grid-")])
    known = {row.key.partition(":")[2] for row in rows
             if "error" not in row and not (row.value or {}).get("deleted")}
    unknown = [b for b in wanted if not b.startswith("grid-") and b not in known]
    unknown += [f"grid-{g}" for g in unknown_grids(server, grids)]
    if unknown:
        raise DirectoryError(f"没有这些支部：{', '.join(unknown)} / unknown branch(es)")
    return wanted


def add_branch(server: couchdb.Server, code: str, name: str, kind: str = "organ",
               street: str = "") -> None:
    """A party branch members may declare (`party_branch:<code>`, 机关支部 or other), or its
    new name; its street puts it in the scope of that street's supervisors."""
    doc_id = f"{PARTY_BRANCH}:{code}"
    directory = directory_db(server)
    doc: dict[str, Any] = dict(directory.get(doc_id) or {"_id": doc_id})
    doc.update(type=PARTY_BRANCH, schema_version=1, code=code, name=name.strip(), kind=kind)
    if street:
        doc["street"] = street
    problems = shared_registry().problems(doc)
    if problems:
        raise DirectoryError("；".join(problems))
    directory.save(doc)


def checked_rights(rights: Iterable[str]) -> list[str]:
    wanted = sorted(set(rights))
    unknown = [r for r in wanted if r not in RIGHTS]
    if unknown:
        raise DirectoryError(f"没有这些权限：{', '.join(unknown)}（可用：{', '.join(RIGHTS)}）/ "
                             f"unknown right(s): {', '.join(unknown)} (known: {', '.join(RIGHTS)})")
    return wanted


def set_rights(server: couchdb.Server, name: str, *, grant: Iterable[str] = (),
               revoke: Iterable[str] = ()) -> User:
    """Give or take a user's rights (`unmask`...); the running server follows at once, since
    it reads rights from the directory on every request, not from the session."""
    grant, revoke = checked_rights(grant), checked_rights(revoke)
    directory = directory_db(server)
    doc = directory.get(f"user:{name}")
    if doc is None:
        raise DirectoryError(f"没有用户 {name} / no user {name}")
    doc["rights"] = sorted((set(doc.get("rights") or ()) | set(grant)) - set(revoke))
    directory.save(doc)
    return User.from_doc(doc)


def set_password(server: couchdb.Server, name: str, password: str) -> None:
    """A new password; the new session salt also ends every session the user had open."""
    check_password_strength(password)
    directory = directory_db(server)
    doc = directory.get(f"user:{name}")
    if doc is None:
        raise DirectoryError(f"没有用户 {name} / no user {name}")
    doc["password"] = hash_password(password)
    doc["session_salt"] = new_session_salt()
    directory.save(doc)


def change_account(server: couchdb.Server, name: str, action: str) -> User:
    """Disable, enable or remove a user (`linli user disable|enable|remove`). Every server
    process follows the directory and refuses the account's next request; a removed account
    keeps its name on what it wrote."""
    directory = directory_db(server)
    doc = directory.get(f"user:{name}")
    if doc is None or doc.get("type") != "user":
        raise DirectoryError(f"没有用户 {name} / no user {name}")
    try:
        changed = changed_account(dict(doc), action, _now(), new_session_salt())
    except Refused as refusal:
        raise DirectoryError(refusal.reason) from None
    directory.save(changed)
    return User.from_doc(changed)


def list_users(server: couchdb.Server) -> list[User]:
    directory = directory_db(server)
    rows = directory.view("_all_docs", startkey="user:", endkey="user:\ufff0", include_docs=True)
    return [User.from_doc(row.doc) for row in rows]


def schema_versions(server: couchdb.Server) -> list[tuple[str, int, bool]]:
    """Every record form the server knows: (type, version, retired)."""
    retired = set(retired_schemas(server))
    registry = shared_registry()
    return [(t, v, (t, v) in retired) for t, v in sorted(registry.schemas)]


def retired_schemas(server: couchdb.Server) -> list[tuple[str, int]]:
    rows = directory_db(server).view("_all_docs", startkey=f"{RETIRED_SCHEMA}:",
                                     endkey=f"{RETIRED_SCHEMA}:\ufff0")
    found = (retired_key(row.id.partition(":")[2]) for row in rows)
    return sorted(key for key in found if key is not None)


def retire_schema(server: couchdb.Server, doc_type: str, version: int) -> None:
    """From now on the gateway refuses records on this form, with a reason telling the worker to
    update the app. The newest version of a type cannot be retired: a form must remain."""
    registry = shared_registry()
    versions = registry.versions(doc_type)
    if version not in versions:
        known = ", ".join(f"v{v}" for v in versions) or "无 / none"
        raise DirectoryError(f"没有表单 {doc_type} v{version}（已有 {known}）/ no form "
                             f"{doc_type} v{version} (known: {known})")
    retired = set(retired_schemas(server)) | {(doc_type, version)}
    if version == max(versions) or all((doc_type, v) in retired for v in versions):
        raise DirectoryError(f"{doc_type} 的最新版本不能停用；请先发布新版本 / the newest "
                             f"version of {doc_type} stays in use; publish a new one first")
    directory = directory_db(server)
    doc_id = f"{RETIRED_SCHEMA}:{doc_type}.v{version}"
    if doc_id not in directory:
        directory.save({"_id": doc_id, "retired_at": _now()})


def restore_schema(server: couchdb.Server, doc_type: str, version: int) -> bool:
    """Accept a retired form again; False if it was not retired."""
    directory = directory_db(server)
    doc = directory.get(f"{RETIRED_SCHEMA}:{doc_type}.v{version}")
    if doc is None:
        return False
    directory.delete(doc)
    return True
