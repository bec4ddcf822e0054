"""What residents write, and how their requests move to an answer (居民提交与答复).

A resident's phone is read-only but for three types, each checked here after its schema:

1. Only `correction_request` (信息有误), `notice_receipt` (回执) and `data_request` (个人信息请求)
   are written by a resident; their phone can write nothing else, whatever it sends.
2. Each is the writer's own: `created_by` is the account, `household` (when the type has one)
   a household the account is an active resident of, and `grid` that household's grid. A
   receipt is for a notice the resident can see, one per resident and notice
   (`notice_receipt:<notice key>:<account>`), so receipts cannot be forged for a neighbour,
   counted twice, or probe which notices exist. A correction request's id is the writer's
   too (`correction_request:<account>-<any>`), so no id a resident may send names anyone
   else's record, and whether it exists tells them nothing of anyone else (a data request's
   id is a numbered slot of the day, server/domain/mydata.py).
3. Once sent, a request is the staff's to answer: the resident changes nothing of a stored
   correction or data request. A receipt may gain `confirmed_at` (read today, confirmed
   tomorrow) and nothing else; a confirmation is never taken back.
4. Answers move forward only (TRANSITIONS): a correction from open to accepted or declined; a
   data request from open to in progress, and to done or refused (PIPL art. 50: a refusal
   gives its reason, which the schema requires as `answer`). An answer is signed by whoever
   gives it (`answered_by`), and what was asked (FIXED) never changes under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.domain.rules import Problem

RESIDENT_TYPES = ("correction_request", "notice_receipt", "data_request")
# Status → the statuses an answer may move it to; a status not listed is final.
TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    "correction_request": {"open": frozenset({"accepted", "declined"})},
    "data_request": {"open": frozenset({"in_progress", "done", "refused"}),
                     "in_progress": frozenset({"done", "refused"})},
}
# What was asked: fixed from the first revision on, whoever writes.
FIXED: dict[str, tuple[str, ...]] = {
    "correction_request": ("created_by", "grid", "household", "changes", "note"),
    "data_request": ("created_by", "kind", "household", "details", "requested_at"),
    "notice_receipt": ("created_by", "notice", "household", "grid", "read_at"),
}
ANSWER_FIELDS = ("status", "answer", "answered_by", "answered_at")
# Labels as the schemas give them (tests/test_resident_writes.py holds them together).
LABELS: dict[str, tuple[str, str]] = {
    "created_by": ("创建人", "Created by"),
    "household": ("住户", "Household"),
    "grid": ("网格", "Grid"),
    "notice": ("公告", "Notice"),
    "confirmed_at": ("确认时间", "Confirmed at"),
    "status": ("状态", "Status"),
    "answer": ("答复", "Answer"),
    "answered_by": ("答复人", "Answered by"),
    "changes": ("更正内容", "Changes"),
    "note": ("说明", "Explanation"),
    "kind": ("请求类型", "Request"),
    "details": ("说明", "Details"),
    "requested_at": ("提出时间", "Requested at"),
    "read_at": ("阅读时间", "Read at"),
    "answered_at": ("答复时间", "Answered at"),
}


def field_problem(name: str, code: str, zh: str, en: str,
                  labels: Mapping[str, tuple[str, str]] = LABELS) -> Problem:
    """A problem with the field `name`, named by its label (zh-CN first)."""
    label_zh, label_en = labels.get(name, (name, name))
    return Problem(f"/{name}", code, f"“{label_zh}”{zh}", f"{label_en}: {en}")


_field = field_problem


def resident_write_problem(doc: Mapping[str, Any], stored: Mapping[str, Any] | None,
                           account: str, homes: Mapping[str, str],
                           notices: frozenset[str]) -> Problem | None:
    """Rules 1-3 for a document a resident's phone sends (its schema already checked).
    `homes`: the account's active households and their grids; `notices`: the notice ids the
    account may hold (server/domain/allowed_ids.py gives both); `stored`: the stored revision,
    or None for a new document."""
    doc_type = doc.get("type")
    if doc_type not in RESIDENT_TYPES:
        return Problem("/type", "resident_type", "居民不能保存此类记录",
                       "A resident cannot write this kind of record")
    if doc.get("created_by") != account:
        return _field("created_by", "not_own", f"应为当前登录的居民 {account}",
                      f"must be the logged-in resident {account!r}")
    own = f"{doc_type}:{account}-"
    if doc_type == "correction_request" and not (str(doc.get("_id")).startswith(own)
                                                 and len(str(doc.get("_id"))) > len(own)):
        return Problem("/_id", "request_id", f"编号应以 {own} 开头", f"The id must start with "
                       f"{own!r}")
    household = doc.get("household")
    if household is not None or doc_type != "data_request":
        if household not in homes:
            return _field("household", "not_own", "不是您的住户", "is not your household")
        if "grid" in doc and doc["grid"] != homes[str(household)]:
            return _field("grid", "not_own", "应为您住户所在的网格",
                          "must be the grid of your household")
    if doc_type == "notice_receipt":
        problem = _receipt_problem(doc, account, notices)
        if problem is not None:
            return problem
    if stored is None:
        return _new_request_problem(doc)
    return _changed_problem(doc, stored, allowed=("confirmed_at",) if doc_type == (
        "notice_receipt") else ())


def _receipt_problem(doc: Mapping[str, Any], account: str,
                     notices: frozenset[str]) -> Problem | None:
    notice = doc.get("notice")
    if notice not in notices:
        return _field("notice", "not_visible", "不在您可查看的公告中",
                      "is not among the notices you can see")
    expected = f"notice_receipt:{str(notice).removeprefix('notice:')}:{account}"
    if doc.get("_id") != expected:
        return Problem("/_id", "receipt_id", f"回执编号应为 {expected}",
                       f"The receipt's id must be {expected!r}")
    return None


def _new_request_problem(doc: Mapping[str, Any]) -> Problem | None:
    """A new request is open and unanswered: the answer is the staff's."""
    if doc.get("type") == "notice_receipt":
        return None
    if doc.get("status") != "open":
        return _field("status", "new_status", "新提交的申请应为待处理（open）",
                      "a new request is open")
    for name in ANSWER_FIELDS[1:]:
        if name in doc:
            return _field(name, "answer_by_resident", "由工作人员填写",
                          "is filled in by the staff")
    return None


