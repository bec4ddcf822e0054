"""The demo city's star rating (三类五星): the demo resident's compound has its 2025 round
published (4★, 良性发展) and its 2026 round in progress: the community has evidenced most
indicators and handed them over, and the assessor has scored some. A login for the
third-party assessor (`DEMO_ASSESSOR`, commissioned for the demo street); the street's
supervisor (sun.lei) reviews, the community's (chen.jing) uploads evidence."""

from __future__ import annotations

import json
from typing import Any

import couchdb

from server.admin import directory
from server.demo.city import City
from server.domain import stars as rules
from server.domain.scope import DIRECTORY_DB, STARS_DB
from server.domain.validation import SCHEMA_DIR

DEMO_ASSESSOR = "qian.pinggu"  # 钱评估, of the third-party assessor
COMMUNITY_SUPERVISOR, STREET_SUPERVISOR = "chen.jing", "sun.lei"
EVIDENCED = 40  # of the 54 indicators, in 2026
SCORED = 15  # of those, by the assessor
LAST_ROUND_SHORT = 15  # points the 2025 round fell short of the full marks: 85, 4★


def stamp(day: str, hour: int = 9) -> str:
    return f"{day}T{hour:02d}:00:00+08:00"


def sheet_doc(compound: dict[str, Any], round_: str, state: str) -> dict[str, Any]:
    return {"_id": rules.sheet_id(round_, compound["code"]), "type": "star_sheet",
            "schema_version": 1, "created_by": STREET_SUPERVISOR, "round": round_,
            "compound": compound["code"], "compound_name": compound["name"],
            "community": compound["community"], "street": compound["community"][:9],
            "state": state, "opened_at": stamp(f"{round_}-03-01"), "evidence": {},
            "scores": {}, **({"company": compound["property_company"]}
                             if compound.get("property_company") else {}),
            "history": [{"act": "open", "to": "collecting", "by": STREET_SUPERVISOR,
                         "at": stamp(f"{round_}-03-01")}]}


def evidence(indicator: rules.Indicator, day: str) -> dict[str, Any]:
    return {"text": f"已按要求整理：{indicator.evidence}", "photos": [],
            "by": COMMUNITY_SUPERVISOR, "at": stamp(day)}


def score(indicator: rules.Indicator, points: int, day: str) -> dict[str, Any]:
    by = DEMO_ASSESSOR if indicator.scored_by == "assessor" else STREET_SUPERVISOR
    comment = "材料齐全，现场核实属实" if points == indicator.max_points else "部分落实，扣分"
    return {"points": points, "comment": comment, "by": by, "at": stamp(day, 15)}


def published(sheet: rules.Sheet, compound: dict[str, Any]) -> dict[str, Any]:
    """The 2025 round: every indicator evidenced and scored, approved by the street."""
    doc = sheet_doc(compound, "2025", "published")
    short = LAST_ROUND_SHORT
    for indicator in sheet.indicators:
        lost = min(short, indicator.max_points - 1)
        short -= lost
        doc["evidence"][indicator.id] = evidence(indicator, "2025-04-10")
        doc["scores"][indicator.id] = score(indicator, indicator.max_points - lost, "2025-05-20")
    result = rules.result_of(sheet, doc["scores"])
    share = result["award_fen"] * 20 // 100
    doc["result"] = {**result, "property_fen": share}
    doc["published_at"] = stamp("2025-06-30")
    doc["history"] += [
        {"act": "submit_evidence", "to": "scoring", "by": COMMUNITY_SUPERVISOR,
         "at": stamp("2025-04-30")},
        {"act": "submit_scores", "to": "review", "by": DEMO_ASSESSOR, "at": stamp("2025-05-31")},
        {"act": "approve", "to": "published", "by": STREET_SUPERVISOR,
         "at": doc["published_at"]}]
    return doc


def in_progress(sheet: rules.Sheet, compound: dict[str, Any]) -> dict[str, Any]:
    """The 2026 round: most indicators evidenced and handed over, some scored."""
    doc = sheet_doc(compound, "2026", "scoring")
    for n, indicator in enumerate(sheet.indicators[:EVIDENCED]):
        doc["evidence"][indicator.id] = evidence(indicator, "2026-04-12")
        if n < SCORED and indicator.scored_by == "assessor":
            points = indicator.max_points - (n % 3 == 2)
            doc["scores"][indicator.id] = score(indicator, points, "2026-05-08")
    doc["history"].append({"act": "submit_evidence", "to": "scoring", "by": COMMUNITY_SUPERVISOR,
                           "at": stamp("2026-04-30")})
    return doc


def seed_stars(server: couchdb.Server, city: City, resident_phone: str, street: str,
               password: str) -> None:
    """The assessor's login and the two rounds of the resident's compound, where missing."""
    if DEMO_ASSESSOR not in {u.name for u in directory.list_users(server)}:
        directory.add_user(server, DEMO_ASSESSOR, "assessor", password, streets=[street],
                           full_name="钱评估")
    resident = next(h for grid in city.grids.values() for h in grid.households
                    if h.get("phone") == resident_phone)
    compound = server[DIRECTORY_DB].get(f"compound:{resident['address']['compound']}")
    if compound is None:
        return
    sheet = rules.sheet_from(json.loads((SCHEMA_DIR / "star_sheet.json").read_text("utf-8")))
    if STARS_DB not in server:
        server.create(STARS_DB)
    db = server[STARS_DB]
    for doc in (published(sheet, compound), in_progress(sheet, compound)):
        if doc["_id"] not in db:
            db.save(doc)
