"""Retention (保存期限): how long each type of record is kept, and what is due to go.

Rules:
1. Every document type has one rule in RULES; a type without one is refused (the server does
   not start, `check_rules`), as a field without `x-sensitivity` is.
2. A rule is one of:
   - `after`: kept `days` after the date in `field` (a visit: 3 years after `visited_on`); a
     record without that date yet (a request not answered) is not due;
   - `campaign`: kept until its campaign's end plus the campaign's own retention days
     (server/domain/campaigns.py); it goes by the campaign purge;
   - `follows`: goes with the record it names (`record`): a conflict's resolution, a verdict;
   - `kept`: kept while it serves its purpose (`why` says which, and what ends it).
   Only records of the grid databases (`x-database: grid`) are removed by the retention job;
   a rule `after` or `campaign` on another type is refused.
3. A record is due on the day its rule's date is reached (`today >= due_on`), when every one
   of its leaf revisions is due; the job lists what is due each night, and nothing goes
   before a supervisor with the `purge` right approves a list (once per list and grid).
4. A record past its retention is refused when a phone sends it again (server/domain/
   validation.py), so a removal is not undone by the next sync.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any, Literal

Kind = Literal["after", "campaign", "follows", "kept"]
CHINA = datetime.timezone(datetime.timedelta(hours=8))  # a "day" is a day in China
YEAR = 365  # days; a rule in years counts 365 a year, the odd leap day kept longer


@dataclasses.dataclass(frozen=True)
class Rule:
    kind: Kind
    why: str
    field: str = ""
    days: int = 0

    def shown(self) -> dict[str, Any]:
        return {"kind": self.kind, "why": self.why, "field": self.field, "days": self.days}


def after(field: str, days: int, why: str) -> Rule:
    return Rule("after", why, field, days)


def kept(why: str) -> Rule:
    return Rule("kept", why)


ON_CAMPAIGN = Rule("campaign", "活动结束后按工作批次的保存期清除 / purged after its campaign "
                   "ends plus the campaign's retention days")
WITH_RECORD = Rule("follows", "随所指记录一并删除 / goes with the record it names")
REGISTER = kept("网格台账：住户在网格期间保存 / the grid's register, kept while the household "
                "lives in the grid")
ACCOUNT = kept("账户存续期间保存，注销时删除 / kept while the account is open")
PUBLIC = kept("不含个人信息 / holds no one's personal data")
VOTE = kept("业主表决记录，按业主大会规则保存 / the record of an owners' vote, kept as its "
            "rules say")
FEE = kept("收费账目，按会计档案规定保存 / fee accounts, kept as accounting records must be")
RESIDENT_ACT = kept("居民自己的发布和往来，居民可申请删除 / a resident's own posts and "
                    "dealings, deleted at their request")

RULES: Mapping[str, Rule] = {
    # grid databases: what the job removes
    "household_visit": after("visited_on", 3 * YEAR, "走访记录保存 3 年 / visits: 3 years"),
    "correction_request": after("answered_at", 3 * YEAR,
                                "更正申请答复后保存 3 年 / corrections: 3 years after the answer"),
    "signup": after("decided_at", YEAR, "注册申请处理后保存 1 年 / sign-ups: 1 year after the "
                    "decision"),
    "activation_code": after("used_at", YEAR, "激活码使用后保存 1 年 / activation codes: "
                             "1 year after use"),
    "screening": ON_CAMPAIGN,
    "census_household": ON_CAMPAIGN,
    "resolution": WITH_RECORD,
    "verdict": WITH_RECORD,
    "household": REGISTER,
    "person": REGISTER,
    "resident": REGISTER,
    "building": PUBLIC,
    # other databases: kept, for the reason given
    "grid": PUBLIC, "community": PUBLIC, "compound": PUBLIC, "district": PUBLIC,
    "street": PUBLIC, "party_branch": PUBLIC, "property_company": PUBLIC,
    "topic_threshold": PUBLIC,
    "property_unit": VOTE, "motion": VOTE, "ballot": VOTE, "ballot_choice": VOTE,
    "fee_order": FEE, "fee_roll": FEE, "fee_txn": FEE,
    "fee_rating": RESIDENT_ACT, "fee_rating_answer": PUBLIC,
    "data_request": kept("居民权利请求，用以证明已答复 / residents' requests, kept to "
                         "show they were answered"),
    "party_member": ACCOUNT, "party_letter": ACCOUNT, "volunteer": ACCOUNT,
    "ledger_entry": ACCOUNT, "volunteer_ranking": ACCOUNT, "mutual_aid_supplier": ACCOUNT,
    "allocation": RESIDENT_ACT, "checkin": RESIDENT_ACT, "claim": RESIDENT_ACT,
    "mutual_aid_deal": RESIDENT_ACT, "mutual_aid_flag": RESIDENT_ACT,
    "mutual_aid_listing": RESIDENT_ACT, "mutual_aid_message": RESIDENT_ACT,
    "notice": PUBLIC, "notice_receipt": RESIDENT_ACT, "questionnaire": PUBLIC,
    "questionnaire_answer": RESIDENT_ACT, "report": RESIDENT_ACT, "report_status": RESIDENT_ACT,
    "report_step": RESIDENT_ACT, "topic": RESIDENT_ACT, "topic_comment": RESIDENT_ACT,
    "topic_support": RESIDENT_ACT, "volunteer_task": PUBLIC,
    "centre_provider": PUBLIC, "centre_slot": PUBLIC, "centre_activity": PUBLIC,
    "centre_matter": RESIDENT_ACT,
    "liaison_officer": PUBLIC, "patrol_route": PUBLIC,
    "liaison_message": RESIDENT_ACT,
    "patrol_check": kept("执法巡查记录，按执法档案规定保存 / a patrol's record, kept as "
                         "enforcement files must be"),
    "mediation_case": kept("人民调解档案，按调解卷宗管理规定保存 / a mediation's record, kept as "
                           "people's mediation files must be"),
    "star_sheet": kept("小区星级评定记录，历年结果作为历史保存 / a compound's star ratings, "
                       "each round kept as its history"),
}


def check_rules(databases: Mapping[str, str | None],
                rules: Mapping[str, Rule] = RULES) -> None:
    """Rules 1 and 2, given each document type's database (`x-database`): a type without a
    rule, or a rule the job cannot keep, is a ValueError."""
    missing = sorted(t for t in databases if t not in rules)
    if missing:
        raise ValueError(f"document types without a retention rule: {', '.join(missing)} "
                         "(server/domain/retention.py RULES)")
    outside = sorted(t for t, db in databases.items()
                     if rules[t].kind in ("after", "campaign") and db != "grid")
    if outside:
        raise ValueError(f"retention rules the job cannot keep (not in a grid database): "
                         f"{', '.join(outside)}")


def day_of(value: Any) -> datetime.date | None:
    """The day of a date or a date-time (its first ten characters), None when it is not one."""
    try:
        return datetime.date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def due_on(doc: Mapping[str, Any], campaign_docs: Mapping[str, Mapping[str, Any]],
           rules: Mapping[str, Rule] = RULES) -> datetime.date | None:
    """The day a record is due to go by its own rule; None when it is not dated (kept,
    follows, or its date not there yet)."""
    rule = rules.get(str(doc.get("type")))
    if rule is None:
        return None
    if rule.kind == "after":
        day = day_of(doc.get(rule.field))
        return day + datetime.timedelta(days=rule.days) if day is not None else None
    if rule.kind == "campaign":
        campaign = campaign_docs.get(str(doc.get("campaign")))  # as campaigns.due_on says
        ends = day_of(campaign.get("ends_on")) if campaign is not None else None
        return ends + datetime.timedelta(days=int(campaign.get("retention_days") or 0)) \
            if campaign is not None and ends is not None else None
    return None


def past(doc: Mapping[str, Any], today: datetime.date,
         campaign_docs: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """Whether a record is past its retention on `today` (rule 3)."""
    day = due_on(doc, campaign_docs or {})
    return day is not None and today >= day


@dataclasses.dataclass(frozen=True)
class Due:
    """What one grid database holds past its retention on a day."""

    records: dict[str, list[str]]  # by type: the ids removed by rebuilding the database
    campaigns: list[str]  # the campaigns whose purge is due (the campaign purge removes them)

    def count(self) -> int:
        return sum(len(ids) for ids in self.records.values())


def due(leaves: Mapping[str, list[Mapping[str, Any]]], today: datetime.date,
        campaign_docs: Mapping[str, Mapping[str, Any]], purged: Iterable[str] = ()) -> Due:
    """What is due in a grid database, given every leaf revision's body by id (rule 3): the
    dated records whose every living leaf is past, those that follow them, and the campaigns
    due whose records the grid still holds (a grid purged of one holds none)."""
    records: dict[str, list[str]] = {}
    gone: set[str] = set()
    due_campaigns: set[str] = set()
    for doc_id, bodies in sorted(leaves.items()):
        living = [b for b in bodies if not b.get("_deleted")]
        if not living or not all(past(b, today, campaign_docs) for b in living):
            continue
        kind = RULES[str(living[0].get("type"))].kind
        if kind == "campaign":
            due_campaigns.add(str(living[0].get("campaign")))
            continue
        records.setdefault(str(living[0]["type"]), []).append(doc_id)
        gone.add(doc_id)
    for doc_id, bodies in sorted(leaves.items()):
        if any(RULES.get(str(b.get("type")), PUBLIC).kind == "follows"
               and b.get("record") in gone for b in bodies):
            records.setdefault(str(bodies[0].get("type")), []).append(doc_id)
    return Due(records, sorted(due_campaigns - set(purged)))


def listed_ids(due_records: Mapping[str, Iterable[str]]) -> set[str]:
    return {i for ids in due_records.values() for i in ids}
