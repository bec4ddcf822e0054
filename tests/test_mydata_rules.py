"""server/domain/mydata.py: what a resident is shown of what is held about them (their own
records, their household's through the phone's masking, nothing of a neighbour's), the file's
cells and name, and how a data request is made and answered. Pure: no store, no server."""

from __future__ import annotations

import csv
import datetime
import io
import json
from typing import Any

import pytest
from test_resident_writes import ACCOUNT, GRID, HOME, fixture

from server.domain import mydata
from server.domain.exports import safe_row
from server.domain.household_view import SHOWN_ID_CHARS
from server.domain.validation import SchemaRegistry

NEIGHBOUR = "household:330802001001010003"
NOW = datetime.datetime(2026, 12, 3, 2, 0, tzinfo=datetime.UTC)
SCHEMAS = SchemaRegistry()


doc = fixture  # the fixture's valid document of a type, some fields changed

ID_NUMBER = "330602195106047697"
LINK = doc("resident")
HOUSEHOLD = doc("household", _id=HOME, remarks="网格员备注：家里有狗", edits=[
    {"field": "/phone", "at": "2026-11-01T00:00:00Z", "by": "w1"}])
MEMBER = doc("person", _id="person:330802001001010002-1", household=HOME, phone="13912345678",
             remarks="备注")
MOVED_OUT = doc("person", _id="person:330802001001010002-9", household=HOME, status="moved_out",
                name="搬走的人")
VISIT = doc("household_visit", notes="邻居说他们常不在家")
SCREENING = doc("screening")
CODE = doc("activation_code")
SIGNUP = doc("signup", _id=f"signup:{ACCOUNT}")
CO_RESIDENT = doc("resident", _id="resident:r.other-330802001001010002", account="r.other",
                  created_by="wang.fang")
CO_SIGNUP = doc("signup", _id="signup:r.other", account="r.other", name="李四",
                phone="13700000000", household=HOME)
CO_CORRECTION = doc("correction_request", _id="correction_request:r.other-1",
                    created_by="r.other", note="别人的说明")
OWN_REQUEST = doc("data_request", _id=f"data_request:330802001001:{ACCOUNT}:20261203:1")
NEIGHBOUR_HOUSEHOLD = doc("household", _id=NEIGHBOUR, head_name="邻居甲")
NEIGHBOUR_MEMBER = doc("person", _id="person:330802001001010003-1", household=NEIGHBOUR,
                       name="邻居乙")
NEIGHBOUR_VISIT = doc("household_visit", _id="household_visit:n-1", household=NEIGHBOUR,
                      notes="邻居丙")
ACCOUNT_DOC = {"_id": f"user:{ACCOUNT}", "type": "user", "name": ACCOUNT, "role": "resident",
               "password": "$argon2id$secret", "session_salt": "salty", "grids": [],
               "created_at": "2026-12-01T00:00:00+00:00",
               "resident": {"community": "330802001001", "grids": [GRID]}}
EVERYTHING = [ACCOUNT_DOC, LINK, HOUSEHOLD, MEMBER, MOVED_OUT, VISIT, SCREENING, CODE, SIGNUP,
              CO_RESIDENT, CO_SIGNUP, CO_CORRECTION, OWN_REQUEST, doc("correction_request"),
              doc("notice_receipt"), NEIGHBOUR_HOUSEHOLD, NEIGHBOUR_MEMBER, NEIGHBOUR_VISIT,
              {**ACCOUNT_DOC, "_id": "user:r.other", "name": "r.other"}]


def shown(docs: list[dict[str, Any]], homes: dict[str, str] | None = None) -> dict[str, Any]:
    return mydata.gathered(ACCOUNT, {HOME: GRID} if homes is None else homes, docs, NOW)


