"""Reveals over HTTP: the reason a holder of the `unmask` right gives to see a record's
sensitive fields or export them unmasked, and the admin's audit of them (`/api/audit`).

The rules are server/domain/reveals.py's; the store side, append-only, server/sync/reveals.py.
A record read with `unmask=1` needs a reason (`reason=`, `reason_text=`) unless the same user's
reveal of the same record still holds; an export with `unmask=1` always needs one."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from server.domain import reveals as rules
from server.domain.exports import safe_row
from server.domain.masking import sensitive_fields
from server.domain.scope import User
from server.errors import json_response
from server.sync import reveals as store
from server.web.guard import require_role
from server.web.keys import CONFIG, COUCH

MAX_LISTED = 1000  # entries one page of the admin's list shows, newest first


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def given_reason(request: web.Request) -> tuple[str, str] | None:
    """The reason the request gives, None when it gives none (refused when it gives a bad one)."""
    query = request.query
    if not (query.get("reason") or query.get("purpose")):
        return None
    return rules.reason_of(query)


def required_reason(request: web.Request) -> tuple[str, str]:
    """The reason an unmasked export must give (400 without one)."""
    return rules.reason_of(request.query)


async def reveal_before_read(request: web.Request, user: User, grid: str,
                             record: str) -> tuple[tuple[str, str] | None, str | None]:
    """Before a record is read unmasked: the reason to record after the read, or else until
    when this user's reveal of it still holds. Refused (400) when neither."""
    reason = given_reason(request)
    if reason is not None:
        return reason, None
    latest = await store.latest(request.app[COUCH], user.name, grid, record)
    if not rules.active(latest, now()):
        rules.reason_of({})  # raises: a reason is needed
    return None, str(latest["until"]) if latest else None


async def record_reveal(request: web.Request, user: User, *, kind: str, grid: str,
                        record: str, fields: Iterable[str],
                        reason: tuple[str, str]) -> dict[str, Any]:
    """Write the audit entry of one reveal (who, whom, which fields, why, when, until)."""
    found = rules.entry(user=user.name, role=user.role, kind=kind, grid=grid, record=record,
                        fields=fields, reason=reason, now=now(),
                        minutes=request.app[CONFIG].reveal_minutes)
    await store.append(request.app[COUCH], found)
    return found


def revealed_fields(record: Mapping[str, Any]) -> list[str]:
    """The sensitive fields a record holds: what a reveal of it shows."""
    return sorted(sensitive_fields(record.get("type")) & set(record))


def require_admin(request: web.Request) -> User:
    return require_role(request, ("admin",), "只有管理员可以查看审计记录",
                        "Only admins may read the audit of reveals.")


def filters(request: web.Request) -> dict[str, str]:
    """The admin's filters, as given (each one line, bounded)."""
    return {name: str(request.query.get(name, ""))[:200] for name in rules.FILTERS}


async def listed(request: web.Request) -> list[dict[str, Any]]:
    wanted = filters(request)
    found = [entry async for entry in store.entries(request.app[COUCH], wanted)]
    return sorted(found, key=lambda e: str(e.get("at", "")), reverse=True)


async def audit_list(request: web.Request) -> web.Response:
    """The reveals, newest first, filtered by `user`, `record`, `reason`, `kind`, `since` and
    `until` (UTC times, as the entries give them)."""
    require_admin(request)
    found = await listed(request)
    return json_response({"entries": found[:MAX_LISTED], "total": len(found),
                          "reasons": {k: list(v) for k, v in rules.REASONS.items()}})


async def audit_export(request: web.Request) -> web.Response:
    """The same list as a CSV file, every cell safe for a spreadsheet."""
    user = require_admin(request)
    found = await listed(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(rules.HEADER)
    for entry in found:
        writer.writerow(safe_row(rules.row(entry)))
    store.audit.info("%s exported the audit of reveals (%d entries)", user.name, len(found))
    return web.Response(body=("\ufeff" + out.getvalue()).encode(), content_type="text/csv",
                        charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


def setup(app: web.Application, prefix: str) -> None:
    app.router.add_get(prefix + "/audit", audit_list)
    app.router.add_get(prefix + "/audit/export", audit_export)
