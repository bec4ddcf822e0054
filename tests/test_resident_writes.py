"""server/domain/resident_writes.py: a resident writes only their own corrections, receipts and
data requests, changes nothing once sent, and the staff's answers move forward only."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from server.domain.allowed_ids import RESIDENTS, AllowedIds
from server.domain.resident_writes import LABELS, answer_problem, resident_write_problem
from server.domain.validation import SchemaRegistry

DOCUMENTS = json.loads((Path(__file__).parent / "fixtures" / "documents.json").read_text(
    encoding="utf-8"))["types"]
ACCOUNT = "r.wangwei"
HOME = "household:330802001001010002"
GRID = "g330802001001a"
NOTICE = "notice:2026-12-water"


def fixture(doc_type: str, **changes: Any) -> dict[str, Any]:
    """The fixture's valid document of a type with some fields changed (None: removed)."""
    doc = {**copy.deepcopy(DOCUMENTS[doc_type]["valid"][0]), **changes}
    return {name: value for name, value in doc.items() if value is not None}


CORRECTION = fixture("correction_request")
RECEIPT = fixture("notice_receipt")
REQUEST = fixture("data_request", status="open", answer=None, answered_by=None,
                  answered_at=None)


def write(doc: dict[str, Any], stored: dict[str, Any] | None = None) -> str | None:
    problem = resident_write_problem(doc, stored, ACCOUNT, {HOME: GRID}, frozenset({NOTICE}))
    return None if problem is None else problem.code


def test_a_resident_writes_their_own_three_kinds() -> None:
    assert [write(d) for d in (CORRECTION, RECEIPT, REQUEST)] == [None, None, None]
    assert write(fixture("data_request", status="open", answer=None, answered_by=None,
                         answered_at=None, household=None)) is None  # about themself only


@pytest.mark.parametrize(("doc", "code"), [
    (fixture("household"), "resident_type"),
    (fixture("notice"), "resident_type"),
    (fixture("resident", created_by=ACCOUNT, account=ACCOUNT), "resident_type"),
    ({**CORRECTION, "created_by": "r.lijuan"}, "not_own"),
    ({**CORRECTION, "household": "household:330802001001010003"}, "not_own"),
    ({**CORRECTION, "grid": "g330802001001b"}, "not_own"),
    ({**REQUEST, "household": "household:330802001001010003"}, "not_own"),
    ({**RECEIPT, "household": None}, "not_own"),
    ({**RECEIPT, "notice": "notice:other-community"}, "not_visible"),
    ({**RECEIPT, "_id": "notice_receipt:2026-12-water:r.lijuan"}, "receipt_id"),
    ({**RECEIPT, "_id": "notice_receipt:2026-12-water:r.wangwei:2"}, "receipt_id"),
    ({**CORRECTION, "_id": "correction_request:r.lijuan-1"}, "request_id"),
    ({**CORRECTION, "_id": "correction_request:r.wangwei-"}, "request_id"),
    ({**CORRECTION, "_id": "correction_request:r.wangweiX-1"}, "request_id"),
    ({**CORRECTION, "status": "accepted"}, "new_status"),
    ({**CORRECTION, "answer": "已更正"}, "answer_by_resident"),
    ({**REQUEST, "answered_by": ACCOUNT}, "answer_by_resident"),
])
def test_anything_else_is_refused(doc: dict[str, Any], code: str) -> None:
    assert write(doc) == code


def test_once_sent_a_request_is_the_staffs() -> None:
    assert write({**CORRECTION, "note": "改一下"}, stored=CORRECTION) == "resident_change"
    assert write(CORRECTION, stored=CORRECTION) is None  # the same revision again
    answered = {**CORRECTION, "status": "declined", "answer": "不属实",
                "answered_by": "wang.fang", "answered_at": "2026-12-04T09:00:00+08:00"}
    assert write(CORRECTION, stored=answered) == "resident_change"  # no undoing an answer