def section(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return next(s["records"] for s in data["sections"] if s["key"] == key)


def test_only_active_links_make_a_household_theirs() -> None:
    pending = {**LINK, "status": "pending"}
    removed = {**LINK, "status": "removed"}
    someone_elses = {**LINK, "account": "r.other"}
    assert mydata.homes_of(ACCOUNT, [LINK]) == {HOME: GRID}
    assert mydata.homes_of(ACCOUNT, [pending, removed, someone_elses, HOUSEHOLD]) == {}


def test_nothing_of_another_household_appears_whatever_was_read() -> None:
    data = shown(EVERYTHING)
    text = json.dumps(data, ensure_ascii=False)
    for secret in ("邻居", NEIGHBOUR.partition(":")[2], "r.other", "李四", "13700000000",
                   "别人的说明", "$argon2id", "salty", "搬走的人", "家里有狗", "常不在家",
                   ID_NUMBER[:14], "13912345678", "K7MQ2XWD", "negative", "2 households",
                   "330802001001010003"):
        assert secret not in text, secret
    # Another person's records about the household are counted, never shown; a neighbour's
    # are not even counted.
    assert data["withheld"] == [{"type": "correction_request", "count": 1,
                                 "why": list(mydata.OTHERS)},
                                {"type": "signup", "count": 1, "why": list(mydata.OTHERS)}]


def test_a_pending_resident_sees_their_own_records_and_no_household() -> None:
    data = shown(EVERYTHING, homes={})
    assert data["households"] == []
    assert [r["id"] for r in section(data, "account")] == [f"user:{ACCOUNT}"]
    assert [r["id"] for r in section(data, "signup")] == [f"signup:{ACCOUNT}"]
    for key in ("household", "members", "records", "co_residents"):
        assert section(data, key) == [], key
    assert "严福根" not in json.dumps(data, ensure_ascii=False)


def test_each_kind_shown_as_the_table_says() -> None:
    data = shown(EVERYTHING)
    household, = section(data, "household")
    assert household["fields"]["phone"] == "166****5446"
    assert household["left_out"] == ["edits", "remarks"] and household["masked"] == ["phone"]
    member, = section(data, "members")  # the moved-out member is somebody else's now
    last = SHOWN_ID_CHARS  # household_view's rule, however many it shows
    assert member["fields"]["id_number"] == "*" * (18 - last) + ID_NUMBER[-last:]
    assert set(member["masked"]) == {"id_number", "phone"}
    records = {r["type"]: r for r in section(data, "records")}
    assert "notes" not in records["household_visit"]["fields"]
    assert records["household_visit"]["left_out"] == ["notes"]
    assert set(records["screening"]["fields"]) == {"grid", "household", "person", "campaign",
                                                   "screened_on"}
    assert "code" not in records["activation_code"]["fields"]
    co, = section(data, "co_residents")
    assert co["fields"] == {"household": HOME, "role": "owner", "status": "active",
                            "activation": "door_to_door",
                            "activated_at": "2026-12-01T09:30:00+08:00"}
    signup, = section(data, "signup")  # their own, as they typed it, phone and all
    assert signup["fields"]["phone"] == "13800138000"
    assert signup["fields"]["match"] == {"status": "ambiguous"}
    assert signup["left_out"] == ["match.candidates", "match.reason"]
    account, = section(data, "account")
    assert set(account["fields"]) == {"name", "role", "created_at", "resident"}
    assert "password" in account["left_out"]
    assert {r["type"] for r in section(data, "requests")} == {"data_request",
                                                              "correction_request"}
    assert [r["type"] for r in section(data, "receipts")] == ["notice_receipt"]
    assert [r["id"] for r in section(data, "links")] == [LINK["_id"]]


def test_a_record_forged_to_look_like_theirs_still_shows_nothing_of_a_neighbour() -> None:
    """A user record with their name but another id, a neighbour's household carrying their
    account, a link naming them for a household the index does not make theirs."""
    forged = [{**ACCOUNT_DOC, "_id": "user:r.other"},
              {**NEIGHBOUR_HOUSEHOLD, "account": ACCOUNT},
              {**NEIGHBOUR_MEMBER, "created_by": ACCOUNT}]
    data = shown(forged)
    assert all(not s["records"] for s in data["sections"]) and data["withheld"] == []


def test_the_csv_is_labelled_and_no_cell_is_a_formula() -> None:
    titles, labels = mydata.schema_labels({k: v.schema for k, v in SCHEMAS.validators.items()})
    evil = {**SIGNUP, "name": '=HYPERLINK("http://x","点我")', "address": "+1+cmd|' /C calc'!A0"}
    rows = list(mydata.export_rows(shown([ACCOUNT_DOC, evil]), titles, labels))
    assert rows[0] == mydata.CSV_HEADER
    out = io.StringIO()
    csv.writer(out).writerows(safe_row(r) for r in rows)
    read = list(csv.reader(io.StringIO(out.getvalue())))
    cells = [c for row in read for c in row]
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells), cells
    names = {row[3]: row[4] for row in read if row[1] == f"signup:{ACCOUNT}"}
    assert names["姓名 Name"].startswith("'=HYPERLINK")
    assert "未显示 Left out" in names


def test_the_file_name_is_the_servers() -> None:
    assert mydata.file_name("json", NOW) == "linli-my-data-20261203.json"
    late = datetime.datetime(2026, 12, 3, 17, 0, tzinfo=datetime.UTC)  # 01:00 in China
    assert mydata.file_name("csv", late) == "linli-my-data-20261204.csv"
    with pytest.raises(ValueError):
        mydata.file_name('x"; filename=evil.exe', NOW)


@pytest.mark.parametrize(("body", "codes"), [
    ({"kind": "deletion"}, []),
    ({"kind": "correction", "details": "电话错了\n请改", "household": HOME}, []),
    ({"kind": "delete"}, ["enum"]),
    ({"kind": ["deletion"]}, ["enum"]),
    ({"kind": None}, ["enum"]),
    ({}, ["enum"]),
    ({"kind": "access", "details": 5}, ["text_type"]),
    ({"kind": "access", "details": "x" * 2001}, ["text_length"]),
    ({"kind": "access", "details": "半个\ud83d字"}, ["text_character"]),
    ({"kind": "access", "details": "\u202eevil"}, ["text_character"]),
    ({"kind": "access", "household": NEIGHBOUR}, ["not_own"]),
    ({"kind": "access", "household": "household:never-made"}, ["not_own"]),
    ({"kind": "access", "household": [HOME]}, ["not_own"]),
    ({"kind": "access", "created_by": "r.other"}, ["unknown_field"]),
    ({"kind": "access", "status": "done", "answer": "ok"}, ["unknown_field"]),
])
def test_request_problems_by_input_class(body: dict[str, Any], codes: list[str]) -> None:
    assert [p.code for p in mydata.request_problems(body, {HOME: GRID})] == codes


