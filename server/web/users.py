"""Staff accounts for the admin's screen (用户管理): the list, and disable, enable or remove one,
as `linli user disable|enable|remove` do (the rule is server/domain/accounts.py). This process
takes the change into its directory before answering, so the account's next request here is
refused at once; every other process follows the directory's feed within a second."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from aiohttp import web

from server import errors
from server.domain.accounts import ACCOUNT_ACTIONS, changed_account, new_session_salt
from server.domain.reports import DEPARTMENTS
from server.domain.scope import DIRECTORY_DB, ROLES, User
from server.errors import json_response
from server.store.couch import Conflict, NotFound, db_path
from server.web.guard import require_user
from server.web.keys import COUCH, DIRECTORY

audit = logging.getLogger("linli.audit")
# Every account but a resident's, as `linli user` covers them: derived, so that a new role is
# not forgotten here. Residents are managed in their own rooms (docs/residents.md).
STAFF_ROLES = tuple(r for r in ROLES if r != "resident")


def require_admin(request: web.Request) -> User:
    user = require_user(request)
    if not user.is_admin or user.disabled:
        raise errors.forbidden("只有管理员可以管理用户", "Only an admin manages users.")
    return user


def account_view(user: User, request: web.Request) -> dict[str, Any]:
    """One account as the screen shows it: scope by name, state in words."""
    directory = request.app[DIRECTORY]
    scope = ([directory.area_name("grid", g) or g for g in sorted(user.grids)]
             + [directory.area_name("community", c) or c for c in sorted(user.communities)]
             + [directory.area_name("street", s) or s for s in sorted(user.streets)]
             + ([DEPARTMENTS.get(user.department, (user.department,))[0]]
                if user.department else [])
             + [c.removeprefix("property_company:") for c in sorted(user.companies)]
             + ([f"邻里中心 {user.provider}"] if user.provider else []))
    state = "removed" if user.removed else "disabled" if user.disabled else "active"
    return {"name": user.name, "full_name": user.shown_name, "role": user.role, "scope": scope,
            "state": state,
            "rights": sorted(user.rights)}


async def list_accounts(request: web.Request) -> web.Response:
    require_admin(request)
    users = sorted((u for u in request.app[DIRECTORY].users.values()
                    if u.role in STAFF_ROLES), key=lambda u: (u.removed, u.role, u.name))
    return json_response({"users": [account_view(u, request) for u in users]},
                         headers={"Cache-Control": "no-store"})


async def change(request: web.Request) -> web.Response:
    """`POST /api/users/{name}/{action}`: disable, enable or remove a staff account."""
    admin = require_admin(request)
    name, action = request.match_info["name"], request.match_info["action"]
    if action not in ACCOUNT_ACTIONS:
        raise errors.bad_request(f"操作应为 {'、'.join(ACCOUNT_ACTIONS)}",
                                 f"The action must be one of {', '.join(ACCOUNT_ACTIONS)}.")
    if name == admin.name and action != "enable":
        raise errors.forbidden("不能停用或删除自己的账号", "You cannot disable or remove yourself.")
    couch = request.app[COUCH]
    path = db_path(DIRECTORY_DB, f"user:{name}")
    try:
        doc = await couch.get(path)
    except NotFound:
        doc = None
    if doc is None or doc.get("type") != "user" or doc.get("role") not in STAFF_ROLES:
        raise errors.doc_not_found(errors.bilingual(f"没有用户 {name}", f"No user {name}."))
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    changed = changed_account(doc, action, now, new_session_salt())
    try:
        answer = await couch.put(path, changed)
    except Conflict:
        raise errors.CouchError(409, "conflict", errors.bilingual(
            "这个账号刚被修改，请刷新后再试", "The account just changed; reload and try again.")
        ) from None
    request.app[DIRECTORY].apply({**changed, "_rev": answer.get("rev")})
    audit.info("%s %sd user %s", admin.name, action, name)
    return json_response({"ok": True, "user": account_view(User.from_doc(changed), request)})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/users", list_accounts)
    # braces and all: a probe of the template is refused like any other request (401/403)
    app.router.add_post("/api/users/{name:[^/]+}/{action:[^/]+}", change)
