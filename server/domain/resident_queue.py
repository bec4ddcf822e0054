"""The grid worker's side of residents (网格员的居民工作): the sign-up queue (待核实), activation
codes (激活码), removing a resident who moved out (迁出移除) and answering corrections (更正申请),
as rules on what a worker's or supervisor's phone may write. The gateway checks them after the
schema, against the revision the write starts from (`stored`, None for a new record), for
every staff write of these types (`staff_problem`); the server's own writes are its own.

1. A sign-up is made by the server only. Staff move a pending one, once, to activated (a
   household of the grid and a role: owner, tenant or family) or declined (with a reason),
   signing it (`decided_by` the writer, `decided_at`). What the resident typed and what the
   matcher found never change under them; a decision is final.
2. Two phones deciding one sign-up offline: the decision the server received first stands,
   whole (`server/domain/merging.py`, `first_received`), and each phone is told by the
   resolution. The resident link follows the standing decision: the server writes it, once,
   only for a sign-up without conflicting revisions (`door_link`); its id is fixed by the
   account and household, so a second writer finds it written.
3. A resident link is made by the server only (automatically, after a decision at the door,
   or by code). Staff may only remove one (the resident moved out): status `removed` with the
   time and a reason, nothing else changed; a removal is final and logged.
4. An activation code is made by staff for a household of the grid, unused and active, not
   dated in the future. Staff may then only revoke it; `used_by` and `used_at` are the
   server's (a resident redeemed it); a used or revoked code changes no more.
5. A correction request is answered as `resident_writes.answer_problem` says. What a resident
   may ask to correct (`CORRECTABLE`): named fields of their household and its members, never
   the worker's bookkeeping; an accepted change is made on the record by the answering phone
   (`apply_change`), through the same validation as any edit of the record.
6. None of these is deleted by staff once the server holds it: the acts stay on record.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from server.domain.activation import ALPHABET, CODE_LENGTH, resident_link
from server.domain.resident_writes import answer_problem, field_problem
from server.domain.rules import Problem
from server.domain.text import text_problem

STAFF_ROLES = ("worker", "supervisor")
QUEUE_TYPES = ("signup", "resident", "activation_code", "correction_request")
# A sign-up's decision: what staff fill in. Everything else is what the resident typed and the
# matcher found.
DECISION = ("status", "household", "role", "decided_by", "decided_at", "decline_reason")
REMOVAL = ("status", "removed_at", "removed_reason")
# Phones are told their own time: a code dated further ahead is a wrong clock, not a code.
CLOCK_SLACK = timedelta(minutes=5)
ROLES = ("owner", "tenant", "family")
REASON_CHARS = 500  # a reason the resident may read: plain text, a few sentences
# What a resident may ask to correct, by record type: facts of the household and its people
# that the resident knows better than the registry. JSON pointers, as a correction names them.
CORRECTABLE: dict[str, tuple[str, ...]] = {
    "household": ("/head_name", "/phone", "/tenure", "/area_m2", "/vehicles", "/pets"),
    "person": ("/name", "/sex", "/birth_year", "/birth_month", "/id_number", "/phone",
               "/relationship", "/registration_place", "/education", "/marital_status",
               "/employment"),
}
LABELS: dict[str, tuple[str, str]] = {
    "status": ("状态", "Status"),
    "household": ("住户", "Household"),
    "role": ("身份", "Role"),
    "decided_by": ("处理人", "Decided by"),
    "decided_at": ("处理时间", "Decided at"),
    "decline_reason": ("未通过原因", "Reason for declining"),
    "removed_at": ("移除时间", "Removed at"),
    "removed_reason": ("移除原因", "Reason for removal"),
    "used_by": ("使用人", "Used by"),
    "used_at": ("使用时间", "Used at"),
    "created_at": ("生成时间", "Created at"),
    "code": ("激活码", "Activation code"),
    "record": ("记录", "Record"),
    "field": ("字段", "Field"),
    "proposed": ("应改为", "Proposed value"),
}


def _problem(name: str, code: str, zh: str, en: str) -> Problem:
    return field_problem(name, code, zh, en, LABELS)


def _refusal(code: str, zh: str, en: str) -> Problem:
    return Problem("", code, zh, en)


def _changed(doc: Mapping[str, Any], stored: Mapping[str, Any],
             allowed: tuple[str, ...]) -> str | None:
    """The first field outside `allowed` that differs between the two (device_time aside: a
    phone stamps its own save)."""
    names = sorted({k for k in (*doc, *stored) if not k.startswith("_")} - {"device_time"})
    return next((n for n in names if n not in allowed and doc.get(n) != stored.get(n)), None)


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not unicodedata.normalize("NFKC", value).strip()


def deletion_problem(doc_id: str) -> Problem | None:
    """Rule 6: what residents' records hold is never deleted by staff once the server has it
    (a removal, a decline, a revoked code or an answer keeps the act on record)."""
    if doc_id.partition(":")[0] not in QUEUE_TYPES:
        return None
    return _refusal("kept", "居民的记录不能删除：请移除、不通过、作废或答复",
                    "Residents' records are not deleted: remove, decline, withdraw or answer "
                    "instead")


def staff_problem(doc: Mapping[str, Any], stored: Mapping[str, Any] | None, writer: str,
                  households: frozenset[str], now: datetime) -> Problem | None:
    """Rules 1 and 3-5 for a worker's or supervisor's write of a queue type (its schema and
    authorship already checked). `households`: the ids among those `doc` names that the grid
    holds; `now`: the server's clock."""
    doc_type = doc.get("type")
    if doc_type == "signup":
        return signup_problem(doc, stored, writer, households)
    if doc_type == "resident":
        return removal_problem(doc, stored)
    if doc_type == "activation_code":
        return code_problem(doc, stored, households, now)
    if doc_type == "correction_request":
        return answer_problem(doc, stored, writer)
    return None