def _changed_problem(doc: Mapping[str, Any], stored: Mapping[str, Any],
                     allowed: tuple[str, ...]) -> Problem | None:
    """Rule 3: nothing of a stored document changes but the fields in `allowed`, which may be
    added but not changed or removed."""
    names = sorted({k for k in (*doc, *stored) if not k.startswith("_")})
    for name in names:
        if doc.get(name) == stored.get(name):
            continue
        if name in allowed and name not in stored:
            continue
        return _field(name, "resident_change", "提交后不能修改",
                      "cannot be changed once sent")
    return None


def answer_problem(doc: Mapping[str, Any], stored: Mapping[str, Any] | None,
                   writer: str) -> Problem | None:
    """Rule 4 for a grid worker's, supervisor's or admin's write of a request."""
    doc_type = str(doc.get("type"))
    if doc_type not in TRANSITIONS:
        return None
    if stored is None:
        return Problem("/_id", "request_by_staff", "申请只能由居民提出，工作人员只能答复",
                       "Requests are made by residents; the staff answer them")
    for name in FIXED[doc_type]:
        if doc.get(name) != stored.get(name):
            return _field(name, "request_changed", "是居民提交的内容，不能修改",
                          "is what the resident asked, and cannot be changed")
    before, after = stored.get("status"), doc.get("status")
    if all(doc.get(n) == stored.get(n) for n in ANSWER_FIELDS):
        return None
    moves = TRANSITIONS[doc_type]
    if after != before and after not in moves.get(str(before), frozenset()):
        return _field("status", "status_transition", f"不能从 {before} 改为 {after}",
                      f"cannot go from {before} to {after}")
    if after == before and str(before) not in moves:
        return _field("status", "answered", "已办结，答复不能再修改",
                      "the request is closed; its answer cannot be changed")
    if doc.get("answered_by") != writer and (
            str(after) not in moves or doc.get("answered_by") != stored.get("answered_by")):
        return _field("answered_by", "answered_by", f"应为答复人本人 {writer}",
                      f"must be the one answering, {writer!r}")
    return None
