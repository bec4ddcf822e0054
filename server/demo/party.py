"""The demo's party members (党员双报到): two department branches (机关支部) and one other of
府山街道, the secretary of the first (`zhao.shuji`, a demo login), and members among the
community's residents: the demo resident confirmed in 市财政局机关支部 (identity not shown
yet, not yet reported: theirs to choose), the four volunteers of the past flood watch
confirmed there too (so the branch has hours and this year's project), one of them reported,
one more resident pending, and one confirmed in 市教育局机关支部, whose branch has no project
yet; and a task of 坊门街社区 open to party members only (党员先锋岗), which the demo resident
may claim and a resident who is no member may not. Written only where missing: loading twice
changes nothing."""

from __future__ import annotations

import datetime
import secrets
from typing import Any

import couchdb

from server.admin import directory
from server.demo.volunteering import ORGANISER, neighbours
from server.domain import party as rules
from server.domain import volunteering as tasks
from server.domain.allocation import subject_key
from server.domain.scope import CLAIMS_DB, DIRECTORY_DB, RESIDENTS_DB
from server.domain.validation import shared_registry
from server.store.bulk import save_many

Doc = dict[str, Any]
SECRETARY = "zhao.shuji"
PARTY_TASK = "volunteer_task:d000000000000011"
BRANCHES = (  # code, name, kind
    ("czj", "市财政局机关支部", "organ"),
    ("jyj", "市教育局机关支部", "organ"),
    ("gdjt", "越城公交集团党支部", "other"),
)


def plan_party(me: str, others: list[str], secretary: str,
               now: datetime.datetime) -> list[Doc]:
    """Pure: the memberships for the demo resident `me` and the community's other residents
    (`others` as the volunteering demo orders them: 7..10 are the flood watch's volunteers)."""
    day = datetime.timedelta(days=1)
    docs = []

    def member(account: str, branch: str, status: str, **more: Any) -> None:
        doc, _ = rules.declared(None, account, branch, now - 20 * day)
        assert doc is not None
        if status != "pending":
            doc.update(status=status, decided_by=secretary,
                       decided_at=(now - 19 * day).isoformat(timespec="seconds"))
        doc.update(more)
        docs.append(doc)

    member(me, "czj", "confirmed")
    for n, account in enumerate(others[7:11]):
        extra = {"reported_at": (now - 15 * day).isoformat(timespec="seconds")} if n == 0 else {}
        member(account, "czj", "confirmed", public=n == 1, **extra)
    if len(others) > 12:
        member(others[11], "czj", "pending")
        member(others[12], "jyj", "confirmed")
    return docs


def party_task(community: str, now: datetime.datetime) -> Doc:
    """Pure: the demo's task open to party members only, a week ahead."""
    starts = (now + datetime.timedelta(days=7)).replace(hour=1, minute=0, second=0,
                                                          microsecond=0)
    draft = {"title": "党员先锋岗：垃圾分类督导",
             "description": "在小区垃圾投放点指导居民分类投放。",
             "place": "坊门小区垃圾投放点", "community": community, "starts_at": starts.isoformat(),
             "ends_at": (starts + datetime.timedelta(hours=2)).isoformat(), "places": 6,
             "open_to": "party_members"}
    return tasks.task_doc(draft, ORGANISER, PARTY_TASK, now - datetime.timedelta(days=1))


def seed_party(server: couchdb.Server, community: str, street: str, resident_phone: str,
               password: str, now: datetime.datetime | None = None) -> int:
    """The branches, their secretary and the memberships, where missing; how many
    memberships were written."""
    for code, name, kind in BRANCHES:
        if f"party_branch:{code}" not in server[DIRECTORY_DB]:
            directory.add_branch(server, code, name, kind, street)
    if f"user:{SECRETARY}" not in server[DIRECTORY_DB]:
        directory.add_user(server, SECRETARY, "secretary", password, branches=["czj"])
    residents_db = server[RESIDENTS_DB]
    login = server[DIRECTORY_DB].get(f"login:{resident_phone}")
    if login is None or rules.member_id(str(login["account"])) in residents_db:
        return 0
    me = str(login["account"])
    others = neighbours(server, community, me)
    when = now or datetime.datetime.now(datetime.UTC)
    docs = plan_party(me, others, SECRETARY, when)
    if PARTY_TASK not in residents_db:
        docs.append(party_task(community, when))
        if CLAIMS_DB not in server:
            server.create(CLAIMS_DB)
        server[CLAIMS_DB].save({"_id": f"task_secret:{subject_key(PARTY_TASK)}",
                                "secret": secrets.token_hex(32)})
    registry = shared_registry()
    for doc in docs:
        problems = registry.problems(doc)
        if problems:
            raise ValueError(f"{doc['_id']}: {problems}")
    save_many(residents_db, docs)
    return len(docs)