def signup_problem(doc: Mapping[str, Any], stored: Mapping[str, Any] | None, writer: str,
                   households: frozenset[str]) -> Problem | None:
    """Rule 1."""
    if stored is None:
        return _refusal("signup_by_server", "居民注册申请只能由居民提交，网格员只能核实或不通过",
                        "Sign-ups are made by residents; staff confirm or decline them")
    name = _changed(doc, stored, DECISION)
    if name is not None:
        return _problem(name, "signup_changed", "是居民填写或系统匹配的内容，不能修改",
                        "is what the resident typed or the matching found; it cannot change")
    if _changed(doc, stored, ()) is None:
        return None
    if stored.get("status") != "pending":
        return _problem("status", "signup_decided", "已处理，不能再修改",
                        "the sign-up has been decided; it cannot change")
    status = doc.get("status")
    if status not in ("activated", "declined"):
        return _problem("status", "signup_status", "应为已激活或未通过",
                        "must be activated or declined")
    if doc.get("decided_by") != writer:
        return _problem("decided_by", "decided_by", f"应为处理人本人 {writer}",
                        f"must be the one deciding, {writer!r}")
    if not doc.get("decided_at"):
        return _problem("decided_at", "required", "必须填写", "is required")
    if status == "declined":
        if _blank(doc.get("decline_reason")):
            return _problem("decline_reason", "required", "必须填写", "is required")
        return text_problem(doc["decline_reason"], "/decline_reason", LABELS["decline_reason"],
                            max_chars=REASON_CHARS, paragraphs=True)
    if doc.get("household") not in households:
        return _problem("household", "not_in_grid", "不是本网格的住户",
                        "is not a household of this grid")
    if doc.get("role") not in ROLES:
        return _problem("role", "required", "必须选择（业主、租户或家庭成员）",
                        "must be chosen (owner, tenant or family member)")
    if "decline_reason" in doc:
        return _problem("decline_reason", "not_declined", "只在未通过时填写",
                        "is only given when declining")
    return None


def removal_problem(doc: Mapping[str, Any], stored: Mapping[str, Any] | None) -> Problem | None:
    """Rule 3."""
    if stored is None:
        return _refusal("link_by_server", "居民关联由系统建立（自动匹配、上门核实或激活码）",
                        "Resident links are made by the server (matching, a decision at the "
                        "door, or a code)")
    if _changed(doc, stored, ()) is None:
        return None
    if stored.get("status") == "removed":
        return _problem("status", "removed", "已移除，不能再修改",
                        "the resident has been removed; the link cannot change")
    name = _changed(doc, stored, REMOVAL)
    if name is not None or doc.get("status") != "removed":
        return _problem(name or "status", "removal_only", "网格员只能移除居民（迁出）",
                        "staff may only remove a resident (moved out)")
    if _blank(doc.get("removed_reason")):
        return _problem("removed_reason", "required", "必须填写", "is required")
    return text_problem(doc["removed_reason"], "/removed_reason", LABELS["removed_reason"],
                        max_chars=REASON_CHARS, paragraphs=True)


