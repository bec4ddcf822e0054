"""A resident's sign-up (居民注册): what they type, what the server answers, and when the
household is theirs at once.

Rules, in the order a sign-up meets them:

1. Phone (手机号): a mainland mobile number, 11 digits starting 13–19. People type it with
   spaces or dashes, on a Chinese keyboard in full-width digits (１３８－００００－００００), or
   with +86 / 0086 in front; all of that is accepted and stored as the 11 ASCII digits. Anything
   else (a letter, a landline, 10 or 12 digits, Arabic-Indic digits, a JSON number) is refused.
2. Name (姓名), community (社区) and address as written (住址): plain text (server/domain/text.py);
   the community is a code from the list the PWA offers. No other field is taken: a forged
   `household`, `status` or `role` is refused, never ignored.
3. No oracle (不泄露): the answer to a valid sign-up is the same, byte for byte, whether the
   registry matched one household, several, or none, and whether it was activated at once.
   Otherwise sign-up is a free lookup service for "does 王伟 live at 3-2-301?". What happened is
   told to the account holder only, after login (`public_answer`).
4. Automatic activation (自动激活): only when the matching (server/domain/matching.py) answers
   "matched" with exactly one household, AND the name typed equals the name of a present member
   of that household (or its head), AND the phone just verified by its code is one the
   registry holds for that household (the household's, or a present member's). A name and a
   door are what any neighbour knows: without the phone they would open the household and its
   members to whoever typed them. The matcher also matches on the exact name with a changed
   phone, or on the phone alone (a relative on the household's number); both go to the grid
   worker, never straight in (`decide`). What only the person may see (their full ID number)
   needs the phone to be theirs (`is_the_person`).
   The role comes from the registry: the head of an owned household is its owner, of a rented
   one its tenant, anyone else a family member (`registry_role`); the worker corrects it.
5. The worker's queue (待核实队列): a sign-up not activated waits in one grid's database, so
   exactly one worker's phone lists it: the grid of its candidate households (the first in
   code order when they span grids), else the grid whose buildings the written compound is
   in, else the community's first grid, where its supervisor sees it too (`queue_grid`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from server.domain.activation import resident_link
from server.domain.messages import bilingual
from server.domain.rules import Problem
from server.domain.text import Label, text_problem, unknown_fields

# The fields of a sign-up, with the labels the schema gives them (schemas/signup.v1.schema.json;
# tests/test_signup_rules.py holds the two together).
LABELS: dict[str, Label] = {
    "phone": ("手机号", "Mobile phone"),
    "name": ("姓名", "Name"),
    "community": ("社区", "Community"),
    "address": ("住址（按您的写法）", "Address as written"),
}
MAX_NAME_CHARS = 50
MAX_ADDRESS_CHARS = 100
COMMUNITY_CODE = re.compile(r"[0-9a-z_]{1,32}")

# What may be typed in a phone number, before anything else is looked at: ASCII and full-width
# digits and plus signs, spaces (also the ideographic and no-break ones), dashes of every
# width, dots and brackets. An explicit list, not str.isdigit(), which takes "١٣٨" and "①".
_PHONE_CHARS = re.compile("[0-9\uff10-\uff19+\uff0b \u00a0\u3000\\-\u2010-\u2015\u2212\uff0d"
                          ".\uff0e()\uff08\uff09]*")
_PHONE_SEPARATORS = re.compile(r"[ \-.()\u2010-\u2015\u2212]")
MOBILE = re.compile(r"1[3-9][0-9]{9}")
MAX_PHONE_INPUT = 32  # "+86 (138) 0000-0000" with room to spare
# The author of sign-ups and automatic activations: the server, under a reserved name (user
# names starting linli- are never given to people; server/sync/conflicts.py's resolver too).
SIGNUP_AUTHOR = "linli-signup"


def normalise_phone(value: Any) -> str | None:
    """The 11 digits of a mainland mobile number as typed (rule 1), or None when it is not
    one. The one form stored, compared and rate-limited on."""
    if not isinstance(value, str) or len(value) > MAX_PHONE_INPUT:
        return None
    if _PHONE_CHARS.fullmatch(value) is None:
        return None
    text = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", value))
    for prefix in ("+86", "0086", "86"):
        if text.startswith(prefix) and len(text) == len(prefix) + 11:
            text = text[len(prefix):]
            break
    return text if MOBILE.fullmatch(text) else None


def phone_problem(value: Any, pointer: str = "/phone") -> Problem | None:
    if normalise_phone(value) is not None:
        return None
    zh, en = LABELS["phone"]
    return Problem(pointer, "phone", f"“{zh}”应为 11 位手机号码，例如 138 0000 0000",
                   f"{en} must be an 11-digit mainland mobile number, e.g. 138 0000 0000")


def signup_problems(body: Any) -> list[Problem]:
    """Everything wrong with a sign-up as sent (rules 1 and 2); [] when it may be processed.
    Each problem names its field by its label, zh-CN first."""
    if not isinstance(body, Mapping):
        return [Problem("/", "signup_type", "注册信息应为 JSON 对象",
                        "The sign-up must be a JSON object")]
    problems = unknown_fields(body, frozenset(LABELS))
    phone = phone_problem(body.get("phone"))
    if phone is not None:
        problems.append(phone)
    for name, limit in (("name", MAX_NAME_CHARS), ("address", MAX_ADDRESS_CHARS)):
        problem = text_problem(body.get(name), f"/{name}", LABELS[name], max_chars=limit)
        if problem is not None:
            problems.append(problem)
    community = body.get("community")
    if not isinstance(community, str) or COMMUNITY_CODE.fullmatch(community) is None:
        zh, en = LABELS["community"]
        problems.append(Problem("/community", "community", f"请从列表中选择“{zh}”",
                                f"Choose the {en.lower()} from the list"))
    return problems


def cleaned_signup(body: Mapping[str, Any]) -> dict[str, str]:
    """A sign-up without problems as it is kept: the phone as 11 digits, the rest as typed
    (the address is kept as written: the matcher and the worker read the original)."""
    phone = normalise_phone(body["phone"])
    if phone is None:
        raise ValueError("cleaned_signup takes a sign-up without problems")
    return {"phone": phone, "name": str(body["name"]).strip(),
            "community": str(body["community"]), "address": str(body["address"]).strip()}


Outcome = Literal["activated", "queued_ambiguous", "queued_unmatched"]
"""What the server did with a valid sign-up; known to the server and the grid worker only."""

PUBLIC_ANSWER: dict[str, Any] = {
    "ok": True,
    "status": "received",
    "message": bilingual("已收到您的注册申请。登录后可查看进度：核实后即可查看您的住户信息。",
                         "Your sign-up has been received. Log in to follow it: once it is "
                         "confirmed you will see your household."),
}


def public_answer(outcome: Outcome) -> dict[str, Any]:
    """The answer to a valid sign-up (rule 3): the outcome is taken so the caller cannot forget
    to hide it, and deliberately not used. The web layer must also spend the same work on a
    match and a miss (it runs the matcher every time), so timing tells no more than the body."""
    del outcome
    return dict(PUBLIC_ANSWER)


@dataclass(frozen=True)
class Decision:
    """What to do with a valid sign-up, from the matcher's result."""

    outcome: Outcome
    household: str | None
    candidates: tuple[str, ...]
    """For the worker's queue: the households a person should look at (may be empty)."""


