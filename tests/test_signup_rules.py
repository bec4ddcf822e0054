"""server/domain/signup.py: the phone as people type it, the fields a sign-up takes, the answer
that tells nobody whether a household matched, and when a household is activated at once."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from server.domain.matching import HouseholdIndex, match
from server.domain.signup import (
    LABELS,
    PUBLIC_ANSWER,
    SIGNUP_AUTHOR,
    automatic_link,
    cleaned_signup,
    decide,
    is_the_person,
    normalise_phone,
    public_answer,
    queue_grid,
    registry_role,
    signup_problems,
    signup_record,
)
from server.domain.validation import SchemaRegistry

VALID = {"phone": "138 0013 8000", "name": "王伟", "community": "330802001001",
         "address": "坊门街3幢2单元301"}


@pytest.mark.parametrize(("typed", "stored"), [
    ("13800138000", "13800138000"),
    ("138 0013 8000", "13800138000"),
    ("138-0013-8000", "13800138000"),
    ("１３８００１３８０００", "13800138000"),  # full-width, from a Chinese keyboard
    ("１３８－００１３－８０００", "13800138000"),
    ("138\u30000013\u30008000", "13800138000"),  # ideographic spaces
    ("+86 138 0013 8000", "13800138000"),
    ("＋８６１３８００１３８０００", "13800138000"),
    ("0086-13800138000", "13800138000"),
    ("(+86) 199 0000 0000", "19900000000"),
])
def test_a_mobile_number_is_read_as_people_type_it(typed: str, stored: str) -> None:
    assert normalise_phone(typed) == stored


@pytest.mark.parametrize("typed", [
    13800138000,  # a JSON number: the type is wrong, whatever its digits
    None, True, ["13800138000"], {"n": "13800138000"},
    "", "1380013800", "138001380001", "12800138000", "23800138000",  # 10, 12 digits; not 13-19
    "0571-88888888",  # a landline
    "1380013800O",  # letter O for zero
    "١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic digits: str.isdigit() would take them
    "①③⑧00138000",  # circled digits become digits under NFKC, but nobody types a phone so
    "13800138000\n", "138\x000138000", "1380013800\ud800",  # control, NUL, lone surrogate
    "86 1380013800",  # a prefix does not make up for a missing digit
    "1" * 33, " " * 20 + "13800138000" + " " * 20,  # longer than any phone typed
])
def test_anything_else_is_not_a_phone(typed: Any) -> None:
    assert normalise_phone(typed) is None
    problems = signup_problems({**VALID, "phone": typed})
    assert [p.field for p in problems] == ["/phone"]
    assert problems[0].message.startswith("“手机号”应为 11 位手机号码")
    assert "Mobile phone must be an 11-digit" in problems[0].message


def test_a_valid_signup_is_kept_with_the_phone_normalised() -> None:
    assert signup_problems(VALID) == []
    assert cleaned_signup(VALID) == {**VALID, "phone": "13800138000"}
    with pytest.raises(ValueError):
        cleaned_signup({**VALID, "phone": "x"})


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"name": ""}, "/name", ["请填写“姓名”", "Name is required"]),
    ({"name": "  \u3000 "}, "/name", ["请填写“姓名”"]),
    ({"name": 7}, "/name", ["“姓名”应为文字", "Name must be text"]),
    ({"name": "王" * 51}, "/name", ["“姓名”太长，最多 50 个字", "at most 50"]),
    ({"name": "王\u202e伟"}, "/name", ["控制字符", "U+202E"]),  # bidi override
    ({"name": "王\u200b伟"}, "/name", ["U+200B"]),  # zero-width space
    ({"name": "王\ud83d"}, "/name", ["不完整的字符", "broken character"]),  # half an emoji
    ({"name": "王\n伟"}, "/name", ["U+000A"]),
    ({"address": "坊门街\x003幢"}, "/address", ["住址（按您的写法）", "Address as written"]),
    ({"address": "幢" * 101}, "/address", ["最多 100 个字"]),
    ({"address": ["3幢"]}, "/address", ["应为文字"]),
    ({"community": "330802 001"}, "/community", ["请从列表中选择“社区”"]),
    ({"community": None}, "/community", ["Choose the community from the list"]),
    ({"household": "household:1"}, "/", ["不允许的字段 household", "not allowed: household"]),
    ({"status": "active", "role": "admin"}, "/", ["role, status"]),
])
def test_each_field_is_checked_and_named_by_its_label(change: dict[str, Any], field: str,
                                                       words: list[str]) -> None:
    problems = signup_problems({**VALID, **change})
    assert [p.field for p in problems] == [field], problems
    for word in words:
        assert word in problems[0].message, (word, problems[0].message)
    assert problems[0].message.index(" / ") < problems[0].message.index(problems[0].en)


def test_full_width_names_count_as_people_see_them() -> None:
    """Length is counted after NFKC, so a name in full-width letters is not 'too long' twice."""
    assert signup_problems({**VALID, "name": "ＡＹＩＧＵＬ·ＭＡＭＡＴ"}) == []


def test_a_forged_field_name_is_shown_safely() -> None:
    problems = signup_problems({**VALID, "x\ud800\n": 1})
    json.dumps(problems[0].as_dict(), ensure_ascii=False).encode()  # still valid UTF-8
    assert "x\\ud800\\u000a" in problems[0].message


def test_not_an_object() -> None:
    for body in (None, [], "phone=1", 3):
        assert [p.code for p in signup_problems(body)] == ["signup_type"]


def test_the_labels_are_the_schemas() -> None:
    schema = SchemaRegistry().validators[("signup", 1)].schema  # references inlined
    for field, (zh, en) in LABELS.items():
        prop = schema["properties"][field]
        assert (prop.get("title"), prop.get("x-title-en")) == (zh, en), field


# -- no oracle ------------------------------------------------------------------------------

def test_the_answer_is_the_same_for_a_match_and_a_miss() -> None:
    answers = {json.dumps(public_answer(o), ensure_ascii=False, sort_keys=True)
               for o in ("activated", "queued_ambiguous", "queued_unmatched")}
    assert len(answers) == 1
    answer = public_answer("activated")
    assert answer == PUBLIC_ANSWER and " / " in answer["message"]
    assert not {"household", "candidates", "outcome", "matched"} & set(answer)
    answer["status"] = "changed"  # a caller's change does not leak into the next answer
    assert public_answer("queued_unmatched")["status"] == "received"


# -- automatic activation -------------------------------------------------------------------

HOUSEHOLD = {"_id": "household:330802001001010001", "type": "household", "status": "active",
             "grid": "g1", "head_name": "王建国",
             "address": {"compound": "fmj", "compound_name": "坊门街", "building": "3",
                         "unit": "2", "room": "301"},
             "phone": "13900000000"}
MEMBERS = [
    {"_id": "person:330802001001010001-1", "household": HOUSEHOLD["_id"], "name": "王建国",
     "status": "present", "phone": "13900000000"},
    {"_id": "person:330802001001010001-2", "household": HOUSEHOLD["_id"], "name": "王伟",
     "status": "present"},
    {"_id": "person:330802001001010001-3", "household": HOUSEHOLD["_id"], "name": "李娟",
     "status": "moved_out", "phone": "13600000003"},
    {"_id": "person:330802001001010001-4", "household": HOUSEHOLD["_id"], "name": "王芳",
     "status": "present", "phone": "138-0000-0004"},
]
ON_RECORD = "13900000000"  # the household's phone


def matched(household: str = HOUSEHOLD["_id"]) -> dict[str, Any]:
    return {"status": "matched", "household": household, "candidates": [household]}


def test_one_household_and_a_member_named_activates() -> None:
    decision = decide(matched(), "王伟", ON_RECORD, HOUSEHOLD, MEMBERS)
    assert (decision.outcome, decision.household) == ("activated", HOUSEHOLD["_id"])
    assert decide(matched(), "王建国", ON_RECORD, HOUSEHOLD, []).outcome == "activated"  # head
    assert decide(matched(), "王 伟", ON_RECORD, HOUSEHOLD, MEMBERS).outcome == "activated"
    # a present member's own phone, however the registry wrote it
    assert decide(matched(), "王芳", "13800000004", HOUSEHOLD, MEMBERS).outcome == "activated"


@pytest.mark.parametrize("phone", [
    "13700000000",  # a neighbour who knows the name and the door, on their own phone
    "13600000003",  # the phone of a member who moved out
    "",             # none
    "1390000000",   # not a phone
])
def test_a_name_and_a_door_without_a_phone_on_record_go_to_the_worker(phone: str) -> None:
    """What any neighbour knows (a member's name and the door) does not open a household:
    the verified phone must be one the registry holds for it."""
    decision = decide(matched(), "王伟", phone, HOUSEHOLD, MEMBERS)
    assert decision.outcome == "queued_ambiguous" and decision.household is None
    assert decision.candidates == (HOUSEHOLD["_id"],)  # the worker sees which one


@pytest.mark.parametrize(("result", "name", "household", "outcome"), [
    # The matcher matched on the phone alone (a relative on the household's number).
    (matched(), "王小明", HOUSEHOLD, "queued_ambiguous"),
    # One typo: the matcher may take it with the phone; activation needs the name itself.
    (matched(), "王玮", HOUSEHOLD, "queued_ambiguous"),
    # A member who moved out is no longer of the household.
    (matched(), "李娟", HOUSEHOLD, "queued_ambiguous"),
    # The household itself moved out, or is another household than the one matched.
    (matched(), "王伟", {**HOUSEHOLD, "status": "moved_out"}, "queued_ambiguous"),
    (matched("household:other"), "王伟", HOUSEHOLD, "queued_ambiguous"),
    (matched(), "王伟", None, "queued_ambiguous"),
    # Not exactly one household.
    ({"status": "matched", "household": HOUSEHOLD["_id"],
      "candidates": [HOUSEHOLD["_id"], "household:b"]}, "王伟", HOUSEHOLD, "queued_ambiguous"),
    ({"status": "ambiguous", "household": None, "candidates": ["household:a", "household:b"]},
     "王伟", HOUSEHOLD, "queued_ambiguous"),
    ({"status": "not_found", "household": None, "candidates": []}, "王伟", HOUSEHOLD,
     "queued_unmatched"),
    ({"status": "matched", "household": None, "candidates": []}, "王伟", HOUSEHOLD,
     "queued_unmatched"),
    # A forged result: the household is not in its own candidates.
    ({"status": "matched", "household": HOUSEHOLD["_id"], "candidates": []}, "王伟", HOUSEHOLD,
     "queued_unmatched"),
])
def test_anything_less_goes_to_the_grid_worker(result: dict[str, Any], name: str,
                                                household: dict[str, Any] | None,
                                                outcome: str) -> None:
    decision = decide(result, name, ON_RECORD, household, MEMBERS)
    assert decision.outcome == outcome and decision.household is None


def test_the_real_matchers_result_is_taken_as_plain_data() -> None:
    """The matcher's result (server/domain/matching.py), as dataclasses.asdict gives it: a match
    on the phone alone is not activated, nor one on the name with a changed phone; the name
    and the phone on record together are."""
    persons = [{**m, "type": "person", "grid": "g1"} for m in MEMBERS]
    index = HouseholdIndex.build([HOUSEHOLD], persons, [])
    by_phone = match({"name": "王小明", "phone": "13900000000",
                      "address": "坊门街3幢2单元301室"}, index)
    assert by_phone.status == "matched"
    assert decide(dataclasses.asdict(by_phone), "王小明", ON_RECORD, HOUSEHOLD, MEMBERS
                  ).outcome == "queued_ambiguous"
    by_name = match({"name": "王伟", "phone": "13700000000", "address": "三幢二单元301"}, index)
    assert by_name.status == "matched"
    assert decide(dataclasses.asdict(by_name), "王伟", "13700000000", HOUSEHOLD, MEMBERS
                  ).outcome == "queued_ambiguous"
    both = match({"name": "王伟", "phone": ON_RECORD, "address": "三幢二单元301"}, index)
    assert decide(dataclasses.asdict(both), "王伟", ON_RECORD, HOUSEHOLD, MEMBERS).household == \
        HOUSEHOLD["_id"]


# -- what is kept ----------------------------------------------------------------------------

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("name", "household", "role"), [
    ("王建国", {**HOUSEHOLD, "tenure": "owned"}, "owner"),
    ("王建国", {**HOUSEHOLD, "tenure": "rented"}, "tenant"),
    ("王建国", HOUSEHOLD, "family"),  # tenure unknown
    ("王伟", {**HOUSEHOLD, "tenure": "owned"}, "family"),
    ("", {**HOUSEHOLD, "head_name": "", "tenure": "owned"}, "family"),
])
def test_the_role_comes_from_the_registry(name: str, household: dict[str, Any],
                                          role: str) -> None:
    assert registry_role(name, household) == role


def test_a_signup_and_its_link_pass_their_schemas() -> None:
    registry = SchemaRegistry()
    decision = decide(matched(), "王伟", ON_RECORD, HOUSEHOLD, MEMBERS)
    cleaned = cleaned_signup(VALID)
    record = signup_record("signup:r.wangwei-1", cleaned, "r.wangwei", "g1", matched(),
                           decision, NOW)
    link = automatic_link("resident:r.wangwei-1", decision, "r.wangwei", "王伟", HOUSEHOLD, NOW)
    assert registry.problems(record) == [] and registry.problems(link) == []
    assert (record["status"], record["household"], record["phone"]) == (
        "activated", HOUSEHOLD["_id"], "13800138000")
    assert (link["activation"], link["role"], link["created_by"]) == (
        "automatic", "family", SIGNUP_AUTHOR)
    queued = decide({"status": "ambiguous", "household": None,
                     "candidates": [f"household:{n}" for n in range(30)],
                     "reason": "x" * 500}, "王伟", ON_RECORD, None, [])
    record = signup_record("signup:r.wangwei-2", cleaned, "r.wangwei", "g1",
                           {"status": "ambiguous", "reason": "x" * 500}, queued, NOW)
    assert registry.problems(record) == [] and record["status"] == "pending"
    assert "household" not in record
    with pytest.raises(ValueError):
        automatic_link("resident:r.wangwei-2", queued, "r.wangwei", "王伟", HOUSEHOLD, NOW)


def test_one_grid_queues_each_signup() -> None:
    assert queue_grid(["g2", "g1", "g2"], ["g3"], ["g0"]) == "g1"
    assert queue_grid([], ["g3", "g4"], ["g0"]) == "g3"
    assert queue_grid([], [], ["g5", "g0"]) == "g0"
    assert queue_grid([], [], []) is None


def test_the_person_themself_is_their_name_and_their_phone_on_record() -> None:
    """What only the person may see (their full ID number) needs more than a name a
    housemate or a neighbour could type: the verified phone must be theirs on record."""
    head, wang_wei, wang_fang = MEMBERS[0], MEMBERS[1], MEMBERS[3]
    assert is_the_person(wang_fang, HOUSEHOLD, "王芳", "13800000004")
    assert is_the_person(head, HOUSEHOLD, "王建国", ON_RECORD)  # the household's, for its head
    assert not is_the_person(wang_fang, HOUSEHOLD, "王芳", "13700000000")  # a namesake
    assert not is_the_person(wang_wei, HOUSEHOLD, "王伟", ON_RECORD)  # the head's phone
    assert not is_the_person(wang_fang, HOUSEHOLD, "王伟", "13800000004")  # another name
    assert not is_the_person(wang_fang, HOUSEHOLD, "王芳", None)
