"""Reveals (查看敏感信息): a holder of the `unmask` right sees one record's sensitive fields, or
exports them, only by giving a typed reason, and each such act is one audit entry (审计记录).

Rules:
1. A reason is one of REASONS: 核实身份 (verify_identity), 入户走访 (home_visit), or 其他 (other)
   with a text of its own (2 to 200 characters, one line). Nothing else reveals.
2. A reveal covers one record (or one export) and lasts `reveal_minutes` (a setting): within it
   the same user may read the same record unmasked again without a new reason; after it, the
   record is masked again.
3. An entry says who, whom (the record, or the grids exported), which fields, why and when, and
   is written once: its id is new each time, and no route of the app updates or deletes it
   (the audit database is internal, server/sync/reveals.py).
4. The admin's list filters by user, record, reason and time, newest first.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain.messages import refused

# code -> (zh, en): the reasons a person may give.
REASONS: Mapping[str, tuple[str, str]] = {
    "verify_identity": ("核实身份", "Verify identity"),
    "home_visit": ("入户走访", "Home visit"),
    "other": ("其他", "Other"),
}
MIN_TEXT, MAX_TEXT = 2, 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
ENTRY_PREFIX = "reveal:"
KINDS = ("record", "export")
# What the admin's list filters by (query parameters), each compared exactly or as a range.
FILTERS = ("user", "record", "reason", "kind", "since", "until")


def reason_of(query: Mapping[str, str]) -> tuple[str, str]:
    """The (code, text) of the reason a request gives (`reason=`, `reason_text=`), refused
    with a message the person can act on when it is missing or not one of REASONS. `purpose=`
    (the older free text) is taken as 其他 with that text."""
    code = query.get("reason") or ("other" if query.get("purpose") else "")
    text = query.get("reason_text") or (query.get("purpose") if code == "other" else "") or ""
    if code not in REASONS:
        raise refused(400, "bad_request",
                      "查看敏感信息须选择理由：核实身份、入户走访，或其他（写明理由）",
                      "Seeing sensitive data needs a reason: verify_identity, home_visit, or "
                      "other with a text.")
    text = " ".join(_CONTROL.sub(" ", str(text)).split())
    if code == "other" and not MIN_TEXT <= len(text) <= MAX_TEXT:
        raise refused(400, "bad_request", f"选择“其他”时请写明理由（{MIN_TEXT}到{MAX_TEXT}个字）",
                      f"With “other”, write the reason ({MIN_TEXT} to {MAX_TEXT} characters).")
    return code, text if code == "other" else ""


def subject_key(user: str, grid: str, record: str) -> str:
    """The part of an entry's id that names who revealed what, so the latest reveal of a
    record by a user is one range read (ids sort by time within it)."""
    return hashlib.sha256(f"{user}\0{grid}\0{record}".encode()).hexdigest()[:24]


def stamp(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry(*, user: str, role: str, kind: str, grid: str, record: str,
          fields: Iterable[str], reason: tuple[str, str], now: datetime.datetime,
          minutes: float) -> dict[str, Any]:
    """One audit entry, new: who, whom, which fields, why, when, and until when it holds."""
    until = now + datetime.timedelta(minutes=minutes)
    code, text = reason
    return {
        "_id": f"{ENTRY_PREFIX}{subject_key(user, grid, record)}:{stamp(now)}:"
               f"{uuid.uuid4().hex[:8]}",
        "type": "reveal", "kind": kind, "user": user, "role": role, "grid": grid,
        "record": record, "fields": sorted(set(fields)), "reason": code,
        "reason_label": REASONS[code][0], "reason_text": text,
        "at": stamp(now), "until": stamp(until)}


def active(latest: Mapping[str, Any] | None, now: datetime.datetime) -> bool:
    """Whether the latest reveal of a record still holds."""
    return latest is not None and str(latest.get("until", "")) > stamp(now)


def matches(found: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    """Whether an entry passes the admin's filters (rule 4)."""
    for name in ("user", "record", "reason", "kind"):
        if wanted.get(name) and found.get(name) != wanted[name]:
            return False
    at = str(found.get("at", ""))
    return not ((wanted.get("since") and at < wanted["since"])
                or (wanted.get("until") and at > wanted["until"] + "\uffff"))


HEADER = ["时间 When", "用户 User", "角色 Role", "类别 Kind", "网格 Grid", "对象 Whom",
          "字段 Fields", "理由 Reason", "说明 Text", "有效至 Until"]


def row(found: Mapping[str, Any]) -> list[Any]:
    """One entry as a row of the audit's export."""
    return [found.get("at"), found.get("user"), found.get("role"), found.get("kind"),
            found.get("grid"), found.get("record"), ",".join(found.get("fields", [])),
            found.get("reason_label"), found.get("reason_text"), found.get("until")]
