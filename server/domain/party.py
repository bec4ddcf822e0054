"""Party members' dual registration (党员双报到): a member registers with the branch of their
workplace (机关支部 or another) online and reports (报到) to the grid branch (小区网格支部) of
where they live; the branch views; letters to a workplace about a member's conduct (函告抄告).

1. Branches (党支部). The branches a member may declare are data: the directory's
   `party_branch:<code>` documents (a department's 机关支部, kind `organ`, or `other`), added
   by `linli branch add`. Each grid has its grid branch, `grid-<grid code>` (`grid_branch`),
   never declared: a member belongs to it by where they live.
2. Declaring (`declaration_problems`, `declared`). A resident with an active household declares
   `{branch}` for themself only: the account is the logged-in one, and `account`, `status`,
   `public`, `created_by`... sent are refused by name; the branch is a declarable one (a grid
   branch, or a made-up code, is refused alike). A declaration waits (`pending`) for the
   branch's secretary; while pending it may name another branch; once rejected it may be
   made again; a confirmed membership is not declared over (the secretary changes it).
3. Confirming (`may_decide`, `decided`). The secretary (支部书记, role `secretary`) of the
   declared branch, or the city admin, confirms or rejects (with a reason) a pending
   declaration, or rejects a confirmed one (a member transferred away). Nobody decides their
   own; a secretary of another branch is told there is no such declaration, as for one that
   does not exist (no oracle of who is a member where).
4. Showing the identity (`public_problem`). A confirmed member may choose to show their party
   identity in the app (`public`, off by default); a membership not confirmed cannot show
   it, and a rejection turns it off.
5. Belonging (`branches_of`). A confirmed member belongs to their declared branch and to the
   grid branch of each grid they live in (their active households'); an unconfirmed one to
   none: tasks open to party members, or to a branch, take claims from confirmed members
   only (server/domain/volunteering.py `eligible`).
6. Reporting (`report_problem`). A confirmed member reports (报到) at the grid branch of where
   they live, once (`reported_at`, `reported_grid`); the branch views list who has not.
7. Branch views (`may_view`, `branch_view`). The branch's secretary, the city admin, and a
   supervisor whose scope holds the branch (a grid branch: its grid's community or street; a
   department branch: its street) see its members (confirmed and pending; a grid branch's are
   the confirmed members who live in its grid), the hours of each member and of each task
   (sums of the hours ledger, corrections included), the community projects the branch
   claimed this year (tasks of this year, China's, on which a confirmed member holds a
   place) with the rule "at least one a year" (`YEARLY_PROJECTS`) met or not, and the members
   who have not reported at their grid branch.
8. Letters (函告抄告, `letter_problems`, `may_write_letter`, `may_read_letters`). A supervisor
   whose scope holds the member's home (or the admin) writes a letter about a declared member:
   workplace and conduct as plain text and the supervisor's phone's key (a retry is the same
   letter). Append-only: never changed, never deleted (a correction is another letter). A
   letter belongs to the branch the member was confirmed in when it was written (`branch` on
   the letter, `letter_branch`; none while pending or rejected), never to the branch they
   declare later: a member cannot hand their record to another secretary by re-declaring.
   Read by supervisors of the member's home and the admin (every letter), and by a secretary
   only the letters of their own branch (`letter_readable`), the member's earlier branch
   included; residents, the member included, and other branches never see one, and are told
   there is none. Every write and read is logged (linli.audit).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain.rules import Problem
from server.domain.scope import Directory, User
from server.domain.text import text_problem, unknown_fields

BRANCH_CODE = re.compile(r"^[a-z0-9][a-z0-9_]{0,40}$")  # a declarable branch: no hyphen
GRID_BRANCH = "grid-"
KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
STATUSES = ("pending", "confirmed", "rejected")
YEARLY_PROJECTS = 1  # each department's branch claims at least one community project a year
CHINA = datetime.timezone(datetime.timedelta(hours=8))
SERVER_FIELDS = ("account", "created_by", "status", "public", "decided_by", "decided_at",
                 "declared_at", "reported_at", "reported_grid", "_id", "_rev", "type",
                 "schema_version", "member_of")
LETTER_SERVER_FIELDS = ("created_by", "written_at", "branch", "_id", "_rev", "type",
                        "schema_version")
LABELS: dict[str, tuple[str, str]] = {
    "branch": ("所在支部", "Branch"), "account": ("党员账号", "Member account"),
    "created_by": ("申报人", "Declared by"), "status": ("状态", "Status"),
    "public": ("公开党员身份", "Shows party identity"), "decided_by": ("确认人", "Decided by"),
    "decided_at": ("确认时间", "Decided at"), "declared_at": ("申报时间", "Declared at"),
    "reported_at": ("社区报到时间", "Reported at"), "reported_grid": ("报到网格", "Reported at"),
    "member": ("党员", "Member"), "confirm": ("确认", "Confirm"),
    "reason": ("未通过原因", "Reason"), "workplace": ("工作单位", "Workplace"),
    "conduct": ("情况说明", "Conduct"), "key": ("函告编号", "Letter number"),
    "written_at": ("函告时间", "Written at"), "member_of": ("网格支部", "Grid branch"),
    "_id": ("编号", "Id"), "_rev": ("版本", "Revision"), "type": ("类型", "Type"),
    "schema_version": ("版本号", "Schema version"),
}


def problem(field: str, code: str, zh: str, en: str) -> Problem:
    """A problem naming the field by its label, zh-CN first."""
    lz, le = LABELS.get(field, (field, field))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


def forged(body: Mapping[str, Any], names: Iterable[str]) -> list[Problem]:
    """The first field sent that only the server fills, refused by name."""
    sent = [k for k in names if k in body]
    return [problem(sent[0], "server_field", "由服务器填写，不能提交",
                    "is filled in by the server and cannot be sent")] if sent else []


# -- branches (rule 1) -------------------------------------------------------------------------

def grid_branch(grid: str) -> str:
    return f"{GRID_BRANCH}{grid}"


def grid_of_branch(branch: str) -> str | None:
    return branch[len(GRID_BRANCH):] if branch.startswith(GRID_BRANCH) else None


def branch_known(branch: Any, directory: Directory) -> bool:
    """A branch of the directory, or the grid branch of a known grid."""
    if not isinstance(branch, str):
        return False
    grid = grid_of_branch(branch)
    return grid in directory.grids if grid is not None else branch in directory.branches


def branch_name(branch: str, directory: Directory) -> str:
    grid = grid_of_branch(branch)
    if grid is not None:
        known = directory.grids.get(grid)
        return f"{known.name if known else grid}网格支部"
    held = directory.branches.get(branch)
    return held.name if held else branch


# -- declaring, confirming, showing (rules 2-4) ----------------------------------------------

def declaration_problems(body: Mapping[str, Any], directory: Directory) -> list[Problem]:
    """Rule 2: `{branch}` and nothing else; a declarable branch."""
    found = forged(body, SERVER_FIELDS)
    if found:
        return found
    found = unknown_fields(body, frozenset({"branch"}))
    branch = body.get("branch")
    if not isinstance(branch, str) or not BRANCH_CODE.match(branch) or (
            branch not in directory.branches):
        found.append(problem("branch", "branch", "应从支部列表中选择",
                             "must be chosen from the list of branches"))
    return found


def declared(held: Mapping[str, Any] | None, account: str, branch: str,
             now: datetime.datetime) -> tuple[dict[str, Any] | None, Problem | None]:
    """Rule 2: the membership after `account` declares `branch` (None: as held, a repeat),
    or why not."""
    if held is not None and held.get("status") == "confirmed":
        return None, problem("status", "confirmed", "：已确认，变更支部请联系支部书记",
                             "is confirmed: ask your branch secretary to change the branch")
    if held is not None and held.get("status") == "pending" and held.get("branch") == branch:
        return None, None
    doc: dict[str, Any] = {
        "_id": member_id(account), "type": "party_member", "schema_version": 1,
        "created_by": account, "account": account, "branch": branch, "status": "pending",
        "declared_at": now.isoformat(timespec="seconds"), "public": False}
    if held is not None and "_rev" in held:
        doc["_rev"] = held["_rev"]
    return doc, None


def member_id(account: str) -> str:
    return f"party_member:{account}"


def decision_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rule 3's body: `{member, confirm, reason?}`; a reason to reject."""
    found = forged(body, ("created_by", "decided_by", "decided_at", "status", "branch"))
    if found:
        return found
    found = unknown_fields(body, frozenset({"member", "confirm", "reason"}))
    if not isinstance(body.get("member"), str) or not ACCOUNT.match(body["member"]):
        found.append(problem("member", "member", "应为党员的账号", "must be a member's account"))
    if not isinstance(body.get("confirm"), bool):
        found.append(problem("confirm", "boolean", "应为是或否", "must be yes or no"))
    elif body["confirm"] is False or "reason" in body:
        bad = text_problem(body.get("reason"), "/reason", LABELS["reason"], max_chars=200)
        if bad is not None:
            found.append(bad)
    return found


