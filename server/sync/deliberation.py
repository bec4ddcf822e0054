"""Deliberation in the store (议事协商), in `linli-deliberation` (internal: reached through the
routes only). The rules are server/domain/deliberation.py; this module reads and writes.

Ids make the server's decisions exact whatever phones do: a topic is `topic:<digest of account
and request>` and a comment `comment:<topic key>:<digest>`, so a queued request sent again is
the same document; a support is `support:<topic key>:<account>`, so two phones of one account
and any replay make one. Each is written without a revision: the second arrival meets a
conflict and changes nothing. The agenda is decided after each support by counting the stored
ones, and written on the topic's revision: of racing writers one wins, the others read it on
the agenda and stop, so it moves once."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from server.domain import deliberation as rules
from server.domain.messages import Refused, bilingual
from server.domain.notices import household_label
from server.domain.rules import Problem
from server.domain.scope import DELIBERATION_DB, Directory, User, grid_db
from server.domain.validation import SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

TRIES = 5  # a topic's write meets at most one conflict per racing writer


def no_such_topic() -> Refused:
    return Refused(404, "not_found", bilingual("没有这个议题，或您无权查看",
                                               "No such topic, or it is outside your scope."))


def digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def topic_id(account: str, request: str) -> str:
    return f"topic:{digest(account, request)[:16]}"


def key_of(topic: str) -> str:
    return topic.removeprefix("topic:")


def comment_id(topic: str, account: str, request: str) -> str:
    return f"comment:{key_of(topic)}:{digest(account, request)[:24]}"


def support_id(topic: str, account: str) -> str:
    return f"support:{key_of(topic)}:{account}"


def threshold_id(place: rules.Place) -> str:
    return f"threshold:{place.community}:{place.compound}"


def place_of(doc: Mapping[str, Any]) -> rules.Place:
    return rules.Place(str(doc.get("community", "")), str(doc.get("compound", "")))


def stamp(now: datetime.datetime) -> str:
    return now.isoformat(timespec="microseconds")


@dataclasses.dataclass
class Deliberation:
    """The store's side of deliberation; one per app."""

    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    default_threshold: int
    ready: bool = False  # the database made, before the first write

    async def _db(self) -> None:
        if not self.ready:
            await self.couch.ensure_db(DELIBERATION_DB)
            self.ready = True

    async def _get(self, doc_id: str) -> dict[str, Any] | None:
        await self._db()
        try:
            doc = await self.couch.get(db_path(DELIBERATION_DB, doc_id))
        except NotFound:
            return None
        return doc if isinstance(doc, dict) else None

    async def _create(self, doc: dict[str, Any]) -> bool:
        """Written once: False when it was already there (a replay, another phone)."""
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        try:
            await self.couch.put(db_path(DELIBERATION_DB, doc["_id"]), doc)
        except Conflict:
            return False
        return True

    # -- who ----------------------------------------------------------------------------------

    def homes(self, user: User, index: ResidentIndex) -> dict[str, rules.Place]:
        """A resident's households by id and the compound each is in (from the index)."""
        if user.role != "resident":
            return {}
        return {home: rules.Place(place.community, place.building.partition("-")[0])
                for home, place in index.ids.places_of(user.name).items()}

    def sees(self, user: User, doc: Mapping[str, Any], index: ResidentIndex) -> bool:
        return rules.sees(user, place_of(doc), frozenset(self.homes(user, index).values()),
                          self.directory)

    async def topic(self, user: User, topic: str, index: ResidentIndex) -> dict[str, Any]:
        """A topic the user sees; any other answers as one that does not exist."""
        doc = await self._get(topic) if topic.startswith("topic:") else None
        if doc is None or doc.get("type") != "topic" or not self.sees(user, doc, index):
            raise no_such_topic()
        return doc

    async def author_name(self, user: User, home: str | None, grid: str | None) -> str:
        """Rule 8's name: a staff member's user name; a resident's name as they signed up,
        else (an account made before sign-ups) their household's address in the compound."""
        if home is None or grid is None:
            return user.name
        for doc_id in (f"signup:{user.name}", home):
            try:
                doc = await self.couch.get(db_path(grid_db(grid), doc_id))
            except NotFound:
                continue
            name = doc.get("name") if doc.get("type") == "signup" else household_label(doc)
            if isinstance(name, str) and name:
                return name
        return "居民"

    # -- topics -------------------------------------------------------------------------------

    async def threshold(self, place: rules.Place) -> int:
        doc = await self._get(threshold_id(place))
        value = doc.get("support") if doc else None
        return value if isinstance(value, int) and value > 0 else self.default_threshold

    async def set_threshold(self, user: User, place: rules.Place, value: Any) -> int:
        """A supervisor sets their compound's threshold; it applies to topics raised after."""
        if not rules.moderates(user, place.community, self.directory):
            raise Refused(403, "forbidden", bilingual(
                "只有该社区的工作人员可以设置附议门槛",
                "Only the community's staff set its support threshold."))
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10000:
            zh, en = rules.LABELS["threshold"]
            raise refused([Problem("/support", "threshold", f"“{zh}”应为 1 到 10000 的整数",
                                   f"{en} must be a whole number from 1 to 10000")])
        await self._db()
        path = db_path(DELIBERATION_DB, threshold_id(place))
        for _ in range(TRIES):
            held = await self._get(threshold_id(place))
            doc = {**(held or {}), "_id": threshold_id(place), "type": "topic_threshold",
                   "schema_version": 1, "community": place.community,
                   "compound": place.compound, "support": value, "created_by": user.name}
            try:
                await self.couch.put(path, doc)
            except Conflict:
                continue
            audit.info("%s set the support threshold of %s/%s to %d", user.name,
                       place.community, place.compound, value)
            return value
        raise Conflict(409, {"error": "conflict", "reason": "threshold kept changing"})

    async def raise_topic(self, user: User, body: Mapping[str, Any], index: ResidentIndex,
                          now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rule 2: the topic stored (or the one this request already stored), and whether
        this call stored it. Its place: a resident's household, staff's scope."""
        kind = rules.raiser_kind(user)
        problems = rules.topic_problems(body)
        if kind is None or problems:
            raise refused(problems or [Problem("/", "role", "您不能发起议题",
                                               "You cannot raise topics")])
        homes = self.homes(user, index)
        home: str | None = None
        if user.role == "resident":
            wanted = [h for h, p in homes.items() if body.get("compound") in (None, p.compound)
                      and body.get("community") in (None, p.community)]
            if not wanted:
                zh, en = rules.LABELS["compound"]
                raise refused([Problem("/compound", "compound", f"“{zh}”不是您家所在的小区",
                                       f"{en} is not where your household is")])
            home = sorted(wanted)[0]
            place = homes[home]
        else:
            place = rules.Place(str(body.get("community") or ""), str(body.get("compound") or ""))
            if not place.compound or not rules.staff_reaches(user, place.community,
                                                            self.directory):
                zh, en = rules.LABELS["compound"]
                raise refused([Problem("/compound", "scope",
                                       f"“{zh}”不在您的管辖范围内（或不存在）",
                                       f"{en} is outside your area (or does not exist)")])
        doc_id = topic_id(user.name, str(body["request"]))
        held = await self._get(doc_id)
        if held is not None:
            return held, False
        grid = index.ids.homes(user.name).get(home) if home else None
        doc = {"_id": doc_id, "type": "topic", "schema_version": 1, "created_by": user.name,
               "author_name": await self.author_name(user, home, grid), "kind": kind,
               "community": place.community, "compound": place.compound,
               "title": body["title"], "body": body["body"], "status": "open",
               "threshold": await self.threshold(place), "created_at": stamp(now)}
        created = await self._create(doc)
        if created:
            audit.info("%s raised %s in %s/%s", user.name, doc_id, place.community,
                       place.compound)
        return (doc if created else await self._get(doc_id) or doc), created

    async def topics(self) -> list[dict[str, Any]]:
        await self._db()
        page = await self.couch.get(db_path(DELIBERATION_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps("topic:"),
                                    endkey=json.dumps("topic:\ufff0"))
        return [row["doc"] for row in page.get("rows", [])
                if isinstance(row.get("doc"), dict) and row["doc"].get("type") == "topic"]

    async def support_counts(self, topic: str | None = None) -> dict[str, list[str]]:
        """Who supports each topic (one read of the ids: the count is the server's)."""
        await self._db()
        prefix = f"support:{key_of(topic)}:" if topic else "support:"
        page = await self.couch.get(db_path(DELIBERATION_DB, "_all_docs"),
                                    startkey=json.dumps(prefix),
                                    endkey=json.dumps(prefix + "\ufff0"))
        found: dict[str, list[str]] = {}
        for row in page.get("rows", []):
            _, key, account = str(row["id"]).split(":", 2)
            found.setdefault(f"topic:{key}", []).append(account)
        return found

    # -- acts ---------------------------------------------------------------------------------

    async def support(self, user: User, topic: str, index: ResidentIndex,
                      now: datetime.datetime) -> tuple[dict[str, Any], int, bool]:
        """Rules 4 and 5: (the topic after, the support counted, whether this call stored
        the support)."""
        doc = await self.topic(user, topic, index)
        problem = rules.closed_problem(doc)
        if problem is not None:  # a retry of a support stored before still answers
            if await self._get(support_id(topic, user.name)) is None:
                raise Refused(409, "conflict", problem.message)
            count = len((await self.support_counts(topic)).get(topic, []))
            return doc, count, False
        created = await self._create({
            "_id": support_id(topic, user.name), "type": "topic_support", "schema_version": 1,
            "created_by": user.name, "topic": topic, "created_at": stamp(now)})
        count = len((await self.support_counts(topic)).get(topic, []))
        return await self.to_agenda(topic, count, now), count, created

    async def to_agenda(self, topic: str, count: int, now: datetime.datetime) -> dict[str, Any]:
        """Rule 5, once: on the topic's revision, so of racing supports one moves it."""
        for _ in range(TRIES):
            doc = await self._get(topic)
            if doc is None or not rules.reaches_agenda(doc, count):
                return doc or {}
            doc.update(status="agenda", agenda_at=stamp(now), agenda_support=count)
            try:
                await self.couch.put(db_path(DELIBERATION_DB, topic), doc)
            except Conflict:
                continue
            audit.info("%s reached the red council's agenda with %d support", topic, count)
            return doc
        raise Conflict(409, {"error": "conflict", "reason": "topic kept changing"})

    async def comment(self, user: User, topic: str, body: Mapping[str, Any],
                      index: ResidentIndex, now: datetime.datetime) -> tuple[dict[str, Any],
                                                                             bool]:
        """Rule 3: the comment stored (or the one this request already stored)."""
        problems = rules.comment_problems(body)
        if problems:
            raise refused(problems)
        doc = await self.topic(user, topic, index)
        problem = rules.closed_problem(doc)
        if problem is not None:
            raise Refused(409, "conflict", problem.message)
        parent = body.get("parent")
        if parent is not None:
            held = await self._get(str(parent))
            problem = rules.reply_problem(held if held and held.get("type") == "topic_comment"
                                          else None, topic)
            if problem is not None:
                raise refused([problem])
        doc_id = comment_id(topic, user.name, str(body["request"]))
        homes = self.homes(user, index)
        home = next((h for h, p in sorted(homes.items()) if p == place_of(doc)), None)
        grid = index.ids.homes(user.name).get(home) if home else None
        comment = {"_id": doc_id, "type": "topic_comment", "schema_version": 1,
                   "created_by": user.name, "author_name": await self.author_name(
                       user, home, grid), "topic": topic, "body": body["body"],
                   "created_at": stamp(now), **({"parent": parent} if parent else {})}
        created = await self._create(comment)
        return (comment if created else await self._get(doc_id) or comment), created

    async def comments(self, topic: str) -> list[dict[str, Any]]:
        await self._db()
        prefix = f"comment:{key_of(topic)}:"
        page = await self.couch.get(db_path(DELIBERATION_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(prefix),
                                    endkey=json.dumps(prefix + "\ufff0"))
        found = [row["doc"] for row in page.get("rows", []) if isinstance(row.get("doc"), dict)]
        return sorted(found, key=lambda c: (str(c.get("created_at")), str(c["_id"])))

    async def hide(self, user: User, topic: str, comment: str, reason: str,
                   index: ResidentIndex, now: datetime.datetime) -> dict[str, Any]:
        """Rule 7: the comment marked hidden with the reason, once; logged."""
        doc = await self.topic(user, topic, index)
        if not rules.moderates(user, str(doc.get("community")), self.directory):
            raise Refused(403, "forbidden", bilingual("只有该社区的工作人员可以隐藏评论",
                                                      "Only the community's staff hide comments."))
        for _ in range(TRIES):
            held = await self._get(comment) if comment.startswith("comment:") else None
            if held is None or held.get("topic") != topic:
                raise Refused(404, "not_found", bilingual("没有这条评论", "No such comment."))
            if held.get("hidden"):
                return held
            held["hidden"] = {"reason": reason, "by": user.name, "at": stamp(now)}
            try:
                await self.couch.put(db_path(DELIBERATION_DB, comment), held)
            except Conflict:
                continue
            audit.info("%s hid %s of %s: %s", user.name, comment, topic, reason)
            return held
        raise Conflict(409, {"error": "conflict", "reason": "comment kept changing"})

    async def decide(self, user: User, topic: str, body: Mapping[str, Any],
                     index: ResidentIndex, now: datetime.datetime) -> dict[str, Any]:
        """Rule 6: the council's minutes and outcome, once, on the topic's revision."""
        doc = await self.topic(user, topic, index)
        if not rules.moderates(user, str(doc.get("community")), self.directory):
            raise Refused(403, "forbidden", bilingual(
                "只有该社区的工作人员可以记录议事会结果",
                "Only the community's staff record the council's outcome."))
        for _ in range(TRIES):
            problems = rules.council_problems(body, doc)
            if problems:
                raise refused(problems)
            doc.update(status="decided", council={
                "minutes": body["minutes"], "outcome": body["outcome"], "by": user.name,
                "at": stamp(now)})
            try:
                await self.couch.put(db_path(DELIBERATION_DB, topic), doc)
            except Conflict:
                doc = await self.topic(user, topic, index)
                continue
            audit.info("%s recorded the council's outcome of %s: %s", user.name, topic,
                       body["outcome"])
            return doc
        raise Conflict(409, {"error": "conflict", "reason": "topic kept changing"})
