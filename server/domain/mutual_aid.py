"""Mutual aid (邻里互助): one listing model with kinds, neighbours offering and taking, never a
copy per kind. What is limited (seats, stock, the one item lent or given) goes through the one
allocation of limited places (server/domain/allocation.py); this module holds the rest.

The rules:

1. Kinds. 拼车 `carpool` (a route from/to, a departure, seats), 二手置换 `swap` (an item, up
   to 3 photos, something wanted in exchange or free), 工具共享 `tool` and 流动图书 `book` (an
   item lent for `loan_days`), 团购/空中菜场 `groupbuy` (a supplier's offer: items with a price
   in fen, a stock and a unit, an order deadline, pickup points). Anyone resident may post the
   first four; a group-buy only an account the community's supervisor registered as a
   supplier (供应商) of that community (`mutual_aid_supplier`), which is a role of this feature,
   not of the account.
2. Who sees a listing. Its poster chooses: the compound (小区, the default) or the community
   (社区); a group-buy is always the community's. A resident sees the open listings of their
   households' compounds and communities, nothing else; a hidden or closed listing no one but
   its poster. A listing never shows its poster's account, phone, name or unit: it is
   "a neighbour" (or the supplier's shop name), and contact goes through the app's messages,
   each thread named by an opaque key (`thread_of`), never by the other's account.
3. What is limited, and how (`subject_of`, `terms_of`): a ride's seats (one seat per claimant,
   claimed until the departure, confirmed in the order the server receives the claims); each
   group-buy item's stock (one portion (份) per account per item, until the order deadline);
   the one item of a swap or a loan (the first asker keeps the place, the poster approves or
   refuses, a refusal promotes the next). A loan's rounds are subjects of their own
   (`<listing>.r<n>`): once a lent item is returned the next round opens.
4. Deals (`mutual_aid_deal`, one per listing, round and taker): the poster hands over to a
   claimant holding the place: `handover` (a swap given, a ride done), `lend` (due
   `loan_days` later), `pickup` (a group-buy order collected, the cash paid recorded in fen,
   never more than the order's total). A loan is returned when both sides confirmed it
   (`return`, each once, either first); a loan not returned by its due time is `overdue`.
   Each side of a completed deal rates it once (`rate`, 1 to 5 stars); no other act changes
   a deal, and nothing moves backwards.
5. Bad input is refused by the field's label, zh-CN first, before anything is stored: a price
   below 0 or not whole fen, 0 seats, a deadline or departure past, a photo over the limit,
   fields not asked for, the server's own fields (`created_by`, `status`, `community`...).
6. A resident may report (举报) a listing once; the community's supervisor may hide it, with
   a reason; a hidden listing is shown to no one but its poster (with the reason) and takes
   no more claims.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from server.domain.rules import Problem
from server.domain.text import text_problem, unknown_fields

Kind = Literal["carpool", "swap", "tool", "book", "groupbuy"]
KINDS: dict[str, tuple[str, str]] = {
    "carpool": ("拼车", "Car-pool"), "swap": ("二手置换", "Second-hand exchange"),
    "tool": ("工具共享", "Tool sharing"), "book": ("流动图书", "Book lending"),
    "groupbuy": ("团购", "Group-buy"),
}
LENT = ("tool", "book")
ONE_ITEM = ("swap", "tool", "book")  # one place, the poster approves
SCOPES = ("compound", "community")
PREFIX = "mutual_aid_listing"
MAX_SEATS = 8
MAX_ITEMS = 20
MAX_STOCK = 10000
MAX_PRICE_FEN = 10_000_000  # 100,000 元: a group-buy item, not a car
MAX_POINTS = 10
MAX_DAYS_AHEAD = 31
MAX_LOAN_DAYS = 60
MAX_PHOTOS = 3
MAX_OPEN = 20  # open listings per poster: a neighbourhood board, not a shop window
MAX_MESSAGE = 500
STARS = range(1, 6)
KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # a phone's own id for an act
LISTING_ID = re.compile(r"^mutual_aid_listing:[0-9a-f]{16}$")

LABELS: dict[str, tuple[str, str]] = {
    "kind": ("类别", "Kind"), "title": ("标题", "Title"), "description": ("说明", "Description"),
    "scope": ("可见范围", "Visible to"), "from": ("出发地", "From"), "to": ("目的地", "To"),
    "departs_at": ("出发时间", "Departure"), "seats": ("座位数", "Seats"),
    "photos": ("照片", "Photos"), "wanted": ("想换的东西", "Wanted in exchange"),
    "free": ("免费赠送", "Free"), "loan_days": ("借期（天）", "Loan days"),
    "items": ("商品", "Items"), "name": ("名称", "Name"),
    "price_fen": ("价格（分）", "Price (fen)"), "stock": ("库存", "Stock"),
    "unit": ("规格", "Unit"), "deadline": ("截单时间", "Order deadline"),
    "pickup_points": ("自提点", "Pickup points"), "claim_id": ("申请编号", "Claim id"),
    "item": ("商品", "Item"), "pickup": ("自提点", "Pickup point"), "act": ("操作", "Act"),
    "taker": ("对方", "The other side"), "paid_fen": ("收款（分）", "Paid (fen)"),
    "stars": ("评分", "Rating"), "text": ("留言", "Message"), "thread": ("对话", "Thread"),
    "key": ("编号", "Key"), "reason": ("理由", "Reason"), "shop": ("商户名", "Shop name"),
    "phone": ("手机号", "Mobile phone"), "round": ("轮次", "Round"),
    "community": ("社区", "Community"), "status": ("状态", "Status"),
    "created_by": ("发布者", "Poster"), "compound": ("小区", "Compound"),
}
COMMON = frozenset({"kind", "title", "description", "scope", "photos"})
FIELDS: dict[str, frozenset[str]] = {
    "carpool": COMMON | {"from", "to", "departs_at", "seats"},
    "swap": COMMON | {"wanted", "free"},
    "tool": COMMON | {"loan_days"},
    "book": COMMON | {"loan_days"},
    "groupbuy": COMMON | {"items", "deadline", "pickup_points"},
}
SERVER_FIELDS = ("_id", "type", "schema_version", "created_by", "status", "community",
                 "compound", "created_at", "round", "shop", "hidden_reason", "hidden_by")
ITEM_FIELDS = frozenset({"name", "price_fen", "stock", "unit"})
DEAL_ACTS = ("handover", "lend", "pickup", "return", "rate")
OPENS_DEAL = {"carpool": "handover", "swap": "handover", "tool": "lend", "book": "lend",
              "groupbuy": "pickup"}


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    """A problem naming the field by its label, zh-CN first."""
    lz, le = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


def parse_time(value: Any) -> datetime.datetime | None:
    """An ISO date-time with its zone; anything else None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _future(draft: Mapping[str, Any], name: str, now: datetime.datetime) -> list[Problem]:
    when = parse_time(draft.get(name))
    if when is None:
        return [problem(name, "date_time", "应为带时区的日期时间，例如 2026-12-31T09:00:00+08:00",
                        "must be a date and time with its zone, e.g. 2026-12-31T09:00:00+08:00")]
    if not now < when <= now + datetime.timedelta(days=MAX_DAYS_AHEAD):
        return [problem(name, "past", f"应在将来 {MAX_DAYS_AHEAD} 天之内，不能是过去的时间",
                        f"must be within the next {MAX_DAYS_AHEAD} days, not in the past")]
    return []