def code_problem(doc: Mapping[str, Any], stored: Mapping[str, Any] | None,
                 households: frozenset[str], now: datetime) -> Problem | None:
    """Rule 4."""
    for name in ("used_by", "used_at"):
        if name in doc and (stored is None or doc.get(name) != stored.get(name)):
            return _problem(name, "server_only", "由系统在居民激活时填写",
                            "is filled in by the server when a resident activates")
    if stored is None:
        if doc.get("status", "active") != "active":
            return _problem("status", "new_code", "新生成的激活码应为有效", "a new code is active")
        if doc.get("household") not in households:
            return _problem("household", "not_in_grid", "不是本网格的住户",
                            "is not a household of this grid")
        made = _time(doc.get("created_at"))
        if made is None or made > now + CLOCK_SLACK:
            return _problem("created_at", "future", "晚于服务器时间，请检查手机时钟",
                            "is later than the server's clock; check the phone's clock")
        return None
    if _changed(doc, stored, ()) is None:
        return None
    if stored.get("used_by") or stored.get("status") == "revoked":
        return _problem("status", "code_final", "激活码已使用或已作废，不能再修改",
                        "the code has been used or withdrawn; it cannot change")
    name = _changed(doc, stored, ("status",))
    if name is not None or doc.get("status") != "revoked":
        return _problem(name or "status", "revoke_only", "激活码生成后只能作废",
                        "a code, once made, can only be withdrawn")
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def valid_code(text: Any) -> bool:
    return isinstance(text, str) and len(text) == CODE_LENGTH and all(c in ALPHABET for c in text)


def door_link(signup: Mapping[str, Any], link_id: str, now: datetime) -> dict[str, Any] | None:
    """Rule 2: the link a sign-up decided at the door makes (the server writes it as
    `author`), or None when the standing decision makes none."""
    if signup.get("status") != "activated" or signup.get("decided_by") in (None, ""):
        return None
    if signup.get("role") not in ROLES or not isinstance(signup.get("household"), str):
        return None  # activated by the matching: its link was written with the sign-up
    link = resident_link(link_id, str(signup["grid"]), str(signup["account"]),
                         signup["household"], str(signup["role"]), "door_to_door",
                         str(signup["created_by"]), now)
    return {**link, "signup": str(signup["_id"])}


def correctable(record_type: str, field: str) -> bool:
    """Rule 5: whether a correction may name `field` of a record of `record_type`."""
    return field in CORRECTABLE.get(record_type, ())


def apply_change(record: Mapping[str, Any], field: str, proposed: str,
                 schema: Mapping[str, Any]) -> dict[str, Any]:
    """Rule 5: the record with one accepted change made, the proposed text read as the
    field's schema type (a number for a number; empty text removes an optional field). The
    result is validated as any edit is; this only places the value."""
    name = field.strip("/").split("/")[0]
    prop = (schema.get("properties") or {}).get(name) or {}
    changed = dict(record)
    text = unicodedata.normalize("NFKC", proposed).strip()
    if text == "" and name not in (schema.get("required") or ()):
        changed.pop(name, None)
        return changed
    kind = prop.get("type")
    value: Any = text
    try:
        if kind == "integer":
            value = int(text)
        elif kind == "number":
            value = float(text)
    except ValueError:
        value = text  # the validation names the field and what it wants
    changed[name] = value
    return changed


MAX_CHANGES = 10
MAX_PROPOSED = 200
CHANGE_FIELDS = frozenset({"record", "field", "proposed"})


def change_problems(changes: Any, records: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """Rule 5 for what a resident asks to correct: 1 to MAX_CHANGES changes, each naming a
    record of `records` (their household and its present members, read by the caller), a
    field a resident may correct (`CORRECTABLE`), and the proposed value as plain text."""
    zh, en = ("更正内容", "Changes")
    if not isinstance(changes, list) or not 1 <= len(changes) <= MAX_CHANGES:
        return [Problem("/changes", "changes", f"“{zh}”应列出 1 至 {MAX_CHANGES} 处更正",
                        f"{en} must list 1 to {MAX_CHANGES} corrections")]
    found: list[Problem] = []
    for change in changes:
        if not isinstance(change, Mapping) or set(change) != CHANGE_FIELDS:
            found.append(Problem("/changes", "change", f"“{zh}”每处应包含记录、字段和应改为",
                                 f"{en}: each names a record, a field and the proposed value"))
            continue
        record = records.get(change["record"]) if isinstance(change["record"], str) else None
        if record is None:
            found.append(_problem("record", "not_own", "不是您住户的记录",
                                  "is not a record of your household"))
        elif not isinstance(change["field"], str) or not correctable(
                str(record.get("type")), change["field"]):
            found.append(_problem("field", "not_correctable", "不能通过更正申请修改",
                                  "cannot be corrected through a request"))
        problem = text_problem(change["proposed"], "/proposed", LABELS["proposed"],
                               max_chars=MAX_PROPOSED, min_chars=0)
        if problem is not None:
            found.append(problem)
    return found[:3]


def correction_request(doc_id: str, account: str, household: str, grid: str,
                       changes: list[Mapping[str, Any]], note: str | None) -> dict[str, Any]:
    """A resident's correction request as stored (schemas/correction_request.v1), open."""
    doc: dict[str, Any] = {
        "_id": doc_id, "type": "correction_request", "schema_version": 1, "grid": grid,
        "created_by": account, "household": household,
        "changes": [{"record": c["record"], "field": c["field"], "proposed": c["proposed"]}
                    for c in changes], "status": "open"}
    if note:
        doc["note"] = note
    return doc
