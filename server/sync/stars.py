"""Community star rating in the store (三类五星): one document per compound and round,
`star_sheet:<compound>:<round>` in `linli-stars` (internal: the star routes only), holding the
community's evidence, the scores, every move and the result. The rules are
server/domain/stars.py; the sheet of indicators is the data file schemas/star_sheet.json,
read once at start (`load_sheet`: a broken file stops the server with its faults).

Each write reads the document, applies one act and writes it over the revision read; when
another write came first it reads again and decides again (so two scorers never lose each
other's points, and a replayed move meets the state it already left). Evidence photos go
through the reports' checks (`clean_photo`: size, type by their bytes, pixels, re-encoded
without EXIF or any metadata) before anything is stored, as attachments of the sheet."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.domain import stars as rules
from server.domain.messages import Refused, bilingual
from server.domain.scope import DIRECTORY_DB, STARS_DB, User
from server.domain.validation import SCHEMA_DIR, SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.notices import refused
from server.sync.reports import attachments, clean_photos

audit = logging.getLogger("linli.audit")

SHEET_FILE = SCHEMA_DIR / "star_sheet.json"
PREFIX = "star_sheet:"
DECODERS = 2  # photos decoded at once per process, off the event loop (as reports')


def load_sheet(path: Path = SHEET_FILE) -> rules.Sheet:
    """The scoring sheet of the data file; SheetError (every fault) if it cannot be used."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise rules.SheetError(bilingual(f"评分标准文件 {path} 无法读取：{exc}",
                                         f"the scoring sheet file {path} cannot be read")) from exc
    return rules.sheet_from(data)


def stamp(now: datetime.datetime) -> str:
    return now.isoformat(timespec="seconds")


def place_of(doc: Mapping[str, Any]) -> rules.Place:
    return rules.Place(str(doc.get("compound", "")), str(doc.get("community", "")),
                       str(doc.get("street", "")), str(doc.get("company", "")))