def _text(draft: Mapping[str, Any], name: str, most: int, *, required: bool = True,
          paragraphs: bool = False) -> list[Problem]:
    if name not in draft and not required:
        return []
    bad = text_problem(draft.get(name), f"/{name}", LABELS[name], max_chars=most,
                       paragraphs=paragraphs)
    return [bad] if bad is not None else []


def listing_problems(draft: Mapping[str, Any], now: datetime.datetime) -> list[Problem]:
    """Rules 1 and 5: every problem of a listing as sent (photos' bytes are checked apart)."""
    forged = [k for k in SERVER_FIELDS if k in draft]
    if forged:
        return [problem(forged[0], "server_field", "由服务器填写，不能提交",
                        "is filled in by the server and cannot be sent")]
    kind = draft.get("kind")
    if kind not in KINDS:
        return [problem("kind", "kind", "应为拼车、二手置换、工具共享、流动图书或团购",
                        "must be carpool, swap, tool, book or groupbuy")]
    found = unknown_fields(draft, FIELDS[kind])
    found += _text(draft, "title", 60) + _text(draft, "description", 1000, required=False,
                                                paragraphs=True)
    if draft.get("scope", "compound") not in SCOPES or (
            kind == "groupbuy" and draft.get("scope", "community") != "community"):
        found.append(problem("scope", "scope", "应为本小区或本社区（团购为本社区）",
                             "must be compound or community (a group-buy: community)"))
    photos = draft.get("photos", [])
    if not isinstance(photos, list) or len(photos) > MAX_PHOTOS:
        found.append(problem("photos", "photos_count", f"最多 {MAX_PHOTOS} 张",
                             f"at most {MAX_PHOTOS}"))
    if kind == "carpool":
        found += _text(draft, "from", 60) + _text(draft, "to", 60)
        found += _future(draft, "departs_at", now)
        if not whole(draft.get("seats"), 1, MAX_SEATS):
            found.append(problem("seats", "seats", f"应为 1 到 {MAX_SEATS} 的整数",
                                 f"must be a whole number from 1 to {MAX_SEATS}"))
    elif kind == "swap":
        free = draft.get("free", False)
        if not isinstance(free, bool):
            found.append(problem("free", "boolean", "应为是或否", "must be yes or no"))
        elif free == ("wanted" in draft):
            found.append(problem("wanted", "wanted", "请填写想换的东西，或选择免费赠送（二选一）",
                                 "says what you want in exchange, or choose free (one of them)"))
        else:
            found += _text(draft, "wanted", 60, required=False)
    elif kind in LENT:
        if not whole(draft.get("loan_days"), 1, MAX_LOAN_DAYS):
            found.append(problem("loan_days", "loan_days", f"应为 1 到 {MAX_LOAN_DAYS} 的整数",
                                 f"must be a whole number from 1 to {MAX_LOAN_DAYS}"))
    else:
        found += _future(draft, "deadline", now) + items_problems(draft.get("items"))
        found += points_problems(draft.get("pickup_points"))
    return found


