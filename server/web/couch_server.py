"""The CouchDB server's own endpoints at `/couch/` (routing.py names them): the welcome, the
session (CouchDB's login and logout), `_all_dbs`, `_uuids` and `_up`. Each answers as CouchDB
does, so a PouchDB client or a CouchDB tool finds what it expects."""

from __future__ import annotations

import contextlib
import datetime
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from server import errors
from server.domain import devices
from server.domain.scope import DIRECTORY_DB, User
from server.store.couch import Conflict, db_path
from server.web.auth import SESSION_COOKIE, ended_session_doc, new_session_id
from server.web.guard import client_address, require_user, secure_cookie
from server.web.keys import AUTH, COUCH, DIRECTORY, INSTALLATION, SESSION, USER
from server.web.parsing import json_answer, pick, read_object

COUCHDB_VERSION = "3.3.3"  # the CouchDB API the gateway speaks
MAX_UUIDS = 1000


async def welcome(request: web.Request) -> web.Response:
    return json_answer({"couchdb": "Welcome", "version": COUCHDB_VERSION,
                        "uuid": request.app[INSTALLATION].uuid,
                        "vendor": {"name": "Linli 邻里"}, "features": []})


async def unknown_endpoint(request: web.Request) -> web.Response:
    """Any other server endpoint, or method: a 401 to a stranger, a 404 to a user."""
    require_user(request)
    raise errors.doc_not_found()


async def all_dbs(request: web.Request) -> web.Response:
    user = require_user(request)
    every_db = await request.app[COUCH].get("/_all_dbs")
    return json_answer(request.app[DIRECTORY].visible_dbs(user, every_db))


async def uuids(request: web.Request) -> web.Response:
    require_user(request)
    count = pick(request.query, frozenset({"count"})).get("count", "1")
    if int(count) > MAX_UUIDS:
        raise errors.bad_request(f"一次最多 {MAX_UUIDS} 个", f"count must be at most "
                                 f"{MAX_UUIDS}.")
    return json_answer({"uuids": [uuid.uuid4().hex for _ in range(int(count))]})


async def up(request: web.Request) -> web.Response:
    await request.app[COUCH].get("/")
    return json_answer({"status": "ok"})


def user_context(user: User | None) -> dict[str, Any]:
    if user is None:
        return {"name": None, "roles": []}
    return {"name": user.name, "roles": (["_admin"] if user.is_admin else []) + [user.role]}


async def session_info(request: web.Request) -> web.Response:
    user = request.get(USER)
    method = "cookie" if SESSION_COOKIE in request.cookies and user else (
        "default" if user else None)
    info: dict[str, Any] = {"authentication_handlers": ["cookie", "default"]}
    if method:
        info["authenticated"] = method
    return json_answer({"ok": True, "userCtx": user_context(user), "info": info})


async def login(request: web.Request) -> web.Response:
    """A name and password, as a form or JSON; the answer sets the cookie. (A login from
    another site was refused before this: guard.py.)"""
    if request.content_type == "application/x-www-form-urlencoded":
        raw = await request.read()
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    else:
        form = await read_object(request)
    name, password = form.get("name", form.get("username")), form.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name:
        raise errors.bad_request("请输入用户名和密码", "A name and a password are required.")
    auth = request.app[AUTH]
    user = await auth.check_password(name, password, client_address(request))
    response = json_answer({"ok": True, "name": user.name, "roles": user_context(user)["roles"]})
    session = new_session_id()
    if user.role != "resident":  # a staff member's phone can be revoked (domain/devices.py)
        at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        doc = devices.device_doc(user.name, session, at, request.headers.get("User-Agent", ""))
        await request.app[COUCH].put(db_path(DIRECTORY_DB, doc["_id"]), doc)
    auth.set_cookie(response, request, user, secure=secure_cookie(request), session=session)
    return response


async def logout(request: web.Request) -> web.Response:
    """Log a session out for every server process: refused here at once, and stored in the
    directory, whose changes feed every process follows (within a second). If the store
    cannot take it, the logout fails (503) rather than pretend: the cookie would still work
    elsewhere."""
    auth, session = request.app[AUTH], request.get(SESSION)
    if session is not None:
        expires = time.time() + auth.session_seconds  # every copy has lapsed by then
        request.app[DIRECTORY].ended_sessions[session.id] = expires
        doc = ended_session_doc(session.id, session.user.name, expires)
        with contextlib.suppress(Conflict):  # already logged out (twice, or elsewhere)
            await request.app[COUCH].put(db_path(DIRECTORY_DB, doc["_id"]), doc)
    response = json_answer({"ok": True})
    auth.clear_cookie(response)
    return response
