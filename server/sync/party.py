"""Party members in the store (党员双报到): memberships in the residents database
(`party_member:<account>`, on the member's phone, filed by `account`), written by the server
only; letters (函告抄告) in `linli-party`, internal, never on a phone. The rules are
server/domain/party.py; where a member lives comes from the residents' index (their active
households' grids), never from the phone. Every letter written or read is a line of
linli.audit."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from collections.abc import Mapping
from typing import Any

from server.domain import party as rules
from server.domain.messages import Refused, bilingual
from server.domain.scope import PARTY_DB, RESIDENTS_DB, Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.allocation import Allocator
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused

audit = logging.getLogger("linli.audit")

PREFIX = "party_member:"


def unseen(zh: str, en: str) -> Refused:
    """What one may not see answers as what does not exist (no oracle of who is a member)."""
    return Refused(404, "not_found", bilingual(f"没有这{zh}，或您无权查看",
                                               f"No such {en}, or outside your scope."))


def no_such_member() -> Refused:
    return unseen("位党员的申报", "member")


def no_such_branch() -> Refused:
    return unseen("个支部", "branch")


@dataclasses.dataclass
class Party:
    """The store's side of party members; one per app."""

    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry

    def home_grids(self, account: str, index: ResidentIndex) -> list[str]:
        return sorted(set(index.ids.homes(account).values()))

    def communities(self, account: str, index: ResidentIndex) -> set[str]:
        grids = self.directory.grids
        return {grids[g].community for g in self.home_grids(account, index) if g in grids}

    async def membership(self, account: str) -> dict[str, Any] | None:
        if not rules.ACCOUNT.match(account):
            return None
        try:
            doc = await self.couch.get(db_path(RESIDENTS_DB, rules.member_id(account)))
        except NotFound:
            return None
        return dict(doc) if isinstance(doc, dict) and doc.get("type") == "party_member" else None

    async def branches(self, account: str, index: ResidentIndex) -> frozenset[str]:
        """Rule 5: the branches a claimant belongs to (volunteering's `Claimant.branches`)."""
        return rules.branches_of(await self.membership(account),
                                 self.home_grids(account, index))

    async def save(self, doc: dict[str, Any]) -> bool:
        """Stored over the revision read (False: someone else wrote first: read again)."""
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        try:
            await self.couch.put(db_path(RESIDENTS_DB, doc["_id"]), doc)
        except Conflict:
            return False
        return True

    async def declare(self, account: str, index: ResidentIndex, body: Mapping[str, Any],
                      now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rule 2: a resident with a home declares their branch (whether this call stored)."""
        problems = rules.declaration_problems(body, self.directory)
        if problems:
            raise refused(problems)
        if not self.home_grids(account, index):
            raise Refused(403, "forbidden", bilingual("请先激活您的住户，再申报党员身份",
                                                      "Activate your household first."))
        while True:
            held = await self.membership(account)
            doc, problem = rules.declared(held, account, body["branch"], now)
            if problem is not None:
                raise Refused(409, "conflict", problem.message)
            if doc is None:
                return dict(held or {}), False
            if await self.save(doc):
                audit.info("%s declared party membership of %s", account, doc["branch"])
                return doc, True

    async def decide(self, user: User, body: Mapping[str, Any],
                     now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rule 3: the declared branch's secretary (or the admin) confirms or rejects."""
        problems = rules.decision_problems(body)
        if problems:
            raise refused(problems)
        while True:
            held = await self.membership(body["member"])
            if held is None or not rules.may_decide(user, held):
                if held is not None and user.name == held.get("account"):
                    raise Refused(403, "forbidden", bilingual("不能确认自己的党员身份",
                                                              "You may not decide your own."))
                raise no_such_member()
            doc, problem = rules.decided(held, user, body["confirm"], body.get("reason"), now)
            if problem is not None:
                raise Refused(409, "conflict", problem.message)
            if doc is None:
                return held, False
            if await self.save(doc):
                audit.info("%s %s the party membership of %s in %s", user.name,
                           doc["status"], doc["account"], doc["branch"])
                return doc, True

    async def set_public(self, account: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Rule 4: the member's own choice to show their identity, or not."""
        while True:
            held = await self.membership(account)
            problem = rules.public_problem(body, held)
            if problem is not None:
                raise Refused(403 if problem.code == "not_confirmed" else 400,
                              "forbidden" if problem.code == "not_confirmed" else "bad_request",
                              problem.message)
            if held is None:  # only "off" passes for no membership: nothing to store
                return {}
            if held.get("public") is body["public"] or await self.save(
                    {**held, "public": body["public"]}):
                return {**held, "public": body["public"]}

    async def report(self, account: str, index: ResidentIndex,
                     now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rule 6: a confirmed member reports at the grid branch of where they live, once."""
        while True:
            held = await self.membership(account)
            grids = self.home_grids(account, index)
            problem = rules.report_problem(held, grids)
            if problem is not None:
                raise Refused(403, "forbidden", problem.message)
            assert held is not None
            if held.get("reported_at"):
                return held, False
            doc = {**held, "reported_at": now.isoformat(timespec="seconds"),
                   "reported_grid": grids[0]}
            if await self.save(doc):
                audit.info("%s reported at %s", account, rules.grid_branch(grids[0]))
                return doc, True

    async def all_members(self) -> list[dict[str, Any]]:
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(PREFIX),
                                    endkey=json.dumps(PREFIX + "\ufff0"))
        return [row["doc"] for row in page.get("rows", []) if isinstance(row.get("doc"), dict)
                and row["doc"].get("type") == "party_member"]

    async def members_of(self, branch: str, index: ResidentIndex) -> list[dict[str, Any]]:
        """A department branch's declared members; a grid branch's confirmed members who live
        in its grid (rule 7)."""
        grid = rules.grid_of_branch(branch)
        return [m for m in await self.all_members() if (
            m.get("branch") == branch if grid is None else
            m.get("status") == "confirmed" and grid in self.home_grids(str(m["account"]), index))]

    async def view(self, user: User, branch: str, index: ResidentIndex, allocator: Allocator,
                   tasks: list[dict[str, Any]], now: datetime.datetime) -> dict[str, Any]:
        """Rule 7: a branch's members, hours, projects this year and who has not reported."""
        if not rules.may_view(user, branch, self.directory):
            raise no_such_branch()
        members = await self.members_of(branch, index)
        hours: list[dict[str, Any]] = []
        for member in members:
            if member.get("status") == "confirmed":
                prefix = f"ledger_entry:hours:{member['account']}:"
                page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"),
                                            include_docs="true", startkey=json.dumps(prefix),
                                            endkey=json.dumps(prefix + "\ufff0"))
                hours += [row["doc"] for row in page.get("rows", [])
                          if isinstance(row.get("doc"), dict)]
        await allocator.settle()
        held = [rules.Task(str(t["_id"]), str(t.get("title", "")), str(t.get("starts_at", "")),
                           {a: o.status for a, o in allocator.outcomes.get(str(t["_id"]),
                                                                           {}).items()})
                for t in tasks]
        found = rules.branch_view(branch, members, hours, held, now)
        found["name"] = rules.branch_name(branch, self.directory)
        return found

    # -- letters (函告抄告) ---------------------------------------------------------------------

    async def letter_member(self, user: User, account: Any, index: ResidentIndex,
                            write: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The member a letter is about and, to a reader, their letters that the user reads,
        if the user may write (or read) theirs; else 404."""
        held = await self.membership(account) if isinstance(account, str) else None
        if held is None:
            raise no_such_member()
        communities = self.communities(str(held["account"]), index)
        if write:
            if not rules.may_write_letter(user, communities, self.directory):
                raise no_such_member()
            return held, []
        found = await self.stored_letters(str(held["account"]))
        if not rules.may_read_letters(user, held, communities, self.directory, found):
            raise no_such_member()
        return held, [d for d in found if rules.letter_readable(user, d)]

    async def stored_letters(self, account: str) -> list[dict[str, Any]]:
        """Every letter about `account`, in the order they were written."""
        await self.couch.ensure_db(PARTY_DB)
        prefix = f"party_letter:{account}:"
        page = await self.couch.get(db_path(PARTY_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(prefix),
                                    endkey=json.dumps(prefix + "\ufff0"))
        found = [row["doc"] for row in page.get("rows", []) if isinstance(row.get("doc"), dict)
                 and row["doc"].get("type") == "party_letter"]
        return sorted(found, key=lambda d: (str(d.get("written_at")), str(d["_id"])))

    async def write_letter(self, user: User, body: Mapping[str, Any], index: ResidentIndex,
                           now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """Rule 8: a supervisor's letter, written once per key, never changed."""
        problems = rules.letter_problems(body)
        if problems:
            raise refused(problems)
        member, _ = await self.letter_member(user, body["member"], index, write=True)
        doc = rules.letter_doc(body, member, user.name,
                               f"party_letter:{body['member']}:{body['key']}", now)
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        await self.couch.ensure_db(PARTY_DB)
        path = db_path(PARTY_DB, doc["_id"])
        try:
            await self.couch.put(path, doc)
        except Conflict:
            held = dict(await self.couch.get(path))
            audit.info("%s wrote party letter %s again (a retry)", user.name, doc["_id"])
            return held, False
        audit.info("%s wrote party letter %s about %s (branch %s)", user.name, doc["_id"],
                   doc["member"], doc.get("branch", "-"))
        return doc, True

    async def letters(self, user: User, account: Any,
                      index: ResidentIndex) -> list[dict[str, Any]]:
        """Rule 8: a member's letters, to their readers only; the read is logged."""
        member, found = await self.letter_member(user, account, index, write=False)
        audit.info("%s read %d party letter(s) about %s", user.name, len(found),
                   member["account"])
        return found