def may_decide(user: User, member: Mapping[str, Any]) -> bool:
    """Rule 3's who: the declared branch's secretary, or the admin; never for oneself."""
    if user.disabled or user.name == member.get("account"):
        return False
    return user.is_admin or (user.role == "secretary" and member.get("branch") in user.branches)


def decided(held: Mapping[str, Any], user: User, confirm: bool, reason: str | None,
            now: datetime.datetime) -> tuple[dict[str, Any] | None, Problem | None]:
    """Rule 3's what: pending -> confirmed or rejected; confirmed -> rejected (identity then
    hidden). Deciding as it stands already is a repeat (None, None)."""
    status = held.get("status")
    wanted = "confirmed" if confirm else "rejected"
    if status == wanted:
        return None, None
    if status == "rejected" or (status == "confirmed" and confirm):
        return None, problem("status", "decided", "：已处理，不能再次确认",
                             "was decided already")
    doc = {**held, "status": wanted, "decided_by": user.name,
           "decided_at": now.isoformat(timespec="seconds")}
    if confirm:
        doc.pop("reason", None)
    else:
        doc["reason"], doc["public"] = str(reason or "").strip(), False
    return doc, None


def public_problem(body: Mapping[str, Any], held: Mapping[str, Any] | None) -> Problem | None:
    """Rule 4: `{public: bool}`; only a confirmed member shows the identity."""
    if set(body) != {"public"} or not isinstance(body.get("public"), bool):
        return problem("public", "boolean", "应为是或否（仅此一项）", "must be yes or no (alone)")
    if body["public"] and (held is None or held.get("status") != "confirmed"):
        return problem("status", "not_confirmed", "：支部书记确认后才能公开党员身份",
                       "must be confirmed by the branch secretary before the identity shows")
    return None