def _name_key(name: Any) -> str:
    """A name compared as people mean it: NFKC (full-width letters of 维吾尔族 names), no spaces,
    every middle-dot variant the same (阿依古丽·买买提)."""
    if not isinstance(name, str):
        return ""
    text = "".join(unicodedata.normalize("NFKC", name).split())
    return re.sub("[.•・‧∙⋅]", "·", text)


def decide(match: Mapping[str, Any], name: str, phone: str,
           household: Mapping[str, Any] | None,
           members: Iterable[Mapping[str, Any]]) -> Decision:
    """Rule 4. `match` is the matcher's result as plain data (`status`, `household`,
    `candidates`: dataclasses.asdict of server.domain.matching.MatchResult); `phone` the
    verified phone (11 digits); `household` and `members` are the stored household the match
    names and its person records."""
    members = list(members)
    listed = match.get("candidates")
    candidates = tuple(c for c in listed if isinstance(c, str)) if isinstance(
        listed, (list, tuple)) else ()
    chosen = match.get("household")
    if match.get("status") == "matched" and isinstance(chosen, str) and candidates == (chosen,):
        if household is not None and household.get("_id") == chosen and _name_agrees(
                name, household, members, chosen) and _phone_on_record(
                phone, household, members, chosen):
            return Decision("activated", chosen, candidates)
        return Decision("queued_ambiguous", None, candidates)
    if candidates:
        return Decision("queued_ambiguous", None, candidates)
    return Decision("queued_unmatched", None, ())


