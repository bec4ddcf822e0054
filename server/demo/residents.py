"""The demo city's residents (居民): accounts that signed up in one community, as sign-up and
activation would have left them. Pure, like city.py: the caller stores what it gets.

Each sign-up is a noisy one from demo/signups.py (a phone typed with +86, a unit left out, a
family member instead of the head, a stranger), and goes the way the server takes it: the
matcher and the rule of automatic activation (server/domain/matching.py, signup.py) decide, a
sign-up that is not activated waits in one grid's queue (`signup.queue_grid`), and of those
that belong to a registered household every other one was activated since by a worker's code
(`activation.redeem`): the code, spent, and its link. The rest wait for the worker.

The community's supervisor and the city's admin have published notices (one to the elderly living
alone, two asking for confirmation); most activated residents in each audience have read
them, and most of those asked have confirmed: the rest is the follow-up the worker walks.

Two accounts are the demo's own, with the demo password and a phone easy to type (README):
DEMO_RESIDENT, the head of a household, activated at once; DEMO_PENDING, a sign-up at an
address that names no household, waiting in the queue (the worker may make them a code).

Deterministic from the seed; times are fixed days after city.TODAY, so storing it twice
changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
from collections.abc import Iterable, Mapping
from typing import Any

from server.demo.city import City, worker_name
from server.demo.signups import COMMON_GIVEN, COMMON_SURNAMES, FALLBACK, SIMILAR, noisy_signups
from server.domain import activation, signup
from server.domain.activation import link_id
from server.domain.audience import includes, place_of
from server.domain.matching import HouseholdIndex, match, normalise_address
from server.domain.notices import notice_doc
from server.domain.scope import LOGIN

Doc = dict[str, Any]
SIGNUPS = 60  # drawn; phones that repeat are one account
HARD = 10  # sign-ups the matcher leaves to the worker (a typo, a tenant not registered yet)
# A household's head, activated automatically: their phone is the one the registry holds
# for the household, as activation at once needs (server/domain/signup.py, rule 4)
DEMO_RESIDENT = "15706666600"
DEMO_PENDING = "13800000002"  # an address the registry does not have: in the worker's queue
SIGNED_UP = datetime.datetime(2026, 11, 27, 9, 0, tzinfo=datetime.UTC)


@dataclasses.dataclass
class Residents:
    """Accounts for the directory, and records by grid."""

    directory: list[Doc] = dataclasses.field(default_factory=list)
    grids: dict[str, list[Doc]] = dataclasses.field(default_factory=dict)
    notices: list[Doc] = dataclasses.field(default_factory=list)
    """For the residents database: the notices, then the residents' receipts."""
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    """How many sign-ups went which way: activated, by_code, queued_ambiguous,
    queued_unmatched."""

    def add(self, grid: str, *docs: Doc) -> None:
        self.grids.setdefault(grid, []).extend(docs)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def _community(city: City, community: str) -> tuple[list[Doc], list[Doc], list[Doc],
                                                   dict[str, str]]:
    grids = sorted(code for code, _ in city.grids.items()
                   if any(d.get("_id") == f"grid:{code}" and d.get("community") == community
                          for d in city.directory_docs))
    households = [h for code in grids for h in city.grids[code].households]
    persons = [p for code in grids for p in city.grids[code].persons]
    compounds = [d for d in city.directory_docs if d.get("type") == "compound"
                 and d.get("community") == community]
    grid_of = {str(h["_id"]): str(h["grid"]) for h in households}
    return households, persons, compounds, grid_of


