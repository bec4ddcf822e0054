"""My data (我的数据, PIPL arts. 44-47): what a resident is shown of everything held about them
and their household, the file they take away, and their requests to have it corrected or
deleted, tracked to an answer.

1. Whose (`whose`): a record is shown when it is the resident's own (their account, their
   sign-up, their links, what they sent: `account` or `created_by` is theirs) or names a
   household an *active* link makes theirs (the household itself, its present members, and
   records whose `household` is one of them). Nothing else, whatever the store was asked:
   `gathered()` judges every document again, so a wider read cannot leak a neighbour.
2. How (SHOWN, one row per type and relation): their own records as they are, but for what is
   not theirs inside them (a sign-up's candidate households and the matcher's reason); the
   household and its members as their phone holds them (household_view.resident_view: ID
   numbers to their last four, phones masked, the worker's edits and notes left out); the
   worker's records about the household without the worker's notes; a screening without its
   health details (another member's medical data, PIPL art. 28); an activation code without
   the code; another resident's link as role and state; another person's own records
   (sign-ups, requests) not at all, only counted. Each record names the fields `left_out` and
   `masked`, and `withheld` counts what is not shown, so the resident knows what exists and
   may ask for it (a request of kind `access`, answered by a person).
3. The file (`export_rows`, `file_name`): the same in JSON, or in CSV one field a row with its
   label in zh-CN and English; the writer passes every cell through exports.safe_cell. The
   name is the server's (a date), never anything typed.
4. A request (`request_problems`, `new_request`): kind, optional details (plain text) and
   optional household (one of theirs); the author, status and time are the server's. At most
   MAX_PER_DAY a day, decided by the store: the id is a numbered slot of the day
   (`data_request:<community>:<account>:<yyyymmdd>:<n>`), and a slot is taken once. The
   same request sent again while it is open is that request, not a new one (a replay).
5. An answer (`answer_problems`, `answered`): by the supervisor of the resident's community
   (or an admin), never the grid worker: the community is the handler the request is made to,
   a refusal or a deletion is its decision, and requests live in the residents database, not
   on the worker's phone. In progress, then done or refused; done and refused say what was
   done or why not (PIPL art. 50). resident_writes.answer_problem holds the moves.
6. A deadline (`due_on`, `overdue`): an answer is due ANSWER_WORKING_DAYS working days after
   the day (in China) the request came, counting Monday to Friday; a request still open or in
   progress after that day is overdue, and the supervisor's list says so. Statutory holidays
   and the weekends worked instead are not known to Linli, so the count is by weekday only.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from server.domain.household_view import resident_view
from server.domain.resident_writes import answer_problem
from server.domain.rules import Problem
from server.domain.text import Label, text_problem, unknown_fields

Whose = Literal["own", "household"]
VERSION = 1
CHINA = datetime.timezone(datetime.timedelta(hours=8))  # a "day" is a day in China (no DST)
MAX_PER_DAY = 5  # requests an account makes in a day: enough for every kind, not a flood
MAX_DETAILS = 2000  # the schema's note
MAX_ANSWER = 2000
KINDS = ("access", "export", "correction", "deletion")
ANSWERS = ("in_progress", "done", "refused")
REQUEST_FIELDS = frozenset({"kind", "details", "household"})
ANSWER_FIELDS = frozenset({"id", "rev", "status", "answer"})
LABELS: dict[str, Label] = {
    "kind": ("请求类型", "Request"), "details": ("说明", "Details"),
    "household": ("住户", "Household"), "status": ("状态", "Status"),
    "answer": ("答复", "Answer"), "id": ("申请编号", "Request"),
    "rev": ("版本", "Revision"),
}
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MASK_WHY: Label = ("身份证号、电话只显示部分", "ID and phone numbers are shown in part")


@dataclasses.dataclass(frozen=True)
class Shown:
    """How one type of record is shown for one relation: in which section, all fields (keep
    None) or only `keep`, less `drop` (a dotted name reaches inside an object), and why."""

    section: str
    keep: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    why: Label = ("", "")
    view: bool = False  # through household_view.resident_view, as the phone holds it
    named: bool = True  # False: the record's id is not shown (it names another account)


SECTIONS: dict[str, Label] = {
    "account": ("账号", "Account"),
    "signup": ("注册申请", "Sign-up"),
    "links": ("我与住户的关联", "My links to households"),
    "household": ("我的住户", "My household"),
    "members": ("家庭成员", "Members"),
    "records": ("关于本户的记录", "Records about the household"),
    "co_residents": ("本户其他居民", "Other residents of the household"),
    "requests": ("我的申请", "My requests"),
    "receipts": ("公告回执", "Notice receipts"),
}
WORKER_NOTES: Label = ("网格员的工作记录不显示", "The grid worker's notes are not shown")
SHOWN: dict[tuple[str, Whose], Shown] = {
    ("user", "own"): Shown("account", keep=("name", "role", "created_at", "resident"),
                           why=("密码和登录密钥不显示", "Your password's hash and session keys "
                                "are not shown")),
    ("signup", "own"): Shown("signup", drop=("match.candidates", "match.reason"),
                             why=("匹配到的其他住户不显示", "Other households the matching "
                                  "considered are not shown")),
    ("resident", "own"): Shown("links"),
    ("household", "household"): Shown("household", view=True, why=WORKER_NOTES),
    ("person", "household"): Shown("members", view=True, why=WORKER_NOTES),
    ("household_visit", "household"): Shown("records", drop=("notes",), why=WORKER_NOTES),
    ("census_household", "household"): Shown("records", drop=("notes",), why=WORKER_NOTES),
    ("screening", "household"): Shown(
        "records", keep=("grid", "household", "person", "campaign", "screened_on"),
        why=("家庭成员的健康信息不在此显示，可申请查阅", "A member's health details are not "
             "shown here; ask for them with a request")),
    ("activation_code", "household"): Shown(
        "records", keep=("grid", "household", "role", "created_at", "status", "used_at"),
        why=("激活码本身不显示", "The code itself is not shown")),
    ("resident", "household"): Shown(
        "co_residents", keep=("household", "role", "status", "activation", "activated_at",
                              "removed_at"),
        why=("其他居民的账号不显示", "Another resident's account is not shown"), named=False),
    ("correction_request", "own"): Shown("requests"),
    ("data_request", "own"): Shown("requests"),
    ("notice_receipt", "own"): Shown("receipts"),
}
OTHERS: Label = ("本户其他居民或工作人员的记录", "Records of other residents or of the staff")


def homes_of(account: str, links: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The account's households, each with its grid: those of its active links only (a pending
    link shows nothing of the household: it could be anyone's guess)."""
    return {str(link["household"]): str(link.get("grid") or "") for link in links
            if link.get("type") == "resident" and link.get("account") == account
            and link.get("status") == "active" and isinstance(link.get("household"), str)}


