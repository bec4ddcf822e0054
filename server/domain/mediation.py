"""Mediation (老娘舅调解): a dispute between residents, or residents and a property company,
settled by a mediator (调解员) in sessions, ending in a signed agreement (调解协议) or not, then
followed up (回访). Pure rules, no I/O; the store's side is server/sync/mediation.py.

1. A case (`mediation_case`) names its kind (`KINDS`: 物业纠纷, 邻里纠纷, 家庭纠纷, 其他), the
   matter (纠纷事由, plain text), its community, its parties (当事人: 2 to MAX_PARTIES residents
   by their login, or property companies by their code; none twice) and its mediator. The
   server fills the rest (who opened it, when, its state, names, sessions...): sent, they are
   refused by name.
2. The mediator is a worker or supervisor holding the right `mediate` whose scope reaches the
   case's community (a supervisor's communities, a worker's grids' communities). A case is
   opened by a supervisor of the community holding the right `mediation`, or by a mediator
   naming themself; a mediator who is also a party is refused.
3. The circle (`part_of`), and only the circle, sees a case: its mediator (while they hold the
   right), its parties (a resident by account, a company by its property staff), and the
   community's supervisors holding `mediation`. Nobody else, the admin and the street
   included: to anyone outside, a case answers exactly as one that does not exist (404), on
   every route. A reader sees names, never accounts, phones or units.
4. Every read by the circle (the case, a list, a photo, an act's answer) is an entry of the
   audit (`read_entry`, the reveals' database and shape, kind `mediation`): who, which case,
   in what part, when.
5. The workflow (`ACTS`, the one table to read), forward only: 已受理 open → 调解中 mediating
   → 已达成协议 agreed | 调解不成 failed → 已回访 followed_up → 已结案 closed. The mediator
   records sessions with notes, the agreement's text (once), a party's signature on paper with
   a photo of it, the failure, follow-ups and the close; a party signs the agreement in the app
   for themself. Once every party has signed, the case is agreed. An act in any other state,
   or by anyone else, is refused (409 for the state, 403 for the part).
6. An act carries the phone's `request` id: the same actor's same request again is the same
   act (200 `repeated`), applied once whatever the retries and races.
7. Figures (`figures`): cases by kind, by outcome (agreed, failed, open) and by duration from
   opening to settling (within 7 days, 30, longer; the median in days), per community and for
   the whole scope, no matter or party in them, and the small-count rule of
   server/domain/suppression.py (SMALL of server/domain/figures.py): a count 0 < n < SMALL is
   withheld, with what would give it back by subtraction; a median of fewer than SMALL
   settled cases is withheld.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import re
import statistics
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain import reveals
from server.domain.rules import Problem
from server.domain.scope import User
from server.domain.suppression import withhold
from server.domain.text import labelled, server_filled, text_problem, unknown_fields

MEDIATE, OVERSEE = "mediate", "mediation"  # the two rights (server/domain/scope.py RIGHTS)
KINDS: dict[str, tuple[str, str]] = {
    "property": ("物业纠纷", "Property dispute"), "neighbours": ("邻里纠纷", "Neighbours' dispute"),
    "family": ("家庭纠纷", "Family dispute"), "other": ("其他纠纷", "Other dispute"),
}
STATES = ("open", "mediating", "agreed", "failed", "followed_up", "closed")
STATE_LABELS: dict[str, tuple[str, str]] = {
    "open": ("已受理", "Opened"), "mediating": ("调解中", "Mediating"),
    "agreed": ("已达成协议", "Agreed"), "failed": ("调解不成", "Not settled"),
    "followed_up": ("已回访", "Followed up"), "closed": ("已结案", "Closed"),
}
PARTS: dict[str, tuple[str, str]] = {
    "mediator": ("调解员", "Mediator"), "party": ("当事人", "Party"),
    "supervisor": ("社区督导", "Community supervisor"),
}


@dataclasses.dataclass(frozen=True)
class Act:
    """One act of the workflow: who makes it, from which states, to which (None: stays)."""

    part: str
    since: tuple[str, ...]
    to: str | None
    needs: tuple[str, ...] = ()


# Rule 5, the whole workflow: act -> who, from which states, to which state, what it needs.
ACTS: dict[str, Act] = {
    "session": Act("mediator", ("open", "mediating"), "mediating", ("note",)),
    "agreement": Act("mediator", ("mediating",), None, ("text",)),
    "sign": Act("party", ("mediating",), None),
    "paper": Act("mediator", ("mediating",), None, ("party", "photo")),
    "fail": Act("mediator", ("open", "mediating"), "failed", ("note",)),
    "follow_up": Act("mediator", ("agreed", "followed_up"), "followed_up", ("note",)),
    "close": Act("mediator", ("agreed", "failed", "followed_up"), "closed"),
}
ACT_LABELS: dict[str, tuple[str, str]] = {
    "session": ("调解记录", "Session"), "agreement": ("调解协议", "Agreement"),
    "sign": ("当事人签署", "Signed in the app"), "paper": ("纸质签署", "Signed on paper"),
    "fail": ("调解不成", "Not settled"), "follow_up": ("回访", "Follow-up"),
    "close": ("结案", "Closed"),
}
MAX_PARTIES = 6
MATTER_CHARS, NOTE_CHARS, TEXT_CHARS, NAME_CHARS = 500, 2000, 5000, 40
REQUEST = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CASE_ID = re.compile(r"^mediation_case:[0-9a-f]{16}$")
LOGIN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$|^1[0-9]{10}$")
COMPANY = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")
COMMUNITY = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")
OPEN_FIELDS = frozenset({"kind", "matter", "community", "parties", "mediator", "request"})
ACT_FIELDS = frozenset({"act", "request", "note", "text", "party", "photo"})
SERVER_FIELDS = ("_id", "_rev", "type", "schema_version", "created_by", "opened_at", "state",
                 "acts", "agreement", "signatures", "settled_at", "closed_at", "names")
LABELS: dict[str, tuple[str, str]] = {
    "kind": ("纠纷类别", "Kind"), "matter": ("纠纷事由", "Matter"),
    "community": ("社区", "Community"),
    "parties": ("当事人", "Parties"), "mediator": ("调解员", "Mediator"),
    "request": ("请求编号", "Request id"), "act": ("办理事项", "Act"),
    "note": ("记录内容", "Notes"), "text": ("协议内容", "Agreement text"),
    "party": ("签署的当事人", "Signing party"), "photo": ("签字照片", "Photo of the signatures"),
    "created_by": ("受理人", "Opened by"), "opened_at": ("受理时间", "Opened at"),
    "state": ("状态", "State"), "acts": ("办理记录", "Acts"),
    "agreement": ("调解协议", "Agreement"),
    "signatures": ("签署", "Signatures"), "settled_at": ("调结时间", "Settled at"),
    "closed_at": ("结案时间", "Closed at"), "names": ("姓名", "Names"), "_id": ("编号", "Id"),
    "_rev": ("版本", "Revision"), "type": ("类型", "Type"),
    "schema_version": ("版本号", "Schema version"),
}
DAY_BUCKETS = ((7, "le7"), (30, "le30"), (None, "gt30"))
OUTCOMES = ("agreed", "failed", "open")
# Each outcome's figure: settled ones under `settled.`, so that settled = agreed + failed is
# one of the breakdowns the small-count rule defends (server/domain/suppression.py).
OUTCOME_NAMES = {"agreed": "mediation.outcome.settled.agreed",
                 "failed": "mediation.outcome.settled.failed", "open": "mediation.outcome.open"}


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    return labelled(LABELS, field, code, zh, en)


def forged(body: Mapping[str, Any]) -> list[Problem]:
    return server_filled(LABELS, body, SERVER_FIELDS)


def case_id(opener: str, request: str, secret: bytes) -> str:
    """Opaque, and the same for the same opener's same request (a retry is the same case)."""
    digest = hmac.new(secret, f"mediation\x1f{opener}\x1f{request}".encode(), hashlib.sha256)
    return f"mediation_case:{digest.hexdigest()[:16]}"


