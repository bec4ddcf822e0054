"""Notices (公告/通知): who they reach, and what a notice may hold.

Audience (发布范围). A notice names an area, `{"level", "codes"}`, at one level of the hierarchy:
the whole city (市, no codes), streets (街道), communities (社区), grids (网格) or buildings (楼幢,
`<compound>-<number>`, the key of a `building:` record), and may narrow it to households with a
tag (标签: elderly living alone, hardship, disability, health needs from the household's
special groups; owners and tenants from its tenure). A tag always sits inside an area: a
supervisor addresses the elderly living alone of *their* community, so the audience can be
checked against the author's scope like any other area, and "all owners in the city" is the
city level with a tag. A household is in the audience when its place is in one of the codes at
that level and, if tags are given, it has at least one of them.

Body (正文). Plain text with paragraphs (blank lines between them), shown as text, never as
markup: anything that looks like an HTML tag, comment or entity (`<b>`, `</p>`, `<!--`,
`&lt;`) is refused rather than escaped, so a notice reads the same on every screen and no
supervisor's paste from a web page carries a script; "3 < 5" and "A&B" are fine. Title ≤ 60
characters on one line, body ≤ 5,000 characters in at most 50 paragraphs.

Follow-up (催办). For a notice that asks to be confirmed (须确认), the supervisor and the grid
worker see, per grid, the households of its audience still to visit: those with residents of
whom none has read it, those read but not confirmed, and those without an active resident,
whom only a knock on the door reaches. A household counts as confirmed when any of its
residents confirmed (`follow_up`).

Images (图片): at most 3, JPEG, PNG or WebP, each at most 512 KB. A notice to a city goes to every
resident's phone (160,000 of them), so an image costs 160,000 downloads: the PWA scales photos
before upload. Bytes sent inline must start as their declared type does (an SVG or an HTML page
named `.png` is refused); the name follows the attachment rules of server/domain/validation.py.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from server.domain.rules import Problem
from server.domain.text import shown_name, text_problem
from server.domain.validation import attachment_name_problem

LEVELS = ("city", "street", "community", "grid", "building")
TAGS = ("elderly_alone", "hardship", "disability", "health_needs", "owner", "tenant")
MAX_TITLE_CHARS = 60
MAX_BODY_CHARS = 5_000
MAX_PARAGRAPHS = 50
MAX_IMAGES = 3
MAX_IMAGE_BYTES = 512 * 1024
# The first bytes of each image type: JPEG's SOI marker, PNG's signature, WebP's RIFF....WEBP.
IMAGE_MAGIC = {
    "image/jpeg": (re.compile(rb"\xff\xd8\xff", re.DOTALL), 3),
    "image/png": (re.compile(rb"\x89PNG\r\n\x1a\n", re.DOTALL), 8),
    "image/webp": (re.compile(rb"RIFF....WEBP", re.DOTALL), 12),
}
LABELS = {
    "title": ("标题", "Title"),
    "body": ("正文", "Body"),
    "audience": ("发布范围", "Audience"),
    "_attachments": ("图片", "Images"),
}
# A tag (<p, </p, <!--, <?xml), or a character entity (&lt; &#60; &#x3c;).
_MARKUP = re.compile(r"<\s*[A-Za-z/!?]|&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]"
                     r"{1,6});")
_PARAGRAPH_BREAK = re.compile(r"\n[ \u3000]*\n")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a household is, as audiences name it, and its tags. Held once per household by
    the allowed-ids index (server/domain/allowed_ids.py)."""

    street: str
    community: str
    grid: str
    building: str
    tags: frozenset[str] = frozenset()

    def code(self, level: str) -> str:
        return "" if level == "city" else str(getattr(self, level))


def household_tags(household: Mapping[str, Any]) -> frozenset[str]:
    """A household's tags: its special groups, and owner or tenant from its tenure."""
    groups = household.get("special_groups")
    tags = {g for g in groups if isinstance(g, str) and g in TAGS} if isinstance(
        groups, list) else set()
    tenure = household.get("tenure")
    if tenure == "owned":
        tags.add("owner")
    elif tenure == "rented":
        tags.add("tenant")
    return frozenset(tags)


def place_of(household: Mapping[str, Any], community: str, street: str) -> Place | None:
    """The place of a stored household, its grid's community and street given from the
    directory; None when its address names no building."""
    address = household.get("address")
    grid = household.get("grid")
    if not isinstance(address, Mapping) or not isinstance(grid, str):
        return None
    compound, number = address.get("compound"), address.get("building")
    if not isinstance(compound, str) or not isinstance(number, str):
        return None
    return Place(street, community, grid, f"{compound}-{number}", household_tags(household))


