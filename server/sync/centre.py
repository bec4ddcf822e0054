"""The neighbourhood centre in the store (邻里中心): providers, slots and activities in their
own internal database (`linli-centre`, reached through the centre's routes only), held in
memory once read; bookings and sign-ups are claims through the one allocation of limited
places (server/sync/allocation.py), written by volunteering's `store_event` (one way to store
an act); a booking's matter (咨询事项) in `linli-centre`, read by the resident and the slot's
provider only. The rules are server/domain/centre.py."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from server.domain import centre as rules
from server.domain import volunteering as volunteering_rules
from server.domain.allocation import Outcome, Terms
from server.domain.masking import mask_phone
from server.domain.messages import Refused, bilingual
from server.domain.scope import Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.allocation import Allocator, event_id
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused
from server.sync.volunteering import Volunteering

audit = logging.getLogger("linli.audit")

CENTRE_DB = rules.CENTRE_DB
STANDING = ("confirmed", "awaiting_approval", "waiting")


def no_such(what: str = "slot") -> Refused:
    """Anything a user may not see answers as what does not exist (no probing)."""
    zh, en = {"slot": ("没有这个预约时段", "No such slot."),
              "activity": ("没有这个活动", "No such activity."),
              "provider": ("没有这个服务方", "No such provider.")}[what]
    return Refused(404, "not_found", bilingual(zh, en))


def forbidden(zh: str, en: str) -> Refused:
    return Refused(403, "forbidden", bilingual(zh, en))


@dataclasses.dataclass
class Centre:
    """The store's side of the centre; one per app. Slots and activities feed the allocator."""

    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    volunteering: Volunteering
    providers: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    slots: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    activities: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    async def load(self) -> None:
        """Every provider, slot and activity, once at start (a few thousand at most)."""
        await self.couch.ensure_db(CENTRE_DB)
        for kind, table in ((rules.PROVIDER, self.providers), (rules.SLOT, self.slots),
                            (rules.ACTIVITY, self.activities)):
            page = await self.couch.get(db_path(CENTRE_DB, "_all_docs"), include_docs="true",
                                        startkey=f'"{kind}:"', endkey=f'"{kind}:\ufff0"')
            for row in page.get("rows", []):
                doc = row.get("doc")
                if isinstance(doc, dict) and doc.get("type") == kind:
                    table[self.key_of(doc)] = doc

    @staticmethod
    def key_of(doc: Mapping[str, Any]) -> str:
        return str(doc["code"]) if doc.get("type") == rules.PROVIDER else str(doc["_id"])

    async def fetch(self, doc_id: str) -> dict[str, Any] | None:
        """A document written by another server process since this one read (a slot the
        allocator is asked about), else None."""
        try:
            doc = await self.couch.get(db_path(CENTRE_DB, doc_id))
        except NotFound:
            return None
        return dict(doc) if isinstance(doc, Mapping) else None

    async def subject(self, subject: str) -> dict[str, Any] | None:
        table = {rules.SLOT: self.slots, rules.ACTIVITY: self.activities}.get(
            subject.partition(":")[0])
        if table is None or not rules.KEY.match(subject.partition(":")[2]):
            return None
        if subject not in table:
            doc = await self.fetch(subject)
            if doc is None:
                return None
            table[subject] = doc
        return table[subject]

    async def terms(self, subject: str) -> Terms | None:
        """The allocator's terms of a slot or an activity (rules 3, 5)."""
        doc = await self.subject(subject)
        if doc is None:
            return None
        return rules.slot_terms(doc) if doc["type"] == rules.SLOT else rules.activity_terms(doc)

    async def write(self, doc: dict[str, Any]) -> dict[str, Any]:
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        result = await self.couch.put(db_path(CENTRE_DB, doc["_id"]), doc)
        return {**doc, "_rev": str(result.get("rev"))}

    # -- who ---------------------------------------------------------------------------------

    def communities(self, account: str, index: ResidentIndex) -> frozenset[str]:
        """The communities where a resident lives now (volunteering's claimant: one rule)."""
        return self.volunteering.claimant(account, index).communities

    def scope(self, user: User) -> list[dict[str, Any]]:
        """The providers a supervisor, an admin or a provider's staff sees (rule 1)."""
        return sorted((p for p in self.providers.values() if rules.acts_for(user, p) or (
            user.role in volunteering_rules.PUBLISHER_ROLES
            and volunteering_rules.may_publish(user, str(p["community"]), self.directory))),
            key=lambda p: str(p["code"]))

    def own_provider(self, user: User) -> dict[str, Any]:
        provider = self.providers.get(user.provider)
        if provider is None or not rules.acts_for(user, provider):
            raise forbidden("只有邻里中心服务方的工作人员可以管理预约",
                            "Only a centre provider's staff manage bookings.")
        return provider

    # -- providers, slots, activities --------------------------------------------------------

    async def register(self, user: User, draft: Mapping[str, Any],
                       now: datetime.datetime) -> dict[str, Any]:
        problems = rules.provider_problems(draft)
        if problems:
            raise refused(problems)
        if not volunteering_rules.may_publish(user, draft["community"], self.directory):
            raise refused([rules.problem("community", "scope", "不在您的管辖范围内",
                                         "is not in your scope")])
        doc = rules.provider_doc(draft, user.name, now)
        try:
            stored = await self.write(doc)
        except Conflict:
            raise Refused(409, "conflict", bilingual("这个服务方编号已被使用",
                                                     "This provider code is taken.")) from None
        self.providers[doc["code"]] = stored
        audit.info("%s registered centre provider %s", user.name, doc["_id"])
        return stored

    async def add_slot(self, user: User, draft: Mapping[str, Any],
                       now: datetime.datetime) -> dict[str, Any]:
        provider = self.own_provider(user)
        problems = rules.slot_problems(draft, provider, now)
        if problems:
            raise refused(problems)
        doc = await self.write(rules.slot_doc(draft, provider, user.name,
                                              secrets.token_hex(8), now))
        self.slots[doc["_id"]] = doc
        return doc

    async def publish(self, user: User, draft: Mapping[str, Any],
                      now: datetime.datetime) -> dict[str, Any]:
        problems = rules.activity_problems(draft, now)
        if problems:
            raise refused(problems)
        community = draft["community"]
        provider = rules.may_publish_activity(
            user, community, volunteering_rules.may_publish(user, community, self.directory),
            self.providers.values())
        if provider is None:
            raise refused([rules.problem("community", "scope", "不在您的管辖范围内",
                                         "is not in your scope")])
        doc = await self.write(rules.activity_doc(draft, user.name, provider,
                                                  secrets.token_hex(8), now))
        self.activities[doc["_id"]] = doc
        return doc

    # -- bookings and sign-ups (rules 3, 4, 5) ------------------------------------------------

    async def act(self, allocator: Allocator, index: ResidentIndex, account: str,
                  subject: str, act: str, body: Mapping[str, Any],
                  now: datetime.datetime) -> tuple[Outcome | None, bool]:
        """A resident's booking or sign-up, or its cancellation: (where they stand, whether
        this call stored it). One not of their communities answers as one that does not exist;
        one whose time has passed is refused, unless it is a retry of one stored in time."""
        what = "slot" if subject.startswith(rules.SLOT) else "activity"
        problems = rules.book_problems(body, act) if what == "slot" else (
            volunteering_rules.claim_body_problems(body))
        if problems:
            raise refused(problems)
        doc = await self.subject(subject)
        await allocator.settle()
        mine = allocator.outcome(subject, account) if doc is not None else None
        if doc is None or (doc.get("community") not in self.communities(account, index)
                           and (act != "cancel" or mine is None)):
            raise no_such(what)
        if act == "cancel" and mine is None:
            raise no_such(what)
        claim_id = body["claim_id"]
        late = rules.past_problem(doc["starts_at"] if what == "slot" else doc["deadline"], now)
        if act == "claim" and late is not None and await allocator.stored_claim(
                event_id(subject, account, act, claim_id)) is None:
            raise Refused(403, "forbidden", late.message)
        created = await self.volunteering.store_event(allocator, account, subject, account,
                                                      act, claim_id, now)
        if act == "claim" and body.get("matter"):
            await self.keep_matter(subject, account, str(body["matter"]), now)
        await allocator.settle()
        return allocator.outcome(subject, account), created

    async def keep_matter(self, slot_id: str, account: str, matter: str,
                          now: datetime.datetime) -> None:
        """Rule 4: the matter, once (a retry meets the first); never on a phone but its own."""
        doc = {"_id": rules.matter_id(slot_id, account), "type": rules.MATTER,
               "schema_version": 1, "created_by": account, "slot": slot_id, "matter": matter,
               "written_at": now.isoformat(timespec="seconds")}
        with contextlib.suppress(Conflict):
            await self.write(doc)

    async def matter(self, slot_id: str, account: str) -> str | None:
        doc = await self.fetch(rules.matter_id(slot_id, account))
        return str(doc["matter"]) if doc is not None else None

    async def decide(self, allocator: Allocator, user: User, slot_id: str, booking: Any,
                     approve: bool, claim_id: str, now: datetime.datetime
                     ) -> tuple[Outcome | None, bool]:
        """The provider confirms or declines a booking named by its key (never an account)."""
        provider = self.own_provider(user)
        slot = await self.subject(slot_id)
        if slot is None or slot.get("type") != rules.SLOT or slot.get(
                "provider") != provider["code"]:
            raise no_such("slot")
        await allocator.settle()
        outcomes = allocator.outcomes.get(slot_id, {})
        found = [who for who in outcomes if rules.booking_key(slot_id, who) == booking]
        if not found:
            raise refused([rules.problem("booking", "booking", "不是本时段的预约",
                                         "is not a booking of this slot")])
        act = "approve" if approve else "reject"
        held = outcomes[found[0]].status  # a retry of a stored decision still answers
        if ((approve and held != "awaiting_approval") or held not in STANDING) and (
                await allocator.stored_claim(event_id(slot_id, found[0], act, claim_id)) is None):
            raise forbidden("只能确认占有名额、待确认的预约；候补、已取消或已婉拒的不能确认",
                            "Only a booking holding a place and awaiting you is confirmed; "
                            "one waiting, cancelled or declined is not.")
        created = await self.volunteering.store_event(allocator, user.name, slot_id, found[0],
                                                      act, claim_id, now)
        await allocator.settle()
        return allocator.outcome(slot_id, found[0]), created

    # -- what each sees -----------------------------------------------------------------------

    def label(self, account: str) -> str:
        """How a provider's day list names a booker: their name, else their phone masked."""
        user = self.directory.users.get(account)
        if user is not None and user.full_name:
            return user.full_name
        phone = next((login for login, who in self.directory.logins.items() if who == account),
                     account if account.isdigit() else "")
        return mask_phone(phone) if phone else "居民"

    async def day(self, allocator: Allocator, user: User, day: tuple[datetime.datetime,
                  datetime.datetime]) -> list[dict[str, Any]]:
        """The provider's day list: its slots that day, each booking with its status, the
        booker's name and matter (rule 4: the provider's own slots only)."""
        provider = self.own_provider(user)
        await allocator.settle()
        found = []
        for slot in sorted(self.slots.values(), key=lambda s: (s["starts_at"], s["_id"])):
            starts = rules.parse_time(slot["starts_at"])
            if slot.get("provider") != provider["code"] or starts is None or not (
                    day[0] <= starts < day[1]):
                continue
            bookings = []
            for who, outcome in allocator.outcomes.get(slot["_id"], {}).items():
                if outcome.status not in STANDING:
                    continue
                bookings.append({"booking": rules.booking_key(slot["_id"], who),
                                 "name": self.label(who), "status": outcome.status,
                                 "line": outcome.line,
                                 "matter": await self.matter(slot["_id"], who)})
            bookings.sort(key=lambda b: (b["status"] == "waiting", b["line"], b["booking"]))
            found.append({**shown_slot(slot, provider), "bookings": bookings})
        return found

    def slots_of(self, allocator: Allocator, provider: str, account: str,
                 now: datetime.datetime) -> list[dict[str, Any]]:
        """A provider's slots to come, as a resident sees them: places taken, where they
        stand; never who else booked."""
        held = self.providers[provider]
        found = []
        for slot in sorted(self.slots.values(), key=lambda s: (s["starts_at"], s["_id"])):
            starts = rules.parse_time(slot["starts_at"])
            if slot.get("provider") == provider and starts is not None and starts > now:
                found.append({**shown_slot(slot, held),
                              **standing(allocator, slot["_id"], account)})
        return found

    def activities_of(self, allocator: Allocator, communities: frozenset[str], account: str,
                      now: datetime.datetime) -> list[dict[str, Any]]:
        found = []
        for doc in sorted(self.activities.values(), key=lambda a: (a["starts_at"], a["_id"])):
            ends = rules.parse_time(doc["ends_at"])
            if doc.get("community") in communities and ends is not None and ends > now:
                found.append({**shown_activity(doc, self.providers),
                              **standing(allocator, doc["_id"], account)})
        return found

    async def mine(self, allocator: Allocator, account: str) -> dict[str, Any]:
        """A resident's own bookings and sign-ups, with their own matters."""
        await allocator.settle()
        bookings, signups = [], []
        for slot_id, slot in self.slots.items():
            if account in allocator.outcomes.get(slot_id, {}):
                provider = self.providers.get(str(slot.get("provider")), {})
                bookings.append({**shown_slot(slot, provider),
                                 **standing(allocator, slot_id, account),
                                 "matter": await self.matter(slot_id, account)})
        for doc_id, doc in self.activities.items():
            if account in allocator.outcomes.get(doc_id, {}):
                signups.append({**shown_activity(doc, self.providers),
                                **standing(allocator, doc_id, account)})
        return {"bookings": sorted(bookings, key=lambda b: b["starts_at"]),
                "activities": sorted(signups, key=lambda a: a["starts_at"])}

    def overview(self, allocator: Allocator, user: User) -> dict[str, Any]:
        """The supervisors' figures (rule 4): per provider of their scope, slots, places and
        places held, in all and by week and service; the activities of their communities with
        the places taken. Counts only: never who booked or signed up, never a matter."""
        def held(subject: str) -> int:
            return sum(1 for o in allocator.outcomes.get(subject, {}).values()
                       if o.status in ("confirmed", "awaiting_approval"))

        providers = []
        for provider in self.scope(user):
            slots = [s for s in self.slots.values() if s.get("provider") == provider["code"]]
            counts = {str(s["_id"]): held(str(s["_id"])) for s in slots}
            weeks = [{**row, "service_name": service_name(provider, row["service"])}
                     for row in rules.weekly(slots, counts)]
            providers.append({**shown_provider(provider), "slots": len(slots),
                              "places": sum(int(s["places"]) for s in slots),
                              "booked": sum(counts.values()), "weeks": weeks})
        activities = [{**shown_activity(doc, self.providers), "taken": held(doc_id),
                       "waiting": sum(1 for o in allocator.outcomes.get(doc_id, {}).values()
                                      if o.status == "waiting")}
                      for doc_id, doc in self.activities.items()
                      if volunteering_rules.may_publish(user, str(doc.get("community", "")),
                                                        self.directory)]
        return {"providers": providers,
                "activities": sorted(activities, key=lambda a: (a["starts_at"], a["_id"]))}