def stamp(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).isoformat(timespec="microseconds")


# -- who (rules 2 and 3) -----------------------------------------------------------------------

def reaches(user: User, community: str, grid_communities: Mapping[str, str]) -> bool:
    """Whether a worker's or supervisor's scope holds the community."""
    if user.role == "supervisor":
        return community in user.communities
    if user.role == "worker":
        return any(grid_communities.get(g) == community for g in user.grids)
    return False


def may_mediate(user: User | None, community: str, grid_communities: Mapping[str, str]) -> bool:
    return (user is not None and not user.disabled and MEDIATE in user.rights
            and reaches(user, community, grid_communities))


def oversees(user: User, community: str) -> bool:
    return (user.role == "supervisor" and not user.disabled and OVERSEE in user.rights
            and community in user.communities)


def may_open(user: User, community: str, mediator: str,
             grid_communities: Mapping[str, str]) -> bool:
    return oversees(user, community) or (
        user.name == mediator and may_mediate(user, community, grid_communities))


def is_party(user: User, party: Mapping[str, Any]) -> bool:
    if party.get("kind") == "resident":
        return user.role == "resident" and party.get("account") == user.name
    return user.role == "property" and party.get("company") in user.companies


def circle_keys(user: User) -> list[list[str]]:
    """Rule 3, as keys of the store's index of cases by their circle
    (server/store/designs/mediation.json): every case whose circle may hold `user` is under one
    of these keys, so a list reads those cases and no other; `part_of` still decides on each.
    Empty for a disabled user and for a role that is in no circle."""
    if user.disabled:
        return []
    keys = [["mediator", user.name]] if MEDIATE in user.rights else []
    if user.role == "resident":
        keys.append(["resident", user.name])
    if user.role == "property":
        keys.extend(["company", c] for c in sorted(user.companies))
    if user.role == "supervisor" and OVERSEE in user.rights:
        keys.extend(["community", c] for c in sorted(user.communities))
    return keys


