"""The star-rating routes (三类五星). Thin controllers: the rules are server/domain/stars.py,
the store's side server/sync/stars.py, the design docs/star-rating.md. Only supervisors (the
community's and the street's), assessors and admins reach them: anyone else is refused before
anything is looked up, so the refusal is the same whatever it names.

- `GET /api/stars/sheet`: the scoring sheet (indicators, bands, awards), as data.
- `GET /api/stars/sheets`: the sheets the user plays a part in, newest round first.
- `POST /api/stars/sheets` `{compound, round}`: the street opens a round.
- `GET /api/stars/sheets/{compound}/{round}`: one sheet, with the compound's other rounds.
- `PUT .../evidence` `{indicator, text, photos}`: the community's evidence.
- `PUT .../scores` `{indicator, points, comment}`: the indicator's scorer.
- `POST .../acts` `{act, state[, reason][, property_fen]}`: a move of the sheet.
- `GET .../photos/{name}`: an evidence photo.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from server.domain import stars as rules
from server.domain.scope import Directory, User
from server.errors import json_response
from server.sync.residents import utc_now
from server.sync.stars import Stars, load_sheet, place_of
from server.web.keys import CONFIG, COUCH, DIRECTORY, SCHEMAS, STARS
from server.web.parsing import read_object
from server.web.party import no_query, require_role

PREFIX = "/api/stars"
SHEET = PREFIX + "/sheets/{compound:[^/]+}/{round:[^/]+}"
ROLES = ("supervisor", "assessor", "admin")
WHO = ("社区、街道工作人员和第三方评估机构可以使用星级评定",
       "community and street staff and assessors use star rating")
NO_STORE = {"Cache-Control": "no-store"}


def require(request: web.Request) -> User:
    user = require_role(request, ROLES, WHO)
    no_query(request)
    return user


def signed(entry: Mapping[str, Any], directory: Directory) -> dict[str, Any]:
    """An entry with who wrote it by name, never by login alone."""
    return {**entry, "by_name": directory.person_name(str(entry.get("by", "")))}


def summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    zh, en = rules.STATES.get(str(doc["state"]), ("", ""))
    return {"compound": doc["compound"], "compound_name": doc.get("compound_name"),
            "round": doc["round"], "state": doc["state"], "state_label": [zh, en],
            "evidenced": len(doc["evidence"]), "scored": len(doc["scores"]),
            "result": doc.get("result"), "published_at": doc.get("published_at")}


def shown(doc: Mapping[str, Any], user: User, directory: Directory) -> dict[str, Any]:
    """A sheet as its reader sees it: the parts they play, names for logins, photo links."""
    base = f"{PREFIX}/sheets/{doc['compound']}/{doc['round']}/photos/"
    evidence = {k: {**signed(v, directory), "photos": [base + n for n in v["photos"]]}
                for k, v in doc["evidence"].items()}
    return {**summary(doc), "parts": sorted(rules.parts_of(user, place_of(doc))),
            "community": doc["community"], "street": doc["street"],
            "opened_at": doc["opened_at"], "evidence": evidence,
            "scores": {k: signed(v, directory) for k, v in doc["scores"].items()},
            "history": [signed(h, directory) for h in doc["history"]]}


def sheet_data(sheet: rules.Sheet) -> dict[str, Any]:
    return {"title": sheet.title, "version": sheet.version, "total_points": sheet.total_points,
            "categories": [{"id": c, "name": n, "name_en": e} for c, n, e in sheet.categories],
            "indicators": [vars(i) for i in sheet.indicators],
            "bands": [vars(b) for b in sheet.bands],
            "awards_fen": {str(k): v for k, v in sheet.awards_fen.items()},
            "property_share_max_percent": sheet.share_max_percent,
            "states": {k: list(v) for k, v in rules.STATES.items()}}


async def scoring_sheet(request: web.Request) -> web.Response:
    require(request)
    return json_response(sheet_data(request.app[STARS].sheet))


async def listing(request: web.Request) -> web.Response:
    user = require(request)
    found = await request.app[STARS].visible(user)
    found.sort(key=lambda d: (rules.round_order(str(d["round"])), str(d["compound"])),
               reverse=True)
    return json_response({"sheets": [summary(d) for d in found]}, headers=NO_STORE)


async def open_round(request: web.Request) -> web.Response:
    user = require(request)
    doc = await request.app[STARS].open_round(user, await read_object(request), utc_now())
    return json_response({"ok": True, "sheet": shown(doc, user, request.app[DIRECTORY])},
                         status=201)


def key(request: web.Request) -> tuple[str, str]:
    return request.match_info["compound"], request.match_info["round"]


async def one(request: web.Request) -> web.Response:
    user = require(request)
    store = request.app[STARS]
    doc = await store.one(user, *key(request))
    rounds = [summary(d) for d in await store.history(str(doc["compound"]))
              if rules.sees(user, place_of(d))]
    return json_response({"sheet": shown(doc, user, request.app[DIRECTORY]),
                          "rounds": rounds}, headers=NO_STORE)


async def evidence(request: web.Request) -> web.Response:
    user = require(request)
    doc = await request.app[STARS].put_evidence(user, *key(request),
                                                await read_object(request), utc_now())
    return json_response({"ok": True, "sheet": shown(doc, user, request.app[DIRECTORY])})


async def score(request: web.Request) -> web.Response:
    user = require(request)
    doc = await request.app[STARS].put_score(user, *key(request), await read_object(request),
                                             utc_now())
    return json_response({"ok": True, "sheet": shown(doc, user, request.app[DIRECTORY])})


async def act(request: web.Request) -> web.Response:
    user = require(request)
    doc = await request.app[STARS].act(user, *key(request), await read_object(request),
                                       utc_now())
    return json_response({"ok": True, "sheet": shown(doc, user, request.app[DIRECTORY])})


async def photo(request: web.Request) -> web.Response:
    user = require(request)
    data, content_type = await request.app[STARS].photo(user, *key(request),
                                                        request.match_info["name"])
    return web.Response(body=data, content_type=content_type,
                        headers={**NO_STORE, "X-Content-Type-Options": "nosniff"})


async def stars_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sheet file is read once here: a broken one stops the start with its faults."""
    config = app[CONFIG]
    app[STARS] = Stars(app[COUCH], app[SCHEMAS], load_sheet(),
                       max_photo_bytes=config.report_photo_max_bytes,
                       max_photo_pixels=config.report_photo_max_pixels)
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(stars_ctx)
    for method, path, handler in (
            ("GET", PREFIX + "/sheet", scoring_sheet), ("GET", PREFIX + "/sheets", listing),
            ("POST", PREFIX + "/sheets", open_round), ("GET", SHEET, one),
            ("PUT", SHEET + "/evidence", evidence), ("PUT", SHEET + "/scores", score),
            ("POST", SHEET + "/acts", act), ("GET", SHEET + "/photos/{name:[^/]+}", photo)):
        app.router.add_route(method, path, handler)