def _name_agrees(name: str, household: Mapping[str, Any], members: Iterable[Mapping[str, Any]],
                 household_id: str) -> bool:
    wanted = _name_key(name)
    if not wanted or household.get("status") not in (None, "active"):
        return False
    names = {_name_key(household.get("head_name"))}
    names.update(_name_key(m.get("name")) for m in members
                 if m.get("household") == household_id and m.get("status") in (None, "present"))
    return wanted in names


def _phone_on_record(phone: str, household: Mapping[str, Any],
                     members: Iterable[Mapping[str, Any]], household_id: str) -> bool:
    if normalise_phone(phone) is None:
        return False
    held = [household.get("phone")]
    held.extend(m.get("phone") for m in members
                if m.get("household") == household_id and m.get("status") in (None, "present"))
    return any(isinstance(p, str) and normalise_phone(p) == phone for p in held)


def is_the_person(person: Mapping[str, Any], household: Mapping[str, Any], name: Any,
                  phone: Any) -> bool:
    """Whether a member is the account holder, for what only the person themself may see (their
    full ID number): the name they signed up with AND the phone they verified are this
    member's (the household's phone counts for its head)."""
    if not isinstance(phone, str) or normalise_phone(phone) is None:
        return False
    if not _name_key(name) or _name_key(name) != _name_key(person.get("name")):
        return False
    held = [person.get("phone")]
    if _name_key(name) == _name_key(household.get("head_name")):
        held.append(household.get("phone"))
    return any(isinstance(p, str) and normalise_phone(p) == normalise_phone(phone) for p in held)


def registry_role(name: str, household: Mapping[str, Any]) -> str:
    """Rule 4's role: owner or tenant for the head of an owned or rented household, family
    for anyone else."""
    if _name_key(name) and _name_key(name) == _name_key(household.get("head_name")):
        return {"owned": "owner", "rented": "tenant"}.get(str(household.get("tenure")), "family")
    return "family"


def automatic_link(link_id: str, decision: Decision, account: str, name: str,
                   household: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The resident link of an automatic activation, written by the server."""
    if decision.outcome != "activated" or decision.household != household.get("_id"):
        raise ValueError("only an automatic activation makes a link here")
    return resident_link(link_id, str(household["grid"]), account, str(decision.household),
                         registry_role(name, household), "automatic", SIGNUP_AUTHOR, now)


def queue_grid(candidate_grids: Iterable[str], compound_grids: Iterable[str],
               community_grids: Iterable[str]) -> str | None:
    """Rule 5: the grid whose worker handles a sign-up (None: the community has no grid)."""
    for grids in (candidate_grids, compound_grids, community_grids):
        ordered = sorted(set(grids))
        if ordered:
            return ordered[0]
    return None


def signup_record(doc_id: str, cleaned: Mapping[str, str], account: str, grid: str,
                  match: Mapping[str, Any], decision: Decision,
                  now: datetime) -> dict[str, Any]:
    """The sign-up as kept (schemas/signup.v1.schema.json): what was typed (cleaned), what
    the matcher found, and the outcome, for the worker's queue and the record."""
    status = "activated" if decision.outcome == "activated" else "pending"
    found = {"status": match.get("status"), "candidates": list(decision.candidates)[:20],
             "reason": str(match.get("reason") or "")[:300]}
    doc: dict[str, Any] = {
        "_id": doc_id, "type": "signup", "schema_version": 1, "grid": grid,
        "created_by": SIGNUP_AUTHOR, "account": account, **cleaned, "status": status,
        "received_at": now.isoformat(timespec="seconds"), "match": found}
    if decision.household is not None:
        doc.update(household=decision.household, decided_by=SIGNUP_AUTHOR,
                   decided_at=doc["received_at"])
    return doc
