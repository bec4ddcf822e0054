"""Deliberation (议事协商): topics (议题) of a compound, their comments, support (附议) and the
red council's (红色议事会) decision. Pure rules; the store's side is server/sync/deliberation.py.

1. Place. A topic belongs to one compound (小区) of one community (社区): residents whose active
   household is there, and staff whose scope reaches a grid of that community, see it. Anyone
   else gets the answer of a topic that does not exist (`sees`), so a key is no oracle.
2. Raising (`topic_problems`, `raiser_kind`). A resident raises a topic in their own compound
   (their household says which); a grid worker raises it as the grid branch (网格党支部), a
   community supervisor or the city admin as the community (社区), each in their scope. The
   owners' committee (业主委员会) has no membership record yet: docs/deliberation.md. Title and
   body are plain text (server/domain/text.py); `created_by`, the raiser's kind, the counts
   and the status are the server's: a forged one is refused by name, never taken.
3. Comments (`comment_problems`): plain text, threaded one level. A reply names a top-level
   comment of the same topic; a reply to a reply is refused. A topic the council decided takes
   no more comments or support.
4. Support (附议): one per resident and topic, whatever the phones or replays (its id is fixed by
   the two); staff do not support. The count is the server's: the number of stored supports.
5. The agenda (`reaches_agenda`): the topic's threshold (its compound's setting, or the
   default, frozen when it is raised) moves it to the red council's agenda when the support
   stored reaches it, once: the store decides in the order it receives supports.
6. The council (`council_problems`): a supervisor of the community (or the admin) attaches the
   minutes and the outcome to a topic on the agenda, once; it is then decided.
7. Moderation (`hide_problems`): the same staff hide a comment with a reason; it stays stored,
   logged, shown to its author with the reason and to others as hidden, without text or name.
8. Names (`shown_author`): an author is shown by name to those who see the topic (the
   compound, and its staff); nobody else sees the topic at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from server.domain.rules import Problem
from server.domain.scope import Directory, User
from server.domain.text import Label, shown_name, text_problem, unknown_fields

MAX_TITLE = 60
MAX_BODY = 2000
MAX_COMMENT = 500
MAX_MINUTES = 5000
MAX_REASON = 200
MAX_REQUEST = 64  # the phone's own id of a queued request: a retry is the same request
OUTCOMES = ("adopted", "rejected", "referred")
OUTCOME_LABELS = {"adopted": ("采纳", "Adopted"), "rejected": ("不予采纳", "Rejected"),
                  "referred": ("转交办理", "Referred")}
KINDS = {"resident": ("居民", "A resident"), "grid_branch": ("网格党支部", "The grid branch"),
         "community": ("社区", "The community")}
LABELS: dict[str, Label] = {
    "title": ("标题", "Title"), "body": ("内容", "Text"), "compound": ("小区", "Compound"),
    "community": ("社区", "Community"), "request": ("请求编号", "Request id"),
    "parent": ("回复的评论", "Comment replied to"), "minutes": ("会议纪要", "Minutes"),
    "outcome": ("议定结果", "Outcome"), "reason": ("理由", "Reason"),
    "created_by": ("发起人", "Author"), "kind": ("发起方", "Raised by"),
    "status": ("状态", "Status"), "support": ("附议数", "Support"),
    "threshold": ("附议门槛", "Support threshold"), "author_name": ("署名", "Author's name"),
}
SERVER_FIELDS = ("created_by", "kind", "status", "support", "threshold", "author_name", "_id",
                 "_rev", "type", "council", "hidden")
TOPIC_FIELDS = frozenset({"title", "body", "compound", "community", "request"})
COMMENT_FIELDS = frozenset({"body", "parent", "request"})
COUNCIL_FIELDS = frozenset({"minutes", "outcome"})
HIDE_FIELDS = frozenset({"reason"})


@dataclasses.dataclass(frozen=True)
class Place:
    """A compound of a community: where a topic is, and where a resident lives."""

    community: str
    compound: str


def raiser_kind(user: User) -> str | None:
    """Rule 2: who a user raises a topic as (None: they do not)."""
    if user.disabled:
        return None
    return {"resident": "resident", "worker": "grid_branch", "supervisor": "community",
            "admin": "community"}.get(user.role)


def staff_reaches(user: User, community: str, directory: Directory) -> bool:
    """Staff whose scope reaches a grid of `community` (the admin: any that has a grid)."""
    return not user.disabled and user.role != "resident" and any(
        g.community == community and directory.reaches(user, g.code)
        for g in directory.grids.values())


def sees(user: User, place: Place, homes: frozenset[Place], directory: Directory) -> bool:
    """Rule 1; `homes`: the places of the user's active households (a resident's)."""
    if user.role == "resident":
        return not user.disabled and place in homes
    return staff_reaches(user, place.community, directory)


def moderates(user: User, community: str, directory: Directory) -> bool:
    """Rules 6 and 7: a supervisor of the community's scope, or the admin."""
    return user.role in ("supervisor", "admin") and staff_reaches(user, community, directory)


def _forged(body: Mapping[str, Any]) -> list[Problem]:
    forged = [k for k in SERVER_FIELDS if k in body]
    if not forged:
        return []
    zh, en = LABELS.get(forged[0], (shown_name(forged[0]), shown_name(forged[0])))
    return [Problem(f"/{forged[0]}", "server_field", f"“{zh}”由服务器填写，不能提交",
                    f"{en} is filled in by the server and cannot be sent")]