def shows_identity(member: Mapping[str, Any] | None) -> bool:
    """Rule 4: shown only when confirmed and chosen."""
    return bool(member) and member.get("status") == "confirmed" and member.get("public") is True


# -- belonging and reporting (rules 5, 6) ----------------------------------------------------

def branches_of(member: Mapping[str, Any] | None, home_grids: Iterable[str]) -> frozenset[str]:
    """Rule 5: a confirmed member's declared branch and the grid branches of their homes."""
    if member is None or member.get("status") != "confirmed":
        return frozenset()
    return frozenset({str(member.get("branch"))} | {grid_branch(g) for g in home_grids})


def report_problem(member: Mapping[str, Any] | None, home_grids: list[str]) -> Problem | None:
    """Rule 6: a confirmed member with a home reports; once (a repeat answers the first)."""
    if member is None or member.get("status") != "confirmed":
        return problem("status", "not_confirmed", "：支部书记确认后才能到社区报到",
                       "must be confirmed by the branch secretary before reporting")
    if not home_grids:
        return problem("reported_grid", "no_home", "：请先激活您的住户",
                       "needs an active household: activate yours first")
    return None


# -- who sees a branch, and what (rule 7) ----------------------------------------------------

def community_in_scope(user: User, community: str, directory: Directory) -> bool:
    """A supervisor's scope holds `community` (theirs, or one of their streets'); the admin's
    every known one."""
    if user.disabled or user.role not in ("supervisor", "admin"):
        return False
    known = [g for g in directory.grids.values() if g.community == community]
    if user.is_admin:
        return bool(known)
    return community in user.communities or any(g.street in user.streets for g in known)


def may_view(user: User, branch: str, directory: Directory) -> bool:
    """Rule 7's who: the branch's secretary, the admin, a supervisor whose scope holds it."""
    if user.disabled or not branch_known(branch, directory):
        return False
    if user.is_admin or (user.role == "secretary" and branch in user.branches):
        return True
    if user.role != "supervisor":
        return False
    grid = grid_of_branch(branch)
    if grid is not None:
        return directory.reaches(user, grid)
    street = directory.branches[branch].street
    return bool(street) and (street in user.streets or any(
        g.street == street and g.community in user.communities
        for g in directory.grids.values()))


@dataclasses.dataclass(frozen=True)
class Task:
    """A task as a branch view reads it: its title, start, and who holds which place."""

    id: str
    title: str
    starts_at: str
    statuses: Mapping[str, str]


def task_of(source: str) -> str:
    """The task an hours entry came from (a correction's source is `<task>.fix.<n>`)."""
    return source.split(".fix.", 1)[0]


def year_of(when: str) -> int | None:
    try:
        parsed = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(CHINA).year if parsed.tzinfo else None