def includes(audience: Mapping[str, Any], place: Place) -> bool:
    """Whether a household at `place` is in `audience` (see the module's rule)."""
    level = audience.get("level")
    if level not in LEVELS:
        return False
    codes = audience.get("codes")
    if level != "city" and (not isinstance(codes, list) or place.code(level) not in codes):
        return False
    # A building's code is its compound's and its number, and compound codes repeat across
    # communities: a supervisor's building notice holds the grids it was addressed in.
    grids = audience.get("grids")
    if level == "building" and grids is not None and (
            not isinstance(grids, list) or place.grid not in grids):
        return False
    tags = audience.get("tags") or []
    if not isinstance(tags, list):
        return False
    return not tags or any(tag in place.tags for tag in tags)


def audience_problems(audience: Any) -> list[Problem]:
    """An audience's shape, beyond the schema: a city has no codes, every other level at least
    one. Whether the author may address it is the author's scope (server/domain/scope.py)."""
    zh, en = LABELS["audience"]
    if not isinstance(audience, Mapping) or audience.get("level") not in LEVELS:
        return [Problem("/audience", "audience_level", f"“{zh}”应为全市、街道、社区、网格或楼幢",
                        f"{en} must be the city, streets, communities, grids or buildings")]
    codes = audience.get("codes", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) and c for c in codes) or (
            audience["level"] == "city") != (not codes):
        return [Problem("/audience/codes", "audience_codes",
                        f"“{zh}”：全市范围不列编号，其他范围至少列一个",
                        f"{en}: the city takes no codes, every other level at least one")]
    tags = audience.get("tags") or []
    if not isinstance(tags, list) or any(t not in TAGS for t in tags):
        return [Problem("/audience/tags", "audience_tags", f"“{zh}”的标签无效",
                        f"{en}: unknown tag")]
    return []


def body_problems(notice: Mapping[str, Any]) -> list[Problem]:
    """The title and body rules: plain text, no markup, the limits."""
    problems = []
    title = text_problem(notice.get("title"), "/title", LABELS["title"],
                         max_chars=MAX_TITLE_CHARS)
    body_value = notice.get("body")
    body = text_problem(body_value, "/body", LABELS["body"], max_chars=MAX_BODY_CHARS,
                        paragraphs=True)
    problems += [p for p in (title, body) if p is not None]
    for field, value in (("title", notice.get("title")), ("body", body_value)):
        if isinstance(value, str) and _MARKUP.search(value):
            zh, en = LABELS[field]
            problems.append(Problem(f"/{field}", "markup",
                                    f"“{zh}”只能是纯文本，不能含有 HTML 标签或脚本",
                                    f"{en} must be plain text, without HTML tags or script"))
    if body is None and isinstance(body_value, str):
        count = len(paragraphs(body_value))
        if count > MAX_PARAGRAPHS:
            zh, en = LABELS["body"]
            problems.append(Problem("/body", "paragraphs",
                                    f"“{zh}”段落太多（{count} 段），最多 {MAX_PARAGRAPHS} 段",
                                    f"{en} has too many paragraphs ({count}); at most "
                                    f"{MAX_PARAGRAPHS}"))
    return problems


def paragraphs(body: str) -> list[str]:
    """The paragraphs of a body as the PWA shows them: split at blank lines, each trimmed."""
    return [p.strip() for p in _PARAGRAPH_BREAK.split(body) if p.strip()]


def image_problems(attachments: Any) -> list[Problem]:
    """The image rules for a notice's `_attachments` (stubs of stored images count too)."""
    if attachments is None:
        return []
    zh, en = LABELS["_attachments"]
    if not isinstance(attachments, Mapping):
        return [Problem("/_attachments", "images_type", f"“{zh}”格式错误",
                        f"{en} are malformed")]
    if len(attachments) > MAX_IMAGES:
        return [Problem("/_attachments", "images_count",
                        f"“{zh}”最多 {MAX_IMAGES} 张，收到 {len(attachments)} 张",
                        f"at most {MAX_IMAGES} {en.lower()}, got {len(attachments)}")]
    problems = []
    for name, att in attachments.items():
        if attachment_name_problem(name) is not None:
            # Named by the label here: the store's reason names " / " itself, so it cannot be
            # split back into its two languages.
            shown = shown_name(name)
            problems.append(Problem(
                "/_attachments", "image_name",
                f"“{zh}”的文件名 {shown} 无效：不能含斜杠、控制字符，不能以 _ 开头，最长 255 "
                "字节", f"{en}: the file name {shown} is not valid: no slash or control "
                "characters, not starting with _, at most 255 bytes"))
            continue
        problem = one_image_problem(str(name), att)
        if problem is not None:
            problems.append(problem)
    return problems


