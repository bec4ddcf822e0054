"""Mutual aid in the store (邻里互助): listings, deals, messages, reports and suppliers in the
residents database; seats, stock and the one item lent or given through the one allocation of
limited places (server/sync/allocation.py, docs/allocation.md). The rules are
server/domain/mutual_aid.py.

A compound's board is kept in memory (`Board`), told every document of the residents database
as the residents' index applies it (its pass at start, then its feed; no second feed), so a
listings page with 10,000 listings reads sorted lists, never the store. Who a resident is and
where they live comes from the residents' index (their active households' places), never from
the phone."""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import dataclasses
import datetime
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain import mutual_aid as rules
from server.domain.allocation import HOLDS_PLACE, Outcome, Terms
from server.domain.messages import Refused, bilingual
from server.domain.scope import RESIDENTS_DB, Directory, User
from server.domain.text import text_problem, unknown_fields
from server.domain.validation import SchemaRegistry
from server.domain.volunteering import may_publish
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.allocation import Allocator, event_id
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused
from server.sync.reports import attachments, clean_photo

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

PAGE = 20
MOST_PAGE = 50
STANDING = ("confirmed", "awaiting_approval", "waiting")


def no_such_listing() -> Refused:
    return Refused(404, "not_found", bilingual("没有这条信息，或您无权查看",
                                               "No such listing, or it is not yours to see."))


def forbidden(zh: str, en: str) -> Refused:
    return Refused(403, "forbidden", bilingual(zh, en))


Sortable = tuple[str, str]  # (created_at, id): a board's order, newest last


@dataclasses.dataclass
class Board:
    """What the residents database holds of mutual aid, in memory: listings by area (and by
    area and kind) in the order posted, deals by listing, suppliers, report counts."""

    listings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    by_key: dict[str, list[Sortable]] = dataclasses.field(default_factory=dict)
    deals: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    suppliers: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    flags: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    def take(self, doc: Mapping[str, Any]) -> None:
        """One document of the residents database, as the index applies it (or as written)."""
        doc_id = str(doc.get("_id", ""))
        kind = doc_id.split(":", 1)[0]
        if doc.get("_deleted"):
            return
        if kind == rules.PREFIX and doc.get("type") == rules.PREFIX:
            self.listing(dict(doc))
        elif kind == "mutual_aid_deal" and isinstance(doc.get("listing"), str):
            self.deals.setdefault(doc["listing"], {})[doc_id] = dict(doc)
        elif kind == "mutual_aid_supplier" and isinstance(doc.get("account"), str):
            self.suppliers[doc["account"]] = dict(doc)
        elif kind == "mutual_aid_flag" and isinstance(doc.get("listing"), str):
            self.flags.setdefault(doc["listing"], {})[doc_id] = str(doc.get("reason", ""))

    def listing(self, doc: dict[str, Any]) -> None:
        held = self.listings.get(doc["_id"])
        if held is not None and str(held.get("_rev", "")) and str(doc.get("_rev", "")) and (
                rev_number(held) > rev_number(doc)):
            return  # the feed brings back an older revision than the one written
        self.listings[doc["_id"]] = doc
        if held is None:
            entry = (str(doc.get("created_at", "")), doc["_id"])
            for key in rules.area_keys(doc):
                for filed in (key, f"{key}|{doc.get('kind')}"):
                    bisect.insort(self.by_key.setdefault(filed, []), entry)

    def page(self, keys: Iterable[str], reader: str, kind: str | None, before: Sortable | None,
             limit: int) -> list[dict[str, Any]]:
        """The newest `limit` listings the reader sees in `keys`, before the cursor."""
        found: list[tuple[Sortable, dict[str, Any]]] = []
        readable = frozenset(keys)
        for key in readable:
            filed = self.by_key.get(f"{key}|{kind}" if kind else key, [])
            end = bisect.bisect_left(filed, before) if before is not None else len(filed)
            taken = 0
            for n in range(end - 1, -1, -1):
                doc = self.listings[filed[n][1]]
                if rules.visible(doc, reader, readable):
                    found.append((filed[n], doc))
                    taken += 1
                    if taken >= limit:
                        break
        found.sort(key=lambda pair: pair[0], reverse=True)
        return [doc for _, doc in found[:limit]]

    def mine(self, account: str) -> list[dict[str, Any]]:
        return sorted((d for d in self.listings.values() if d.get("created_by") == account),
                      key=lambda d: str(d.get("created_at", "")), reverse=True)