def test_a_neighbour_and_a_household_never_made_are_refused_alike() -> None:
    one, = mydata.request_problems({"kind": "access", "household": NEIGHBOUR}, {HOME: GRID})
    two, = mydata.request_problems({"kind": "access", "household": "household:x"},
                                   {HOME: GRID})
    assert (one.zh, one.en) == (two.zh, two.en)


def test_a_new_request_is_the_servers_and_valid() -> None:
    made = mydata.new_request({"kind": "deletion", "household": HOME}, ACCOUNT, NOW)
    assert made == {"type": "data_request", "schema_version": 1, "created_by": ACCOUNT,
                    "kind": "deletion", "household": HOME, "status": "open",
                    "requested_at": "2026-12-03T02:00:00+00:00"}
    assert SCHEMAS.problems(made) == []


def test_slots_of_a_day_and_replays() -> None:
    slots = mydata.slot_ids("330802001001", ACCOUNT, NOW)
    assert len(slots) == mydata.MAX_PER_DAY == len(set(slots))
    assert slots[0] == f"data_request:330802001001:{ACCOUNT}:20261203:1"
    assert all(s.startswith(mydata.community_prefix("330802001001")) for s in slots)
    with pytest.raises(ValueError):
        mydata.day_prefix("33:08", ACCOUNT)
    stored = {**mydata.new_request({"kind": "access", "details": "请给我看"}, ACCOUNT, NOW),
              "_id": slots[0]}
    assert mydata.replay_of({"kind": "access", "details": "请给我看"}, [stored]) == stored
    assert mydata.replay_of({"kind": "access"}, [stored]) is None
    assert mydata.replay_of({"kind": "access", "details": "请给我看"},
                            [{**stored, "status": "done"}]) is None


def test_answers_move_forward_signed_and_say_why() -> None:
    stored = {**mydata.new_request({"kind": "deletion"}, ACCOUNT, NOW), "_id": "x",
              "_rev": "1-a"}
    assert [p.code for p in mydata.answer_problems(
        {"id": "x", "rev": "1-a", "status": "refused"})] == ["text_type"]
    assert [p.code for p in mydata.answer_problems(
        {"id": "x", "rev": "1-a", "status": "open", "answered_by": "me"})] == [
        "unknown_field", "enum"]
    assert mydata.answer_problems({"id": "x", "rev": "1-a", "status": "in_progress"}) == []
    doing, problem = mydata.answered(stored, {"status": "in_progress"}, "sup1", NOW)
    assert problem is None and doing["answered_by"] == "sup1"
    done, problem = mydata.answered(doing, {"status": "refused", "answer": "法律要求保存"},
                                    "sup2", NOW)
    assert problem is None and done["answered_by"] == "sup2" and SCHEMAS.problems(done) == []
    _, problem = mydata.answered(done, {"status": "done", "answer": "改主意了"}, "sup1", NOW)
    assert problem is not None and problem.code == "status_transition"
    _, problem = mydata.answered({**stored, "kind": "access"}, {"status": "done",
                                                                "answer": "x"}, "sup1", NOW)
    assert problem is None  # the stored request, not the body, says what was asked


@pytest.mark.parametrize(("requested_at", "due"), [
    ("2026-12-03T02:00:00+00:00", "2026-12-24"),  # a Thursday in China: 15 weekdays on
    ("2026-12-04T17:00:00+00:00", "2026-12-25"),  # Friday 17:00 UTC is Saturday in China
    ("2026-12-05T01:00:00+00:00", "2026-12-25"),  # a Saturday: counting starts on Monday
    ("2026-12-07T00:00:00+08:00", "2026-12-28"),  # a Monday
])
def test_an_answer_is_due_fifteen_working_days_on(requested_at: str, due: str) -> None:
    assert mydata.due_on(requested_at) == due
    assert datetime.date.fromisoformat(due).weekday() < 5


def test_a_request_is_overdue_only_while_waiting_after_its_day() -> None:
    doc = {"requested_at": "2026-12-03T02:00:00+00:00", "status": "open"}
    assert not mydata.overdue(doc, datetime.date(2026, 12, 24))
    assert mydata.overdue(doc, datetime.date(2026, 12, 25))
    assert mydata.overdue({**doc, "status": "in_progress"}, datetime.date(2027, 1, 1))
    for status in ("done", "refused"):
        assert not mydata.overdue({**doc, "status": status}, datetime.date(2027, 1, 1))
    for bad in (None, "", "yesterday", "2026-12-03T02:00:00"):  # no zone: not guessed
        assert mydata.due_on(bad) is None
        assert not mydata.overdue({**doc, "requested_at": bad}, datetime.date(2030, 1, 1))
