"""Notices as supervisors write them (公告发布) and receipts as the server takes them (回执).
What a notice may hold and whom it reaches is server/domain/audience.py; this module adds who
may write one, to whom, and how its answers come back.

1. Authors (发布人). A community or street supervisor (社区/街道工作人员) or the city admin
   writes notices; workers and residents do not. An author addresses only their own scope
   (`scope_problems`): an admin anything, the city included; a supervisor the streets they
   hold, the communities they hold or that lie in their streets, the grids they reach, and
   the buildings of those grids. A code outside the scope and a code that does not exist get
   the same answer, so the check is no oracle of another community's codes. An admin's codes
   must exist (streets, communities and grids the directory knows; a building is taken as
   given, as only every grid's households could say).
2. What is sent (`draft_problems`): only the fields of a draft (FIELDS), each checked by its
   rule; `created_by`, `status`, `published_at` and the id are the server's (a forged author
   is refused by name, never taken). Images come as a list of {name, content_type, data} and
   are stored as the notice's attachments, checked by audience.py's image rules; nothing is
   stored when any is refused. An expiry, when given, is a date-time in the future.
3. Withdrawal (撤回) is the author's or an admin's; the notice stays, `withdrawn`, so that
   the resident endpoint can tell each phone to remove it (server/domain/allowed_ids.py).
   A supervisor lists and follows up, in their own grids, every notice that reaches into
   their scope, a city notice or a street supervisor's included (`overlaps`).
4. Receipts (`merged_receipt`): one per resident and notice, its id fixed by the two
   (server/domain/resident_writes.py). The first to arrive makes it; a later one may only add
   `confirmed_at` to it (read today, confirmed tomorrow); anything else, a replay included,
   changes nothing. Arrival order is the server's: two phones of one account racing get one
   receipt, never two revisions in conflict.
5. The follow-up (催办) lists households by their address and the head's name, the name down
   to its first character (王**) unless the reader sees the grid unmasked: its own worker, or
   a holder of the `unmask` right (server/domain/masking.py). A notice to a special group
   (独居老人, 困难家庭, 残疾人, 健康需求) lists its households only to such a reader: the
   list would say who is in the group, which special groups hide (`lists_households`);
   others see the grid's counts.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from server.domain import audience as rules
from server.domain.rules import Problem, conforms
from server.domain.scope import Directory, Grid, User
from server.domain.text import shown_name, unknown_fields

AUTHOR_ROLES = ("supervisor", "admin")
FIELDS = frozenset({"title", "body", "audience", "pinned", "needs_confirmation", "expires_at",
                    "images"})
SERVER_FIELDS = ("created_by", "status", "published_at", "_id", "_rev", "type",
                 "schema_version", "_attachments")
LABELS: dict[str, tuple[str, str]] = {
    **rules.LABELS,
    "pinned": ("置顶", "Pinned"),
    "needs_confirmation": ("须确认", "Please confirm"),
    "expires_at": ("有效期至", "Expires at"),
    "images": rules.LABELS["_attachments"],
    "created_by": ("发布人", "Author"),
    "status": ("状态", "Status"),
    "published_at": ("发布时间", "Published at"),
}
IMAGE_MEMBERS = frozenset({"name", "content_type", "data"})
MAX_AUDIENCE_CODES = 200  # as the schema says: a notice to more is a notice to their parent


def may_author(user: User) -> bool:
    return user.role in AUTHOR_ROLES and not user.disabled


def _out_of_scope(codes: list[str]) -> Problem:
    zh, en = LABELS["audience"]
    shown = ", ".join(shown_name(c) for c in codes[:5])
    return Problem("/audience/codes", "audience_scope",
                   f"“{zh}”中的 {shown} 不在您的管辖范围内（或不存在）",
                   f"{en}: {shown} is outside your area (or does not exist)")


def scope_problems(audience: Mapping[str, Any], user: User, directory: Directory,
                   building_grids: Callable[[str], frozenset[str]]) -> list[Problem]:
    """Rule 1 for an audience whose shape is right (audience.audience_problems found nothing).
    `building_grids(code)`: the grids whose households are in that building."""
    level = audience["level"]
    if user.is_admin:  # anywhere, but somewhere: a typo must not make a notice for no one
        known: dict[str, Callable[[str], bool]] = {
            "street": lambda code: any(g.street == code for g in directory.grids.values()),
            "community": lambda code: any(g.community == code
                                          for g in directory.grids.values()),
            "grid": lambda code: code in directory.grids,
        }
        unknown = [c for c in audience.get("codes") or () if level in known
                   and not known[level](c)]
        return [_out_of_scope(unknown)] if unknown else []
    if level == "city" or user.role != "supervisor":
        zh, en = LABELS["audience"]
        return [Problem("/audience/level", "audience_city", f"“{zh}”：只有市级管理员可以向全市发布",
                        f"{en}: only the city admin addresses the whole city")]
    grids = directory.grids.values()
    reached: dict[str, Callable[[str], bool]] = {
        "street": lambda code: code in user.streets,
        "community": lambda code: code in user.communities or any(
            g.community == code and g.street in user.streets for g in grids),
        "grid": lambda code: directory.reaches(user, code),
        "building": lambda code: any(directory.reaches(user, g) for g in building_grids(code)),
    }
    outside = [c for c in audience["codes"] if not reached[level](c)]
    return [_out_of_scope(outside)] if outside else []


def overlaps(audience: Mapping[str, Any], mine: Iterable[Grid]) -> bool:
    """Whether an audience reaches into a supervisor's grids (`mine`): at least one of them
    may hold households of it. A building is judged by its grids, which only the store
    knows, so another author's building notice is not listed."""
    level, codes = audience.get("level"), audience.get("codes")
    wanted = set(codes) if isinstance(codes, list) else set()
    return any(level == "city" or (level == "street" and g.street in wanted)
               or (level == "community" and g.community in wanted)
               or (level == "grid" and g.code in wanted) for g in mine)