def plan_residents(city: City, community: str, password_hash: str, seed: int,
                   n: int = SIGNUPS) -> Residents:
    """The residents of `community`, each account with `password_hash` (one hash of the demo
    password, made by the caller: hashing is slow on purpose)."""
    rng = random.Random(f"linli-demo-residents-{seed}")
    households, persons, compounds, grid_of = _community(city, community)
    index = HouseholdIndex.build(households, persons, compounds)
    by_id = {str(h["_id"]): h for h in households}
    members: dict[str, list[Doc]] = {}
    for person in persons:
        members.setdefault(str(person.get("household")), []).append(person)
    compound_grids: dict[str, set[str]] = {}
    for h in households:
        compound_grids.setdefault(str(h["address"]["compound"]), set()).add(str(h["grid"]))
    grids = tuple(sorted(set(grid_of.values())))
    head = min(households, key=lambda h: str(h["_id"]))
    if head.get("phone") != DEMO_RESIDENT:
        raise ValueError(f"the demo resident's phone is {head.get('phone')} in this city")
    own = [({"name": str(head["head_name"]), "phone": DEMO_RESIDENT,
             "address": _written(head["address"])}, str(head["_id"])),
           ({"name": "周晓明", "phone": DEMO_PENDING, "address": "99幢9单元909"}, None)]
    plan, phones, waiting = Residents(), set(), 0
    drawn = noisy_signups(households, persons, compounds, n, seed)
    for k, (typed, truth) in enumerate([*own, *_hard(rng, households), *drawn]):
        cleaned = signup.cleaned_signup({**typed, "community": community})
        if cleaned["phone"] in phones:
            continue
        phones.add(cleaned["phone"])
        account = f"r{rng.getrandbits(48):012x}"
        now = SIGNED_UP + datetime.timedelta(minutes=37 * k)
        found = dataclasses.asdict(match(cleaned, index))
        chosen = str(found.get("household"))
        decision = signup.decide(found, cleaned["name"], cleaned["phone"], by_id.get(chosen),
                                 members.get(chosen, ()))
        key = normalise_address(cleaned["address"], index.compounds)
        grid = signup.queue_grid((grid_of[c] for c in decision.candidates if c in grid_of),
                                 compound_grids.get(key.compound or "", ()) if key else (),
                                 grids)
        assert grid is not None
        record = signup.signup_record(f"signup:{account}", cleaned, account, grid, found,
                                      decision, now)
        plan.add(grid, record)
        held = {grid}
        if decision.outcome == "activated" and decision.household is not None:
            link = signup.automatic_link(link_id(account, decision.household), decision,
                                         account, cleaned["name"], by_id[chosen], now)
            plan.add(grid, {**link, "signup": record["_id"]})
            plan.count("activated")
        elif truth is not None and k >= len(own) and (waiting := waiting + 1) % 2:
            held.add(_by_code(plan, rng, account, by_id[truth], now))
            plan.count("by_code")
        else:
            plan.count(decision.outcome)
        plan.directory.extend(account_docs(account, cleaned["phone"], password_hash, community,
                                           sorted(held), now, rng))
    _notices(plan, rng, city, community, by_id)
    return plan


# Notices of the community's supervisor (chen.jing) and the city's admin (the street's
# supervisor, sun.lei, has none yet: the PWA's tests write his first), as they would write
# them: (author, days after the sign-ups began, level, tags, pinned, asks to confirm, title,
# body). Each is made by domain/notices.py's notice_doc, as the route makes it.
NOTICES: tuple[tuple[str, int, str, tuple[str, ...], bool, bool, str, str], ...] = (
    ("chen.jing", 2, "community", (), True, True, "12月5日停水通知",
     "因供水管网检修，12月5日8:00至18:00坊门街社区停水。\n\n请提前储水，关好水龙头。"
     "看到通知请点“确认”。"),
    ("chen.jing", 3, "community", ("elderly_alone",), False, True, "寒潮天气提醒",
     "本周有寒潮，请注意保暖，出门防滑。\n\n网格员会上门看望，如需帮助请联系社区。"),
    ("chen.jing", 4, "grid", (), False, False, "垃圾分类宣传",
     "每周六上午社区广场有垃圾分类宣传活动，欢迎参加。"),
    ("admin", 1, "street", (), False, False, "防范电信诈骗",
     "不轻信陌生来电，不点击不明链接，不向陌生账户转账。\n\n如遇可疑情况请拨打96110。"),
)


