"""The demo's questionnaire (问卷调查): 坊门街社区's parking survey, published by its supervisor
(chen.jing) to the community, one answer per household, named, open for two weeks, answered
by most of the community's activated residents' households (not the demo resident's: the tour
answers it). The answers' claims go to the claims database in order, so the allocation the
server makes at its start agrees with them; the answers go to the questionnaire's database as
the answer route writes them. Written only where missing: loading twice changes nothing."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random
from typing import Any

import couchdb

from server.domain import questionnaires as rules
from server.domain.allocation import event_id
from server.domain.scope import CLAIMS_DB, DIRECTORY_DB, RESIDENTS_DB, grid_db
from server.domain.validation import shared_registry
from server.store.bulk import save_many

Doc = dict[str, Any]
AUTHOR = "chen.jing"
KEY = "d0000000000000a1"
QUESTIONS: list[Doc] = [
    {"name": "car", "label": "家里有车吗", "kind": "single", "required": True,
     "choices": [{"value": "yes", "label": "有"}, {"value": "no", "label": "没有"}]},
    {"name": "spot", "label": "小区停车位够用吗（1 很不够，5 很够）", "kind": "rating",
     "required": True, "show_if": {"question": "car", "op": "=", "value": "yes"}},
    {"name": "needs", "label": "希望增加哪些设施", "kind": "multiple",
     "choices": [{"value": "ev", "label": "充电桩"}, {"value": "bike", "label": "非机动车棚"},
                 {"value": "light", "label": "路灯"}]},
    {"name": "people", "label": "家庭常住人数", "kind": "number", "integer": True, "min": 1,
     "max": 20},
    {"name": "note", "label": "其他建议", "kind": "text"}]
NOTES = ("希望晚上加强巡逻", "充电桩尽快安装", "车棚太远了", "")


@dataclasses.dataclass
class Plan:
    definition: Doc
    claims: list[Doc] = dataclasses.field(default_factory=list)  # in the order received
    answers: list[Doc] = dataclasses.field(default_factory=list)


Link = tuple[str, str, str]
"""(account, household id, grid) of an active resident."""


def plan_questionnaire(community: str, street: str, links: list[Link],
                       now: datetime.datetime) -> Plan:
    """Pure: the survey, and an answer from each household of `links` but a few (the first
    account of a household answers)."""
    draft = {"title": "坊门街社区停车与设施满意度调查",
             "description": "请每户填写一份，约 2 分钟。结果用于规划车位和充电桩。",
             "audience": {"level": "community", "codes": [community]}, "per": "household",
             "anonymous": False, "closes_at": (now + datetime.timedelta(days=14)).isoformat(),
             "questions": QUESTIONS}
    published = now - datetime.timedelta(days=2)
    plan = Plan(rules.definition_doc(draft, AUTHOR, KEY, 1, published))
    rng = random.Random(16)
    seen: set[str] = set()
    subject = rules.subject(KEY)
    for n, (account, household, grid) in enumerate(sorted(links)):
        if household in seen or n % 7 == 3:
            continue
        seen.add(household)
        at = published + datetime.timedelta(hours=1, minutes=7 * n)
        values: Doc = {"car": rng.choice(["yes", "yes", "no"])}
        if values["car"] == "yes":
            values["spot"] = rng.choice([1, 2, 2, 3, 4])
        values["needs"] = rng.sample(["ev", "bike", "light"], rng.randint(1, 2))
        values["people"] = rng.randint(1, 5)
        if note := NOTES[n % len(NOTES)]:
            values["note"] = note
        request = f"demo{n:04d}"
        claimant = rules.household_claimant(household)
        claim = event_id(subject, claimant, "claim", request)
        plan.claims.append({"_id": claim, "type": "claim", "schema_version": 1,
                            "created_by": account, "subject": subject, "act": "claim",
                            "claimant": claimant, "claim_id": request,
                            "received_at": at.isoformat(timespec="microseconds")})
        plan.answers.append({
            "_id": "questionnaire_answer:" + hashlib.sha256(claim.encode()).hexdigest()[:32],
            "type": "questionnaire_answer", "schema_version": 1, "created_by": account,
            "questionnaire": subject, "version": 1,
            "area": {"street": street, "community": community, "grid": grid},
            "answers": values, "account": account, "household": household,
            "received_at": at.isoformat(timespec="seconds")})
    return plan


def seed_questionnaires(server: couchdb.Server, community: str, resident_phone: str,
                        now: datetime.datetime | None = None) -> int:
    """Write the demo's questionnaire where missing; how many documents were written."""
    residents_db = server[RESIDENTS_DB]
    if rules.definition_id(KEY, 1) in residents_db:
        return 0
    login = server[DIRECTORY_DB].get(f"login:{resident_phone}")
    me = str(login["account"]) if login is not None else ""
    grids = [row.doc for row in server[DIRECTORY_DB].view(
        "_all_docs", include_docs=True, startkey="grid:", endkey="grid:\ufff0")
        if row.doc.get("community") == community]
    links: list[Link] = []
    street = ""
    for grid in grids:
        street = str(grid.get("street") or street)
        db = server[grid_db(grid["code"])]
        for row in db.view("_all_docs", include_docs=True, startkey="resident:",
                           endkey="resident:\ufff0"):
            doc = row.doc
            if doc.get("status") == "active":
                links.append((str(doc["account"]), str(doc["household"]), str(grid["code"])))
    mine = {household for account, household, _ in links if account == me}
    links = [link for link in links if link[1] not in mine]  # the tour answers for them
    plan = plan_questionnaire(community, street, links,
                              now or datetime.datetime.now(datetime.UTC))
    registry = shared_registry()
    for doc in [plan.definition, *plan.claims, *plan.answers]:
        problems = registry.problems(doc)
        if problems:
            raise ValueError(f"{doc['_id']}: {problems}")
    for name in (CLAIMS_DB, rules.answers_db(KEY)):
        if name not in server:
            server.create(name)
    save_many(server[CLAIMS_DB], plan.claims)  # in order: the sequence is the order received
    save_many(server[rules.answers_db(KEY)], plan.answers)
    residents_db.save(plan.definition)
    return 1 + len(plan.claims) + len(plan.answers)