def draft_problems(draft: Mapping[str, Any], now: datetime.datetime) -> list[Problem]:
    """Rule 2: every problem of a draft as sent, before anything is stored."""
    forged = [k for k in SERVER_FIELDS if k in draft]
    if forged:
        zh, en = LABELS.get(forged[0], (forged[0], forged[0]))
        return [Problem(f"/{forged[0]}", "server_field", f"“{zh}”由服务器填写，不能提交",
                        f"{en} is filled in by the server and cannot be sent")]
    problems = unknown_fields(draft, FIELDS)
    problems += rules.audience_problems(draft.get("audience"))
    if not problems and isinstance(draft["audience"], Mapping):
        extra = sorted(set(draft["audience"]) - {"level", "codes", "tags"})
        codes = draft["audience"].get("codes") or []
        if extra or len(codes) > MAX_AUDIENCE_CODES or len(set(codes)) != len(codes):
            zh, en = LABELS["audience"]
            problems.append(Problem("/audience", "audience_shape",
                                    f"“{zh}”只含范围、编号（不重复，最多 {MAX_AUDIENCE_CODES} 个）"
                                    "和标签", f"{en} holds a level, codes (distinct, at most "
                                    f"{MAX_AUDIENCE_CODES}) and tags only"))
    problems += rules.body_problems(draft)
    for name in ("pinned", "needs_confirmation"):
        if name in draft and not isinstance(draft[name], bool):
            zh, en = LABELS[name]
            problems.append(Problem(f"/{name}", "boolean", f"“{zh}”应为是或否",
                                    f"{en} must be yes or no"))
    problems += _expiry_problems(draft.get("expires_at"), now)
    attachments, image_problems = images_to_attachments(draft.get("images"))
    problems += image_problems or rules.image_problems(attachments)
    return problems


def _expiry_problems(value: Any, now: datetime.datetime) -> list[Problem]:
    if value is None:
        return []
    zh, en = LABELS["expires_at"]
    if not isinstance(value, str) or not conforms("date-time", value):
        return [Problem("/expires_at", "expires_at", f"“{zh}”应为日期时间，例如 "
                        "2026-12-31T18:00:00+08:00",
                        f"{en} must be a date and time, e.g. 2026-12-31T18:00:00+08:00")]
    when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None or when <= now:
        return [Problem("/expires_at", "expires_past", f"“{zh}”应在将来，并带时区",
                        f"{en} must be in the future, with its time zone")]
    return []


