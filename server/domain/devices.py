"""Devices (设备): each login of a staff member opens a session, and the session is the device
that holds it (a phone, a browser). An admin lists a user's devices and revokes a lost one.

Rules:
1. A login writes `device:<user>:<device id>` in the directory: who, when, and the browser's
   own description (User-Agent, cleaned and cut). The device id is derived from the session
   id, so the list names devices without showing anything a cookie is made of.
2. Only an admin lists a user's devices and revokes one; a device is revoked once (a second
   revocation is 409), and only under the user it belongs to (another's is 404).
3. A revoked device's session ends at once (as a logout, on every server process), and every
   request that still carries its cookie, on any route but the login, is refused (401) with
   `X-Linli-Revoked: 1`: the app then wipes what the phone holds (every IndexedDB database,
   its caches, its remembered login) and says why (pwa/revoke.js).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from server.domain.messages import refused
from server.domain.scope import DEVICE

REVOKED_HEADER = "X-Linli-Revoked"
AGENT_CHARS = 200  # a User-Agent is ~150 characters; the rest would only fill the directory
DEVICE_ID = re.compile(r"^[0-9a-f]{24}$")
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def device_id(session: str) -> str:
    return hashlib.sha256(f"device:{session}".encode()).hexdigest()[:24]


def doc_id(user: str, device: str) -> str:
    return f"{DEVICE}:{user}:{device}"


def device_doc(user: str, session: str, at: str, agent: str) -> dict[str, Any]:
    """The directory's record of a login (rule 1)."""
    return {"_id": doc_id(user, device_id(session)), "type": DEVICE, "user": user,
            "session": session, "since": at, "agent": UNPRINTABLE.sub("", agent)[:AGENT_CHARS]}


def check_revocable(found: Mapping[str, Any] | None, user: str) -> None:
    """Rule 2: the device exists, is the user's, and is not revoked yet."""
    if found is None or found.get("user") != user:
        raise refused(404, "not_found", "没有这台设备", "No such device.")
    if found.get("revoked_at"):
        raise refused(409, "conflict", "这台设备已被停用", "This device is revoked already.")


def revoked(found: Mapping[str, Any], by: str, at: str) -> dict[str, Any]:
    return {**found, "revoked_at": at, "revoked_by": by}


def shown(found: Mapping[str, Any]) -> dict[str, Any]:
    """A device as the admin sees it: never its session."""
    return {"id": str(found["_id"]).rsplit(":", 1)[-1], "since": found.get("since"),
            "agent": found.get("agent", ""), "revoked_at": found.get("revoked_at"),
            "revoked_by": found.get("revoked_by")}


def revoked_session(found: Mapping[str, Any]) -> str | None:
    """The session a device document revokes, if it does (rule 3)."""
    session = found.get("session")
    return session if found.get("revoked_at") and isinstance(session, str) else None