def whose(doc: Mapping[str, Any], account: str, homes: Mapping[str, str]) -> Whose | None:
    """Rule 1: the resident's own record, one about their household, or neither (None)."""
    doc_type, doc_id = doc.get("type"), doc.get("_id")
    if doc_type == "user":
        return "own" if doc.get("name") == account and doc_id == f"user:{account}" else None
    if account in (doc.get("account"), doc.get("created_by")) and doc_type in (
            "signup", "resident", "correction_request", "data_request", "notice_receipt"):
        return "own"
    if doc_type == "household":
        return "household" if doc_id in homes else None
    if doc_type == "person" and doc.get("status") not in (None, "present"):
        return None  # moved out or deceased: somebody else's record now
    return "household" if doc.get("household") in homes else None


def _without(doc: Mapping[str, Any], dotted: str) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    out = dict(doc)
    if not rest:
        out.pop(head, None)
    elif isinstance(out.get(head), Mapping):
        out[head] = _without(out[head], rest)
    return out


def _names(doc: Mapping[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for key, value in doc.items():
        if key.startswith("_"):
            continue
        found.add(prefix + key)
        if isinstance(value, Mapping):
            found |= _names(value, f"{prefix}{key}.")
    return found




def shown_record(doc: Mapping[str, Any], rule: Shown) -> dict[str, Any]:
    """Rule 2 for one record: its fields as shown, and which were left out or masked."""
    fields = resident_view(doc) if rule.view else dict(doc)
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    if rule.keep is not None:
        fields = {k: v for k, v in fields.items() if k in rule.keep}
    for name in rule.drop:
        fields = _without(fields, name)
    before, after = _names(doc), _names(fields)
    gone = before - after
    left_out = sorted(n for n in gone if n.rpartition(".")[0] not in gone)
    masked = sorted(n for n in fields if fields[n] != doc.get(n)
                    and not any(g.startswith(f"{n}.") for g in gone))
    record = {"id": doc.get("_id") if rule.named else None, "type": doc.get("type"),
              "fields": fields}
    if left_out:
        record["left_out"] = left_out
        record["why"] = list(rule.why)
    if masked:
        record["masked"] = masked
        record["why_masked"] = list(MASK_WHY)
    return record


def gathered(account: str, homes: Mapping[str, str], docs: Iterable[Mapping[str, Any]],
             now: datetime.datetime) -> dict[str, Any]:
    """Everything held about the resident and their households, as rule 2 shows it: sections
    of records, and the records not shown counted by type. `docs` may hold anything: what is
    neither theirs nor their household's is dropped unseen (rule 1), not even counted."""
    sections: dict[str, list[dict[str, Any]]] = {key: [] for key in SECTIONS}
    withheld: dict[str, int] = {}
    seen: set[str] = set()
    for doc in docs:
        doc_id = doc.get("_id")
        relation = whose(doc, account, homes)
        if relation is None or not isinstance(doc_id, str) or doc_id in seen:
            continue
        seen.add(doc_id)
        rule = SHOWN.get((str(doc.get("type")), relation))
        if rule is None:
            withheld[str(doc.get("type"))] = withheld.get(str(doc.get("type")), 0) + 1
            continue
        sections[rule.section].append(shown_record(doc, rule))
    for records in sections.values():
        records.sort(key=lambda r: str(r["id"]))
    return {
        "format": "linli-my-data", "version": VERSION,
        "generated_at": now.astimezone(datetime.UTC).isoformat(timespec="seconds"),
        "account": account, "households": sorted(homes),
        "sections": [{"key": key, "title": list(title), "records": sections[key]}
                     for key, title in SECTIONS.items()],
        "withheld": [{"type": t, "count": n, "why": list(OTHERS)}
                     for t, n in sorted(withheld.items())],
    }


# --- the file -------------------------------------------------------------------------------

EXPORT_FORMATS = ("json", "csv")
CSV_HEADER = ["部分 Section", "记录 Record", "类型 Type", "字段 Field", "值 Value"]


def file_name(kind: str, now: datetime.datetime) -> str:
    """Rule 3: the file's name, the server's own (ASCII, no input in it)."""
    if kind not in EXPORT_FORMATS:
        raise ValueError(kind)
    return f"linli-my-data-{now.astimezone(CHINA):%Y%m%d}.{kind}"


def _cell(value: Any) -> Any:
    if isinstance(value, str | int | float) or value is None:
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def export_rows(data: Mapping[str, Any], titles: Mapping[str, Label],
                labels: Mapping[str, Mapping[str, Label]]) -> Iterator[list[Any]]:
    """Rule 3 in CSV: one field a row, labelled by the schemas' titles (`titles` by type,
    `labels` by type and field; a name without one is shown as it is). The caller's writer
    makes every cell safe (exports.safe_cell)."""
    yield CSV_HEADER
    for section in data["sections"]:
        heading = " ".join(section["title"])
        for record in section["records"]:
            doc_type = str(record["type"])
            kind = " ".join(titles.get(doc_type, (doc_type, ""))).strip()
            named = labels.get(doc_type, {})
            for name, value in record["fields"].items():
                label = " ".join(named.get(name, (name, ""))).strip()
                yield [heading, record["id"], kind, label, _cell(value)]
            if record.get("left_out"):
                yield [heading, record["id"], kind, "未显示 Left out",
                       f"{', '.join(record['left_out'])}: {' / '.join(record['why'])}"]
            if record.get("masked"):
                yield [heading, record["id"], kind, "部分显示 Masked",
                       f"{', '.join(record['masked'])}: {' / '.join(record['why_masked'])}"]
    for entry in data["withheld"]:
        kind = " ".join(titles.get(entry["type"], (entry["type"], ""))).strip()
        yield ["未显示的记录 Not shown", "", kind, "数量 Count", entry["count"]]


def schema_labels(schemas: Mapping[tuple[str, int], Mapping[str, Any]]
                  ) -> tuple[dict[str, Label], dict[str, dict[str, Label]]]:
    """The titles of each type and of its top-level fields, from the schemas with their
    references inlined (latest version wins), for the CSV; the user record, which has no
    schema, has its own."""
    titles: dict[str, Label] = {"user": ("账号", "Account")}
    labels: dict[str, dict[str, Label]] = {"user": {
        "name": ("用户名", "User name"), "role": ("角色", "Role"),
        "created_at": ("注册时间", "Created at"), "resident": ("居民", "Resident")}}
    for (doc_type, _), schema in sorted(schemas.items()):
        titles[doc_type] = (str(schema.get("title", doc_type)),
                            str(schema.get("x-title-en", doc_type)))
        fields = labels.setdefault(doc_type, {})
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, Mapping) and "title" in prop:
                fields[name] = (str(prop["title"]), str(prop.get("x-title-en", name)))
    return titles, labels


# --- requests -------------------------------------------------------------------------------

def _enum_problem(value: Any, name: str, allowed: tuple[str, ...]) -> Problem | None:
    if isinstance(value, str) and value in allowed:
        return None
    zh, en = LABELS[name]
    return Problem(f"/{name}", "enum", f"“{zh}”应为 {'、'.join(allowed)} 之一",
                   f"{en} must be one of {', '.join(allowed)}")


def request_problems(body: Mapping[str, Any], homes: Mapping[str, str]) -> list[Problem]:
    """Rule 4: what is wrong with a request as sent; [] when it may be made. A household that
    is not theirs is refused alike whether it exists or not."""
    problems = unknown_fields(body, REQUEST_FIELDS)
    kind = _enum_problem(body.get("kind"), "kind", KINDS)
    if kind is not None:
        problems.append(kind)
    if "details" in body:
        found = text_problem(body["details"], "/details", LABELS["details"],
                             max_chars=MAX_DETAILS, min_chars=0, paragraphs=True)
        if found is not None:
            problems.append(found)
    if "household" in body and (not isinstance(body["household"], str)
                                or body["household"] not in homes):
        zh, en = LABELS["household"]
        problems.append(Problem("/household", "not_own", f"“{zh}”不是您的住户",
                                f"{en}: is not your household"))
    return problems


def day_key(now: datetime.datetime) -> str:
    return f"{now.astimezone(CHINA):%Y%m%d}"


def day_prefix(community: str, account: str, now: datetime.datetime | None = None) -> str:
    """The ids of the account's requests (of one day, given `now`) begin so."""
    if not _CODE.fullmatch(community) or not _CODE.fullmatch(account):
        raise ValueError("a community code or user name that cannot be in an id")
    return f"data_request:{community}:{account}:" + (f"{day_key(now)}:" if now else "")


def community_prefix(community: str) -> str:
    """The ids of a community's requests begin so (the supervisor's list)."""
    if not _CODE.fullmatch(community):
        raise ValueError("a community code that cannot be in an id")
    return f"data_request:{community}:"


def slot_ids(community: str, account: str, now: datetime.datetime) -> list[str]:
    """Rule 4: the day's slots, tried in order; the store gives each once."""
    prefix = day_prefix(community, account, now)
    return [f"{prefix}{n}" for n in range(1, MAX_PER_DAY + 1)]


def new_request(body: Mapping[str, Any], account: str, now: datetime.datetime
                ) -> dict[str, Any]:
    """The request as stored (without its id): what the resident asked, and what the server
    says of it (author, status, time)."""
    doc: dict[str, Any] = {"type": "data_request", "schema_version": 1, "created_by": account,
                           "kind": body["kind"], "status": "open",
                           "requested_at": now.astimezone(datetime.UTC).isoformat(
                               timespec="seconds")}
    if body.get("details"):
        doc["details"] = body["details"]
    if "household" in body:
        doc["household"] = body["household"]
    return doc


def replay_of(body: Mapping[str, Any], stored: Iterable[Mapping[str, Any]]
              ) -> Mapping[str, Any] | None:
    """Rule 4: an open request asking the same (kind, household, details), if there is one."""
    for doc in stored:
        if doc.get("status") == "open" and all(
                doc.get(name) == (body.get(name) or None) for name in REQUEST_FIELDS):
            return doc
    return None


def answer_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rule 5 for an answer as sent: {id, rev, status, answer}."""
    problems = unknown_fields(body, ANSWER_FIELDS)
    for name in ("id", "rev"):
        if not isinstance(body.get(name), str) or not 0 < len(body[name]) <= 300:
            zh, en = LABELS[name]
            problems.append(Problem(f"/{name}", "required", f"缺少“{zh}”", f"{en} is required"))
    status = _enum_problem(body.get("status"), "status", ANSWERS)
    if status is not None:
        problems.append(status)
    if "answer" in body or body.get("status") in ("done", "refused"):
        found = text_problem(body.get("answer"), "/answer", LABELS["answer"],
                             max_chars=MAX_ANSWER, paragraphs=True)
        if found is not None:
            problems.append(found)
    return problems


def answered(stored: Mapping[str, Any], body: Mapping[str, Any], writer: str,
             now: datetime.datetime) -> tuple[dict[str, Any], Problem | None]:
    """The stored request with the answer given, and the rule it breaks, if any
    (resident_writes.answer_problem: forward only, what was asked unchanged)."""
    doc = {**stored, "status": body["status"], "answered_by": writer,
           "answered_at": now.astimezone(datetime.UTC).isoformat(timespec="seconds")}
    if body.get("answer"):
        doc["answer"] = body["answer"]
    return doc, answer_problem(doc, stored, writer)


ANSWER_WORKING_DAYS = 15  # the handler's promise, as issue 23 asks (PIPL art. 50: "promptly")


def due_on(requested_at: Any) -> str | None:
    """Rule 6: the day an answer is due, None when the request's time cannot be read."""
    try:
        when = datetime.datetime.fromisoformat(str(requested_at))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    day, left = when.astimezone(CHINA).date(), ANSWER_WORKING_DAYS
    while left:
        day += datetime.timedelta(days=1)
        left -= day.weekday() < 5
    return day.isoformat()


def overdue(doc: Mapping[str, Any], today: datetime.date) -> bool:
    """Rule 6: still waiting for an answer after the day it was due."""
    due = due_on(doc.get("requested_at"))
    return doc.get("status") in ("open", "in_progress") and due is not None \
        and today.isoformat() > due


def request_view(doc: Mapping[str, Any], now: datetime.datetime | None = None
                 ) -> dict[str, Any]:
    """A request as listed, to its resident or to the supervisor: its fields and its revision
    (an answer names the revision it answers), the day its answer is due, and, given `now`,
    whether it is overdue."""
    view = {"id": doc.get("_id"), "rev": doc.get("_rev"),
            **{k: v for k, v in doc.items() if not k.startswith("_")},
            "due_on": due_on(doc.get("requested_at"))}
    if now is not None:
        view["overdue"] = overdue(doc, now.astimezone(CHINA).date())
    return view