def images_to_attachments(images: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The images of a draft as CouchDB attachments, or why they cannot be."""
    if images is None:
        return None, []
    zh, en = LABELS["images"]
    if not isinstance(images, list) or not all(
            isinstance(i, Mapping) and set(i) <= IMAGE_MEMBERS and isinstance(i.get("name"), str)
            for i in images):
        return None, [Problem("/images", "images_type",
                              f"“{zh}”应为图片列表，每张有名称、格式和内容",
                              f"{en} must be a list of images, each with a name, a type and "
                              "its data")]
    if len(images) > rules.MAX_IMAGES:
        return None, [Problem("/images", "images_count",
                              f"“{zh}”最多 {rules.MAX_IMAGES} 张，收到 {len(images)} 张",
                              f"at most {rules.MAX_IMAGES} {en.lower()}, got {len(images)}")]
    names = [i["name"] for i in images]
    if len(set(names)) != len(names):
        return None, [Problem("/images", "images_names", f"“{zh}”的文件名不能重复",
                              f"{en} must have distinct names")]
    attachments: dict[str, Any] = {}
    for image in images:
        data = image.get("data")
        if not isinstance(data, str):
            return None, [Problem("/images", "image_data", f"“{zh}”的内容不是有效的 base64",
                                  f"{en}: the data is not valid base64")]
        attachments[image["name"]] = {"content_type": image.get("content_type"), "data": data}
    return attachments, []


def notice_doc(draft: Mapping[str, Any], author: str, notice_id: str,
               now: datetime.datetime) -> dict[str, Any]:
    """The notice to store from a draft that passed `draft_problems`, published now."""
    doc: dict[str, Any] = {
        "_id": notice_id, "type": "notice", "schema_version": 1, "created_by": author,
        "title": draft["title"], "body": draft["body"],
        "audience": {k: v for k, v in draft["audience"].items() if k in ("level", "codes", "tags")
                     and (k != "codes" or draft["audience"]["level"] != "city")},
        "status": "published", "published_at": now.isoformat(timespec="seconds"),
        "pinned": draft.get("pinned", False) is True,
        "needs_confirmation": draft.get("needs_confirmation", False) is True}
    if draft.get("expires_at"):
        doc["expires_at"] = draft["expires_at"]
    attachments, _ = images_to_attachments(draft.get("images"))
    if attachments:
        doc["_attachments"] = attachments
    return doc


def may_withdraw(notice: Mapping[str, Any], user: User) -> bool:
    """Rule 3."""
    return may_author(user) and (user.is_admin or notice.get("created_by") == user.name)


def is_live(notice: Mapping[str, Any], now: datetime.datetime) -> bool:
    """Published and not expired: what residents hold and the follow-up asks about."""
    if notice.get("status") != "published":
        return False
    expires = notice.get("expires_at")
    if not isinstance(expires, str):
        return True
    try:
        return datetime.datetime.fromisoformat(expires.replace("Z", "+00:00")) > now
    except ValueError:
        return True


def merged_receipt(stored: Mapping[str, Any] | None,
                   incoming: Mapping[str, Any]) -> dict[str, Any] | None:
    """Rule 4: the receipt to write when `incoming` arrives and `stored` is held (None: no
    receipt yet), or None when nothing changes. `incoming` passed resident_write_problem
    against no stored revision (its fields, author and household are the resident's)."""
    body = {k: v for k, v in incoming.items() if not k.startswith("_") or k == "_id"}
    if stored is None or stored.get("_deleted"):
        return body
    if stored.get("confirmed_at") or not body.get("confirmed_at"):
        return None
    return {**{k: v for k, v in stored.items() if k not in ("_revisions", "_conflicts")},
            "confirmed_at": body["confirmed_at"]}


SPECIAL_TAGS = frozenset({"elderly_alone", "hardship", "disability", "health_needs"})


def lists_households(notice: Mapping[str, Any], unmasked: bool) -> bool:
    """Rule 5: whether the follow-up may list the households of `notice` to a reader."""
    wanted = notice.get("audience")
    tags = wanted.get("tags") if isinstance(wanted, Mapping) else None
    return unmasked or not (isinstance(tags, list) and SPECIAL_TAGS.intersection(tags))


def masked_name(name: Any) -> str:
    """A name down to its first character (王伟 → 王*), as someone outside the grid sees it."""
    text = str(name or "")
    return text[:1] + "*" * max(len(text) - 1, 1) if text else ""


def household_label(household: Mapping[str, Any]) -> str:
    """Where to knock: the compound's name, building, unit and room (坊门小区 3幢2单元301)."""
    address = household.get("address")
    if not isinstance(address, Mapping):
        return ""
    unit = f"{address.get('unit')}单元" if address.get("unit") else ""
    return (f"{address.get('compound_name') or address.get('compound') or ''} "
            f"{address.get('building', '')}幢{unit}{address.get('room', '')}").strip()


def visit_entry(household_id: str, household: Mapping[str, Any], state: str,
                unmasked: bool) -> dict[str, str]:
    """One household of the follow-up (rule 5); `state` is unread, unconfirmed or
    without_account (audience.FollowUp)."""
    name = household.get("head_name")
    return {"household": household_id, "address": household_label(household),
            "head_name": str(name or "") if unmasked else masked_name(name), "state": state}