def rev_number(doc: Mapping[str, Any]) -> int:
    head = str(doc.get("_rev", "0")).split("-", 1)[0]
    return int(head) if head.isdigit() else 0


@dataclasses.dataclass
class FirstWrites:
    """New documents of the residents database written together (a group commit): while one
    `_bulk_docs` is under way the next ones wait and go in the following one, so 2,000
    buyers' first pickup points cost the store a few writes, not 2,000 beside the
    allocator's. Each writer hears its own document's revision, or None when one was stored
    under its id already (then it reads and writes with the revision)."""

    couch: CouchClient
    waiting: dict[str, tuple[dict[str, Any], asyncio.Future[str | None]]] = dataclasses.field(
        default_factory=dict)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    async def put(self, doc: dict[str, Any]) -> str | None:
        if doc["_id"] in self.waiting:  # the same buyer twice at once: one write
            return None
        told: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.waiting[doc["_id"]] = (doc, told)
        async with self.lock:  # the first in line writes everything that waits by then
            batch, self.waiting = self.waiting, {}
            if batch:
                await self.flush(batch)
        return await told

    async def flush(self, batch: dict[str, tuple[dict[str, Any],
                                                 asyncio.Future[str | None]]]) -> None:
        try:
            results = await self.couch.post(db_path(RESIDENTS_DB, "_bulk_docs"),
                                            {"docs": [doc for doc, _ in batch.values()]})
        except Exception as exc:  # every writer of the batch hears it
            for _, told in batch.values():
                told.set_exception(exc)
                told.exception()  # retrieved even when its writer went away
            return
        for result in results:
            found = batch.get(str(result.get("id")))
            if found is not None and not found[1].done():
                found[1].set_result(str(result["rev"]) if result.get("ok") else None)


