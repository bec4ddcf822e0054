"""Volunteer tasks in the store (志愿任务): published to the residents database (residents'
phones get them by their community, as notices), claimed and cancelled through the one
allocation of limited places (server/sync/allocation.py). The rules are
server/domain/volunteering.py; who a claimant is comes from the residents' index (their
active households) and the directory (their grids' communities), never from the phone."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from server.domain import volunteering as rules
from server.domain.allocation import Outcome, Terms
from server.domain.messages import Refused, bilingual
from server.domain.scope import RESIDENTS_DB, Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import CouchClient, NotFound, db_path
from server.sync.allocation import Allocator, event_id
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

KIND = "volunteer_task"


def no_such_task() -> Refused:
    return Refused(404, "not_found", bilingual("没有这个任务，或您无权查看",
                                               "No such task, or it is outside your scope."))


@dataclasses.dataclass
class Volunteering:
    """The store's side of tasks; one per app. Its tasks' terms feed the allocator."""

    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    # A task's terms never change once published: read once per process.
    terms_held: dict[str, Terms] = dataclasses.field(default_factory=dict)

    async def publish(self, user: User, draft: Mapping[str, Any],
                      now: datetime.datetime) -> dict[str, Any]:
        """Rules 1 and 2: checked, then stored published; nothing stored when refused."""
        problems = rules.task_problems(draft, now)
        if problems:
            raise refused(problems)
        if not rules.may_publish(user, draft["community"], self.directory):
            raise refused([rules.problem("community", "community_scope",
                                         "不在您的管辖范围内（或不存在）",
                                         "is outside your area (or does not exist)")])
        doc = rules.task_doc(draft, user.name, f"{KIND}:{secrets.token_hex(8)}", now)
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        await self.couch.put(db_path(RESIDENTS_DB, doc["_id"]), doc)
        audit.info("%s published %s in %s (%d places)", user.name, doc["_id"],
                   doc["community"], doc["places"])
        return doc

    async def task(self, task_id: str) -> dict[str, Any] | None:
        if not task_id.startswith(f"{KIND}:"):
            return None
        try:
            doc = await self.couch.get(db_path(RESIDENTS_DB, task_id))
        except NotFound:
            return None
        return doc if isinstance(doc, dict) and doc.get("type") == KIND else None

    async def terms(self, subject: str) -> Terms | None:
        """The allocator's terms of a task (places, deadline, approval)."""
        held = self.terms_held.get(subject)
        if held is not None:
            return held
        doc = await self.task(subject)
        if doc is None:
            return None
        held = Terms(int(doc["places"]), rules.parse_time(doc.get("deadline")),
                     doc.get("needs_approval") is True)
        self.terms_held[subject] = held
        return held

    def claimant(self, account: str, index: ResidentIndex) -> rules.Claimant:
        """Who a resident is, from the index: the communities of their active households.
        Volunteer registration and party branches are still to come (docs/volunteering.md)."""
        grids = self.directory.grids
        return rules.Claimant(account, frozenset(
            grids[grid].community for grid in index.ids.homes(account).values()
            if grid in grids))

    async def act(self, allocator: Allocator, index: ResidentIndex, account: str,
                  task_id: str, act: str, claim_id: str,
                  now: datetime.datetime) -> tuple[Outcome | None, bool]:
        """A resident's claim or cancellation (rule 3), stored once and allocated: (their
        outcome, or None when not yet allocated; whether this call stored it). A task they
        may not see answers as one that does not exist; a retry of a stored claim answers
        what it stands for, whatever the deadline since."""
        doc = await self.task(task_id)
        who = self.claimant(account, index)
        if doc is None or doc.get("community") not in who.communities:
            raise no_such_task()
        claim_doc_id = event_id(task_id, account, act, claim_id)
        stored = await allocator.stored_claim(claim_doc_id)
        created = False
        if stored is None:
            if act == "claim":
                problem = rules.claim_problem(doc, who, now)
                if problem is not None:
                    raise Refused(403, "forbidden", problem.message)
            claim = {"_id": claim_doc_id, "type": "claim", "schema_version": 1,
                     "created_by": account, "subject": task_id, "act": act,
                     "claimant": account, "claim_id": claim_id,
                     "received_at": now.isoformat(timespec="microseconds")}
            stated = self.schemas.problems(claim)
            if stated:
                raise Refused(400, "bad_request", "；".join(stated))
            _, created = await allocator.record(claim)
            if created:
                audit.info("%s %s %s (%s)", account, act, task_id, claim_id)
        await allocator.settle()
        return allocator.outcome(task_id, account), created

    async def tasks(self) -> list[dict[str, Any]]:
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(f"{KIND}:"),
                                    endkey=json.dumps(f"{KIND}:\ufff0"))
        return [row["doc"] for row in page.get("rows", [])
                if isinstance(row.get("doc"), dict) and row["doc"].get("type") == KIND]