def part_of(user: User, case: Mapping[str, Any],
            grid_communities: Mapping[str, str]) -> str | None:
    """Rule 3: the reader's part in the case's circle, None outside it."""
    if user.disabled:
        return None
    community = str(case.get("community", ""))
    if user.name == case.get("mediator") and may_mediate(user, community, grid_communities):
        return "mediator"
    if any(is_party(user, p) for p in case.get("parties", [])):
        return "party"
    if oversees(user, community):
        return "supervisor"
    return None


# -- opening a case (rule 1) ---------------------------------------------------------------------

def open_problems(body: Mapping[str, Any]) -> list[Problem]:
    """The shape of a new case as sent; who the parties and mediator are is checked apart."""
    problems = forged(body) or unknown_fields(body, OPEN_FIELDS)
    if problems:
        return problems
    if not (isinstance(body.get("kind"), str) and body["kind"] in KINDS):
        problems.append(problem("kind", "kind", "应为物业纠纷、邻里纠纷、家庭纠纷或其他纠纷",
                                f"must be one of {', '.join(KINDS)}"))
    stated = text_problem(body.get("matter"), "/matter", LABELS["matter"],
                          max_chars=MATTER_CHARS, min_chars=2, paragraphs=True)
    if stated:
        problems.append(stated)
    if not (isinstance(body.get("community"), str) and COMMUNITY.match(body["community"])):
        problems.append(problem("community", "community", "应为社区编码",
                                "must be a community code"))
    if not (isinstance(body.get("mediator"), str) and LOGIN.match(body["mediator"])):
        problems.append(problem("mediator", "mediator", "应为调解员的账号",
                                "must be a mediator's account"))
    if not (isinstance(body.get("request"), str) and REQUEST.match(body["request"])):
        problems.append(problem("request", "request", "应为 8 到 64 位字母、数字、_ 或 -",
                                "must be 8 to 64 letters, digits, _ or -"))
    problems.extend(parties_problems(body.get("parties")))
    return problems


