"""Who reads personal data unmasked, where, and the audit line each such read leaves.

A grid database holds the grid's households and persons unmasked: full ID numbers, phones and
special groups. Replication cannot mask them (a masked copy under the store's own `_rev` would
differ from the server's copy for ever, and could be written back over the real values), so a
grid database is replicated, unmasked, only to those whose work needs it:

- a worker, in the grids assigned to them: door-to-door work needs the records offline;
- a supervisor or admin given the `unmask` right (`linli user grant NAME unmask`).

Supervisors and admins without the right read records only through `/api/`, which masks them
(server/domain/masking.py: ID numbers `330***********005X`, phones `139****1234`, special groups
hidden); their `/couch/` requests to a grid database that could return a record answer `403`;
the database's info, writes (answered with ids and revisions), `_revs_diff`, `_changes` and
`_all_docs` without documents and their own checkpoints still work, and admins keep the
maintenance calls (`_security`, `_compact`, design documents...).

Every read that can return a record's body, through `/couch/` or `/api/`, is written to the
`linli.audit` log: who, what, and why (the ground the server let it through on, and the
purpose the client gave, `?purpose=` or the `X-Linli-Purpose` header)."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from server import errors
from server.domain.masking import UNMASK, sees_grid_unmasked
from server.domain.scope import DbAccess, User

audit = logging.getLogger("linli.audit")

PURPOSE_HEADER = "X-Linli-Purpose"
MAX_PURPOSE_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")

# What a supervisor or admin without the right may still ask of a grid database: nothing that
# returns a record. Admins keep the maintenance calls.
MASKLESS_ADMIN_CALLS = frozenset({"_security", "_compact", "_view_cleanup", "_revs_limit",
                                  "_ensure_full_commit", "_index"})
# No record body comes back from these (writes answer ids and revisions only).
NO_BODY_ENDPOINTS = frozenset({"_local", "_revs_diff", "_bulk_docs", "_missing_revs"})


def ground(user: User) -> str:
    """Why the server lets this user read unmasked: the reason written to the audit log."""
    if user.may(UNMASK):
        return f"{user.role} with the unmask right"
    if user.role == "worker":
        return "worker of the grid (door-to-door work)"
    return "no right"


def purpose(request: web.Request) -> str:
    """The purpose the client gave, one line and bounded, so it cannot forge audit lines."""
    given = request.query.get("purpose") or request.headers.get(PURPOSE_HEADER) or ""
    return _CONTROL.sub(" ", given)[:MAX_PURPOSE_CHARS].strip() or "not given"


def audit_unmasked(request: web.Request, user: User, what: str) -> None:
    """One audit line for a read that returned (or may return) personal data unmasked."""
    audit.info("%s read UNMASKED %s; why: %s; purpose: %r", user.name, what, ground(user),
               purpose(request))


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def record_read(request: web.Request, rest: list[str]) -> str | None:
    """What a request to a grid database reads of its records, or None when it can return no
    record body (the database's info, `_revs_diff`, checkpoints, `_changes` without documents,
    a design document)."""
    method = request.method
    if not rest:
        return None
    head = rest[0]
    docs = _truthy(request.query.get("include_docs"))
    if head in NO_BODY_ENDPOINTS or head in MASKLESS_ADMIN_CALLS:
        return None
    if head in ("_changes", "_all_docs"):
        return f"{head} with documents" if docs else None
    if head == "_design":
        return None if len(rest) == 2 else "/".join(rest)  # a view's keys may be personal
    if head.startswith("_design/"):
        return None if len(rest) == 1 else "/".join(rest)
    if head.startswith("_"):  # an admin's call relayed as it came (_find, _design_docs...)
        return head if method in ("GET", "HEAD", "POST") else None
    if method not in ("GET", "HEAD"):
        return None
    if len(rest) == 1:
        return f"record {head!r}" + (" (open_revs)" if "open_revs" in request.query else "")
    return f"attachment {'/'.join(rest[1:])!r} of record {head!r}"


def refuse_masked_reader(request: web.Request, user: User, access: DbAccess,
                         rest: list[str]) -> None:
    """A supervisor or admin without the `unmask` right reaches a grid database only for what
    returns no record: its info and, for admins, maintenance. Anything else is refused (403),
    and the refusal audited: they read the grid's records masked, through `/api/`."""
    if access.raw or sees_grid_unmasked(user) or returns_no_record(request, rest):
        return
    if user.is_admin and rest and _is_maintenance(request, rest):
        return
    audit.info("%s was refused /couch/%s/%s (no unmask right)", user.name, access.db,
               "/".join(rest)[:200])
    raise errors.forbidden(
        "您没有查看完整身份证号、电话和特殊人群信息的权限，不能同步网格数据库；"
        "请在审核、冲突和统计页面查看（已遮盖），或请管理员授权",
        "Without the right to see ID numbers, phones and special groups you cannot replicate "
        "a grid database; read its records masked through /api/ (review, conflicts, "
        "aggregates, exports) or ask an admin for the right.")


def returns_no_record(request: web.Request, rest: list[str]) -> bool:
    """Requests whose answer holds no record: the database's info, writes (answered with ids
    and revisions; refusals never repeat a value), `_revs_diff`, `_changes` and `_all_docs`
    without documents (a selector, which could probe a value, is refused in server/sync/filters.py)
    and the user's own checkpoints.
    A supervisor without the right may still delete or push, as before."""
    method = request.method
    if not rest:
        return method in ("GET", "HEAD", "POST")
    head = rest[0]
    if head in ("_bulk_docs", "_revs_diff"):
        return method == "POST"
    if head in ("_changes", "_all_docs") and len(rest) == 1:  # ids and revisions only
        return not _truthy(request.query.get("include_docs"))
    if head in ("_local", "_security"):  # checkpoints; who may reach it (admins only)
        return True
    return not head.startswith("_") and method in ("PUT", "DELETE")


def _is_maintenance(request: web.Request, rest: list[str]) -> bool:
    head = rest[0]
    if head in MASKLESS_ADMIN_CALLS and len(rest) == 1:
        return True
    design_doc = (head == "_design" and len(rest) == 2) or (
        head.startswith("_design/") and len(rest) == 1)
    return design_doc


def audit_grid_read(request: web.Request, user: User, access: DbAccess,
                    rest: list[str]) -> None:
    """The audit line of a `/couch/` read that returns a grid's records unmasked (the caller
    has already refused those who may not)."""
    if access.raw:
        return
    what = record_read(request, rest)
    if what is not None:
        audit_unmasked(request, user, f"{what} in {access.db} via /couch/")
