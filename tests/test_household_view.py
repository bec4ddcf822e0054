"""server/domain/household_view.py: a resident's phone gets their household with ID numbers
down to the last two characters, phones masked, and the worker's bookkeeping left out."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from server.domain.household_view import mask_id_number_for_resident, resident_view
from server.domain.masking import mask_id_number

DOCUMENTS = json.loads((Path(__file__).parent / "fixtures" / "documents.json").read_text(
    encoding="utf-8"))["types"]


def test_an_id_number_keeps_its_last_four_only() -> None:
    assert mask_id_number_for_resident("11010519491231002X") == "*" * 16 + "2X"
    assert mask_id_number_for_resident("2X") == "**"
    assert mask_id_number_for_resident(None) == ""


def test_a_member_is_shown_without_the_number_and_the_notes() -> None:
    """The view shows birth year and month, so nothing of the number's first 14 characters
    (area, birth date, sequence) may show beside them; the staff's mask (first three and last
    four) would show the area's start."""
    person = copy.deepcopy(DOCUMENTS["person"]["valid"][-1])
    person.update(phone="13912341234", remarks="独居，需每周探访")
    view = resident_view(person)
    number = str(person["id_number"])
    assert view["id_number"] == "*" * 16 + number[-2:]
    assert mask_id_number(number)[:3] == number[:3] != view["id_number"][:3]
    assert view["phone"] == "139****1234"
    assert "edits" not in view and "remarks" not in view
    assert person["phone"] == "13912341234" and "edits" in person  # the record is not changed
    assert {k: v for k, v in view.items() if k not in ("id_number", "phone")} == {
        k: v for k, v in person.items() if k not in ("id_number", "phone", "edits", "remarks")}


def test_the_household_keeps_its_own_record() -> None:
    household = {**DOCUMENTS["household"]["valid"][-1], "phone": "13800001111",
                 "special_groups": ["elderly_alone"], "_revisions": {"start": 2, "ids": ["a"]}}
    view = resident_view(household)
    assert view["phone"] == "138****1111" and view["special_groups"] == ["elderly_alone"]
    assert view["_id"] == household["_id"] and "_revisions" not in view


def test_other_types_pass_unmasked() -> None:
    notice = DOCUMENTS["notice"]["valid"][0]
    assert resident_view(notice) == notice