def items_problems(items: Any) -> list[Problem]:
    """A group-buy's items: 1 to 20, each a name, a price in whole fen ≥ 0, a stock ≥ 1, a
    unit (规格: 一份 5 斤)."""
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        return [problem("items", "items", f"应有 1 到 {MAX_ITEMS} 件", f"must be 1 to {MAX_ITEMS}")]
    found: list[Problem] = []
    for n, item in enumerate(items):
        if not isinstance(item, Mapping):
            found.append(problem("items", "item", f"第 {n + 1} 件应为商品", f"number {n + 1} must "
                                 "be an item"))
            continue
        found += unknown_fields(item, ITEM_FIELDS)
        found += _text(item, "name", 40) + _text(item, "unit", 20)
        if not whole(item.get("price_fen"), 0, MAX_PRICE_FEN):
            found.append(problem(
                "price_fen", "price", f"第 {n + 1} 件应为 0 到 {MAX_PRICE_FEN} 的整数（单位：分），"
                "不能为负", f"of number {n + 1} must be whole fen from 0 to {MAX_PRICE_FEN}, "
                "never negative"))
        if not whole(item.get("stock"), 1, MAX_STOCK):
            found.append(problem("stock", "stock", f"第 {n + 1} 件应为 1 到 {MAX_STOCK} 的整数",
                                 f"of number {n + 1} must be a whole number from 1 to "
                                 f"{MAX_STOCK}"))
    return found