def request_problem(value: Any) -> Problem | None:
    """The phone's request id: letters, digits, `-` and `_`, 8 to MAX_REQUEST of them."""
    if isinstance(value, str) and 8 <= len(value) <= MAX_REQUEST and all(
            c.isascii() and (c.isalnum() or c in "-_") for c in value):
        return None
    zh, en = LABELS["request"]
    return Problem("/request", "request", f"“{zh}”应为 8 到 {MAX_REQUEST} 个字母、数字、- 或 _",
                   f"{en} must be 8 to {MAX_REQUEST} letters, digits, - or _")


def _code_problem(body: Mapping[str, Any], name: str) -> Problem | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and 0 < len(value) <= 63 and all(
            c.isascii() and (c.isalnum() or c in "_-") for c in value)):
        return None
    zh, en = LABELS[name]
    return Problem(f"/{name}", "code", f"“{zh}”应为编号", f"{en} must be a code")


def _texts(body: Mapping[str, Any], limits: Mapping[str, int],
           paragraphs: frozenset[str] = frozenset()) -> list[Problem]:
    found = [text_problem(body.get(name), f"/{name}", LABELS[name], max_chars=limit,
                          paragraphs=name in paragraphs) for name, limit in limits.items()]
    return [p for p in found if p is not None]


def topic_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rule 2, every problem of a topic as sent (its place is judged against the user after)."""
    problems = _forged(body) or unknown_fields(body, TOPIC_FIELDS)
    if problems:
        return problems
    problems = _texts(body, {"title": MAX_TITLE, "body": MAX_BODY}, frozenset({"body"}))
    problems += [p for p in (request_problem(body.get("request")),
                             _code_problem(body, "compound"), _code_problem(body, "community"))
                 if p is not None]
    return problems


def comment_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rule 3, the comment as sent; whether its parent may take a reply is `reply_problem`."""
    problems = _forged(body) or unknown_fields(body, COMMENT_FIELDS)
    if problems:
        return problems
    problems = _texts(body, {"body": MAX_COMMENT}, frozenset({"body"}))
    parent = body.get("parent")
    if parent is not None and not (isinstance(parent, str) and parent.startswith("comment:")
                                   and len(parent) <= 200):
        zh, en = LABELS["parent"]
        problems.append(Problem("/parent", "parent", f"“{zh}”应为本议题的一条评论",
                                f"{en} must be a comment of this topic"))
    bad = request_problem(body.get("request"))
    return problems + ([bad] if bad is not None else [])


def reply_problem(parent: Mapping[str, Any] | None, topic_id: str) -> Problem | None:
    """Rule 3: a reply's parent is a top-level comment of the same topic."""
    zh, en = LABELS["parent"]
    if parent is None or parent.get("topic") != topic_id:
        return Problem("/parent", "parent", f"“{zh}”不是本议题的评论",
                       f"{en} is not a comment of this topic")
    if parent.get("parent"):
        return Problem("/parent", "reply_depth", f"“{zh}”本身是回复：只能回复一级评论",
                       f"{en} is itself a reply: replies go one level deep only")
    return None


def closed_problem(topic: Mapping[str, Any]) -> Problem | None:
    """Rule 3: a decided topic takes no more comments or support."""
    if topic.get("status") == "decided":
        return Problem("/status", "decided", "该议题已由红色议事会议定，不再接受评论或附议",
                       "The red council has decided this topic: no more comments or support")
    return None


def reaches_agenda(topic: Mapping[str, Any], support: int) -> bool:
    """Rule 5: whether `support` stored moves an open topic to the council's agenda."""
    threshold = topic.get("threshold")
    return (topic.get("status") == "open" and isinstance(threshold, int)
            and support >= threshold)


def council_problems(body: Mapping[str, Any], topic: Mapping[str, Any]) -> list[Problem]:
    """Rule 6: the minutes and outcome as sent, for a topic on the agenda and not decided."""
    problems = unknown_fields(body, COUNCIL_FIELDS)
    if problems:
        return problems
    problems = _texts(body, {"minutes": MAX_MINUTES}, frozenset({"minutes"}))
    if body.get("outcome") not in OUTCOMES:
        zh, en = LABELS["outcome"]
        shown = "、".join(zh for zh, _ in OUTCOME_LABELS.values())
        problems.append(Problem("/outcome", "outcome", f"“{zh}”应为{shown}之一",
                                f"{en} must be one of adopted, rejected, referred"))
    if topic.get("status") != "agenda":
        problems.append(Problem("/status", "not_on_agenda",
                                "该议题不在红色议事会议程上（附议未达门槛，或已议定）",
                                "This topic is not on the red council's agenda (not enough "
                                "support yet, or already decided)"))
    return problems


def hide_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rule 7: a reason, plain text on one line."""
    return unknown_fields(body, HIDE_FIELDS) or _texts(body, {"reason": MAX_REASON})


def shown_author(doc: Mapping[str, Any], reader_sees: bool) -> str | None:
    """Rule 8: the author's name to a reader who sees the topic; None to anyone else."""
    return str(doc.get("author_name") or "") if reader_sees else None


def shown_comment(comment: Mapping[str, Any], reader: str) -> dict[str, Any]:
    """Rule 7: a comment as a reader of the topic sees it; a hidden one keeps its place in the
    thread, its text and name shown to its author only, with the reason."""
    found: dict[str, Any] = {"id": comment["_id"], "parent": comment.get("parent"),
                             "created_at": comment.get("created_at")}
    hidden = comment.get("hidden")
    mine = comment.get("created_by") == reader
    if isinstance(hidden, Mapping):
        found["hidden"] = True
        if not mine:
            return found
        found["hidden_reason"] = hidden.get("reason")
    found["body"] = comment.get("body")
    found["author"] = shown_author(comment, True)
    found["mine"] = mine
    return found
