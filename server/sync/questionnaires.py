"""Questionnaires in the store (问卷调查): definitions in the residents database (phones get
them by their audience, as notices), one answer per resident or household decided by the one
allocation of limited things (server/sync/allocation.py: the first claim the server receives
stands), and the answers in the questionnaire's own database. The rules are
server/domain/questionnaires.py; docs/questionnaires.md says what the anonymity protects.

- Who answered is a claim in the claims database: subject `questionnaire:<key>`, claimant the
  account (per resident) or a digest of the household's id (per household), the claim id the
  phone's request id (named) or a digest of the phone's secret key (anonymous), so a retry is
  the same claim and a family's second phone is a second claim that does not stand.
- What was answered: named, `questionnaire_answer:<digest of the claim>` in
  `linli-questionnaire-<key>`, with the account, the household and the time; anonymous, in
  `linli-questionnaire-<key>-box`, under a digest of the phone's key with the area and the
  answers only, written through the pending entries secret ballots use (votes.flush_pending:
  batches of BOX_BATCH in a shuffled order), so neither its id, its fields nor its place in
  the box joins it to a claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any

from server.domain import notices as notice_rules
from server.domain import questionnaires as rules
from server.domain.allocation import Terms
from server.domain.audience import Place, includes
from server.domain.masking import mask_id_number, mask_phone
from server.domain.messages import Refused, bilingual
from server.domain.questionnaires import answers_db, household_claimant
from server.domain.rules import Problem
from server.domain.scope import RESIDENTS_DB, Directory, User
from server.domain.text import unknown_fields
from server.domain.validation import SchemaRegistry
from server.domain.votes import sealed
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.allocation import Allocator, event_id
from server.sync.allowed import ResidentIndex
from server.sync.notices import Notices, refused
from server.sync.supervisor import Lag
from server.sync.votes import BOX_BATCH, box_db, changes, flush_pending

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

KIND = "questionnaire"
AUTHOR = "linli-questionnaires"  # the anonymous answers' `created_by`: nobody's
FOLD_SECONDS = 5.0  # how soon new answers are folded into the figures without a request
EVERYONE = 1_000_000_000  # the allocator's places: everyone may answer, once
ANSWER_FIELDS = frozenset({"request", "version", "answers", "household", "secret_key"})
REQUEST = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
SECRET_KEY = re.compile(r"^[0-9a-f]{64}$")
PHONE_LIKE = re.compile(r"(?<!\d)1\d{10}(?!\d)")
ID_LIKE = re.compile(r"(?<![0-9Xx])\d{17}[0-9Xx](?![0-9Xx])")
ANSWER_LABELS = {"request": ("请求编号", "Request id"), "version": ("问卷版本", "Version"),
                 "household": ("住户", "Household"), "secret_key": ("匿名凭据", "Secret key")}
TOLD = {
    "counted": ("已提交，谢谢参与", "Sent: thank you"),
    "answered_by_family": ("已由家人填写", "Already answered by a family member"),
    "answered_already": ("您已填写过这份问卷", "You have answered this questionnaire already"),
}


def no_such_questionnaire() -> Refused:
    return Refused(404, "not_found", bilingual("没有这份问卷，或您不在其范围内",
                                               "No such questionnaire, or it is not yours."))


def closed() -> Refused:
    return Refused(409, "closed", bilingual("问卷已截止，答卷未保存",
                                            "The questionnaire has closed: nothing was stored."))


def box(key: str) -> str:
    """An anonymous questionnaire's answers, as a secret vote's box (votes.box_db)."""
    return box_db(answers_db(key))


def answer_problems(body: Mapping[str, Any], anonymous: bool) -> list[Problem]:
    """The answer's envelope (rule 3's answers are the domain's): fields asked for only, the
    phone's request id, a secret key exactly when the questionnaire is anonymous."""
    problems = unknown_fields(body, ANSWER_FIELDS)
    if not isinstance(body.get("request"), str) or not REQUEST.match(body["request"]):
        zh, en = ANSWER_LABELS["request"]
        problems.append(Problem("/request", "format", f"“{zh}”应为 8-64 位字母或数字",
                                f"{en} must be 8-64 letters or digits"))
    if not isinstance(body.get("version"), int) or isinstance(body.get("version"), bool):
        zh, en = ANSWER_LABELS["version"]
        problems.append(Problem("/version", "integer", f"“{zh}”应为整数",
                                f"{en} must be a whole number"))
    key = body.get("secret_key")
    if (anonymous and not (isinstance(key, str) and SECRET_KEY.match(key))) or (
            not anonymous and "secret_key" in body):
        zh, en = ANSWER_LABELS["secret_key"]
        problems.append(Problem("/secret_key", "format",
                                f"“{zh}”：匿名问卷须附 64 位十六进制凭据，记名问卷不附",
                                f"{en}: an anonymous questionnaire takes 64 hex digits, a "
                                "named one none"))
    return problems


