"""The demo's questionnaire (server/demo/questionnaires.py): every document valid, one answer a
household (the first account of it), claims in order that the allocation agrees with, the demo
resident's household left to answer in the tour, results to show; written once into a real
store."""

from __future__ import annotations

import datetime

from conftest import City

from server.demo.questionnaires import KEY, plan_questionnaire, seed_questionnaires
from server.domain import questionnaires as rules
from server.domain.allocation import Event, Terms, allocate
from server.domain.scope import CLAIMS_DB, RESIDENTS_DB
from server.domain.validation import SchemaRegistry

NOW = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


def links(count: int) -> list[tuple[str, str, str]]:
    return [(f"r{n:02d}", f"household:g{n % 2}-{n // 2 % 15:04d}", f"g{n % 2}")
            for n in range(count)]


def test_the_demo_survey_has_one_answer_a_household_in_order() -> None:
    plan = plan_questionnaire("c1", "s1", links(60), NOW)
    registry = SchemaRegistry()
    assert [d["_id"] for d in [plan.definition, *plan.claims, *plan.answers]
            if registry.problems(d)] == []
    households = [a["household"] for a in plan.answers]
    assert len(households) == len(set(households)) >= 20
    for answer in plan.answers:
        kept, problems = rules.answer_problems(plan.definition, answer["answers"])
        assert problems == [] and kept == answer["answers"]
    events = [Event(c["_id"], "claim", c["claimant"],
                    datetime.datetime.fromisoformat(c["received_at"])) for c in plan.claims]
    outcomes = allocate(Terms(10**9, rules.when(plan.definition["closes_at"])), events)
    assert all(o.status == "confirmed" for o in outcomes.values())
    assert len(outcomes) == len(plan.answers)
    result = rules.summarise(plan.definition, [rules.Answer(
        (a["area"]["street"], a["area"]["community"], a["area"]["grid"]), a["answers"])
        for a in plan.answers], "grid")
    assert result["answers"] == len(plan.answers) and len(result["areas"]) == 2


async def test_seeding_writes_once(city: City) -> None:
    community = f"qdemo{id(city) % 10000}"
    grid = await city.grid(community=community, street="s1")
    for n in range(12):
        await city.save(grid, {"_id": f"resident:rq{n:02d}-{grid}-{n:04d}", "type": "resident",
                               "schema_version": 1, "grid": grid, "created_by": "linli-signup",
                               "account": f"rq{n:02d}", "household":
                               f"household:{grid}-{n:04d}", "role": "owner",
                               "status": "active"})

    def seed() -> int:
        db = city.couch[RESIDENTS_DB]
        if rules.definition_id(KEY, 1) in db:  # another test module's demo: start afresh
            db.delete(db[rules.definition_id(KEY, 1)])
        first = seed_questionnaires(city.couch, community, "nobody", NOW)
        return first * 1000 + seed_questionnaires(city.couch, community, "nobody", NOW)

    written = await city.run(seed)
    assert written // 1000 > 1 and written % 1000 == 0
    answers = await city.run(lambda: [i for i in city.couch[rules.answers_db(KEY)]
                                      if i.startswith("questionnaire_answer:")])
    claims = await city.run(lambda: [i for i in city.couch[CLAIMS_DB]
                                     if i.startswith(f"claim:questionnaire.{KEY}")])
    assert len(answers) >= 10 and len(claims) >= len(answers)
