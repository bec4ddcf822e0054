"""Mediation cases (老娘舅调解) in the store: `linli-mediation`, internal (no `/couch/` route
reaches it, whatever the role), never on a phone. The rules are server/domain/mediation.py;
here: who the parties are (the directory, the residents' index), one case document written
by the server with its revision (an act racing another is applied again on the fresh case,
once), the paper signature's photo through the problem reports' photo check, and every read
of the circle an entry of the audit (server/sync/reveals.py)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import json
import logging
from collections.abc import Mapping
from typing import Any

from server.domain import mediation as rules
from server.domain.figures import SMALL
from server.domain.messages import Refused, bilingual
from server.domain.scope import DIRECTORY_DB, MEDIATION_DB, Directory, User
from server.domain.validation import SchemaRegistry
from server.store import designs
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync import reveals
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused
from server.sync.reports import Reports, attachments

audit = logging.getLogger("linli.audit")
TRIES = 8  # an act re-applied on the fresh case after a conflict, at most this often


def no_such_case() -> Refused:
    """Rule 3: outside the circle, a case answers as one that does not exist."""
    return Refused(404, "not_found", bilingual("没有这个调解案件，或您无权查看",
                                               "No such mediation case, or it is not yours."))


@dataclasses.dataclass
class Mediation:
    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    reports: Reports  # the photo check and re-encoding of problem reports
    secret: bytes
    _installed: bool = dataclasses.field(default=False, init=False)  # the index of circles

    def grid_communities(self) -> dict[str, str]:
        return {code: grid.community for code, grid in self.directory.grids.items()}

    def community_name(self, code: str) -> str:
        return self.directory.area_name("community", code)

    async def _get(self, case_id: str) -> dict[str, Any] | None:
        if not rules.CASE_ID.match(case_id):
            return None
        await self.couch.ensure_db(MEDIATION_DB)
        with contextlib.suppress(NotFound):
            doc = await self.couch.get(db_path(MEDIATION_DB, case_id))
            return doc if isinstance(doc, dict) and doc.get("type") == "mediation_case" else None
        return None

    async def circle(self, user: User, case_id: str) -> tuple[dict[str, Any], str]:
        """The case and the reader's part; 404, as for no case, outside its circle."""
        case = await self._get(case_id)
        part = rules.part_of(user, case, self.grid_communities()) if case else None
        if case is None or part is None:
            raise no_such_case()
        return case, part

    async def logged(self, user: User, part: str, case: Mapping[str, Any], what: str,
                     now: datetime.datetime) -> None:
        """Rule 4: the read is an entry of the audit before anything is answered."""
        await reveals.append(self.couch, rules.read_entry(user, part, case, what, now))

    # -- reading -----------------------------------------------------------------------------

    async def read(self, user: User, case_id: str, now: datetime.datetime) -> dict[str, Any]:
        case, part = await self.circle(user, case_id)
        await self.logged(user, part, case, "case", now)
        return rules.view(case, part, user, self.directory.person_name,
                          self.community_name(str(case["community"])))

    async def every_case(self) -> list[dict[str, Any]]:
        """Every case (a community's mediation team settles a few hundred a year)."""
        await self.couch.ensure_db(MEDIATION_DB)
        page = await self.couch.get(db_path(MEDIATION_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps("mediation_case:"),
                                    endkey=json.dumps("mediation_case:\ufff0"))
        return [row["doc"] for row in page.get("rows", []) if isinstance(row.get("doc"), dict)
                and row["doc"].get("type") == "mediation_case"]

    async def of_circle(self, user: User) -> list[dict[str, Any]]:
        """The cases whose circle may hold `user`, through the index of cases by circle
        (designs/mediation.json): a case of nobody's circle the reader is in is not read."""
        keys = rules.circle_keys(user)
        if not keys:
            return []
        await self.couch.ensure_db(MEDIATION_DB)
        if not self._installed:
            await designs.install(self.couch, MEDIATION_DB, designs.MEDIATION)
            self._installed = True
        page = await self.couch.post(
            db_path(MEDIATION_DB, "_design/mediation", "_view", "by_circle"), {"keys": keys},
            include_docs="true")
        found: dict[str, dict[str, Any]] = {}
        for row in page.get("rows", []):
            doc = row.get("doc")
            if isinstance(doc, dict) and doc.get("type") == "mediation_case":
                found.setdefault(str(doc["_id"]), doc)
        return list(found.values())

    async def listed(self, user: User, now: datetime.datetime) -> list[dict[str, Any]]:
        """The cases of the reader's circles, newest first; each listed is a logged read."""
        grids = self.grid_communities()
        found = []
        for case in await self.of_circle(user):
            part = rules.part_of(user, case, grids)
            if part is not None:
                await self.logged(user, part, case, "list", now)
                found.append(rules.summary(case, part, self.community_name(case["community"])))
        return sorted(found, key=lambda c: str(c["opened_at"]), reverse=True)

    async def photo(self, user: User, case_id: str, name: str,
                    now: datetime.datetime) -> tuple[bytes, str]:
        case, part = await self.circle(user, case_id)
        if name not in (case.get("_attachments") or {}):
            raise no_such_case()
        doc = await self.couch.get(db_path(MEDIATION_DB, case_id), attachments="true")
        stub = (doc.get("_attachments") or {}).get(name) or {}
        await self.logged(user, part, case, f"photo {name}", now)
        return base64.b64decode(str(stub.get("data", ""))), str(stub.get("content_type"))

    # -- opening -----------------------------------------------------------------------------

    async def parties(self, sent: list[Any], community: str,
                      index: ResidentIndex) -> list[dict[str, str]]:
        """Rule 1: each party as the server knows it: a resident of the community (by their
        login), a property company of the directory; anything else refused by label."""
        found: list[dict[str, str]] = []
        for n, party in enumerate(sent):
            ref = rules.party_ref(party)
            assert ref is not None  # open_problems checked it
            kind, value = ref
            if kind == "resident":
                user = self.directory.user(value)
                homes = index.ids.places_of(user.name) if user and user.role == "resident" \
                    else {}
                if user is None or not any(p.community == community for p in homes.values()):
                    raise refused([rules.problem("parties", "party", f"第 {n + 1} 个不是本社区"
                                                 "登记的居民", f"number {n + 1} is not a "
                                                 "registered resident of the community")])
                found.append({"kind": "resident", "account": user.name,  # never a login shown
                              "name": str(party.get("name") or "").strip() or user.full_name
                              or f"当事人{n + 1} Party {n + 1}"})
            else:
                doc = None
                with contextlib.suppress(NotFound):
                    doc = await self.couch.get(db_path(DIRECTORY_DB, f"property_company:{value}"))
                if not isinstance(doc, dict) or not doc.get("name"):
                    raise refused([rules.problem("parties", "party", f"第 {n + 1} 个不是登记的"
                                                 "物业公司", f"number {n + 1} is not a "
                                                 "registered property company")])
                found.append({"kind": "company", "company": f"property_company:{value}",
                              "name": str(doc["name"])})
        if len({(p["kind"], p.get("account") or p.get("company")) for p in found}) < len(found):
            raise refused([rules.problem("parties", "repeated", "有重复的当事人",
                                         "names one party twice")])
        return found

    async def open(self, user: User, body: Mapping[str, Any], index: ResidentIndex,
                   now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rules 1 and 2: a new case, or the one this opener's request already stored."""
        problems = rules.open_problems(body)
        if problems:
            raise refused(problems)
        community, mediator = str(body["community"]), str(body["mediator"])
        grids = self.grid_communities()
        if not rules.may_open(user, community, mediator, grids):
            raise Refused(403, "forbidden", bilingual(
                "只有本社区有调解管理权限的工作人员或调解员本人可以受理调解案件",
                "Only the community's supervisors with the mediation right, or the mediator "
                "themself, open a case."))
        if not rules.may_mediate(self.directory.user(mediator), community, grids):
            raise refused([rules.problem("mediator", "mediator", "不是本社区的调解员",
                                         "is not a mediator of the community")])
        doc_id = rules.case_id(user.name, str(body["request"]), self.secret)
        held = await self._get(doc_id)
        if held is not None:
            return held, False
        parties = await self.parties(list(body["parties"]), community, index)
        if any(p.get("account") == mediator for p in parties):
            raise refused([rules.problem("mediator", "mediator", "不能是当事人",
                                         "cannot be a party")])
        doc = rules.new_case(body, parties, user.name, doc_id, now)
        self.check(doc)
        try:
            await self.couch.put(db_path(MEDIATION_DB, doc_id), doc)
        except Conflict:
            return await self._get(doc_id) or doc, False
        audit.info("%s opened mediation case %s in %s", user.name, doc_id, community)
        return doc, True

    def check(self, doc: Mapping[str, Any]) -> None:
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))

    # -- acts --------------------------------------------------------------------------------

    async def act(self, user: User, case_id: str, body: Mapping[str, Any],
                  now: datetime.datetime) -> tuple[dict[str, Any], str, bool]:
        """Rules 5 and 6: one act, applied once on the case as stored (a race re-applies it
        on the fresh case, where a replay is found and not applied again)."""
        case, part = await self.circle(user, case_id)
        problems = rules.act_problems(body)
        if problems:
            raise refused(problems)
        photo: list[tuple[str, bytes]] = []
        for _ in range(TRIES):
            if rules.repeated(case, user.name, str(body["request"])):
                return case, part, False
            refusal = rules.act_refusal(case, part, body, user)
            if refusal is not None:
                raise Refused(refusal.status, "forbidden" if refusal.status == 403 else
                              "conflict", bilingual(refusal.zh, refusal.en))
            if body["act"] == "paper" and not photo:
                photo = await self.reports.photos({"photos": [body["photo"]]})
            name = ""
            doc = rules.applied(case, body, user, now)
            if photo:
                held = attachments(photo, f"paper-{body['party']}-{len(doc['acts'])}")
                name = next(iter(held))
                doc["signatures"][str(body["party"])]["photo"] = name
                doc["_attachments"] = {**(case.get("_attachments") or {}), **held}
            self.check(doc)
            try:
                written = await self.couch.put(db_path(MEDIATION_DB, case_id), doc)
            except Conflict:
                case = await self._get(case_id) or case
                continue
            doc["_rev"] = written.get("rev")
            audit.info("%s: %s on mediation case %s (%s)", user.name, body["act"], case_id,
                       doc["state"])
            return doc, part, True
        raise Refused(503, "unavailable", bilingual("案件正在被其他人修改，请稍后再试",
                                                    "The case is busy; try again."))

    async def acted(self, user: User, case_id: str, body: Mapping[str, Any],
                    now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """An act and the case as its actor reads it then (a logged read)."""
        doc, part, created = await self.act(user, case_id, body, now)
        await self.logged(user, part, doc, "act", now)
        return rules.view(doc, part, user, self.directory.person_name,
                          self.community_name(str(doc["community"]))), created

    # -- figures -----------------------------------------------------------------------------

    def communities_of(self, user: User) -> set[str]:
        """The communities of a supervisor's scope (their own, their streets'); the admin's:
        every community of the directory."""
        every = {g.community: g.street for g in self.directory.grids.values() if g.community}
        if user.role == "admin":
            return set(every)
        return set(user.communities) | {c for c, s in every.items() if s in user.streets}

    async def figures(self, user: User) -> dict[str, Any]:
        """Rule 7: counts only, small ones withheld; no case is read for anyone."""
        wanted = self.communities_of(user)
        found = rules.figures(await self.every_case(), wanted, SMALL)
        for area in found["communities"]:
            area["name"] = self.community_name(area["code"]) or area["code"]
        return found