def points_problems(points: Any) -> list[Problem]:
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
        return [problem("pickup_points", "points", f"应有 1 到 {MAX_POINTS} 个",
                        f"must be 1 to {MAX_POINTS}")]
    found: list[Problem] = []
    for point in points:
        bad = text_problem(point, "/pickup_points", LABELS["pickup_points"], max_chars=60)
        if bad is not None:
            found.append(bad)
    return found[:1]


def listing_doc(draft: Mapping[str, Any], poster: str, listing_id: str, community: str,
                compound: str, now: datetime.datetime, shop: str | None = None) -> dict[str, Any]:
    """The listing as stored: the draft's fields, the server's, and where it is seen."""
    kind = draft["kind"]
    doc: dict[str, Any] = {k: v for k, v in draft.items() if k != "photos"}
    doc.update({"_id": listing_id, "type": PREFIX, "schema_version": 1, "created_by": poster,
                "scope": draft.get("scope", "community" if kind == "groupbuy" else "compound"),
                "community": community, "compound": compound, "status": "open", "round": 1,
                "created_at": now.isoformat(timespec="seconds")})
    if kind == "swap":
        doc["free"] = draft.get("free", False) is True
    if shop is not None:
        doc["shop"] = shop
    return doc


# -- what is limited (rule 3) ---------------------------------------------------------------

def subject_of(listing: Mapping[str, Any], item: int = 0) -> str:
    """The allocation subject of a listing's seats, an item's stock, or a round's one item."""
    key = str(listing["_id"])
    if listing.get("kind") == "groupbuy":
        return f"{key}.i{item}"
    if listing.get("kind") in LENT:
        return f"{key}.r{int(listing.get('round', 1))}"
    return f"{key}.r1"


def listing_of(subject: str) -> tuple[str, str]:
    """A subject's listing id and its part (`i3`, `r2`)."""
    listing, _, part = subject.rpartition(".")
    return listing, part


def terms_of(listing: Mapping[str, Any], part: str) -> tuple[int, datetime.datetime | None,
                                                             bool] | None:
    """(places, deadline, the poster approves) of a listing's subject; None: no such part."""
    kind = listing.get("kind")
    if kind == "carpool" and part == "r1":
        return int(listing["seats"]), parse_time(listing.get("departs_at")), False
    if kind in ONE_ITEM and part.startswith("r") and part[1:].isdigit():
        return 1, None, True
    if kind == "groupbuy" and part.startswith("i") and part[1:].isdigit():
        items = listing.get("items") or []
        n = int(part[1:])
        return (int(items[n]["stock"]), parse_time(listing.get("deadline")), False) if (
            n < len(items)) else None
    return None


def claim_body_problems(body: Mapping[str, Any], listing: Mapping[str, Any]) -> list[Problem]:
    """A claim (`{claim_id}`; a group-buy order adds `item` and `pickup`, by index)."""
    group = listing.get("kind") == "groupbuy"
    found = unknown_fields(body, frozenset({"claim_id", "item", "pickup"} if group
                                           else {"claim_id"}))
    if not isinstance(body.get("claim_id"), str) or not KEY.match(body["claim_id"]):
        found.append(problem("claim_id", "claim_id", "应为 8 到 64 个字母、数字、- 或 _",
                             "must be 8 to 64 letters, digits, - or _"))
    if group:
        if not whole(body.get("item"), 0, len(listing.get("items") or []) - 1):
            found.append(problem("item", "item", "不是这个团购的商品",
                                 "is not one of this offer's"))
        if not whole(body.get("pickup", 0), 0, len(listing.get("pickup_points") or []) - 1):
            found.append(problem("pickup", "pickup", "不是这个团购的自提点",
                                 "is not one of this offer's pickup points"))
    return found


def claim_problem(listing: Mapping[str, Any], claimant: str,
                  now: datetime.datetime) -> tuple[str, str] | None:
    """Why a resident may not claim (zh, en), or None: not their own, open, in time."""
    if listing.get("created_by") == claimant:
        return "不能申请自己发布的信息", "You cannot claim your own listing."
    if listing.get("status") != "open":
        return "这条信息已关闭", "This listing is closed."
    deadline = parse_time(listing.get("departs_at") or listing.get("deadline"))
    if deadline is not None and now > deadline:
        return "已过截止时间", "Too late: it has closed."
    return None