def parties_problems(parties: Any) -> list[Problem]:
    if not isinstance(parties, list) or not 2 <= len(parties) <= MAX_PARTIES:
        return [problem("parties", "parties", f"应为 2 到 {MAX_PARTIES} 个当事人",
                        f"must be 2 to {MAX_PARTIES} parties")]
    seen: set[tuple[str, str]] = set()
    for n, party in enumerate(parties):
        key = party_ref(party)
        if key is None:
            return [problem("parties", "party", f"第 {n + 1} 个应为居民（resident）或物业公司"
                            "（company）", f"number {n + 1} must be a resident or a company")]
        if key in seen:
            return [problem("parties", "repeated", f"第 {n + 1} 个重复了", f"number {n + 1} "
                            "is named twice")]
        seen.add(key)
    return []


def party_ref(party: Any) -> tuple[str, str] | None:
    """("resident", login) or ("company", credit code) of a party as sent, None if malformed;
    a resident may come with the `name` they go by (the mediator types it: the directory holds
    no resident's name), plain text of at most NAME_CHARS."""
    if not isinstance(party, dict) or not 1 <= len(party) <= 2:
        return None
    rest = {k: v for k, v in party.items() if k != "name"}
    if len(rest) != 1 or ("name" in party and ("resident" not in party or text_problem(
            party["name"], "/parties", LABELS["parties"], max_chars=NAME_CHARS))):
        return None
    (kind, value), = rest.items()
    if kind == "resident" and isinstance(value, str) and LOGIN.match(value):
        return kind, value
    if kind == "company" and isinstance(value, str) and COMPANY.match(value):
        return kind, value
    return None


def new_case(body: Mapping[str, Any], parties: list[dict[str, str]], opener: str, doc_id: str,
             now: datetime.datetime) -> dict[str, Any]:
    """The case as stored: `parties` as the server resolved them (account or company, name)."""
    return {"_id": doc_id, "type": "mediation_case", "schema_version": 1, "created_by": opener,
            "kind": body["kind"], "matter": body["matter"], "community": body["community"],
            "parties": parties, "mediator": body["mediator"], "request": body["request"],
            "opened_at": stamp(now), "state": "open", "acts": [], "signatures": {}}


# -- acts (rules 5 and 6) ------------------------------------------------------------------------

def act_problems(body: Mapping[str, Any]) -> list[Problem]:
    """The shape of an act as sent (the state, the part and the photo's bytes apart)."""
    problems = forged(body) or unknown_fields(body, ACT_FIELDS)
    if problems:
        return problems
    act = ACTS.get(body["act"]) if isinstance(body.get("act"), str) else None
    if act is None:
        return [problem("act", "act", f"应为 {', '.join(ACTS)} 之一",
                        f"must be one of {', '.join(ACTS)}")]
    if not (isinstance(body.get("request"), str) and REQUEST.match(body["request"])):
        problems.append(problem("request", "request", "应为 8 到 64 位字母、数字、_ 或 -",
                                "must be 8 to 64 letters, digits, _ or -"))
    extra = sorted(k for k in ("note", "text", "party", "photo") if k in body
                   and k not in act.needs and not (k == "note" and body["act"] == "close"))
    if extra:
        problems.append(problem(extra[0], "not_for_act", "不属于这项办理事项",
                                "does not belong to this act"))
    for name, chars in (("note", NOTE_CHARS), ("text", TEXT_CHARS)):
        if name in act.needs or (name in body and name not in extra):
            stated = text_problem(body.get(name), f"/{name}", LABELS[name], max_chars=chars,
                                  min_chars=2, paragraphs=True)
            if stated:
                problems.append(stated)
    if "party" in act.needs and not (isinstance(body.get("party"), str)
                                     and re.fullmatch(r"p[1-9]", body["party"])):
        problems.append(problem("party", "party", "应为案件中的一个当事人",
                                "must be one of the case's parties"))
    if "photo" in act.needs and not isinstance(body.get("photo"), dict):
        problems.append(problem("photo", "photo", "请附上签字页的照片",
                                "must be a photo of the signed page"))
    return problems


