"""Liaison officers, their messages with residents and their patrols in the store:
`linli-liaison`, internal (no `/couch/` route reaches it). The rules are
server/domain/liaison.py; here: where a resident lives (the residents' index), who serves a
compound (the directory), the photo and the problem report of a check through the problem
reports' own code (server/sync/reports.py), every document written once."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
from collections.abc import Mapping
from typing import Any

from server.domain import liaison as rules
from server.domain.messages import Refused, bilingual
from server.domain.scope import DIRECTORY_DB, LIAISON_DB, Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused
from server.sync.reports import Reports, attachments

audit = logging.getLogger("linli.audit")


def not_found(zh: str = "没有这个巡查路线，或不归您巡查",
              en: str = "No such patrol route, or not yours to patrol.") -> Refused:
    return Refused(404, "not_found", bilingual(zh, en))


@dataclasses.dataclass
class Liaison:
    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    reports: Reports
    secret: bytes

    async def _get(self, doc_id: str) -> dict[str, Any] | None:
        await self.couch.ensure_db(LIAISON_DB)
        with contextlib.suppress(NotFound):
            doc = await self.couch.get(db_path(LIAISON_DB, doc_id))
            return doc if isinstance(doc, dict) else None
        return None

    async def _prefix(self, prefix: str) -> list[dict[str, Any]]:
        await self.couch.ensure_db(LIAISON_DB)
        page = await self.couch.get(db_path(LIAISON_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(prefix),
                                    endkey=json.dumps(prefix + "\ufff0"))
        return [r["doc"] for r in page.get("rows", []) if isinstance(r.get("doc"), dict)]

    async def _put_once(self, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        try:
            await self.couch.put(db_path(LIAISON_DB, doc["_id"]), doc)
        except Conflict:
            return await self._get(doc["_id"]) or doc, False
        return doc, True

    async def compound(self, code: str) -> dict[str, Any] | None:
        with contextlib.suppress(NotFound):
            doc = await self.couch.get(db_path(DIRECTORY_DB, f"compound:{code}"))
            return doc if isinstance(doc, dict) and doc.get("type") == "compound" else None
        return None

    def street_of(self, community: str) -> str:
        return next((g.street for g in self.directory.grids.values()
                     if g.community == community), "")

    # -- officers (rule 1) -------------------------------------------------------------------

    async def name_officer(self, user: User, body: Mapping[str, Any],
                           now: datetime.datetime) -> dict[str, Any]:
        problems = rules.officer_problems(body)
        if problems:
            raise refused(problems)
        compound = await self.compound(str(body["compound"]))
        if compound is None or not rules.may_name(user, str(compound.get("community"))):
            raise not_found("没有这个小区，或不在您的社区", "No such compound in your community.")
        community = str(compound["community"])
        officer = self.directory.user(str(body["officer"]))
        if not rules.may_serve(officer, str(body["department"]), community,
                               self.street_of(community)):
            raise refused([rules.problem("officer", "officer", "不是该部门负责本社区的人员",
                                         "is not that department's staff for the community")])
        doc = rules.officer_doc(str(body["compound"]), str(body["department"]),
                                str(body["officer"]), user.name, now)
        held = await self._get(doc["_id"])
        if held is not None:
            doc["_rev"] = held["_rev"]
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        await self.couch.put(db_path(LIAISON_DB, doc["_id"]), doc)
        audit.info("%s named %s liaison officer (%s) of %s", user.name, doc["officer"],
                   doc["department"], doc["compound"])
        return doc

    async def officers_of(self, compound: str) -> dict[str, str]:
        """Department -> the officer's login, for one compound."""
        return {str(d["department"]): str(d["officer"])
                for d in await self._prefix(f"liaison_officer:{compound}:")
                if d.get("type") == "liaison_officer"}

    def home_compounds(self, user: User, index: ResidentIndex) -> list[str]:
        """The compounds a resident lives in (from their active households)."""
        return sorted({p.building.partition("-")[0]
                       for p in index.ids.places_of(user.name).values()})

    async def listing(self, user: User, index: ResidentIndex) -> list[dict[str, Any]]:
        """Rule 2: the officers of the resident's compounds (or of the officer's own), by
        department label and name, with the resident's thread with each."""
        compounds = self.home_compounds(user, index) if user.role == "resident" else \
            sorted({str(d["compound"]) for d in await self._prefix("liaison_officer:")
                    if d.get("officer") == user.name})
        out = []
        for code in compounds:
            doc = await self.compound(code) or {}
            officers = await self.officers_of(code)
            out.append({"compound": code, "name": doc.get("name") or code, "officers": [
                {"department": dep, "label": rules.department_label(dep),
                 "officer": self.directory.person_name(login),
                 **({"thread": rules.thread_id(self.secret, user.name, code, dep)}
                    if user.role == "resident" else {})}
                for dep, login in sorted(officers.items())]})
        return out

    # -- messages (rule 2) -------------------------------------------------------------------

    async def thread(self, user: User, thread: str) -> list[dict[str, Any]]:
        return sorted(await self._prefix(f"liaison_message:{thread}:"),
                      key=lambda d: str(d["_id"]))

    async def thread_part(self, user: User, body: Mapping[str, Any], index: ResidentIndex
                          ) -> tuple[str, str, str, str]:
        """(thread, compound, department, resident) the user may write to, else 404."""
        if user.role == "resident":
            compound, department = str(body["compound"]), str(body["department"])
            officers = await self.officers_of(compound) if compound in self.home_compounds(
                user, index) else {}
            if department not in officers:
                raise not_found("您的小区没有这个部门的联络员",
                                "Your compound has no liaison officer of that department.")
            return (rules.thread_id(self.secret, user.name, compound, department), compound,
                    department, user.name)
        held = await self.thread(user, str(body["thread"]))
        officers = await self.officers_of(str(held[0]["compound"])) if held else {}
        if not held or officers.get(str(held[0]["department"])) != user.name:
            raise not_found("没有这个会话", "No such conversation.")
        first = held[0]
        return (str(first["thread"]), str(first["compound"]), str(first["department"]),
                str(first["resident"]))

    async def write(self, user: User, body: Mapping[str, Any], index: ResidentIndex,
                    now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        if user.role not in ("resident", "department") or user.disabled:
            raise Refused(403, "forbidden", bilingual("只有居民和联络员可以发联络消息",
                                                      "Only residents and liaison officers."))
        problems = rules.message_problems(body, user.role == "resident")
        if problems:
            raise refused(problems)
        thread, compound, department, resident = await self.thread_part(user, body, index)
        for held in await self.thread(user, thread):
            if held.get("by") == user.name and held.get("key") == body["key"]:
                return held, False
        doc = rules.message_doc(thread, compound, department, resident,
                                "resident" if user.role == "resident" else "officer",
                                user.name, body, now)
        return await self._put_once(doc)

    async def messages(self, user: User, thread: str, index: ResidentIndex) -> list[
            dict[str, Any]]:
        """A thread, to its resident and the compound's officer of its department; else 404."""
        held = await self.thread(user, thread) if rules.THREAD.match(thread) else []
        if user.role == "resident":
            mine = {o.get("thread") for c in await self.listing(user, index)
                    for o in c["officers"]}
            if thread not in mine:
                raise not_found("没有这个会话", "No such conversation.")
        elif not held or (await self.officers_of(str(held[0]["compound"]))).get(
                str(held[0]["department"])) != user.name:
            raise not_found("没有这个会话", "No such conversation.")
        officer = (await self.officers_of(str(held[0]["compound"]))).get(
            str(held[0]["department"]), "") if held else ""
        name = self.directory.person_name(officer) if officer else ""
        return [rules.message_view(d, name) for d in held]

    async def threads(self, user: User) -> list[dict[str, Any]]:
        """An officer's threads: compound, department, the last message; no resident named."""
        found: dict[str, dict[str, Any]] = {}
        for doc in await self._prefix("liaison_message:"):
            officers = await self.officers_of(str(doc["compound"]))
            if officers.get(str(doc["department"])) == user.name:
                found[str(doc["thread"])] = doc
        names: dict[str, str] = {}
        for doc in found.values():
            code = str(doc["compound"])
            if code not in names:
                names[code] = str((await self.compound(code) or {}).get("name") or code)
        return [{"thread": t, "compound": d["compound"],
                 "compound_name": names[str(d["compound"])],
                 "department": rules.department_label(str(d["department"])),
                 "last": rules.message_view(d, user.shown_name)} for t, d in sorted(
                     found.items(), key=lambda kv: str(kv[1]["at"]), reverse=True)]

    # -- routes and checks (rules 3 to 5) ----------------------------------------------------

    async def make_route(self, user: User, body: Mapping[str, Any],
                         now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        problems = rules.route_problems(body)
        if problems:
            raise refused(problems)
        compound = await self.compound(str(body["compound"]))
        community = str((compound or {}).get("community", ""))
        officer = (await self.officers_of(str(body["compound"]))).get(str(body["department"]))
        if compound is None or not (rules.may_name(user, community) or officer == user.name):
            raise not_found("没有这个小区，或不归您负责", "No such compound, or not yours.")
        grid = self.directory.grids.get(str(body["grid"]))
        if grid is None or grid.community != community:
            raise refused([rules.problem("grid", "grid", "不是该小区所在社区的网格",
                                         "is not a grid of the compound's community")])
        doc_id = f"patrol_route:{rules.digest(self.secret, 'route', user.name, body['request'])}"
        return await self._put_once(rules.route_doc(body, user.name, doc_id, now))

    async def routes(self, user: User) -> list[dict[str, Any]]:
        """The routes the user patrols (an officer's) or oversees (a supervisor's, the
        admin's all)."""
        out = []
        for doc in await self._prefix("patrol_route:"):
            if await self.patrols(user, doc) or await self.oversees(user, doc):
                compound = await self.compound(str(doc["compound"])) or {}
                out.append({"id": doc["_id"], "name": doc["name"],
                            "compound": compound.get("name") or doc["compound"],
                            "department": rules.department_label(str(doc["department"])),
                            "checkpoints": doc["checkpoints"], "per_week": doc["per_week"]})
        return out

    async def patrols(self, user: User, route: Mapping[str, Any]) -> bool:
        officers = await self.officers_of(str(route["compound"]))
        return user.role == "department" and not user.disabled and \
            officers.get(str(route["department"])) == user.name

    async def oversees(self, user: User, route: Mapping[str, Any]) -> bool:
        grid = self.directory.grids.get(str(route["grid"]))
        return user.role == "admin" or (user.role == "supervisor" and grid is not None and (
            grid.community in user.communities or grid.street in user.streets))

    async def check(self, user: User, body: Mapping[str, Any],
                    now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rules 4 and 5: one checkpoint of one patrol, once; a problem is a report, once."""
        problems = rules.check_problems(body, [c.code for c in self.reports.categories], now)
        if problems:
            raise refused(problems)
        route = await self._get(str(body["route"]))
        if route is None or route.get("type") != "patrol_route" or not await self.patrols(
                user, route):
            raise not_found()
        points = list(route.get("checkpoints", []))
        if body["checkpoint"] >= len(points):
            raise refused([rules.problem("checkpoint", "checkpoint", "不在这条路线上",
                                         "is not on this route")])
        key = rules.patrol_key(self.secret, user.name, str(route["_id"]), str(body["patrol"]))
        doc = rules.check_doc(body, route, user.name, key, now)
        held = await self._get(doc["_id"])
        if held is not None:
            return held, False
        photos = await self.reports.photos({"photos": [body["photo"]]}) if body.get(
            "photo") else []
        if body.get("problem"):
            report = await self.reports.found_on_patrol(
                user, route, str(points[body["checkpoint"]]), body["problem"], photos,
                f"patrol-{key}-{body['checkpoint']:02d}", now)
            doc["report"] = report["_id"]
        if photos:
            doc["_attachments"] = attachments(photos, "photo")
        stored, created = await self._put_once(doc)
        stored.pop("_attachments", None)
        if created:
            audit.info("%s checked %s of %s (%s)", user.name, body["checkpoint"],
                       route["_id"], "ok" if body["ok"] else "problem")
        return stored, created

    async def figures(self, user: User, now: datetime.datetime) -> list[dict[str, Any]]:
        """Rule 6 for the routes a supervisor oversees (the admin's: every one)."""
        routes = [r for r in await self._prefix("patrol_route:") if await self.oversees(user, r)]
        wanted = {str(r["_id"]) for r in routes}
        checks = [c for c in await self._prefix("patrol_check:") if c.get("route") in wanted]
        states = {str(c["report"]): await self.reports.state_of(str(c["report"]))
                  for c in checks if c.get("report")}
        names = {str(r["compound"]): str((await self.compound(str(r["compound"])) or {}).get(
            "name", "")) for r in routes}
        return rules.patrol_figures(routes, checks, states, now, names)