@dataclasses.dataclass
class Stars:
    """The store's side of star rating; one per app."""

    couch: CouchClient
    schemas: SchemaRegistry
    sheet: rules.Sheet
    max_photo_bytes: int
    max_photo_pixels: int
    decoding: asyncio.Semaphore = dataclasses.field(
        default_factory=lambda: asyncio.Semaphore(DECODERS))

    async def _get(self, doc_id: str, db: str = STARS_DB) -> dict[str, Any] | None:
        with contextlib.suppress(NotFound):
            doc = await self.couch.get(db_path(db, doc_id))
            return doc if isinstance(doc, dict) else None
        return None

    async def _save(self, doc: dict[str, Any]) -> bool:
        """Written over the revision read (False: another write came first: read again)."""
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        try:
            await self.couch.put(db_path(STARS_DB, doc["_id"]), doc)
        except Conflict:
            return False
        return True

    async def all_sheets(self, prefix: str = PREFIX) -> list[dict[str, Any]]:
        """Every sheet whose id starts with `prefix`: a compound's rounds, or the city's
        sheets (a few per compound and year, read in one answer)."""
        rows = (await self.couch.get(
            db_path(STARS_DB, "_all_docs"), include_docs="true", startkey=json.dumps(prefix),
            endkey=json.dumps(prefix + "\ufff0"))).get("rows", [])
        return [r["doc"] for r in rows if isinstance(r.get("doc"), dict)]

    async def visible(self, user: User) -> list[dict[str, Any]]:
        return [d for d in await self.all_sheets() if rules.sees(user, place_of(d))]

    async def one(self, user: User, compound: str, round_: str) -> dict[str, Any]:
        """A sheet its parts (or an admin) read; anyone else: as if there were none."""
        doc = None
        if rules.ROUND.match(round_) and rules.ID.match(compound):
            doc = await self._get(rules.sheet_id(round_, compound))
        if doc is None or not rules.sees(user, place_of(doc)):
            raise rules.not_found()
        return doc

    async def history(self, compound: str) -> list[dict[str, Any]]:
        """Every round of the compound, oldest first (rule 8)."""
        found = await self.all_sheets(f"{PREFIX}{compound}:")
        return sorted(found, key=lambda d: rules.round_order(str(d["round"])))

    # -- acts --------------------------------------------------------------------------

    async def open_round(self, user: User, body: Mapping[str, Any],
                         now: datetime.datetime) -> dict[str, Any]:
        """The street opens a compound's sheet for a new round (rules 4 and 8)."""
        compound = body.get("compound")
        doc = None
        if isinstance(compound, str) and rules.ID.match(compound):
            doc = await self._get(f"compound:{compound}", DIRECTORY_DB)
        if doc is None or doc.get("type") != "compound":
            raise refused([rules.problem("compound", "unknown", "不存在", "does not exist")])
        place = rules.Place(compound, str(doc["community"]), str(doc["community"])[:9],
                            str(doc.get("property_company") or ""))
        rules.check_part("street", rules.parts_of(user, place), ("开启评星", "open a round"))
        problems = rules.round_problems(body, [str(d["round"]) for d in
                                               await self.history(compound)])
        if problems:
            raise refused(problems)
        sheet = {"_id": rules.sheet_id(body["round"], compound), "type": "star_sheet",
                 "schema_version": 1, "created_by": user.name, "round": body["round"],
                 "compound": compound, "compound_name": str(doc.get("name") or compound),
                 "community": place.community, "street": place.street, "state": "collecting",
                 "opened_at": stamp(now), "evidence": {}, "scores": {},
                 "history": [{"act": "open", "to": "collecting", "by": user.name,
                              "at": stamp(now)}]}
        if place.company:
            sheet["company"] = place.company
        if not await self._save(sheet):
            raise refused([rules.problem("round", "order", "已开启", "is open already")])
        audit.info("%s opened star sheet %s", user.name, sheet["_id"])
        return sheet

    async def _apply(self, user: User, compound: str, round_: str, change: Any) -> dict[str, Any]:
        """Read, check and change (`change(doc, parts)` returns the new document), write over
        the revision read; again from the read when another write came first."""
        while True:
            doc = await self.one(user, compound, round_)
            new = change(doc, rules.parts_of(user, place_of(doc)))
            if await self._save(new):
                return new

    async def put_evidence(self, user: User, compound: str, round_: str,
                           body: Mapping[str, Any], now: datetime.datetime) -> dict[str, Any]:
        """Rule 5: the community's note and photos for one indicator, replacing its last."""
        held = await self.one(user, compound, round_)  # no photo decoded for who may not send
        rules.check_part("community", rules.parts_of(user, place_of(held)),
                         ("上传佐证材料", "uploads evidence"))
        problems = rules.evidence_problems(body, self.sheet)
        if problems:
            raise refused(problems)
        key = str(body["indicator"])
        photos = await clean_photos(list(body.get("photos") or []), self.decoding,
                                    self.max_photo_bytes, self.max_photo_pixels)
        prefix = f"evidence-{key}"
        added = attachments(photos, prefix)

        def change(doc: dict[str, Any], parts: frozenset[str]) -> dict[str, Any]:
            rules.check_part("community", parts, ("上传佐证材料", "uploads evidence"))
            if doc["state"] != "collecting":
                raise rules.wrong_state(doc["state"], ("上传佐证材料", "upload evidence"))
            kept = {n: a for n, a in (doc.get("_attachments") or {}).items()
                    if not n.startswith(prefix + "-")}
            return {**doc, "_attachments": {**kept, **added}, "evidence": {
                **doc["evidence"], key: {"text": body["text"], "photos": sorted(added),
                                         "by": user.name, "at": stamp(now)}}}
        return await self._apply(user, compound, round_, change)

    async def put_score(self, user: User, compound: str, round_: str, body: Mapping[str, Any],
                        now: datetime.datetime) -> dict[str, Any]:
        """Rule 6: the indicator's scorer gives its points and comment while scoring."""
        await self.one(user, compound, round_)
        problems = rules.score_problems(body, self.sheet)
        if problems:
            raise refused(problems)
        indicator = self.sheet.indicator(body["indicator"])
        assert indicator is not None  # score_problems

        def change(doc: dict[str, Any], parts: frozenset[str]) -> dict[str, Any]:
            rules.scorer_of(indicator, parts)
            if doc["state"] != "scoring":
                raise rules.wrong_state(doc["state"], ("评分", "score"))
            return {**doc, "scores": {**doc["scores"], indicator.id: {
                "points": body["points"], "comment": body["comment"], "by": user.name,
                "at": stamp(now)}}}
        return await self._apply(user, compound, round_, change)

    async def act(self, user: User, compound: str, round_: str, body: Mapping[str, Any],
                  now: datetime.datetime) -> dict[str, Any]:
        """Rule 3's moves: hand over evidence, hand over scores, return, approve (rule 7)."""
        await self.one(user, compound, round_)
        problems = rules.act_problems(body)
        if problems:
            raise refused(problems)

        def change(doc: dict[str, Any], parts: frozenset[str]) -> dict[str, Any]:
            step = rules.move(body.get("act"), doc["state"], body.get("state"), parts)
            new = {**doc, "state": step.end}
            line = {"act": body["act"], "to": step.end, "by": user.name, "at": stamp(now)}
            if body["act"] == "return":
                line["reason"] = body["reason"]
            elif body["act"] == "submit_scores":
                found = rules.handover_problem(self.sheet, doc["scores"])
                if found is not None:
                    raise found
            if body["act"] == "approve":
                result = rules.result_of(self.sheet, doc["scores"])
                award = rules.award_problems(body, self.sheet, result["stars"])
                if award:
                    raise refused(award)
                new["result"] = {**result, "property_fen": body.get("property_fen", 0)}
                new["published_at"] = stamp(now)
            elif "property_fen" in body:
                raise refused([rules.problem("property_fen", "unexpected", "只在发布时填写",
                                             "is only given when publishing")])
            new["history"] = [*doc["history"], line]
            return new
        doc = await self._apply(user, compound, round_, change)
        audit.info("%s %s star sheet %s", user.name, body["act"], doc["_id"])
        return doc

    async def photo(self, user: User, compound: str, round_: str,
                    name: str) -> tuple[bytes, str]:
        """An evidence photo, to who reads the sheet."""
        doc = await self.one(user, compound, round_)
        stub = (doc.get("_attachments") or {}).get(name)
        if not isinstance(stub, Mapping):
            raise Refused(404, "not_found", bilingual("没有这张照片", "No such photo."))
        resp = await self.couch.open("GET", db_path(STARS_DB, doc["_id"], name),
                                     headers={"Accept": "*/*"})
        async with resp:
            if resp.status != 200:
                raise Refused(404, "not_found", bilingual("没有这张照片", "No such photo."))
            return await resp.read(), str(stub.get("content_type"))