def _notices(plan: Residents, rng: random.Random, city: City, community: str,
             households: Mapping[str, Doc]) -> None:
    """The notices, and a receipt from most activated residents in each audience: read some
    hours later, a notice that asks confirmed by most who read it; the rest is the follow-up
    the worker walks."""
    places = {g["code"]: (str(g["street"]), str(g["community"])) for g in city.directory_docs
              if g.get("type") == "grid" and g.get("community") == community}
    links = [d for docs in plan.grids.values() for d in docs
             if d["type"] == "resident" and d["status"] == "active"]
    for author, day, level, tags, pinned, confirm, title, body in NOTICES:
        published = SIGNED_UP + datetime.timedelta(days=day, hours=1)
        street, _ = next(iter(places.values()))
        codes = {"street": [street], "community": [community],
                 "grid": [sorted(places)[0]]}[level]
        draft = {"title": title, "body": body, "pinned": pinned, "needs_confirmation": confirm,
                 "audience": {"level": level, "codes": codes, **({"tags": list(tags)}
                                                                if tags else {})}}
        notice = notice_doc(draft, author, f"notice:{rng.getrandbits(64):016x}", published)
        plan.notices.append(notice)
        for link in links:
            household = households[link["household"]]
            street, _ = places[str(household["grid"])]
            place = place_of(household, community, street)
            if place is None or not includes(notice["audience"], place) or rng.random() < 0.3:
                continue
            read = published + datetime.timedelta(minutes=rng.randint(20, 3000))
            receipt = {"_id": receipt_id(notice["_id"], link["account"]),
                       "type": "notice_receipt", "schema_version": 1,
                       "created_by": link["account"], "notice": notice["_id"],
                       "household": link["household"], "grid": link["grid"],
                       "read_at": read.isoformat(timespec="seconds")}
            if confirm and rng.random() < 0.7:
                receipt["confirmed_at"] = (read + datetime.timedelta(minutes=2)).isoformat(
                    timespec="seconds")
            plan.notices.append(receipt)


def receipt_id(notice: str, account: str) -> str:
    """As server/sync/notices.py names a receipt: one per notice and resident."""
    return f"notice_receipt:{notice.removeprefix('notice:')}:{account}"


def _hard(rng: random.Random, households: list[Doc]) -> list[tuple[dict[str, str], str]]:
    """What the matcher rightly leaves to the worker, as the city saw it: the head's name one
    character off, or a tenant the registry does not know yet, at the right door, on a phone
    the registry does not have. Each belongs to the household (the worker will find so)."""
    out = []
    for k in range(HARD):
        home = rng.choice(households)
        name = str(home["head_name"])
        if k % 2:
            name = rng.choice(COMMON_SURNAMES) + rng.choice(COMMON_GIVEN) * 2
        else:
            name = name[:-1] + (SIMILAR.get(name[-1]) or FALLBACK)[0]
        phone = f"1{rng.choice('3589')}{rng.randrange(10 ** 9):09d}"
        out.append(({"name": name, "phone": phone, "address": _written(home["address"])},
                    str(home["_id"])))
    return out


def _written(address: Mapping[str, Any]) -> str:
    """An address as its head would type it: 3幢2单元301."""
    unit = f"{address['unit']}单元" if address.get("unit") else ""
    return f"{address['building']}幢{unit}{address['room']}"


def _by_code(plan: Residents, rng: random.Random, account: str, household: Mapping[str, Any],
             signed_up: datetime.datetime) -> str:
    """A worker's code for the household, made the next morning and typed by the resident an
    hour later: the code spent, and the link it made."""
    grid = str(household["grid"])
    made = signed_up + datetime.timedelta(days=1)
    code = activation.new_code(rng.randrange)
    stored = {"_id": f"activation_code:{grid}-{code}", "type": "activation_code",
              "schema_version": 1, "grid": grid, "created_by": worker_name(grid),
              "household": household["_id"], "code": code, "role": "family",
              "created_at": made.isoformat(timespec="seconds")}
    link, used = activation.redeem(stored, account, link_id(account, str(household["_id"])),
                                   made + datetime.timedelta(hours=1))
    plan.add(grid, used, link)
    return grid


def account_docs(account: str, phone: str, password_hash: str, community: str,
                 grids: Iterable[str], now: datetime.datetime, rng: random.Random
                 ) -> list[Doc]:
    """The account as the verify route makes it (server/sync/residents.py): its login by
    phone, and the user with where its records are."""
    stamp = now.isoformat(timespec="seconds")
    return [{"_id": f"{LOGIN}:{phone}", "type": LOGIN, "account": account, "created_at": stamp},
            {"_id": f"user:{account}", "type": "user", "name": account, "role": "resident",
             "grids": [], "communities": [], "streets": [], "password": password_hash,
             "session_salt": f"{rng.getrandbits(128):032x}", "disabled": False,
             "created_at": stamp, "resident": {"community": community, "grids": list(grids)}}]
