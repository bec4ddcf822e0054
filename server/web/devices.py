"""A user's devices (设备) over HTTP, for the admin: the list, and the revocation of a lost
one, which ends its session at once and has the phone wipe itself at its next contact. The
rules are server/domain/devices.py's."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import time

from aiohttp import web

from server.domain import devices as rules
from server.domain.scope import DIRECTORY_DB
from server.errors import json_response
from server.store.couch import Conflict, NotFound, db_path
from server.web.auth import ended_session_doc
from server.web.keys import AUTH, COUCH, DIRECTORY
from server.web.users import require_admin

audit = logging.getLogger("linli.audit")
DEVICES_SHOWN = 100  # the newest logins of one user the list shows


async def list_devices(request: web.Request) -> web.Response:
    """A user's devices, newest login first (rule 2)."""
    require_admin(request)
    name = request.match_info["name"]
    prefix = rules.doc_id(name, "")
    page = await request.app[COUCH].get(
        db_path(DIRECTORY_DB, "_all_docs"), include_docs="true",
        startkey=json.dumps(prefix), endkey=json.dumps(prefix + "\ufff0"))
    found = [r["doc"] for r in page.get("rows", []) if isinstance(r.get("doc"), dict)]
    found.sort(key=lambda d: str(d.get("since")), reverse=True)
    return json_response({"user": name,
                          "devices": [rules.shown(d) for d in found[:DEVICES_SHOWN]]})


async def revoke_device(request: web.Request) -> web.Response:
    """Revoke one device (rules 2 and 3): its session ends here at once and, through the
    directory, on every server process; its next request is told to wipe."""
    admin = require_admin(request)
    name, device = request.match_info["name"], request.match_info["device"]
    couch, directory = request.app[COUCH], request.app[DIRECTORY]
    found = None
    if rules.DEVICE_ID.match(device):
        try:
            found = await couch.get(db_path(DIRECTORY_DB, rules.doc_id(name, device)))
        except NotFound:
            found = None
    rules.check_revocable(found, name)
    assert found is not None
    at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    done = rules.revoked(found, admin.name, at)
    done["_rev"] = (await couch.put(db_path(DIRECTORY_DB, done["_id"]), done))["rev"]
    directory.apply(done)
    session = str(found["session"])
    expires = time.time() + request.app[AUTH].session_seconds
    directory.ended_sessions[session] = expires
    ended = ended_session_doc(session, name, expires)
    with contextlib.suppress(Conflict):  # logged out already: the revocation still counts
        await couch.put(db_path(DIRECTORY_DB, ended["_id"]), ended)
    audit.info("%s revoked device %s of %s", admin.name, device, name)
    return json_response({"ok": True, "device": rules.shown(done)})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/users/{name:[^/]+}/devices", list_devices)
    app.router.add_post("/api/users/{name:[^/]+}/devices/{device:[^/]+}/revoke", revoke_device)