def service_name(provider: Mapping[str, Any], code: str) -> str:
    return next((str(s["name"]) for s in provider.get("services", []) if s["code"] == code), "")


def shown_provider(provider: Mapping[str, Any]) -> dict[str, Any]:
    return {"code": provider["code"], "kind": provider["kind"], "name": provider["name"],
            "community": provider["community"], "services": provider["services"],
            "hours": provider["hours"], "confidential": rules.confidential(provider)}


def shown_slot(slot: Mapping[str, Any], provider: Mapping[str, Any]) -> dict[str, Any]:
    return {"_id": slot["_id"], "provider": slot["provider"],
            "provider_name": provider.get("name", ""), "service": slot["service"],
            "service_name": service_name(provider, str(slot["service"])),
            "starts_at": slot["starts_at"], "ends_at": slot["ends_at"],
            "places": slot["places"]}


def shown_activity(doc: Mapping[str, Any],
                   providers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    shown = {k: doc[k] for k in ("_id", "title", "description", "place", "community",
                                 "starts_at", "ends_at", "deadline", "places") if k in doc}
    provider = providers.get(str(doc.get("provider", "")))
    shown["provider_name"] = provider["name"] if provider else ""
    return shown


def standing(allocator: Allocator, subject: str, account: str) -> dict[str, Any]:
    """Places taken (a count, never who) and where `account` stands."""
    outcomes = allocator.outcomes.get(subject, {})
    mine = outcomes.get(account)
    return {"taken": sum(1 for o in outcomes.values()
                         if o.status in ("confirmed", "awaiting_approval")),
            "status": mine.status if mine else None, "line": mine.line if mine else 0}