def masked_text(value: Any) -> Any:
    """A text answer in an export: phone and ID numbers in it masked."""
    if not isinstance(value, str):
        return value
    value = ID_LIKE.sub(lambda m: mask_id_number(m.group()), value)
    return PHONE_LIKE.sub(lambda m: mask_phone(m.group()), value)


@dataclasses.dataclass
class Questionnaires:
    """The store's side of questionnaires; one per app. Its terms feed the allocator."""

    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    notices: Notices
    boxing: dict[str, asyncio.Lock] = dataclasses.field(default_factory=dict)
    # Named answers read so far, per key: (since, {id: doc}); anonymous ones are re-read.
    read: dict[str, tuple[str, dict[str, dict[str, Any]]]] = dataclasses.field(
        default_factory=dict)
    # Each questionnaire's figures by grid, and the sequence of its answers read up to.
    folded: dict[str, tuple[str, dict[rules.Area, dict[str, Any]]]] = dataclasses.field(
        default_factory=dict)
    folding: dict[str, asyncio.Lock] = dataclasses.field(default_factory=dict)
    ready: bool = False

    # -- definitions -------------------------------------------------------------------------

    async def scope_problems(self, user: User, audience: Mapping[str, Any]) -> tuple[
            list[Problem], list[str]]:
        """The author's scope over an audience, as for notices; the grids of a building."""
        grids_of = await self.notices.building_grids(user, audience)
        problems = notice_rules.scope_problems(audience, user, self.directory,
                                               lambda code: grids_of.get(code, frozenset()))
        return problems, sorted(set().union(*grids_of.values())) if grids_of else []

    async def publish(self, user: User, draft: Mapping[str, Any], now: datetime.datetime,
                      key: str | None = None) -> dict[str, Any]:
        """Rule 1 and 2: a first version (`key` None) or the next version of `key`, which
        replaces the one before; nothing stored when anything is refused."""
        problems = rules.definition_problems(draft, now)
        if problems:
            raise refused(problems)
        problems, grids = await self.scope_problems(user, draft["audience"])
        if problems:
            raise refused(problems)
        before = None
        if key is not None:
            before = await self.current(key)
            if before is None or not self.may_manage(user, before):
                raise no_such_questionnaire()
            if before["status"] != "published":
                raise Refused(409, "closed", bilingual("问卷已截止，不能再发布新版本",
                                                       "The questionnaire has closed."))
        key = key or secrets.token_hex(8)
        doc = rules.definition_doc(draft, user.name, key, int(before["version"]) + 1
                                   if before else 1, now)
        if grids:
            doc["audience"]["grids"] = grids
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        await self.couch.ensure_db(answers_db(key))
        if doc["anonymous"]:
            await self.couch.ensure_db(box(key))
        try:
            await self.couch.put(db_path(RESIDENTS_DB, doc["_id"]), doc)
        except Conflict as exc:  # another version raced this one
            raise Refused(409, "conflict", bilingual("问卷已被同时修改，请刷新",
                                                     "Changed meanwhile; reload.")) from exc
        if before is not None:
            await self.set_status(before, "replaced", replaced_by=doc["_id"])
        audit.info("%s published %s to %s", user.name, doc["_id"],
                   json.dumps(doc["audience"], ensure_ascii=False))
        return doc

    async def set_status(self, doc: Mapping[str, Any], status: str, **more: Any) -> None:
        wanted = {**doc, "status": status, **more}
        problems = rules.change_problems(doc, wanted)
        if problems:
            raise refused(problems)
        await self.couch.put(db_path(RESIDENTS_DB, str(doc["_id"])), wanted)

    async def versions(self, key: str) -> list[dict[str, Any]]:
        """Every version of a questionnaire, oldest first."""
        if not rules.KEY.match(key):
            return []
        prefix = f"questionnaire:{key}-v"
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(prefix),
                                    endkey=json.dumps(prefix + "\ufff0"))
        docs = [r["doc"] for r in page.get("rows", []) if isinstance(r.get("doc"), dict)
                and r["doc"].get("type") == KIND]
        return sorted(docs, key=lambda d: int(d["version"]))

    async def current(self, key: str) -> dict[str, Any] | None:
        found = await self.versions(key)
        return found[-1] if found else None

    async def listing(self) -> list[dict[str, Any]]:
        """The current version of every questionnaire."""
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps("questionnaire:"),
                                    endkey=json.dumps("questionnaire:\ufff0"))
        latest: dict[str, dict[str, Any]] = {}
        for row in page.get("rows", []):
            doc = row.get("doc")
            if isinstance(doc, dict) and doc.get("type") == KIND and int(doc["version"]) > int(
                    latest.get(doc["key"], {}).get("version", 0)):
                latest[doc["key"]] = doc
        return list(latest.values())

    def may_manage(self, user: User, doc: Mapping[str, Any]) -> bool:
        """Its author, the city admin, or a supervisor whose grids the audience reaches: who
        follows a notice up (Notices.sees)."""
        return notice_rules.may_author(user) and self.notices.sees(user, doc)

    async def close(self, user: User, key: str, now: datetime.datetime) -> dict[str, Any]:
        doc = await self.current(key)
        if doc is None or not self.may_manage(user, doc):
            raise no_such_questionnaire()
        if doc["status"] == "published":
            await self.set_status(doc, "closed", closed_at=now.isoformat(timespec="seconds"))
            audit.info("%s closed %s", user.name, doc["_id"])
        if doc.get("anonymous"):
            await self.flush(key, 1)
        return await self.current(key) or doc

    async def terms(self, subject: str) -> Terms | None:
        """The allocator's terms: everyone once, until the closing time."""
        doc = await self.current(subject.removeprefix(f"{KIND}:"))
        if doc is None:
            return None
        return Terms(EVERYONE, rules.when(doc["closes_at"]))

    # -- answers -----------------------------------------------------------------------------

    def household_of(self, index: ResidentIndex, account: str, doc: Mapping[str, Any],
                     wanted: Any) -> tuple[str, Place]:
        """The household an answer is for: one of the resident's own in the audience (named
        when they have several). Another's household and one that does not exist: the same
        404 as a questionnaire that is not theirs."""
        mine = {h: p for h, p in index.ids.places_of(account).items()
                if includes(doc["audience"], p)}
        if wanted is not None:
            if not isinstance(wanted, str) or wanted not in mine:
                raise no_such_questionnaire()
            return wanted, mine[wanted]
        if not mine:
            raise no_such_questionnaire()
        if len(mine) > 1:
            zh, en = ANSWER_LABELS["household"]
            raise refused([Problem("/household", "choose", f"“{zh}”：您有多个住户，请选择一个",
                                   f"{en}: you have several; choose one")])
        return next(iter(mine.items()))

    async def answer(self, allocator: Allocator, index: ResidentIndex, account: str, key: str,
                     body: Mapping[str, Any], now: datetime.datetime) -> dict[str, Any]:
        """A resident's answer, stored once if it is the first of its resident or household
        the server received (rule 3 and the allocation); what the sender is told."""
        found = await self.versions(key)
        if not found:
            raise no_such_questionnaire()
        doc = found[-1]
        household, place = self.household_of(index, account, doc, body.get("household"))
        problems = answer_problems(body, bool(doc["anonymous"]))
        if problems:
            raise refused(problems)
        if body["version"] != doc["version"]:
            if any(d["version"] == body["version"] for d in found):
                raise Refused(409, "replaced", bilingual(
                    "问卷已更新为新版本，请按新版本重新填写，答卷未保存",
                    "The questionnaire was replaced by a new version: answer that one; "
                    "nothing was stored."))
            raise no_such_questionnaire()
        if not rules.is_open(doc, now):
            raise closed()
        kept, problems = rules.answer_problems(doc, body.get("answers"))
        if problems:
            raise refused(problems)
        subject = rules.subject(key)
        claimant = household_claimant(household) if doc["per"] == "household" else account
        claim_id = (sealed(body["secret_key"], "who")[:32] if doc["anonymous"]
                    else body["request"])
        claim = event_id(subject, claimant, "claim", claim_id)
        created = await allocator.record({
            "_id": claim, "type": "claim", "schema_version": 1, "created_by": account,
            "subject": subject, "act": "claim", "claimant": claimant, "claim_id": claim_id,
            "received_at": now.isoformat(timespec="microseconds")})
        await allocator.settle()
        outcome = allocator.outcome(subject, claimant)
        if outcome is None or outcome.status == "late":
            raise closed()
        if outcome.claim != claim:
            status = "answered_by_family" if doc["per"] == "household" else "answered_already"
            return {"status": status, "counted": False, "repeated": not created,
                    "told": bilingual(*TOLD[status])}
        area = {"street": place.street, "community": place.community, "grid": place.grid}
        if doc["anonymous"]:
            repeated = await self.store_anonymous(key, doc, body["secret_key"], area, kept)
        else:
            repeated = await self.store_named(key, doc, claim, account, household, area, kept,
                                              now)
        return {"status": "counted", "counted": True, "repeated": repeated,
                "told": bilingual(*TOLD["counted"])}

    async def store_named(self, key: str, doc: Mapping[str, Any], claim: str, account: str,
                          household: str, area: dict[str, str], kept: dict[str, Any],
                          now: datetime.datetime) -> bool:
        """The named answer, once: a retry meets it; the same request with other answers is
        refused (a request id is one answer)."""
        answer = {"_id": "questionnaire_answer:" + hashlib.sha256(claim.encode()).hexdigest()[
            :32], "type": "questionnaire_answer", "schema_version": 1, "created_by": account,
            "questionnaire": rules.subject(key), "version": doc["version"], "area": area,
            "answers": kept, "account": account, "household": household,
            "received_at": now.isoformat(timespec="seconds")}
        self.checked(answer)
        path = db_path(answers_db(key), answer["_id"])
        try:
            await self.couch.put(path, answer)
        except Conflict:
            stored = await self.couch.get(path)
            if stored.get("answers") != kept:
                raise Refused(409, "conflict", bilingual(
                    "这个请求编号已用于另一份答卷", "This request id was used for another "
                    "answer.")) from None
            return True
        return False

    async def store_anonymous(self, key: str, doc: Mapping[str, Any], secret_key: str,
                              area: dict[str, str], kept: dict[str, Any]) -> bool:
        """The anonymous answer: a pending entry of the box, moved in with others in a
        shuffled batch; a retry with the same key finds it and writes nothing more."""
        how = {"_id": f"questionnaire_answer:{sealed(secret_key, 'how')[:32]}",
               "type": "questionnaire_answer", "schema_version": 1, "created_by": AUTHOR,
               "questionnaire": rules.subject(key), "version": doc["version"], "area": area,
               "answers": kept}
        self.checked(how)
        try:
            await self.couch.get(db_path(box(key), how["_id"]))
            return True
        except NotFound:
            pass
        try:
            await self.couch.put(db_path(box(key), f"pending:{sealed(secret_key, 'pending')}"),
                                 {"type": "answer_pending", "how": how})
        except Conflict:
            return True
        await self.flush(key, BOX_BATCH)
        return False

    def checked(self, doc: Mapping[str, Any]) -> None:
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))

    async def flush(self, key: str, at_least: int) -> None:
        await flush_pending(self.couch, box(key), at_least,
                            self.boxing.setdefault(key, asyncio.Lock()))

    # -- results -----------------------------------------------------------------------------

    async def stored_answers(self, key: str, anonymous: bool) -> list[dict[str, Any]]:
        """Every answer stored (an anonymous one once out of the pending entries); a named
        questionnaire's are read from where this process read up to."""
        db = box(key) if anonymous else answers_db(key)
        since, held = ("0", {}) if anonymous else self.read.get(key, ("0", {}))
        try:
            rows, since = await changes(self.couch, db, since)
        except NotFound:
            return []
        for row in rows:
            found = row.get("doc")
            if row.get("deleted") or not isinstance(found, dict):
                held.pop(str(row.get("id")), None)
            elif found.get("type") == "questionnaire_answer":
                held[str(found["_id"])] = found
        if not anonymous:
            self.read[key] = (since, held)
        return list(held.values())

    async def fold(self, doc: Mapping[str, Any]) -> dict[rules.Area, dict[str, Any]]:
        """Each grid's figures of a questionnaire, kept as its answers arrive (rule 4's sums
        add up): held in memory and in the answers database's `_local/summary` (never
        replicated) with the sequence read up to, so that a summary reads only the answers
        stored since, after a restart too. 50,000 answers read afresh take the store ~20 s;
        folded, a summary is a few milliseconds (scripts/bench-questionnaires)."""
        key = str(doc["key"])
        db = box(key) if doc.get("anonymous") else answers_db(key)
        async with self.folding.setdefault(key, asyncio.Lock()):
            held = self.folded.get(key)
            if held is None:
                try:
                    stored = await self.couch.get(db_path(db, "_local/summary"))
                    held = (str(stored["since"]), {tuple(area): figures
                                                   for area, figures in stored["grids"]})
                except (NotFound, KeyError, TypeError, ValueError):
                    held = ("0", {})
            since, grids = held
            try:
                rows, last = await changes(self.couch, db, since)
            except NotFound:
                return grids
            fresh = [rules.Answer((str(a["area"]["street"]), str(a["area"]["community"]),
                                   str(a["area"]["grid"])), a["answers"])
                     for row in rows if isinstance(a := row.get("doc"), dict)
                     and not row.get("deleted") and a.get("type") == "questionnaire_answer"]
            for area, figures in rules.by_grid(doc, fresh).items():
                rules.merge(grids.setdefault(area, rules.figures_of(doc, ())), figures)
            self.folded[key] = (last, grids)
            if rows:
                await self.save_summary(db, last, grids)
            return grids

    async def save_summary(self, db: str, since: str, grids: Mapping[rules.Area, Any]) -> None:
        path = db_path(db, "_local/summary")
        body = {"since": since, "grids": [[list(area), figures] for area, figures in
                                          sorted(grids.items())]}
        with contextlib.suppress(NotFound):
            body["_rev"] = (await self.couch.get(path))["_rev"]
        try:
            await self.couch.put(path, body)
        except Conflict:  # another process saved one: the next fold saves again
            log.info("summary of %s saved meanwhile", db)

    async def results(self, key: str, level: str | None) -> tuple[dict[str, Any],
                                                                  dict[str, Any]]:
        doc = await self.current(key)
        if doc is None:
            raise no_such_questionnaire()
        if doc.get("anonymous") and doc.get("status") != "published":
            await self.flush(key, 1)
        return doc, rules.summarise_grids(doc, await self.fold(doc), level)

    async def run(self) -> None:
        """Supervised: every FOLD_SECONDS, the open questionnaires' new answers folded into
        their figures, so that a summary asked for finds them folded."""
        while True:
            for doc in await self.listing():
                if doc.get("status") == "published":
                    await self.fold(doc)
            self.ready = True
            await asyncio.sleep(FOLD_SECONDS)

    def lag(self) -> Lag:
        return Lag(items=None if not self.ready else 0)

    async def export_rows(self, key: str, unmasked: bool) -> tuple[dict[str, Any],
                                                                   list[list[Any]]]:
        doc = await self.current(key)
        if doc is None:
            raise no_such_questionnaire()
        stored = await self.stored_answers(key, bool(doc.get("anonymous")))
        return doc, rules.export_rows(doc, stored, unmasked, masked_text)
