"""The demo city's service ratings and red/black list (物业服务评价, 红黑榜): the third quarter's
bills of a few more compounds, each served by another property company (their register from
the city's households, as demo/votes.py makes the resident's), and ratings by most of the
households that paid, each company rated around a level of its own, so that the board of
2026-Q3 has the resident's company on the red list and the next one on the black list. The
demo resident's own bill is left unrated: the resident rates it on the phone."""

from __future__ import annotations

import random
from typing import Any

import couchdb

from server.admin import directory
from server.demo.city import City
from server.demo.fees import seed_compound
from server.demo.votes import register
from server.domain import fees as fee_rules
from server.domain import ratings as rules
from server.domain.scope import DIRECTORY_DB, FEES_DB, VOTES_DB
from server.store.bulk import save_many

PERIOD = ("2026-Q3", "2026-09-30", 0.8)
# each company's usual rating: the resident's company well rated, the next ones badly (the
# demo city has two companies; a larger one gets more)
LEVELS = (4.6, 1.9, 3.4, 4.2, 2.2, 3.0)
MORE_COMPOUNDS = len(LEVELS) - 1
SHARE_RATING = 0.7  # of the households that paid


DEMO_PROPERTY = "zhou.wuye"  # the demo resident's compound's property company's login


def seed_ratings(server: couchdb.Server, city: City, resident_phone: str,
                 password: str = "") -> int:
    """Write the demo's ratings where missing, and a login (`DEMO_PROPERTY`, with `password`)
    for the resident's compound's property company; how many ratings were written."""
    resident = next(h for grid in city.grids.values() for h in grid.households
                    if h.get("phone") == resident_phone)
    home = str(resident["address"]["compound"])
    mine = "-".join(str(resident["address"][k]) for k in ("building", "unit", "room"))
    compounds = [home]
    taken = {company_of(server, home)}
    for code in sorted({str(h["address"]["compound"]) for grid in city.grids.values()
                        for h in grid.households}):
        company = company_of(server, code)
        if company and company not in taken and len(compounds) <= MORE_COMPOUNDS:
            compounds.append(code)
            taken.add(company)
    written = 0
    for level, compound in zip(LEVELS, compounds, strict=False):
        if compound != home:
            units = register(city, compound)
            stored = {row.id for row in server[VOTES_DB].view(
                "_all_docs", keys=[u["_id"] for u in units]) if "value" in row}
            save_many(server[VOTES_DB], [u for u in units if u["_id"] not in stored])
            seed_compound(server, compound, {
                fee_rules.unit_key(u["_id"]).partition(":")[2]: int(u["area_cm2"])
                for u in units}, (PERIOD,), "admin")
        written += rate(server, compound, level, mine if compound == home else "")
    company = company_of(server, home)
    if password and company and DEMO_PROPERTY not in {
            u.name for u in directory.list_users(server)}:
        directory.add_user(server, DEMO_PROPERTY, "property", password,
                           companies=[f"property_company:{company}"], full_name="周物业")
    return written


def company_of(server: couchdb.Server, compound: str) -> str:
    found = server[DIRECTORY_DB].get(f"compound:{compound}") or {}
    return rules.company_code(found.get("property_company"))


def rate(server: couchdb.Server, compound: str, level: float, skip: str) -> int:
    """Ratings of the compound's paid third-quarter bills, around `level`."""
    period = PERIOD[0]
    roll = server[FEES_DB].get(f"fee_roll:{compound}:{period}")
    if roll is None or not roll.get("company"):
        return 0
    rng = random.Random(f"linli-demo-ratings-{compound}")
    docs: list[dict[str, Any]] = []
    for n, address in enumerate(sorted(roll["bills"])):
        bill = fee_rules.bill_key(f"{compound}:{address}", period)
        if address == skip or rng.random() > SHARE_RATING or f"fee_rating:{bill}" in \
                server[FEES_DB] or f"fee_txn:pay:{bill}" not in server[FEES_DB]:
            continue
        scores = {a: min(5, max(1, round(rng.gauss(level, 0.7)))) for a in rules.ASPECTS}
        docs.append({"_id": f"fee_rating:{bill}", "type": "fee_rating", "schema_version": 1,
                     "created_by": "admin", "account": "admin", "compound": compound,
                     "company": rules.company_code(roll["company"]), "period": period,
                     "scores": scores, "comment": "" if n % 3 else COMMENTS[int(level) - 1],
                     "claim": f"demo:{bill}",
                     "received_at": f"2026-10-{1 + n % 28:02d}T10:00:00+08:00"})
    save_many(server[FEES_DB], docs)
    return len(docs)


COMMENTS = ("报修一周没人来，楼道垃圾没人清。", "保安经常不在岗。", "还可以，维修慢了点。",
            "服务态度好，保洁及时。", "非常满意，小区干净整洁。")