def test_a_receipt_may_gain_its_confirmation_only() -> None:
    read = fixture("notice_receipt", confirmed_at=None)
    assert write(RECEIPT, stored=read) is None
    assert write(read, stored=RECEIPT) == "resident_change"  # never taken back
    later = {**RECEIPT, "confirmed_at": "2026-12-05T10:00:00+08:00"}
    assert write(later, stored=RECEIPT) == "resident_change"
    assert write({**RECEIPT, "read_at": "2026-12-05T10:00:00+08:00"}, stored=read) == \
        "resident_change"


def test_messages_name_the_field_by_its_label() -> None:
    problem = resident_write_problem({**CORRECTION, "created_by": "x.y"}, None, ACCOUNT,
                                     {HOME: GRID}, frozenset())
    assert problem is not None
    assert problem.message.startswith("“创建人”应为当前登录的居民 r.wangwei / Created by:")


def test_the_labels_are_the_schemas() -> None:
    registry = SchemaRegistry()
    for name, label in LABELS.items():
        titles = {(s["properties"][name].get("title"), s["properties"][name].get("x-title-en"))
                  for t in ("correction_request", "notice_receipt", "data_request")
                  for s in [registry.validators[(t, 1)].schema] if name in s["properties"]}
        assert label in titles, (name, titles)


def answered(stored: dict[str, Any], writer: str = "wang.fang", **changes: Any) -> str | None:
    doc = {**stored, "answered_by": writer, "answered_at": "2026-12-04T09:00:00+08:00",
           **changes}
    problem = answer_problem(doc, stored, "wang.fang")
    return None if problem is None else problem.code


def test_answers_move_forward_only() -> None:
    assert answered(CORRECTION, status="accepted", answer="已更正") is None
    assert answered(CORRECTION, status="declined", answer="不属实") is None
    closed = {**CORRECTION, "status": "declined", "answer": "不属实", "answered_by": "wang.fang",
              "answered_at": "2026-12-04T09:00:00+08:00"}
    assert answered(closed, status="accepted", answer="改主意了") == "status_transition"
    assert answered(closed, answer="措辞修改") == "answered"
    assert answered(closed) is None  # nothing changed
    assert answered(REQUEST, status="in_progress", answered_by=None, answered_at=None) is None
    progress = {**REQUEST, "status": "in_progress"}
    assert answered(progress, status="refused", answer="不属于本平台处理范围") is None
    assert answered(progress, status="open") == "status_transition"
    assert answered(REQUEST, status="done", answer="已导出") is None


@pytest.mark.parametrize(("changes", "code"), [
    ({"status": "accepted", "answer": "x", "writer": "chen.jing"}, "answered_by"),
    ({"status": "accepted", "answer": "x", "household": "household:2"}, "request_changed"),
    ({"status": "accepted", "answer": "x", "changes": []}, "request_changed"),
    ({"status": "accepted", "answer": "x", "created_by": "wang.fang"}, "request_changed"),
    ({"status": "done"}, "status_transition"),  # not a status of a correction
])
def test_an_answer_is_signed_and_leaves_the_question_alone(changes: dict[str, Any],
                                                           code: str) -> None:
    writer = changes.pop("writer", "wang.fang")
    assert answered(CORRECTION, writer=writer, **changes) == code


def test_staff_answer_requests_but_never_make_them() -> None:
    problem = answer_problem(CORRECTION, None, "wang.fang")
    assert problem is not None and problem.code == "request_by_staff"
    assert answer_problem(fixture("activation_code"), None, "wang.fang") is None


def test_the_index_gives_what_the_rules_take() -> None:
    """homes() and the notices of allowed() are the arguments resident_write_problem needs."""
    index = AllowedIds()
    index.apply({"_id": "grid:g1", "code": GRID, "community": "330802001001",
                 "street": "330802001"}, "directory")
    index.apply(fixture("household", _id=HOME), f"grid:{GRID}")
    index.apply(fixture("resident", account=ACCOUNT, household=HOME), f"grid:{GRID}")
    index.apply(fixture("notice", audience={"level": "grid", "codes": [GRID]}), RESIDENTS)
    homes = index.homes(ACCOUNT)
    notices = frozenset(i for i in index.allowed(ACCOUNT)[RESIDENTS] if i.startswith("notice:"))
    assert homes == {HOME: GRID} and notices == {NOTICE}
    assert resident_write_problem(RECEIPT, None, ACCOUNT, homes, notices) is None