@dataclasses.dataclass
class MutualAid:
    """The store's side of mutual aid; one per app. Its subjects' terms feed the allocator."""

    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    board: Board = dataclasses.field(default_factory=Board)
    max_photo_bytes: int = 1024 * 1024
    max_photo_pixels: int = 4096 * 4096
    first_writes: FirstWrites = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.first_writes = FirstWrites(self.couch)

    # -- reading -----------------------------------------------------------------------------

    async def get(self, doc_id: str) -> dict[str, Any] | None:
        with contextlib.suppress(NotFound):
            doc = await self.couch.get(db_path(RESIDENTS_DB, doc_id))
            return dict(doc) if isinstance(doc, Mapping) else None
        return None

    async def listing(self, listing_id: str) -> dict[str, Any] | None:
        """A listing, from the board (it is told every write), else the store."""
        if not rules.LISTING_ID.match(listing_id):
            return None
        held = self.board.listings.get(listing_id)
        if held is not None:
            return held
        doc = await self.get(listing_id)
        if doc is None or doc.get("type") != rules.PREFIX:
            return None
        self.board.take(doc)
        return doc

    def places(self, account: str, index: ResidentIndex) -> list[tuple[str, str]]:
        """(community, compound) of each of the account's active households."""
        return sorted({(p.community, rules.compound_of(p.building))
                       for p in index.ids.places_of(account).values()})

    async def seen(self, listing_id: str, account: str, index: ResidentIndex) -> dict[str, Any]:
        """A listing the resident may see (rule 2); any other answers as a missing one."""
        doc = await self.listing(listing_id)
        if doc is None or not rules.visible(doc, account, rules.reader_keys(
                self.places(account, index))):
            raise no_such_listing()
        return doc

    async def terms(self, subject: str) -> Terms | None:
        """The allocator's terms of a listing's seats, an item's stock, a round's one item."""
        listing_id, part = rules.listing_of(subject)
        doc = await self.listing(listing_id)
        found = rules.terms_of(doc, part) if doc is not None else None
        return Terms(*found) if found is not None else None

    # -- posting -----------------------------------------------------------------------------

    async def post(self, account: str, index: ResidentIndex, draft: Mapping[str, Any],
                   now: datetime.datetime) -> dict[str, Any]:
        """Rules 1, 2 and 5: checked, photos cleaned, then stored open; nothing when refused."""
        problems = rules.listing_problems(draft, now)
        if problems:
            raise refused(problems)
        places = self.places(account, index)
        if not places:
            raise forbidden("请先激活您的住户，再发布互助信息", "Activate your household first.")
        community, compound = places[0]
        shop = None
        if draft["kind"] == "groupbuy":
            supplier = self.board.suppliers.get(account)
            if supplier is None:
                raise forbidden("只有社区登记的供应商可以发布团购",
                                "Only a supplier the community registered posts group-buys.")
            community, shop = str(supplier["community"]), str(supplier["shop"])
        if sum(1 for d in self.board.mine(account) if d.get("status") == "open") >= rules.MAX_OPEN:
            raise forbidden(f"您已有 {rules.MAX_OPEN} 条进行中的信息，请先关闭一些",
                            f"You have {rules.MAX_OPEN} open listings; close some first.")
        photos = [clean_photo(n, p, self.max_photo_bytes, self.max_photo_pixels)
                  for n, p in enumerate(draft.get("photos") or [])]
        doc = rules.listing_doc(draft, account, f"{rules.PREFIX}:{secrets.token_hex(8)}",
                                community, compound, now, shop)
        self.checked(doc)
        if photos:
            doc["_attachments"] = attachments(photos, "photo")
        result = await self.couch.put(db_path(RESIDENTS_DB, doc["_id"]), doc)
        stored = {k: v for k, v in doc.items() if k != "_attachments"}
        stored["_attachments"] = {name: {"stub": True} for name in doc.get("_attachments", {})}
        stored["_rev"] = str(result.get("rev", "1-"))
        self.board.take(stored)
        audit.info("%s posted %s (%s) in %s", account, doc["_id"], doc["kind"], community)
        return stored

    def checked(self, doc: Mapping[str, Any]) -> None:
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))

    async def change(self, doc_id: str, edit: Any) -> dict[str, Any]:
        """Read, edit (a function of the stored document answering the new one, or None for
        no change), write with its revision; a conflict reads again."""
        while True:
            held = await self.get(doc_id)
            changed = edit(held)
            if changed is None:
                return held or {}
            self.checked(changed)
            try:
                result = await self.couch.put(db_path(RESIDENTS_DB, doc_id), changed)
            except Conflict:
                continue
            changed["_rev"] = str(result.get("rev"))
            self.board.take(changed)
            return changed

    async def close(self, account: str, listing_id: str) -> dict[str, Any]:
        """The poster closes their listing: no more claims; what was allocated stands."""
        doc = await self.listing(listing_id)
        if doc is None or doc.get("created_by") != account:
            raise no_such_listing()
        return await self.change(listing_id, lambda held: None if held is None or held.get(
            "status") != "open" else {**held, "status": "closed"})

    # -- claims (rule 3) -----------------------------------------------------------------------

    async def act(self, allocator: Allocator, index: ResidentIndex, account: str,
                  listing_id: str, act: str, body: Mapping[str, Any],
                  now: datetime.datetime) -> tuple[str, Outcome | None, bool]:
        """A claim or cancellation: (subject, outcome, stored now). A retry of a stored act
        answers what it stands for, whatever happened to the listing since."""
        doc = await self.seen(listing_id, account, index) if act == "claim" else (
            await self.listing(listing_id))
        if doc is None or (act == "cancel" and not await self.holds_any(allocator, doc, account)
                           and not rules.visible(doc, account, rules.reader_keys(
                               self.places(account, index)))):
            raise no_such_listing()  # before the body's problems, which would describe it
        problems = rules.claim_body_problems(body, doc)
        if problems:
            raise refused(problems)
        subject = rules.subject_of(doc, int(body.get("item", 0)))
        claim = event_id(subject, account, act, body["claim_id"])
        why = rules.claim_problem(doc, account, now) if act == "claim" else None
        if act == "cancel":
            await allocator.settle()
            if allocator.outcome(subject, account) is None:
                raise no_such_listing()
        elif why is not None and await allocator.stored_claim(claim) is None:
            raise forbidden(*why)  # a retry of a claim stored in time still answers
        created = await allocator.record({
            "_id": claim, "type": "claim", "schema_version": 1, "created_by": account,
            "subject": subject, "act": act, "claimant": account, "claim_id": body["claim_id"],
            "received_at": now.isoformat(timespec="microseconds")})
        await allocator.settle()
        if act == "claim" and doc.get("kind") == "groupbuy":  # a retry after a crash too
            await self.order_pickup(doc, account, int(body.get("pickup", 0)), now)
        return subject, allocator.outcome(subject, account), created

    async def holds_any(self, allocator: Allocator, doc: Mapping[str, Any],
                        account: str) -> bool:
        """Whether the account claimed any part of the listing, in any round."""
        await allocator.settle()
        return any(allocator.outcome(s, account) is not None
                   for s in self.subjects(doc, every_round=True))

    async def order_pickup(self, doc: Mapping[str, Any], account: str, pickup: int,
                           now: datetime.datetime) -> None:
        """A buyer's deal of a group-buy, made with their first order: where they pick up (the
        last order's point stands) and the code they show there."""
        deal_id = rules.deal_id(doc, 1, account)
        held = self.board.deals.get(str(doc["_id"]), {}).get(deal_id)
        if held is not None and held.get("pickup") == pickup:
            return
        if held is None:  # the first order: written without a read, grouped with others'
            made = {**self.new_deal(doc, 1, account, now), "pickup": pickup}
            self.checked(made)
            rev = await self.first_writes.put(made)
            if rev is not None:
                self.board.take({**made, "_rev": rev})
                return
        await self.change(deal_id, lambda found: None if found is not None and (
            found.get("pickup") == pickup or found.get("handed_at")) else {
            **(found or self.new_deal(doc, 1, account, now)), "pickup": pickup})

    def new_deal(self, doc: Mapping[str, Any], round_: int, taker: str,
                 now: datetime.datetime) -> dict[str, Any]:
        deal_id = rules.deal_id(doc, round_, taker)
        out = {"_id": deal_id, "type": "mutual_aid_deal", "schema_version": 1,
               "created_by": "linli-mutual-aid", "listing": doc["_id"], "kind": doc["kind"],
               "owner": doc["created_by"], "taker": taker, "round": round_,
               "created_at": now.isoformat(timespec="seconds")}
        if doc.get("kind") == "groupbuy":
            out["code"] = rules.pickup_code(deal_id)
        return out

    def subjects(self, doc: Mapping[str, Any], every_round: bool = False) -> list[str]:
        """The allocation subjects of a listing: each item's, or the current round's (with
        `every_round`, a loan's earlier rounds too)."""
        if doc.get("kind") == "groupbuy":
            return [rules.subject_of(doc, n) for n in range(len(doc.get("items") or []))]
        if every_round and doc.get("kind") in rules.LENT:
            return [f"{doc['_id']}.r{n}" for n in range(int(doc.get("round", 1)), 0, -1)]
        return [rules.subject_of(doc)]

    async def claimants(self, allocator: Allocator, user: User,
                        listing_id: str) -> dict[str, Any]:
        """The poster's view of who claimed: each by the thread key of their conversation
        (never an account), their status and line; for a group-buy, what each holds."""
        doc = await self.owned(user, listing_id)
        await allocator.settle()
        rows: dict[str, dict[str, Any]] = {}
        for n, subject in enumerate(self.subjects(doc)):
            for who, outcome in allocator.outcomes.get(subject, {}).items():
                row = rows.setdefault(who, {"with": rules.thread_of(listing_id, who),
                                            "status": outcome.status, "line": outcome.line,
                                            "items": []})
                if doc.get("kind") == "groupbuy" and outcome.status in HOLDS_PLACE:
                    row["items"].append(n)
                if outcome.status in HOLDS_PLACE:
                    row["status"], row["line"] = outcome.status, 0
        deals = self.board.deals.get(listing_id, {})
        for who, row in rows.items():
            deal = deals.get(rules.deal_id(doc, int(doc.get("round", 1)), who)) or {}
            row["deal"] = {k: deal[k] for k in ("handed_at", "due_at", "returned_owner_at",
                                                 "returned_taker_at", "completed_at", "paid_fen")
                           if k in deal}
        counts = [sum(1 for o in allocator.outcomes.get(s, {}).values()
                      if o.status in HOLDS_PLACE) for s in self.subjects(doc)]
        return {"listing": rules.public_view(doc, user.name), "taken": counts,
                "claimants": sorted(rows.values(), key=lambda r: (r["status"] not in HOLDS_PLACE,
                                                                  r["line"], r["with"]))}

    async def owned(self, user: User, listing_id: str) -> dict[str, Any]:
        doc = await self.listing(listing_id)
        if doc is None or doc.get("created_by") != user.name:
            raise no_such_listing()
        return doc

    async def who(self, allocator: Allocator, doc: Mapping[str, Any], thread: Any,
                  every_round: bool = True) -> str:
        """The account behind a thread key, among the listing's claimants (of any round, or
        of the current one only); else 400."""
        await allocator.settle()
        for subject in self.subjects(doc, every_round=every_round):
            for account in allocator.outcomes.get(subject, {}):
                if rules.thread_of(str(doc["_id"]), account) == thread:
                    return account
        raise refused([rules.problem("taker", "taker", "没有申请这条信息", "has not claimed this")])

    async def decide(self, allocator: Allocator, user: User, listing_id: str,
                     body: Mapping[str, Any], now: datetime.datetime) -> Outcome | None:
        """The poster of a swap or a loan accepts or refuses the neighbour holding the place
        (a refusal promotes the next): an event like a claim, in the order received."""
        doc = await self.owned(user, listing_id)
        problems = rules.claim_body_problems({"claim_id": body.get("claim_id")}, {})
        if not isinstance(body.get("approve"), bool):
            problems.append(rules.problem("act", "boolean", "应为同意或拒绝",
                                          "must be approve or refuse"))
        if doc.get("kind") not in rules.ONE_ITEM:
            problems.append(rules.problem("act", "act", "只适用于二手置换和借用",
                                          "applies to swaps and loans only"))
        if problems:
            raise refused(problems)
        # the round decided is the current one: an earlier round's borrower has not asked
        taker = await self.who(allocator, doc, body.get("with"), every_round=False)
        subject = rules.subject_of(doc)
        act = "approve" if body["approve"] else "reject"
        await allocator.record({
            "_id": event_id(subject, taker, act, body["claim_id"]), "type": "claim",
            "schema_version": 1, "created_by": user.name, "subject": subject, "act": act,
            "claimant": taker, "claim_id": body["claim_id"],
            "received_at": now.isoformat(timespec="microseconds")})
        await allocator.settle()
        return allocator.outcome(subject, taker)

    # -- deals (rule 4) -------------------------------------------------------------------------

    async def deal(self, allocator: Allocator, index: ResidentIndex, user: User,
                   listing_id: str, body: Mapping[str, Any],
                   now: datetime.datetime) -> dict[str, Any]:
        """An act on a deal by its poster (naming the neighbour by thread) or its taker."""
        doc = await self.seen(listing_id, user.name, index)
        owner = doc.get("created_by") == user.name
        allowed = {"act", "with", "paid_fen", "stars"} if owner else {"act", "stars"}
        problems = unknown_fields(body, frozenset(allowed))
        if problems:
            raise refused(problems)
        act = rules.DealAct("owner" if owner else "taker", str(body.get("act")),
                            body.get("paid_fen"), body.get("stars"))
        taker = await self.who(allocator, doc, body.get("with")) if owner else user.name
        opening = act.act in ("handover", "lend", "pickup")
        round_ = int(doc.get("round", 1)) if opening else self.round_of(doc, taker)
        holding = [n for n, s in enumerate(self.subjects(doc))
                   if (o := allocator.outcome(s, taker)) is not None and o.status == "confirmed"]
        deal_id = rules.deal_id(doc, round_, taker)
        refusal: list[Refused] = []

        def edit(held: dict[str, Any] | None) -> dict[str, Any] | None:
            refusal.clear()
            base = held if held is not None else (self.new_deal(doc, round_, taker, now)
                                                  if opening else None)
            bad = rules.deal_problem(doc, base, act, bool(holding),
                                     rules.order_total(doc, holding), now)
            if bad is not None:
                refusal.append(refused([bad]))
                return None
            assert base is not None
            out = rules.apply_act(doc, base, act, now)
            if doc.get("kind") == "groupbuy" and opening:
                out["items"] = holding
            return out
        written = await self.change(deal_id, edit)
        if refusal:
            raise refusal[0]
        if doc.get("kind") in rules.LENT and written.get("completed_at") and not (
                int(doc.get("round", 1)) > round_):
            await self.change(str(doc["_id"]), lambda held: None if held is None or int(
                held.get("round", 1)) > round_ else {**held, "round": round_ + 1})
        audit.info("%s: %s on %s with %s", user.name, act.act, listing_id, taker)
        return written

    def round_of(self, doc: Mapping[str, Any], taker: str) -> int:
        """The latest round in which `taker` has a deal of this listing (1 when none)."""
        rounds = [int(d.get("round", 1)) for d in self.board.deals.get(str(doc["_id"]), {}).values()
                  if d.get("taker") == taker]
        return max(rounds, default=1)

    def pickups(self, user: User, doc: Mapping[str, Any], allocator: Allocator) -> dict[str, Any]:
        """The supplier's pickup list per point: each buyer by pickup code, what they hold,
        what they owe and whether they have collected (no name, no phone, no unit)."""
        points: list[list[dict[str, Any]]] = [[] for _ in doc.get("pickup_points") or []]
        for deal in sorted(self.board.deals.get(str(doc["_id"]), {}).values(),
                           key=lambda d: str(d.get("code", ""))):
            taker = str(deal.get("taker"))
            holding = [n for n, s in enumerate(self.subjects(doc))
                       if (o := allocator.outcome(s, taker)) is not None
                       and o.status == "confirmed"]
            if not holding or not 0 <= int(deal.get("pickup", 0)) < len(points):
                continue
            points[int(deal.get("pickup", 0))].append({
                "code": deal.get("code"), "with": rules.thread_of(str(doc["_id"]), taker),
                "items": [{"name": doc["items"][n]["name"], "price_fen": doc["items"][n][
                    "price_fen"]} for n in holding],
                "total_fen": rules.order_total(doc, holding),
                "picked_up": bool(deal.get("handed_at")), "paid_fen": deal.get("paid_fen")})
        del user
        return {"listing": doc["_id"], "points": [
            {"point": name, "orders": rows} for name, rows in zip(
                doc.get("pickup_points") or [], points, strict=True)]}

    # -- messages, reports, suppliers ------------------------------------------------------------

    async def message(self, index: ResidentIndex, account: str, listing_id: str,
                      body: Mapping[str, Any], now: datetime.datetime) -> tuple[dict[str, Any],
                                                                                bool]:
        """A message to the poster, or the poster's answer in a thread; once per key."""
        doc = await self.seen(listing_id, account, index)
        owner = doc.get("created_by") == account
        problems = rules.message_problems(body, owner)
        if problems:
            raise refused(problems)
        thread = body["thread"] if owner else rules.thread_of(listing_id, account)
        if owner and not await self.has_thread(listing_id, thread):
            raise refused([rules.problem("thread", "thread", "不存在", "does not exist")])
        key = listing_id.split(":", 1)[1]
        msg = {"_id": f"mutual_aid_message:{key}.{thread}.{body['key']}",
               "type": "mutual_aid_message", "schema_version": 1, "created_by": account,
               "listing": listing_id, "thread": thread, "from_owner": owner,
               "text": body["text"], "sent_at": now.isoformat(timespec="seconds")}
        self.checked(msg)
        try:
            await self.couch.put(db_path(RESIDENTS_DB, msg["_id"]), msg)
        except Conflict:
            return await self.get(msg["_id"]) or msg, False
        return msg, True

    async def thread_messages(self, listing_id: str, thread: str = "") -> list[dict[str, Any]]:
        key = listing_id.split(":", 1)[1]
        prefix = f"mutual_aid_message:{key}.{thread}"
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(prefix),
                                    endkey=json.dumps(prefix + "\ufff0"))
        found = [row["doc"] for row in page.get("rows", []) if isinstance(row.get("doc"), dict)]
        return sorted(found, key=lambda d: (str(d.get("sent_at")), str(d["_id"])))

    async def has_thread(self, listing_id: str, thread: str) -> bool:
        return bool(await self.thread_messages(listing_id, thread))

    async def messages(self, index: ResidentIndex, account: str,
                       listing_id: str) -> dict[str, Any]:
        """The poster's threads, or the neighbour's own one; each message as `mine` or not."""
        doc = await self.seen(listing_id, account, index)
        owner = doc.get("created_by") == account
        found = await self.thread_messages(
            listing_id, "" if owner else rules.thread_of(listing_id, account))
        threads: dict[str, list[dict[str, Any]]] = {}
        for msg in found:
            threads.setdefault(str(msg["thread"]), []).append({
                "text": msg["text"], "sent_at": msg["sent_at"],
                "mine": bool(msg.get("from_owner")) == owner})
        return {"listing": listing_id, "threads": [{"thread": t, "messages": m}
                                                   for t, m in threads.items()]}

    async def flag(self, index: ResidentIndex, account: str, listing_id: str, reason: Any,
                   now: datetime.datetime) -> bool:
        """Rule 6: a resident reports a listing, once; whether this call stored it."""
        doc = await self.seen(listing_id, account, index)
        bad = text_problem(reason, "/reason", rules.LABELS["reason"], max_chars=200)
        if bad is not None:
            raise refused([bad])
        flag = {"_id": f"mutual_aid_flag:{listing_id.split(':', 1)[1]}.{account}",
                "type": "mutual_aid_flag", "schema_version": 1, "created_by": account,
                "listing": listing_id, "community": doc["community"], "reason": reason,
                "reported_at": now.isoformat(timespec="seconds")}
        self.checked(flag)
        try:
            await self.couch.put(db_path(RESIDENTS_DB, flag["_id"]), flag)
        except Conflict:
            return False
        self.board.take(flag)
        audit.info("%s reported %s", account, listing_id)
        return True

    def reported(self, user: User) -> list[dict[str, Any]]:
        """A supervisor's reported listings of their communities, most reported first."""
        rows = []
        for listing_id, flags in self.board.flags.items():
            doc = self.board.listings.get(listing_id)
            if doc is None or not may_publish(user, str(doc.get("community")), self.directory):
                continue
            rows.append({**rules.public_view(doc, user.name), "reports": len(flags),
                         "reasons": sorted(set(flags.values()))[:20],
                         "hidden_reason": doc.get("hidden_reason")})
        return sorted(rows, key=lambda r: (-r["reports"], r["_id"]))

    async def hide(self, user: User, listing_id: str, reason: Any) -> dict[str, Any]:
        """Rule 6: the community's supervisor hides a listing, with a reason."""
        doc = await self.listing(listing_id)
        if doc is None or not may_publish(user, str(doc.get("community")), self.directory):
            raise no_such_listing()
        bad = text_problem(reason, "/reason", rules.LABELS["reason"], max_chars=200)
        if bad is not None:
            raise refused([bad])
        audit.info("%s hid %s: %s", user.name, listing_id, reason)
        return await self.change(listing_id, lambda held: None if held is None else {
            **held, "status": "hidden", "hidden_reason": reason, "hidden_by": user.name})

    async def register_supplier(self, user: User, body: Mapping[str, Any],
                                now: datetime.datetime) -> dict[str, Any]:
        """A supervisor registers a resident account (by its phone) as a supplier of one of
        their communities, with the shop's name (rule 1)."""
        problems = unknown_fields(body, frozenset({"phone", "shop", "community"}))
        bad = text_problem(body.get("shop"), "/shop", rules.LABELS["shop"], max_chars=40)
        problems += [bad] if bad is not None else []
        if problems:
            raise refused(problems)
        community = body.get("community")
        if not isinstance(community, str) or not may_publish(user, community, self.directory):
            raise refused([rules.problem("community", "scope", "不在您的管辖范围内（或不存在）",
                                         "is outside your area (or does not exist)")])
        account = self.directory.user(str(body.get("phone", "")))
        if account is None or account.role != "resident":
            raise refused([rules.problem("phone", "phone", "不是已注册居民的手机号",
                                         "is not a registered resident's phone")])
        doc = {"_id": f"mutual_aid_supplier:{account.name}", "type": "mutual_aid_supplier",
               "schema_version": 1, "created_by": user.name, "account": account.name,
               "community": community, "shop": body["shop"],
               "registered_at": now.isoformat(timespec="seconds")}
        written = await self.change(doc["_id"], lambda held: {**doc, **(
            {"_rev": held["_rev"]} if held else {})})
        audit.info("%s registered %s as a supplier of %s", user.name, account.name, community)
        return written

    async def photo(self, doc: Mapping[str, Any], name: str) -> tuple[bytes, str]:
        if name not in (doc.get("_attachments") or {}):
            raise no_such_listing()
        held = await self.couch.get(db_path(RESIDENTS_DB, str(doc["_id"])), attachments="true")
        stub = (held.get("_attachments") or {}).get(name) if isinstance(held, dict) else None
        if not isinstance(stub, Mapping) or not isinstance(stub.get("data"), str):
            raise no_such_listing()
        return base64.b64decode(stub["data"]), str(stub.get("content_type"))

    def mine(self, account: str, allocator: Allocator, now: datetime.datetime) -> dict[str, Any]:
        """The resident's own: their listings (a hidden one with its reason), where they stand
        on others' (their claims), their deals with overdue loans flagged."""
        claims = []
        for subject, outcomes in allocator.outcomes.items():
            outcome = outcomes.get(account)
            if outcome is None or not subject.startswith(rules.PREFIX + ":"):
                continue
            listing_id, part = rules.listing_of(subject)
            doc = self.board.listings.get(listing_id)
            if doc is not None:
                claims.append({"listing": listing_id, "title": doc.get("title"),
                               "kind": doc.get("kind"), "part": part,
                               "status": outcome.status, "line": outcome.line})
        deals = [{**{k: v for k, v in d.items() if k not in ("owner", "taker", "created_by")},
                  "side": "owner" if d.get("owner") == account else "taker",
                  "with": rules.thread_of(str(d.get("listing")), str(d.get("taker"))),
                  "title": (self.board.listings.get(str(d.get("listing"))) or {}).get("title"),
                  "overdue": rules.overdue(d, now)}
                 for found in self.board.deals.values() for d in found.values()
                 if account in (d.get("owner"), d.get("taker"))]
        return {"listings": [rules.public_view(d, account) for d in self.board.mine(account)],
                "claims": claims, "deals": deals,
                "supplier": (self.board.suppliers.get(account) or {}).get("shop")}
