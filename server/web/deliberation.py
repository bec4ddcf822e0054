"""The deliberation routes (议事协商). Thin controllers: the rules are
server/domain/deliberation.py, the store's side server/sync/deliberation.py, the design
docs/deliberation.md. The PWA queues a resident's topic, comment and support offline and sends
each again until answered: a topic's and a comment's `request` id, and a support's id fixed by
the account, make a retry the same document (201 the first time, 200 after).

- `GET /api/deliberation/topics`: the topics a user sees, newest first, with their support.
- `POST /api/deliberation/topics` `{request, title, body[, compound, community]}`.
- `GET /api/deliberation/topics/{topic}`: one topic with its comments.
- `POST /api/deliberation/topics/{topic}/support` `{}` (residents).
- `POST /api/deliberation/topics/{topic}/comments` `{request, body[, parent]}`.
- `POST /api/deliberation/topics/{topic}/comments/{comment}/hide` `{reason}` (staff).
- `POST /api/deliberation/topics/{topic}/council` `{minutes, outcome}` (staff).
- `PUT /api/deliberation/threshold/{community}/{compound}` `{support}` (staff).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from server.domain import deliberation as rules
from server.domain.scope import User
from server.domain.text import unknown_fields
from server.errors import json_response
from server.sync.deliberation import Deliberation
from server.sync.notices import refused
from server.sync.residents import utc_now
from server.web.guard import require_user
from server.web.keys import CONFIG, COUCH, DELIBERATION, DIRECTORY, SCHEMAS
from server.web.parsing import read_object
from server.web.resident_sync import index_of
from server.web.residents import require_resident, require_staff

PREFIX = "/api/deliberation"
SHOWN = ("title", "body", "kind", "community", "compound", "status", "threshold", "created_at",
         "agenda_at", "agenda_support", "council")


def shown(doc: Mapping[str, Any], supporters: list[str], reader: User) -> dict[str, Any]:
    """A topic as a reader who sees it reads it: the support counted by the server, whether
    the reader supports it, and the author by name (rule 8)."""
    return {"id": doc["_id"], **{k: doc[k] for k in SHOWN if k in doc},
            "author": rules.shown_author(doc, True), "mine": doc.get("created_by") == reader.name,
            "support": len(supporters), "supported": reader.name in supporters}


async def listing(request: web.Request) -> web.Response:
    user = require_user(request)
    store, index = request.app[DELIBERATION], await index_of(request)
    counts = await store.support_counts()
    found = [shown(doc, counts.get(str(doc["_id"]), []), user)
             for doc in await store.topics() if store.sees(user, doc, index)]
    found.sort(key=lambda t: (str(t.get("created_at")), t["id"]), reverse=True)
    return json_response({"topics": found})


async def raise_topic(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await read_object(request)
    store = request.app[DELIBERATION]
    doc, created = await store.raise_topic(user, body, await index_of(request), utc_now())
    return json_response({"ok": True, "repeated": not created,
                          "topic": shown(doc, [], user)}, status=201 if created else 200)


async def one(request: web.Request) -> web.Response:
    user = require_user(request)
    store, index = request.app[DELIBERATION], await index_of(request)
    topic = request.match_info["topic"]
    doc = await store.topic(user, topic, index)
    supporters = (await store.support_counts(topic)).get(topic, [])
    return json_response({"topic": shown(doc, supporters, user), "comments": [
        rules.shown_comment(c, user.name) for c in await store.comments(topic)]})


async def support(request: web.Request) -> web.Response:
    user = require_resident(request, ("附议", "supports a topic"))
    body = await read_object(request, allow_empty=True)
    problems = unknown_fields(body, frozenset())
    if problems:
        raise refused(problems)
    doc, count, created = await request.app[DELIBERATION].support(
        user, request.match_info["topic"], await index_of(request), utc_now())
    return json_response({"ok": True, "repeated": not created, "support": count,
                          "status": doc.get("status")}, status=201 if created else 200)


async def comment(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await read_object(request)
    doc, created = await request.app[DELIBERATION].comment(
        user, request.match_info["topic"], body, await index_of(request), utc_now())
    return json_response({"ok": True, "repeated": not created,
                          "comment": rules.shown_comment(doc, user.name)},
                         status=201 if created else 200)


async def hide(request: web.Request) -> web.Response:
    user = require_staff(request, ("隐藏评论", "hide comments"))
    body = await read_object(request)
    problems = rules.hide_problems(body)
    if problems:
        raise refused(problems)
    doc = await request.app[DELIBERATION].hide(
        user, request.match_info["topic"], request.match_info["comment"], body["reason"],
        await index_of(request), utc_now())
    return json_response({"ok": True, "comment": rules.shown_comment(doc, user.name)})


async def council(request: web.Request) -> web.Response:
    user = require_staff(request, ("记录议事会结果", "record the council's outcome"))
    body = await read_object(request)
    doc = await request.app[DELIBERATION].decide(
        user, request.match_info["topic"], body, await index_of(request), utc_now())
    return json_response({"ok": True, "topic": shown(doc, [], user)})


async def threshold(request: web.Request) -> web.Response:
    user = require_staff(request, ("设置附议门槛", "set the support threshold"))
    body = await read_object(request)
    problems = unknown_fields(body, frozenset({"support"}))
    if problems:
        raise refused(problems)
    place = rules.Place(request.match_info["community"], request.match_info["compound"])
    value = await request.app[DELIBERATION].set_threshold(user, place, body.get("support"))
    return json_response({"ok": True, "support": value})


async def deliberation_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open (cleanup contexts run in order)."""
    app[DELIBERATION] = Deliberation(app[COUCH], app[DIRECTORY], app[SCHEMAS],
                                     app[CONFIG].deliberation_support_threshold)
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(deliberation_ctx)
    topics = PREFIX + "/topics"
    topic = topics + "/{topic:[^/]+}"
    for method, path, handler in (
            ("GET", topics, listing), ("POST", topics, raise_topic), ("GET", topic, one),
            ("POST", topic + "/support", support), ("POST", topic + "/comments", comment),
            ("POST", topic + "/comments/{comment:[^/]+}/hide", hide),
            ("POST", topic + "/council", council),
            ("PUT", PREFIX + "/threshold/{community:[^/]+}/{compound:[^/]+}", threshold)):
        app.router.add_route(method, path, handler)