def one_image_problem(name: str, att: Any) -> Problem | None:
    zh, en = LABELS["_attachments"]
    pointer = f"/_attachments/{name.replace('~', '~0').replace('/', '~1')}"
    if not isinstance(att, Mapping) or att.get("content_type") not in IMAGE_MAGIC:
        return Problem(pointer, "image_content_type",
                       f"“{zh}”只接受 JPEG、PNG 或 WebP 格式",
                       f"{en} must be JPEG, PNG or WebP")
    content_type = str(att["content_type"])
    data = att.get("data")
    size = att.get("length")
    content = b""
    if isinstance(data, str):
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return Problem(pointer, "image_data", f"“{zh}”的内容不是有效的 base64",
                           f"{en}: the data is not valid base64")
        size = len(content)
    if not isinstance(size, int) or isinstance(size, bool) or size > MAX_IMAGE_BYTES:
        limit = MAX_IMAGE_BYTES // 1024
        return Problem(pointer, "image_size", f"“{zh}”每张最大 {limit} KB",
                       f"{en}: each at most {limit} KB")
    magic, length = IMAGE_MAGIC[content_type]
    if isinstance(data, str) and not magic.match(content[:length]):
        return Problem(pointer, "image_bytes", f"“{zh}”的内容与其格式 {content_type} 不符",
                       f"{en}: the bytes are not a {content_type}")
    return None


def notice_problems(notice: Mapping[str, Any]) -> list[Problem]:
    """All of the rules a schema cannot state, for a notice as written."""
    return (audience_problems(notice.get("audience")) + body_problems(notice)
            + image_problems(notice.get("_attachments")))


def audience_keys(audience: Mapping[str, Any]) -> Iterable[str]:
    """The index keys an audience is filed under (`level:code`, `city:` for the city), the
    same keys `place_keys` gives a household: a notice reaches a household when they share
    one and the tags agree."""
    level = str(audience.get("level"))
    if level == "city":
        return ("city:",)
    codes = audience.get("codes")
    return tuple(f"{level}:{code}" for code in codes if isinstance(code, str)) if isinstance(
        codes, list) else ()


def place_keys(place: Place) -> tuple[str, ...]:
    return tuple(f"{level}:{place.code(level)}" for level in LEVELS)


@dataclass(frozen=True)
class FollowUp:
    """One grid's households still to visit for a notice, each list sorted."""

    unread: tuple[str, ...] = ()
    unconfirmed: tuple[str, ...] = ()
    without_account: tuple[str, ...] = ()
    done: int = 0
    """Households that read it (confirmed it, for a notice that asks)."""


def follow_up(notice: Mapping[str, Any], places: Mapping[str, Place],
              with_residents: Iterable[str],
              receipts: Iterable[Mapping[str, Any]]) -> dict[str, FollowUp]:
    """The follow-up of `notice` by grid: `places` are the households to consider (id to
    place; those outside the audience are skipped), `with_residents` the households that have
    an active resident, `receipts` the notice's receipts."""
    audience = notice.get("audience")
    if not isinstance(audience, Mapping):
        return {}
    needs = notice.get("needs_confirmation") is True
    read, confirmed = set(), set()
    for receipt in receipts:
        if receipt.get("notice") == notice.get("_id"):
            read.add(receipt.get("household"))
            if receipt.get("confirmed_at"):
                confirmed.add(receipt.get("household"))
    accounts = set(with_residents)
    lists: dict[str, tuple[list[str], list[str], list[str], list[int]]] = {}
    for household, place in sorted(places.items()):
        if not includes(audience, place):
            continue
        unread, unconfirmed, without, done = lists.setdefault(place.grid, ([], [], [], [0]))
        if household in (confirmed if needs else read):
            done[0] += 1
        elif household in read:
            unconfirmed.append(household)
        elif household in accounts:
            unread.append(household)
        else:
            without.append(household)
    return {grid: FollowUp(tuple(a), tuple(b), tuple(c), d[0])
            for grid, (a, b, c, d) in sorted(lists.items())}