def party_keys(case: Mapping[str, Any]) -> list[str]:
    return [f"p{n + 1}" for n in range(len(case.get("parties", [])))]


def own_keys(user: User, case: Mapping[str, Any]) -> list[str]:
    return [f"p{n + 1}" for n, p in enumerate(case.get("parties", [])) if is_party(user, p)]


def repeated(case: Mapping[str, Any], actor: str, request: str) -> bool:
    """Rule 6: whether this actor's request is already an act of the case."""
    return any(a.get("by") == actor and a.get("request") == request
               for a in case.get("acts", []))


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why an act is refused: its status (403 the part, 409 the state) and message."""

    status: int
    zh: str
    en: str


def act_refusal(case: Mapping[str, Any], part: str, body: Mapping[str, Any],
                actor: User) -> Refusal | None:
    """Rule 5: None when `part` may make the act on the case as it stands."""
    act = ACTS[str(body["act"])]
    label = ACT_LABELS[str(body["act"])]
    if act.part != part:
        who = PARTS[act.part]
        return Refusal(403, f"只有{who[0]}可以办理“{label[0]}”", f"Only the {who[1].lower()} "
                       f"may do “{label[1]}”.")
    state = str(case.get("state"))
    if state not in act.since:
        shown = STATE_LABELS.get(state, (state, state))
        return Refusal(409, f"案件{shown[0]}，不能办理“{label[0]}”",
                       f"The case is {shown[1].lower()}: “{label[1]}” is not possible.")
    signatures = case.get("signatures", {})
    if body["act"] == "agreement" and case.get("agreement"):
        return Refusal(409, "调解协议已经写好，不能再改", "The agreement is already written.")
    if body["act"] in ("sign", "paper") and not case.get("agreement"):
        return Refusal(409, "还没有调解协议，不能签署", "There is no agreement to sign yet.")
    if body["act"] == "paper" and body["party"] not in party_keys(case):
        return Refusal(409, "“签署的当事人”不是本案的当事人",
                       "The signing party is not a party of this case.")
    wanted = own_keys(actor, case) if body["act"] == "sign" else [str(body.get("party"))]
    if body["act"] in ("sign", "paper") and all(k in signatures for k in wanted):
        return Refusal(409, "这位当事人已经签署", "This party has already signed.")
    return None


def applied(case: Mapping[str, Any], body: Mapping[str, Any], actor: User,
            now: datetime.datetime, photo: str = "") -> dict[str, Any]:
    """The case after an act that `act_refusal` allowed (a new document; `photo`: the name of
    the paper signature's stored photo)."""
    out = {**case, "acts": [*case.get("acts", [])],
           "signatures": dict(case.get("signatures", {}))}
    kind, at = str(body["act"]), stamp(now)
    entry: dict[str, Any] = {"act": kind, "by": actor.name, "at": at,
                             "request": body["request"]}
    if body.get("note"):
        entry["note"] = body["note"]
    if kind == "agreement":
        out["agreement"] = {"text": body["text"], "at": at}
    if kind == "sign":
        for key in own_keys(actor, case):
            if key not in out["signatures"]:
                out["signatures"][key] = {"how": "app", "at": at, "by": actor.name}
    if kind == "paper":
        out["signatures"][str(body["party"])] = {"how": "paper", "at": at, "by": actor.name,
                                                 "photo": photo}
        entry["party"] = body["party"]
    out["acts"].append(entry)
    to = ACTS[kind].to
    if kind in ("sign", "paper") and set(party_keys(out)) <= set(out["signatures"]):
        to = "agreed"
    if to is not None:
        out["state"] = to
    if to in ("agreed", "failed"):
        out["settled_at"] = at
    if to == "closed":
        out["closed_at"] = at
    return out


def moves(case: Mapping[str, Any], part: str, actor: User) -> list[str]:
    """The acts the reader may make now (the screen offers these; the server judges again)."""
    return [name for name in ACTS if any(
        act_refusal(case, part, {"party": key, "act": name}, actor) is None
        for key in (party_keys(case) if name == "paper" else ["p1"]))]


# -- what the circle reads (rules 3 and 4) -------------------------------------------------------

def view(case: Mapping[str, Any], part: str, actor: User,
         person_name: Any, community_name: str) -> dict[str, Any]:
    """The case as its reader sees it: names, never accounts, phones or units."""
    signatures = case.get("signatures", {})
    parties = []
    for n, p in enumerate(case.get("parties", [])):
        key = f"p{n + 1}"
        signed = signatures.get(key)
        parties.append({"key": key, "name": p.get("name", ""), "kind": p.get("kind"),
                        "you": is_party(actor, p),
                        "signed": {k: signed[k] for k in ("how", "at", "photo") if k in signed}
                        if signed else None})
    acts = [{"act": a["act"], "label": list(ACT_LABELS[a["act"]]), "at": a["at"],
             "by": signer(case, a["by"]) if a["act"] == "sign" else person_name(a["by"]),
             **({"note": a["note"]} if "note" in a else {}),
             **({"party": a["party"]} if "party" in a else {})} for a in case.get("acts", [])]
    state = str(case.get("state"))
    return {"id": case["_id"], "kind": case["kind"], "kind_label": list(KINDS[case["kind"]]),
            "matter": case["matter"], "community": community_name or case["community"],
            "state": state, "state_label": list(STATE_LABELS[state]),
            "mediator": person_name(case["mediator"]), "parties": parties,
            "opened_at": case["opened_at"], "settled_at": case.get("settled_at"),
            "closed_at": case.get("closed_at"), "agreement": case.get("agreement"),
            "acts": acts, "part": part, "part_label": list(PARTS[part]),
            "moves": moves(case, part, actor)}


def signer(case: Mapping[str, Any], actor: str) -> str:
    """Who signed in the app, by the names of the parties they signed for (never a login)."""
    parties = case.get("parties", [])
    keys = [k for k, s in sorted(case.get("signatures", {}).items())
            if s.get("by") == actor and s.get("how") == "app" and int(k[1:]) <= len(parties)]
    return "、".join(str(parties[int(k[1:]) - 1].get("name", "")) for k in keys)


def summary(case: Mapping[str, Any], part: str, community_name: str) -> dict[str, Any]:
    """A line of the reader's list: no matter, no notes."""
    state = str(case.get("state"))
    return {"id": case["_id"], "kind_label": list(KINDS[case["kind"]]),
            "community": community_name or case["community"],
            "state": state, "state_label": list(STATE_LABELS[state]),
            "opened_at": case["opened_at"], "part": part, "part_label": list(PARTS[part]),
            "parties": [p.get("name", "") for p in case.get("parties", [])]}


def read_entry(actor: User, part: str, case: Mapping[str, Any], what: str,
               now: datetime.datetime) -> dict[str, Any]:
    """Rule 4: one audit entry of a read, in the reveals' shape (kind `mediation`), so the
    admin's audit lists it with every reveal; it names the case, never its content."""
    community, record = str(case.get("community", "")), str(case["_id"])
    return {
        "_id": f"{reveals.ENTRY_PREFIX}{reveals.subject_key(actor.name, community, record)}:"
               f"{reveals.stamp(now)}:{uuid.uuid4().hex[:8]}",
        "type": "reveal", "kind": "mediation", "user": actor.name, "role": actor.role,
        "grid": community, "record": record, "fields": [what], "reason": "mediation_" + part,
        "reason_label": PARTS[part][0], "reason_text": "", "at": reveals.stamp(now),
        "until": reveals.stamp(now)}


# -- figures (rule 7) ---------------------------------------------------------------------------

def outcome(case: Mapping[str, Any]) -> str:
    if case.get("state") in ("agreed", "followed_up") or (
            case.get("state") == "closed" and len(case.get("signatures", {})) >= len(
                case.get("parties", [])) and case.get("agreement")):
        return "agreed"
    if case.get("settled_at"):
        return "failed"
    return "open"


def days_taken(case: Mapping[str, Any]) -> float | None:
    try:
        opened = datetime.datetime.fromisoformat(str(case["opened_at"]))
        settled = datetime.datetime.fromisoformat(str(case["settled_at"]))
    except (KeyError, ValueError):
        return None
    return max(0.0, (settled - opened).total_seconds() / 86400)


def counts(case: Mapping[str, Any]) -> Counter[str]:
    """One case's figures: no matter, party or mediator in them."""
    found = Counter({"mediation.cases": 1, f"mediation.kind.{case.get('kind')}": 1,
                     OUTCOME_NAMES[outcome(case)]: 1})
    days = days_taken(case)
    if days is not None:
        found["mediation.settled"] += 1
        bucket = next(name for limit, name in DAY_BUCKETS if limit is None or days <= limit)
        found[f"mediation.days.{bucket}"] += 1
    return found


def figures(cases: Iterable[Mapping[str, Any]], communities: Iterable[str],
            small: int) -> dict[str, Any]:
    """Rule 7: the scope's figures and each community's, small counts withheld (None)."""
    wanted = sorted(set(communities))
    per: dict[str, Counter[str]] = {c: Counter() for c in wanted}
    days: dict[str, list[float]] = {c: [] for c in wanted}
    for case in cases:
        community = str(case.get("community"))
        if community in per:
            per[community].update(counts(case))
            taken = days_taken(case)
            if taken is not None:
                days[community].append(taken)
    names = sorted({f"mediation.kind.{k}" for k in KINDS} | set(OUTCOME_NAMES.values())
                   | {f"mediation.days.{b}" for _, b in DAY_BUCKETS}
                   | {"mediation.cases", "mediation.settled"})
    total: Counter[str] = sum(per.values(), Counter())
    hidden_total = withhold({"": total}, [], small)[""]
    hidden = withhold(per, [frozenset(wanted)], small) if wanted else {}
    if len(wanted) == 1:  # alone, a community's figures are the scope's
        hidden = {wanted[0]: hidden[wanted[0]] | hidden_total}
    every = [d for c in wanted for d in days[c]]
    return {"total": shown(total, hidden_total, names, every, small),
            "communities": [{"code": c, **shown(per[c], hidden.get(c, frozenset()), names,
                                                days[c], small)} for c in wanted],
            "kinds": {k: list(v) for k, v in KINDS.items()},
            "outcomes": {"agreed": ["已达成协议", "Agreed"], "failed": ["调解不成", "Not settled"],
                         "open": ["调解中", "Open"]},
            "small": small}


def shown(found: Mapping[str, int], hidden: frozenset[str], names: list[str],
          days: list[float], small: int) -> dict[str, Any]:
    def value(name: str) -> int | None:
        return None if name in hidden else int(found.get(name, 0))
    return {"cases": value("mediation.cases"),
            "by_kind": {k: value(f"mediation.kind.{k}") for k in KINDS},
            "by_outcome": {o: value(OUTCOME_NAMES[o]) for o in OUTCOMES},
            "by_days": {b: value(f"mediation.days.{b}") for _, b in DAY_BUCKETS},
            "settled": value("mediation.settled"),
            "days_median": round(statistics.median(days), 1) if len(days) >= small else None,
            "withheld": sorted(n.removeprefix("mediation.").replace("settled.", "")
                               for n in names if n in hidden)}
