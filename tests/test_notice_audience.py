"""server/domain/audience.py: which households a notice reaches, and what a notice may hold
(plain text, no markup, limits, and images that are what they say)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from server.domain.audience import (
    LEVELS,
    MAX_BODY_CHARS,
    MAX_IMAGE_BYTES,
    MAX_TITLE_CHARS,
    TAGS,
    FollowUp,
    Place,
    audience_keys,
    audience_problems,
    body_problems,
    follow_up,
    household_tags,
    image_problems,
    includes,
    notice_problems,
    paragraphs,
    place_keys,
    place_of,
)
from server.domain.validation import SchemaRegistry

HOME = Place(street="330802001", community="330802001001", grid="g1", building="fmj-3",
             tags=frozenset({"elderly_alone", "owner"}))


@pytest.mark.parametrize(("audience", "reached"), [
    ({"level": "city"}, True),
    ({"level": "city", "codes": []}, True),
    ({"level": "street", "codes": ["330802001"]}, True),
    ({"level": "street", "codes": ["330802002"]}, False),
    ({"level": "community", "codes": ["330802001002", "330802001001"]}, True),
    ({"level": "community", "codes": ["330802001002"]}, False),
    ({"level": "grid", "codes": ["g1"]}, True),
    ({"level": "grid", "codes": ["g2"]}, False),
    ({"level": "building", "codes": ["fmj-3"]}, True),
    ({"level": "building", "codes": ["fmj-4"]}, False),
    # A supervisor's building notice holds the grids it was addressed in: the same compound
    # code and number in another community's grid is another building.
    ({"level": "building", "codes": ["fmj-3"], "grids": ["g1", "g7"]}, True),
    ({"level": "building", "codes": ["fmj-3"], "grids": ["g7"]}, False),
    ({"level": "building", "codes": ["fmj-3"], "grids": "g1"}, False),
    ({"level": "community", "codes": ["330802001001"], "tags": ["elderly_alone"]}, True),
    ({"level": "community", "codes": ["330802001001"], "tags": ["hardship", "owner"]}, True),
    ({"level": "community", "codes": ["330802001001"], "tags": ["tenant"]}, False),
    ({"level": "city", "tags": ["disability"]}, False),
    # Malformed audiences reach no one (the schema refuses them; the rule does not guess).
    ({"level": "community", "codes": "330802001001"}, False),  # a string is not a list of codes
    ({"level": "community"}, False),
    ({"level": "compound", "codes": ["fmj"]}, False),
    ({"level": "city", "tags": "owner"}, False),
    ({}, False),
])
def test_a_notice_reaches_the_households_of_its_audience(audience: dict[str, Any],
                                                          reached: bool) -> None:
    assert includes(audience, HOME) is reached


def test_the_keys_of_an_audience_meet_those_of_a_place() -> None:
    """The index files notices under audience keys and looks households up by place keys: a
    notice can only reach a household when they share a key."""
    for audience in ({"level": "city"}, {"level": "grid", "codes": ["g1", "g9"]},
                     {"level": "building", "codes": ["fmj-3"]}):
        assert set(audience_keys(audience)) & {"city:", *place_keys(HOME)}
    assert not set(audience_keys({"level": "grid", "codes": ["g2"]})) & set(place_keys(HOME))
    assert audience_keys({"level": "grid", "codes": "g1"}) == ()


def test_a_households_place_and_tags() -> None:
    household = {"grid": "g1", "address": {"compound": "fmj", "building": "3", "room": "301"},
                 "special_groups": ["elderly_alone", "unknown"], "tenure": "owned"}
    assert place_of(household, "330802001001", "330802001") == HOME
    assert household_tags({"tenure": "rented", "special_groups": "hardship"}) == {"tenant"}
    assert place_of({"grid": "g1"}, "c", "s") is None
    assert place_of({"grid": "g1", "address": {"compound": "fmj", "building": 3}}, "c", "s") is None


@pytest.mark.parametrize(("audience", "code"), [
    ({"level": "city", "codes": ["x"]}, "audience_codes"),
    ({"level": "grid", "codes": []}, "audience_codes"),
    ({"level": "grid"}, "audience_codes"),
    ({"level": "grid", "codes": [""]}, "audience_codes"),
    ({"level": "grid", "codes": [7]}, "audience_codes"),
    ({"level": "grid", "codes": "g1"}, "audience_codes"),
    ({"level": "grid", "codes": ["g1"], "tags": ["party"]}, "audience_tags"),
    ({"level": "country"}, "audience_level"),
    ("city", "audience_level"),
])
def test_an_audience_must_be_well_formed(audience: Any, code: str) -> None:
    problems = audience_problems(audience)
    assert [p.code for p in problems] == [code]
    assert "发布范围" in problems[0].message and "Audience" in problems[0].message


NOTICE = {"title": "停水通知", "body": "明天 8:00–12:00 停水。\n\n请提前储水。3 < 5，A&B 照常。",
          "audience": {"level": "community", "codes": ["330802001001"]}}


def test_a_plain_notice_passes() -> None:
    assert notice_problems(NOTICE) == []
    assert paragraphs(NOTICE["body"]) == ["明天 8:00–12:00 停水。", "请提前储水。3 < 5，A&B 照常。"]
    assert paragraphs("a\n\nb\n \u3000\n\nc\n") == ["a", "b", "c"]
    assert paragraphs("one\nparagraph") == ["one\nparagraph"]


@pytest.mark.parametrize(("change", "field", "code"), [
    ({"body": "<script>alert(1)</script>"}, "/body", "markup"),
    ({"body": "请看 <a href='x'>这里</a>"}, "/body", "markup"),
    ({"body": "< img src=x onerror=alert(1)>"}, "/body", "markup"),
    ({"body": "注释 <!-- x -->"}, "/body", "markup"),
    ({"body": "&lt;b&gt;"}, "/body", "markup"),
    ({"body": "&#60;script&#62;"}, "/body", "markup"),
    ({"body": "&#x3c;script"}, "/body", "markup"),
    ({"title": "<b>重要</b>"}, "/title", "markup"),
    ({"title": "停水\n通知"}, "/title", "text_character"),
    ({"title": "停" * 61}, "/title", "text_length"),
    ({"title": ""}, "/title", "text_empty"),
    ({"title": None}, "/title", "text_type"),
    ({"body": "字" * 5001}, "/body", "text_length"),
    ({"body": "\n\n".join(["段"] * 51)}, "/body", "paragraphs"),
    ({"body": "停水\t通知"}, "/body", "text_character"),
    ({"body": "停水\x1b[31m"}, "/body", "text_character"),
    ({"body": "停水\ud800"}, "/body", "text_character"),
    ({"body": "停水\u2066通知"}, "/body", "text_character"),
    ({"body": ["停水"]}, "/body", "text_type"),
])
def test_the_body_is_plain_text_within_limits(change: dict[str, Any], field: str,
                                               code: str) -> None:
    problems = body_problems({**NOTICE, **change})
    assert [(p.field, p.code) for p in problems] == [(field, code)], problems
    label = "标题" if field == "/title" else "正文"
    assert label in problems[0].message and " / " in problems[0].message


JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 60
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 60
WEBP = b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 60


def image(content: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
    return {"content_type": content_type, "data": base64.b64encode(content).decode()}


def test_three_images_of_the_right_kinds_pass() -> None:
    images = {"a.jpg": image(JPEG), "b.png": image(PNG, "image/png"),
              "c.webp": image(WEBP, "image/webp")}
    assert image_problems(images) == []
    assert image_problems({"a.jpg": {"content_type": "image/jpeg", "stub": True,
                                     "digest": "md5-x", "length": 1000}}) == []
    assert image_problems(None) == []


@pytest.mark.parametrize(("images", "code"), [
    ({f"{i}.jpg": image(JPEG) for i in range(4)}, "images_count"),
    ({"a.svg": image(b"<svg onload=alert(1)>", "image/svg+xml")}, "image_content_type"),
    ({"a.html": image(b"<html>", "text/html")}, "image_content_type"),
    ({"a.png": image(b"<svg onload=alert(1)>", "image/png")}, "image_bytes"),
    ({"a.jpg": image(PNG)}, "image_bytes"),  # a PNG declared as a JPEG
    ({"a.jpg": image(JPEG + b"\0" * MAX_IMAGE_BYTES)}, "image_size"),
    ({"a.jpg": {"content_type": "image/jpeg", "stub": True, "length": MAX_IMAGE_BYTES + 1}},
     "image_size"),
    ({"a.jpg": {"content_type": "image/jpeg", "stub": True}}, "image_size"),
    ({"a.jpg": {"content_type": "image/jpeg", "data": "not base64!"}}, "image_data"),
    ({"a.jpg": "JPEG"}, "image_content_type"),
    ({"../a.jpg": image(JPEG)}, "image_name"),
    ({"a\u202egpj.exe": image(JPEG)}, "image_name"),
    (["a.jpg"], "images_type"),
])
def test_images_are_few_small_and_what_they_say(images: Any, code: str) -> None:
    problems = image_problems(images)
    assert [p.code for p in problems] == [code], problems
    assert "图片" in problems[0].message or "附件" in problems[0].message
    assert " / " not in problems[0].zh  # one language each side


def test_all_rules_together() -> None:
    bad = {**NOTICE, "body": "<p>x</p>", "audience": {"level": "grid"},
           "_attachments": {"a.png": image(JPEG, "image/png")}}
    assert [p.code for p in notice_problems(bad)] == ["audience_codes", "markup", "image_bytes"]


def test_the_schema_and_the_rules_agree() -> None:
    """schemas/notice.v1.schema.json states the limits a schema can hold; the rules above
    state the same numbers, levels and tags."""
    registry = SchemaRegistry()
    schema = registry.validators[("notice", 1)].schema["properties"]
    assert schema["title"]["maxLength"] == MAX_TITLE_CHARS
    assert schema["body"]["maxLength"] == MAX_BODY_CHARS
    assert tuple(schema["audience"]["properties"]["level"]["enum"]) == LEVELS
    assert tuple(schema["audience"]["properties"]["tags"]["items"]["enum"]) == TAGS
    assert registry.attachment_types[("notice", 1)] == {"image/jpeg", "image/png", "image/webp"}
    assert registry.problems({"type": "notice", "schema_version": 1, "created_by": "chen.jing",
                              **NOTICE, "status": "draft"}) == []


def test_the_follow_up_lists_whom_to_visit_by_grid() -> None:
    places = {f"household:{n}": Place("s1", "c1", grid, "fmj-3") for n, grid in
              (("a", "g1"), ("b", "g1"), ("c", "g1"), ("d", "g1"), ("e", "g2"))}
    places["household:x"] = Place("s1", "c9", "g9", "zz-1")  # outside the audience
    notice = {"_id": "notice:water", "needs_confirmation": True,
              "audience": {"level": "community", "codes": ["c1"]}}
    receipts = [
        {"notice": "notice:water", "household": "household:a", "confirmed_at": "2026-12-03"},
        {"notice": "notice:water", "household": "household:b"},
        {"notice": "notice:other", "household": "household:c", "confirmed_at": "2026-12-03"},
    ]
    residents = ["household:a", "household:b", "household:c", "household:e"]
    result = follow_up(notice, places, residents, receipts)
    assert result == {
        "g1": FollowUp(unread=("household:c",), unconfirmed=("household:b",),
                       without_account=("household:d",), done=1),
        "g2": FollowUp(unread=("household:e",)),
    }
    read_only = follow_up({**notice, "needs_confirmation": False}, places, residents, receipts)
    assert read_only["g1"] == FollowUp(unread=("household:c",),
                                       without_account=("household:d",), done=2)
    assert follow_up({"_id": "notice:water"}, places, residents, receipts) == {}
