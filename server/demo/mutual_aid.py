"""The demo's mutual aid (邻里互助) in 坊门街社区, one listing or more of each kind: a neighbour's
ride to the station with a seat left; a pram given away (the demo resident asked first, the
poster has yet to accept); an electric drill the demo resident borrowed, overdue; the demo
resident's own book lent to a neighbour and returned by both sides, both rating it; and the
community's group-buy (空中菜场) by a supplier the supervisor registered, with orders and one
pickup already paid in cash. Claims go to the claims database in order; the server allocates
them at its start (server/sync/allocation.py), so the outcomes the phones see are the server's
own. Written only where missing: loading twice changes nothing."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import couchdb

from server.demo.volunteering import neighbours
from server.domain import mutual_aid as rules
from server.domain.allocation import event_id
from server.domain.scope import CLAIMS_DB, DIRECTORY_DB, RESIDENTS_DB, grid_db
from server.domain.validation import shared_registry
from server.store.bulk import save_many

Doc = dict[str, Any]
SUPERVISOR = "chen.jing"
RIDE, PRAM, DRILL, BOOK, MARKET = (f"mutual_aid_listing:d0000000000000a{n}" for n in range(1, 6))
SHOP = "坊门街空中菜场"


@dataclasses.dataclass
class Plan:
    residents: list[Doc] = dataclasses.field(default_factory=list)
    claims: list[Doc] = dataclasses.field(default_factory=list)  # in the order received


def plan_mutual_aid(community: str, compound: str, me: str, others: list[str],
                    now: datetime.datetime) -> Plan:
    """Pure: the demo's listings, claims and deals for the demo resident `me` (of `compound`)
    and other active residents of `community` (at least 8)."""
    plan = Plan()
    day, hour = datetime.timedelta(days=1), datetime.timedelta(hours=1)
    supplier, driver, giver, lender, reader = others[0], others[1], others[2], others[3], others[4]
    buyers = others[5:8]

    def listing(listing_id: str, poster: str, draft: Doc, ago: datetime.timedelta,
                scope: str = "community", shop: str | None = None) -> Doc:
        doc = rules.listing_doc({**draft, "scope": scope}, poster, listing_id, community,
                                compound, now - ago, shop)
        plan.residents.append(doc)
        return doc

    def claim(doc: Doc, account: str, act: str, n: int, at: datetime.datetime,
              part: int = 0) -> None:
        subject = rules.subject_of(doc, part)
        claim_id = f"demo{n:04d}"
        plan.claims.append({
            "_id": event_id(subject, account, act, claim_id), "type": "claim",
            "schema_version": 1, "created_by": doc["created_by"] if act in (
                "approve", "reject") else account, "subject": subject, "act": act,
            "claimant": account, "claim_id": claim_id,
            "received_at": at.isoformat(timespec="microseconds")})

    def deal(doc: Doc, taker: str, at: datetime.datetime, **fields: Any) -> None:
        found = {"_id": rules.deal_id(doc, 1, taker), "type": "mutual_aid_deal",
                 "schema_version": 1, "created_by": "linli-mutual-aid", "listing": doc["_id"],
                 "kind": doc["kind"], "owner": doc["created_by"], "taker": taker, "round": 1,
                 "created_at": at.isoformat(timespec="seconds")}
        plan.residents.append({**found, **fields})

    ride = listing(RIDE, driver, {"kind": "carpool", "title": "周六早上拼车去绍兴北站",
                                  "from": "坊门小区东门", "to": "绍兴北站",
                                  "departs_at": (now + 2 * day).isoformat(timespec="seconds"),
                                  "seats": 3, "description": "顺路，分摊油费即可"}, 3 * hour)
    claim(ride, others[6], "claim", 1, now - 2 * hour)
    pram = listing(PRAM, giver, {"kind": "swap", "title": "婴儿推车（八成新）", "free": True,
                                 "description": "孩子大了用不上，送给有需要的邻居"}, day)
    claim(pram, me, "claim", 2, now - 20 * hour)
    drill = listing(DRILL, lender, {"kind": "tool", "title": "电钻（含钻头一套）",
                                    "loan_days": 3}, 9 * day)
    claim(drill, me, "claim", 3, now - 8 * day)
    claim(drill, me, "approve", 4, now - 8 * day + hour)
    lent = now - 7 * day
    deal(drill, me, lent, handed_at=lent.isoformat(timespec="seconds"),
         due_at=(lent + 3 * day).isoformat(timespec="seconds"))  # overdue: not returned
    book = listing(BOOK, me, {"kind": "book", "title": "《三体》全三册", "loan_days": 14},
                   20 * day, scope="compound")
    claim(book, reader, "claim", 5, now - 19 * day)
    claim(book, reader, "approve", 6, now - 19 * day + hour)
    handed, back = now - 18 * day, now - 6 * day
    deal(book, reader, handed, handed_at=handed.isoformat(timespec="seconds"),
         due_at=(handed + 14 * day).isoformat(timespec="seconds"),
         returned_taker_at=back.isoformat(timespec="seconds"),
         returned_owner_at=(back + hour).isoformat(timespec="seconds"),
         completed_at=(back + hour).isoformat(timespec="seconds"),
         ratings={"owner": 5, "taker": 5})
    book["round"] = 2  # returned: the next round is open
    market = listing(MARKET, supplier, {
        "kind": "groupbuy", "title": "空中菜场：本周蔬菜鸡蛋大米",
        "deadline": (now + 2 * day).isoformat(timespec="seconds"),
        "pickup_points": ["坊门小区东门", "社区服务中心"],
        "items": [{"name": "时令蔬菜包", "price_fen": 2880, "stock": 30, "unit": "一份 5 斤"},
                  {"name": "土鸡蛋", "price_fen": 1500, "stock": 20, "unit": "30 枚"},
                  {"name": "东北大米", "price_fen": 3990, "stock": 10, "unit": "5 公斤"}]},
        day, shop=SHOP)
    for n, buyer in enumerate(buyers):
        claim(market, buyer, "claim", 10 + n, now - 20 * hour + n * hour, part=n % 3)
        deal(market, buyer, now - 20 * hour, pickup=n % 2,
             code=rules.pickup_code(rules.deal_id(market, 1, buyer)))
    claim(market, me, "claim", 20, now - 2 * hour, part=0)
    deal(market, me, now - 2 * hour, pickup=0,
         code=rules.pickup_code(rules.deal_id(market, 1, me)))
    paid = plan.residents[-2]  # the last buyer before the demo resident collected and paid
    paid.update(handed_at=(now - hour).isoformat(timespec="seconds"),
                paid_fen=rules.order_total(market, [2]), items=[2])
    plan.residents.append({"_id": f"mutual_aid_supplier:{supplier}",
                           "type": "mutual_aid_supplier", "schema_version": 1,
                           "created_by": SUPERVISOR, "account": supplier,
                           "community": community, "shop": SHOP,
                           "registered_at": (now - 2 * day).isoformat(timespec="seconds")})
    return plan


def compound_of(server: couchdb.Server, account: str) -> str | None:
    """The compound of the account's active household, read from its grid as the index does."""
    user = server[DIRECTORY_DB].get(f"user:{account}") or {}
    for grid in (user.get("resident") or {}).get("grids", []):
        db = server[grid_db(grid)]
        for row in db.view("_all_docs", include_docs=True, startkey=f"resident:{account}-",
                           endkey=f"resident:{account}-\ufff0"):
            if row.doc.get("status") == "active":
                household = db.get(str(row.doc.get("household")))
                if household is not None:
                    return str((household.get("address") or {}).get("compound", "")) or None
    return None


def seed_mutual_aid(server: couchdb.Server, community: str, resident_phone: str,
                    now: datetime.datetime | None = None) -> int:
    """Write the demo's mutual aid where missing (none if the ride is there); how many
    documents were written."""
    residents_db = server[RESIDENTS_DB]
    login = server[DIRECTORY_DB].get(f"login:{resident_phone}")
    if RIDE in residents_db or login is None:
        return 0
    me = str(login["account"])
    others, compound = neighbours(server, community, me), compound_of(server, me)
    if len(others) < 8 or compound is None:
        return 0
    plan = plan_mutual_aid(community, compound, me, others,
                           now or datetime.datetime.now(datetime.UTC))
    forms = shared_registry()
    wrong = {d["_id"]: found for d in (*plan.residents, *plan.claims)
             if (found := forms.problems(d))}
    if wrong:
        raise ValueError(f"the demo's mutual aid: {wrong}")
    claims_db = server[CLAIMS_DB] if CLAIMS_DB in server else server.create(CLAIMS_DB)
    save_many(claims_db, plan.claims)  # in order: the store's sequence is the order received
    save_many(residents_db, plan.residents)
    return len(plan.claims) + len(plan.residents)