def branch_view(branch: str, members: Iterable[Mapping[str, Any]],
                hours: Iterable[Mapping[str, Any]], tasks: Iterable[Task],
                now: datetime.datetime) -> dict[str, Any]:
    """Rule 7's what, from the branch's memberships, the hours entries of its members (the
    ledger's, corrections included) and the tasks with their place holders."""
    listed = sorted(members, key=lambda m: (str(m.get("status")), str(m.get("account"))))
    confirmed = {str(m["account"]) for m in listed if m.get("status") == "confirmed"}
    reported = {str(m["account"]) for m in listed if m.get("reported_at")}
    by_member: dict[str, int] = dict.fromkeys(sorted(confirmed), 0)
    by_task: dict[str, int] = {}
    for entry in hours:
        account = str(entry.get("account"))
        if entry.get("kind") != "hours" or account not in confirmed:
            continue
        amount = int(entry.get("amount") or 0)
        by_member[account] = by_member.get(account, 0) + amount
        task = task_of(str(entry.get("source", "")))
        by_task[task] = by_task.get(task, 0) + amount
    year = now.astimezone(CHINA).year
    titles: dict[str, str] = {}
    projects = []
    for task in tasks:
        titles[task.id] = task.title
        holders = sorted(a for a, s in task.statuses.items() if s == "confirmed" and a in confirmed)
        if holders and year_of(task.starts_at) == year:
            projects.append({"task": task.id, "title": task.title, "starts_at": task.starts_at,
                             "members": holders})
    return {
        "branch": branch, "year": year,
        "members": [{"account": m.get("account"), "status": m.get("status"),
                     "declared_at": m.get("declared_at"), "reported": bool(m.get("reported_at")),
                     "public": shows_identity(m)} for m in listed],
        "counts": {s: sum(1 for m in listed if m.get("status") == s) for s in STATUSES},
        "hours_by_member": [{"account": a, "minutes": n} for a, n in sorted(by_member.items())],
        "hours_by_task": [{"task": t, "title": titles.get(t, ""), "minutes": n}
                          for t, n in sorted(by_task.items())],
        "projects": projects, "projects_needed": YEARLY_PROJECTS,
        "projects_met": len(projects) >= YEARLY_PROJECTS,
        "not_reported": sorted(confirmed - reported),
    }


# -- letters (rule 8) --------------------------------------------------------------------------

def letter_problems(body: Mapping[str, Any]) -> list[Problem]:
    """Rule 8: `{member, workplace, conduct, key}` as plain text; the rest is the server's."""
    found = forged(body, LETTER_SERVER_FIELDS)
    if found:
        return found
    found = unknown_fields(body, frozenset({"member", "workplace", "conduct", "key"}))
    if not isinstance(body.get("member"), str) or not ACCOUNT.match(body["member"]):
        found.append(problem("member", "member", "应为党员的账号", "must be a member's account"))
    for name, most, paragraphs in (("workplace", 120, False), ("conduct", 2000, True)):
        bad = text_problem(body.get(name), f"/{name}", LABELS[name], max_chars=most,
                           paragraphs=paragraphs)
        if bad is not None:
            found.append(bad)
    if not isinstance(body.get("key"), str) or not KEY.match(body["key"]):
        found.append(problem("key", "key", "应为 8 到 64 位字母、数字、- 或 _",
                             "must be 8 to 64 letters, digits, - or _"))
    return found


def may_write_letter(user: User, member_communities: Iterable[str],
                     directory: Directory) -> bool:
    """Rule 8's writer: a supervisor whose scope holds the member's home, or the admin."""
    return user.role in ("supervisor", "admin") and any(
        community_in_scope(user, c, directory) for c in member_communities)


def letter_branch(member: Mapping[str, Any]) -> str | None:
    """Rule 8: the branch a letter written now belongs to: the confirmed one, else none."""
    return str(member["branch"]) if member.get("status") == "confirmed" else None


def letter_readable(user: User, letter: Mapping[str, Any]) -> bool:
    """Rule 8: a secretary reads only the letters that belong to their branch."""
    return user.role != "secretary" or letter.get("branch") in user.branches


def may_read_letters(user: User, member: Mapping[str, Any], member_communities: Iterable[str],
                     directory: Directory, letters: Iterable[Mapping[str, Any]] = ()) -> bool:
    """Rule 8's readers: the writers; a secretary of the member's declared branch, or of the
    branch one of the member's letters belongs to (they are shown only those)."""
    if user.disabled:
        return False
    if user.role == "secretary":
        return member.get("branch") in user.branches or any(
            letter_readable(user, d) for d in letters)
    return may_write_letter(user, member_communities, directory)


def letter_doc(body: Mapping[str, Any], member: Mapping[str, Any], author: str,
               letter_id: str, now: datetime.datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": letter_id, "type": "party_letter", "schema_version": 1,
                           "created_by": author, "member": body["member"],
                           "workplace": str(body["workplace"]).strip(),
                           "conduct": str(body["conduct"]).strip(),
                           "written_at": now.isoformat(timespec="seconds"), "key": body["key"]}
    branch = letter_branch(member)
    if branch is not None:
        doc["branch"] = branch
    return doc
