"""The rules of server/domain/resident_queue.py, as cases: what a worker's or supervisor's
phone may write of a sign-up, a resident link, an activation code and a correction, the link a
decision at the door makes, what a resident may ask to correct, and the first decision the
server received standing when two phones decided offline (server/domain/merging.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.domain import merging
from server.domain.resident_queue import (
    apply_change,
    change_problems,
    code_problem,
    deletion_problem,
    door_link,
    removal_problem,
    signup_problem,
    staff_problem,
)

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
HOUSEHOLDS = frozenset({"household:g1-1", "household:g1-2"})
SIGNUP = {"_id": "signup:r1", "type": "signup", "schema_version": 1, "grid": "g1",
          "created_by": "linli-signup", "account": "r1", "phone": "13900000001",
          "name": "赵六", "community": "c1", "address": "9幢909", "status": "pending",
          "received_at": "2026-12-01T10:00:00+00:00", "match": {"status": "not_found"}}
ACTIVATED = {**SIGNUP, "status": "activated", "household": "household:g1-2", "role": "tenant",
             "decided_by": "w1", "decided_at": "2026-12-03T10:00:00+00:00"}
DECLINED = {**SIGNUP, "status": "declined", "decline_reason": "查无此人", "decided_by": "w1",
            "decided_at": "2026-12-03T10:00:00+00:00"}


@pytest.mark.parametrize(("doc", "code"), [
    (ACTIVATED, None),
    (DECLINED, None),
    ({**DECLINED, "decline_reason": " "}, "required"),
    ({**DECLINED, "decline_reason": "a\u202eb"}, "text_character"),
    ({**ACTIVATED, "household": "household:g2-1"}, "not_in_grid"),
    ({**ACTIVATED, "role": "landlord"}, "required"),
    ({**ACTIVATED, "decided_by": "w2"}, "decided_by"),
    ({**ACTIVATED, "decided_at": ""}, "required"),
    ({**ACTIVATED, "decline_reason": "x"}, "not_declined"),
    ({**ACTIVATED, "status": "pending"}, "signup_status"),
    ({**ACTIVATED, "name": "王伟"}, "signup_changed"),
    ({**ACTIVATED, "match": {"status": "matched"}}, "signup_changed"),
    ({**SIGNUP, "device_time": "2026-12-03T18:00:00+08:00"}, None),  # a phone's save stamp
])
def test_a_pending_sign_up_is_decided_once_by_its_worker(doc: dict[str, Any],
                                                         code: str | None) -> None:
    problem = signup_problem(doc, SIGNUP, "w1", HOUSEHOLDS)
    assert (problem.code if problem else None) == code, problem


def test_a_sign_up_is_the_servers_and_a_decision_final() -> None:
    assert signup_problem(ACTIVATED, None, "w1", HOUSEHOLDS).code == "signup_by_server"
    again = {**ACTIVATED, "household": "household:g1-1"}
    assert signup_problem(again, ACTIVATED, "w1", HOUSEHOLDS).code == "signup_decided"
    assert signup_problem(DECLINED, ACTIVATED, "w1", HOUSEHOLDS).code == "signup_decided"
    assert signup_problem(ACTIVATED, ACTIVATED, "w1", HOUSEHOLDS) is None  # unchanged


LINK = {"_id": "resident:r1-g1-2", "type": "resident", "schema_version": 1, "grid": "g1",
        "created_by": "linli-signup", "account": "r1", "household": "household:g1-2",
        "role": "tenant", "status": "active", "activation": "door_to_door"}
REMOVED = {**LINK, "status": "removed", "removed_at": "2026-12-03T10:00:00+00:00",
           "removed_reason": "已迁出"}


@pytest.mark.parametrize(("doc", "stored", "code"), [
    (REMOVED, LINK, None),
    (LINK, None, "link_by_server"),
    ({**REMOVED, "removed_reason": ""}, LINK, "required"),
    ({**REMOVED, "household": "household:g1-1"}, LINK, "removal_only"),
    ({**LINK, "role": "owner"}, LINK, "removal_only"),
    ({**LINK, "status": "active"}, REMOVED, "removed"),
    (REMOVED, REMOVED, None),
])
def test_staff_only_remove_a_resident(doc: dict[str, Any], stored: dict[str, Any] | None,
                                      code: str | None) -> None:
    problem = removal_problem(doc, stored)
    assert (problem.code if problem else None) == code, problem


CODE = {"_id": "activation_code:g1-K", "type": "activation_code", "schema_version": 1,
        "grid": "g1", "created_by": "w1", "household": "household:g1-2", "code": "KMNPQRST",
        "role": "tenant", "created_at": "2026-12-03T09:00:00+00:00"}


@pytest.mark.parametrize(("doc", "stored", "code"), [
    (CODE, None, None),
    ({**CODE, "created_at": (NOW + timedelta(minutes=4)).isoformat()}, None, None),
    ({**CODE, "created_at": (NOW + timedelta(minutes=6)).isoformat()}, None, "future"),
    ({**CODE, "created_at": "2026-12-03T09:00:00"}, None, "future"),  # no zone: unreadable
    ({**CODE, "household": "household:g9-1"}, None, "not_in_grid"),
    ({**CODE, "status": "revoked"}, None, "new_code"),
    ({**CODE, "used_by": "r1"}, None, "server_only"),
    ({**CODE, "status": "revoked"}, CODE, None),
    ({**CODE, "code": "KMNPQRSU"}, CODE, "revoke_only"),
    ({**CODE, "used_by": "r1", "used_at": "2026-12-03T10:00:00+00:00"}, CODE, "server_only"),
    ({**CODE, "status": "active"}, {**CODE, "status": "revoked"}, "code_final"),
    ({**CODE, "status": "revoked", "used_by": "r1"}, {**CODE, "used_by": "r1"}, "code_final"),
])
def test_staff_make_and_revoke_codes_and_never_spend_them(
        doc: dict[str, Any], stored: dict[str, Any] | None, code: str | None) -> None:
    problem = code_problem(doc, stored, HOUSEHOLDS, NOW)
    assert (problem.code if problem else None) == code, problem


def test_corrections_are_answered_by_the_rules_of_resident_writes() -> None:
    asked = {"_id": "correction_request:r1-1", "type": "correction_request",
             "schema_version": 1, "grid": "g1", "created_by": "r1",
             "household": "household:g1-2", "status": "open",
             "changes": [{"record": "household:g1-2", "field": "/head_name", "proposed": "x"}]}
    answer = {**asked, "status": "accepted", "answer": "ok", "answered_by": "w1",
              "answered_at": "2026-12-03T10:00:00+00:00"}
    assert staff_problem(answer, asked, "w1", HOUSEHOLDS, NOW) is None
    assert staff_problem(asked, None, "w1", HOUSEHOLDS, NOW).code == "request_by_staff"
    assert staff_problem(answer, asked, "w2", HOUSEHOLDS, NOW).code == "answered_by"
    assert staff_problem({"type": "household"}, None, "w1", HOUSEHOLDS, NOW) is None


def test_the_door_link_follows_the_standing_decision_only() -> None:
    link = door_link(ACTIVATED, "resident:r1-g1-2", NOW)
    assert link is not None
    assert (link["household"], link["role"], link["activation"], link["status"],
            link["signup"], link["created_by"]) == (
        "household:g1-2", "tenant", "door_to_door", "active", "signup:r1", "linli-signup")
    assert door_link(DECLINED, "x", NOW) is None
    assert door_link(SIGNUP, "x", NOW) is None
    automatic = {**ACTIVATED, "decided_by": "linli-signup"}
    automatic.pop("role")
    assert door_link(automatic, "x", NOW) is None  # written with the sign-up already


def test_two_decisions_end_with_the_first_received() -> None:
    first = merging.Revision("2-b", {**ACTIVATED}, by="w1", received_at="2026-12-03T10:00:01Z")
    later = merging.Revision("2-a", {**DECLINED, "decided_by": "w2"}, by="w2",
                             received_at="2026-12-03T10:00:02Z")
    merged = merging.merge("signup", SIGNUP, [later, first])
    assert merged.body == ACTIVATED
    assert {f.rule for f in merged.fields} == {"first_received"}
    assert all(f.chosen is first for f in merged.fields)
    for doc_type in ("resident", "activation_code", "correction_request"):
        assert merging.RULES[doc_type] is merging.first_received


RECORDS = {"household:g1-2": {"_id": "household:g1-2", "type": "household"},
           "person:g1-2-a": {"_id": "person:g1-2-a", "type": "person"}}


@pytest.mark.parametrize(("changes", "code"), [
    ([{"record": "household:g1-2", "field": "/head_name", "proposed": "王伟"}], None),
    ([{"record": "person:g1-2-a", "field": "/id_number", "proposed": ""}], None),
    ([], "changes"),
    ("x", "changes"),
    ([{"record": "household:g1-1", "field": "/head_name", "proposed": "x"}], "not_own"),
    ([{"record": ["household:g1-2"], "field": "/head_name", "proposed": "x"}], "not_own"),
    ([{"record": "household:g1-2", "field": "/remarks", "proposed": "x"}], "not_correctable"),
    ([{"record": "household:g1-2", "field": "/id_number", "proposed": "x"}], "not_correctable"),
    ([{"record": "household:g1-2", "field": 7, "proposed": "x"}], "not_correctable"),
    ([{"record": "household:g1-2", "field": "/head_name", "proposed": None}], "text_type"),
    ([{"record": "household:g1-2", "field": "/head_name"}], "change"),
])
def test_what_a_resident_may_ask_to_correct(changes: Any, code: str | None) -> None:
    problems = change_problems(changes, RECORDS)
    assert (problems[0].code if problems else None) == code, problems


def test_an_accepted_change_is_placed_as_the_field_wants_it() -> None:
    schema = {"required": ["name"], "properties": {"name": {"type": "string"},
                                                   "birth_year": {"type": "integer"},
                                                   "area_m2": {"type": "number"},
                                                   "phone": {"type": "string"}}}
    record = {"name": "王芳", "phone": "13900000001"}
    assert apply_change(record, "/birth_year", "１９８０", schema)["birth_year"] == 1980
    assert apply_change(record, "/area_m2", "88.5", schema)["area_m2"] == 88.5
    assert "phone" not in apply_change(record, "/phone", " ", schema)  # optional: removed
    assert apply_change(record, "/name", "", schema)["name"] == ""  # required: the check says
    assert apply_change(record, "/birth_year", "x", schema)["birth_year"] == "x"
    assert record == {"name": "王芳", "phone": "13900000001"}  # the record itself untouched


def test_the_acts_are_never_deleted_by_staff() -> None:
    for doc_id in ("signup:r1", "resident:r1-g1-2", "activation_code:g1-K",
                   "correction_request:r1-1"):
        problem = deletion_problem(doc_id)
        assert problem is not None and problem.code == "kept"
    assert deletion_problem("household:g1-2") is None