# -- who sees what (rule 2) -----------------------------------------------------------------

def area_keys(listing: Mapping[str, Any]) -> tuple[str, ...]:
    """Where a listing is seen: its community, or its compound inside its community."""
    community = str(listing.get("community", ""))
    if listing.get("scope") == "community":
        return (f"community:{community}",)
    return (f"compound:{community}/{listing.get('compound', '')}",)


def reader_keys(places: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The area keys a resident reads, from their households' (community, compound)."""
    keys: set[str] = set()
    for community, compound in places:
        keys.update((f"community:{community}", f"compound:{community}/{compound}"))
    return frozenset(keys)


def compound_of(building: str) -> str:
    """A household's compound from its building's key (`<compound>-<number>`)."""
    return building.rsplit("-", 1)[0]


def visible(listing: Mapping[str, Any], reader: str, keys: frozenset[str]) -> bool:
    if listing.get("created_by") == reader:
        return True
    return listing.get("status") == "open" and bool(set(area_keys(listing)) & keys)


def thread_of(listing_id: str, account: str) -> str:
    """The opaque name of one neighbour's conversation about a listing: the poster answers a
    thread, never an account (which would let them follow a neighbour across listings)."""
    return hashlib.sha256(f"{listing_id}|{account}".encode()).hexdigest()[:16]


def pickup_code(deal_id: str) -> str:
    """The 6 digits a buyer shows at the pickup point: no name, no phone, no unit."""
    return f"{int(hashlib.sha256(deal_id.encode()).hexdigest()[:12], 16) % 1_000_000:06d}"


SHOWN = ("_id", "kind", "title", "description", "scope", "from", "to", "departs_at", "seats",
         "wanted", "free", "loan_days", "items", "deadline", "pickup_points", "status",
         "created_at", "round", "shop")


def public_view(listing: Mapping[str, Any], reader: str) -> dict[str, Any]:
    """A listing as a neighbour sees it (rule 2): never the poster's account."""
    shown = {k: listing[k] for k in SHOWN if k in listing}
    shown["mine"] = listing.get("created_by") == reader
    shown["poster"] = listing.get("shop") or ("本社区居民 / A resident of your community"
                                              if listing.get("scope") == "community"
                                              else "本小区居民 / A resident of your compound")
    shown["photos"] = sorted((listing.get("_attachments") or {}).keys())
    if shown["mine"] and listing.get("status") == "hidden":
        shown["hidden_reason"] = listing.get("hidden_reason")
    return shown


# -- deals (rule 4) -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DealAct:
    """One act on a deal: who (`owner` or `taker`), what, and its figures."""

    side: Literal["owner", "taker"]
    act: str
    paid_fen: int | None = None
    stars: int | None = None


def deal_id(listing: Mapping[str, Any], round_: int, taker: str) -> str:
    return f"mutual_aid_deal:{str(listing['_id']).split(':', 1)[1]}.{round_}.{taker}"


def deal_problem(listing: Mapping[str, Any], deal: Mapping[str, Any] | None, act: DealAct,
                 holds: bool, order_fen: int, now: datetime.datetime) -> Problem | None:
    """Why an act on a deal is refused, or None (rule 4). `holds`: the taker holds the place;
    `order_fen`: a group-buy order's total."""
    kind = str(listing.get("kind"))
    if act.act in ("handover", "lend", "pickup"):
        if act.side != "owner" or act.act != OPENS_DEAL[kind]:
            return problem("act", "act", "不适用于此类信息或不是您能做的",
                           "does not apply to this kind, or is not yours to do")
        if deal is not None and deal.get("handed_at"):
            return problem("act", "done", "已经做过了", "was done already")
        if not holds:
            return problem("taker", "holds", "没有获得名额", "holds no place")
        if kind == "carpool" and now < (parse_time(listing.get("departs_at")) or now):
            return problem("act", "early", "出发后才能确认行程完成",
                           "is confirmed once the ride has left")
        if act.act == "pickup" and not (act.paid_fen is not None
                                        and whole(act.paid_fen, 0, order_fen)):
            return problem("paid_fen", "paid", f"应为 0 到 {order_fen} 的整数（单位：分）",
                           f"must be whole fen from 0 to {order_fen}")
        return None
    if deal is None or not deal.get("handed_at"):
        return problem("act", "no_deal", "还没有交接", "comes after the handover")
    if act.act == "return":
        if kind not in LENT:
            return problem("act", "act", "只适用于借出的物品", "applies to lent items only")
        if deal.get(f"returned_{act.side}_at"):
            return problem("act", "done", "已经确认过归还", "was confirmed already")
        return None
    if act.act == "rate":
        if not completed(deal):
            return problem("act", "not_done", "交易完成后才能评价", "comes once the deal is done")
        if (deal.get("ratings") or {}).get(act.side) is not None:
            return problem("stars", "once", "每方只能评价一次", "is given once by each side")
        if act.stars not in STARS:
            return problem("stars", "stars", "应为 1 到 5 星", "must be 1 to 5 stars")
        return None
    return problem("act", "act", "应为交接、借出、取货、归还或评价",
                   "must be handover, lend, pickup, return or rate")


def completed(deal: Mapping[str, Any]) -> bool:
    """A deal is done once handed over, and for a loan once both sides confirmed the return."""
    if not deal.get("handed_at"):
        return False
    if deal.get("kind") in LENT:
        return bool(deal.get("returned_owner_at") and deal.get("returned_taker_at"))
    return True


def overdue(deal: Mapping[str, Any], now: datetime.datetime) -> bool:
    """A loan not returned (by both sides' word) by its due time."""
    due = parse_time(deal.get("due_at"))
    return due is not None and now > due and not completed(deal)


def apply_act(listing: Mapping[str, Any], deal: Mapping[str, Any], act: DealAct,
              now: datetime.datetime) -> dict[str, Any]:
    """The deal after an act the rules allowed (deal_problem said None)."""
    at = now.isoformat(timespec="seconds")
    out = dict(deal)
    if act.act in ("handover", "lend", "pickup"):
        out["handed_at"] = at
        if act.act == "lend":
            out["due_at"] = (now + datetime.timedelta(days=int(listing["loan_days"]))).isoformat(
                timespec="seconds")
        if act.act == "pickup":
            out["paid_fen"] = act.paid_fen
    elif act.act == "return":
        out[f"returned_{act.side}_at"] = at
    else:
        out["ratings"] = {**(deal.get("ratings") or {}), act.side: act.stars}
    if completed(out) and not deal.get("completed_at"):
        out["completed_at"] = at
    return out


def taker_view(deal: Mapping[str, Any]) -> dict[str, Any]:
    """Rule 2 on the taker's phone (the resident sync): the deal without the poster's account,
    which would let a neighbour follow one poster across listings."""
    return {k: v for k, v in deal.items() if k != "owner"}


def order_total(listing: Mapping[str, Any], items: Iterable[int]) -> int:
    """What a buyer owes for the items they hold a portion of, in fen."""
    listed = listing.get("items") or []
    return sum(int(listed[n]["price_fen"]) for n in items if 0 <= n < len(listed))


def message_problems(body: Mapping[str, Any], owner: bool) -> list[Problem]:
    """A message (`{text, key}`; the poster names the `thread` answered)."""
    found = unknown_fields(body, frozenset({"text", "key", "thread"} if owner
                                           else {"text", "key"}))
    found += _text(body, "text", MAX_MESSAGE, paragraphs=True)
    if not isinstance(body.get("key"), str) or not KEY.match(body["key"]):
        found.append(problem("key", "key", "应为 8 到 64 个字母、数字、- 或 _",
                             "must be 8 to 64 letters, digits, - or _"))
    if owner and not (isinstance(body.get("thread"), str)
                      and re.fullmatch(r"[0-9a-f]{16}", body["thread"])):
        found.append(problem("thread", "thread", "请选择要回复的对话", "names the thread answered"))
    return found
