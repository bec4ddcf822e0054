"""Mediation (老娘舅调解, issue 20) on the real app and store: a case is seen by its circle
only (its mediator, its parties, the community's supervisors with the right) and answers to
everyone else exactly as a case that does not exist, on every route; every read of the circle
is an entry of the audit; the workflow goes forward only, each act once whatever the retries
and races; the paper signature's photo is stored without its EXIF; bad input of every class
is refused by label and stores nothing; the figures hold counts only."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic, wait_for_user
from PIL import Image
from test_notices import Town
from test_reports import b64, jpeg
from test_volunteering import ready_town

from server.domain.scope import AUDIT_DB, DIRECTORY_DB, MEDIATION_DB

P = "/api/mediation"
COMPANY = "91330602MA2BCDEF1X"
MADE_UP = "mediation_case:0123456789abcdef"


async def call(client: TestClient, user: str | None, method: str, path: str,
               body: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body, headers=basic(user) if user else {})
    text = await resp.text()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, text


class Circle:
    """A town with a mediator of c1, a supervisor of c1 with the right, one without, a
    mediator of c1 not on the case, and a property company with its staff."""

    def __init__(self, town: Town, mediator: str, overseer: str, other_mediator: str,
                 company_staff: str, other_company: str) -> None:
        self.town, self.mediator, self.overseer = town, mediator, overseer
        self.other_mediator, self.company_staff = other_mediator, company_staff
        self.other_company = other_company


async def a_circle(client: TestClient, city: City) -> Circle:
    town = await ready_town(client, city)

    def company() -> None:
        directory = city.couch[DIRECTORY_DB]
        if f"property_company:{COMPANY}" not in directory:
            directory.save({"_id": f"property_company:{COMPANY}", "type": "property_company",
                            "schema_version": 1, "code": COMPANY, "name": "越城物业"})
    await city.run(company)
    circle = Circle(
        town, await city.user("worker", grids=[town.g1], rights=["mediate"],
                              full_name="老娘舅陈"),
        await city.user("supervisor", communities=[town.c1], rights=["mediation"]),
        await city.user("worker", grids=[town.g2], rights=["mediate"]),
        await city.user("property", companies=[f"property_company:{COMPANY}"]),
        await city.user("property", companies=["property_company:91330602MA2BCDEF2X"]))
    for user in (circle.mediator, circle.overseer, circle.other_mediator,
                 circle.company_staff, circle.other_company, town.street_sup, town.worker3):
        await wait_for_user(client, user)
    return circle


def opening(c: Circle, n: int = 1, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "property", "matter": "物业多收了停车费，协商未果",
                            "community": c.town.c1, "mediator": c.mediator,
                            "parties": [{"resident": c.town.ra, "name": "王伟"},
                                        {"company": COMPANY}],
                            "request": f"case-{n:06d}"}
    body.update(changes)
    return body


async def cases(city: City) -> list[str]:
    return await city.run(lambda: [i for i in city.couch[MEDIATION_DB]
                                   if i.startswith("mediation_case:")]
                          if MEDIATION_DB in city.couch else [])


async def audited(city: City, case: str) -> list[dict[str, Any]]:
    def entries() -> list[dict[str, Any]]:
        db = city.couch[AUDIT_DB]
        return [r.doc for r in db.view("_all_docs", include_docs=True)
                if r.doc.get("kind") == "mediation" and r.doc.get("record") == case]
    return await city.run(entries)


async def a_case(client: TestClient, c: Circle, n: int = 1) -> str:
    got, answer = await call(client, c.overseer, "POST", f"{P}/cases", opening(c, n))
    assert got == 201, answer
    return str(answer["case"]["id"])


async def act(client: TestClient, user: str, case: str, what: str, n: int,
              **more: Any) -> tuple[int, Any]:
    return await call(client, user, "POST", f"{P}/cases/{case}/acts",
                      {"act": what, "request": f"{what[:4]}-{n:06d}", **more})


async def test_bad_cases_are_refused_by_label_and_store_nothing(client: TestClient,
                                                                 city: City) -> None:
    c = await a_circle(client, city)
    t = c.town
    before = await cases(city)
    bad: list[tuple[Any, str]] = [
        (opening(c, state="closed"), "“状态”由服务器填写"),
        (opening(c, created_by=t.ra), "“受理人”由服务器填写"),
        (opening(c, signatures={"p1": {}}), "“签署”由服务器填写"),
        (opening(c, extra=1), "不允许的字段"), (opening(c, **{"a\ud800": 1}), "不允许的字段"),
        (opening(c, kind="war"), "纠纷类别"), (opening(c, kind=["property"]), "纠纷类别"),
        (opening(c, matter=""), "纠纷事由"), (opening(c, matter="吵" * 501), "纠纷事由"),
        (opening(c, matter="a\ud800b"), "纠纷事由"), (opening(c, matter="a\u202eb"), "纠纷事由"),
        (opening(c, matter={"a": {"b": [1]}}), "纠纷事由"),
        (opening(c, community="../x"), "社区"), (opening(c, mediator=7), "调解员"),
        (opening(c, request="short"), "请求编号"), (opening(c, request="../../etc/x"), "请求编号"),
        (opening(c, parties=[{"resident": t.ra}]), "当事人"),
        (opening(c, parties="ra,rb"), "当事人"),
        (opening(c, parties=[{"resident": t.ra}, {"resident": t.ra}]), "重复"),
        (opening(c, parties=[{"resident": t.ra}, {"resident": t.ra, "company": COMPANY}]),
         "当事人"), (opening(c, parties=[{"resident": t.ra, "name": "王\u202e伟"},
                                        {"company": COMPANY}]), "当事人"),
        (opening(c, parties=[{"resident": t.ra}, {"company": COMPANY, "name": "x"}]), "当事人"),
        (opening(c, parties=[{"resident": t.ra}, {"resident": t.rc}]), "不是本社区登记的居民"),
        (opening(c, parties=[{"resident": t.ra}, {"resident": "nobody0here"}]),
         "不是本社区登记的居民"),
        (opening(c, parties=[{"resident": t.ra}, {"resident": t.worker1}]),
         "不是本社区登记的居民"),
        (opening(c, parties=[{"resident": t.ra}, {"company": "91330602MA2BCDEF9X"}]),
         "不是登记的物业公司"),
        (opening(c, mediator=t.worker1), "不是本社区的调解员"),  # no right
        (opening(c, mediator=c.overseer), "不是本社区的调解员"),  # oversees, mediates not
        (opening(c, mediator="nobody0here"), "不是本社区的调解员"),
    ]
    for body, words in bad:
        got, answer = await call(client, c.overseer, "POST", f"{P}/cases", body)
        assert got == 400 and words in answer["reason"] and " / " in answer["reason"], (
            body, answer)
        assert "/" + "parties" not in answer["reason"].split(" / ")[0]  # a label, no pointer
    # Not one who may open a case: residents, companies, a supervisor without the right or of
    # another place, a mediator naming someone else, the admin.
    for user, status in ((t.ra, 403), (c.company_staff, 403), (t.sup1, 403),
                         (t.street_sup, 403), (c.other_mediator, 403), (t.admin, 403)):
        got, answer = await call(client, user, "POST", f"{P}/cases", opening(c))
        assert got == status and set(answer) == {"error", "reason"}, (user, answer)
    got, _ = await call(client, None, "POST", f"{P}/cases", opening(c))
    assert got == 401
    assert await cases(city) == before


async def test_outside_the_circle_a_case_is_a_case_that_does_not_exist(client: TestClient,
                                                                        city: City) -> None:
    c = await a_circle(client, city)
    t = c.town
    case = await a_case(client, c)
    assert (await act(client, c.mediator, case, "session", 1, note="双方到场"))[0] == 201
    assert (await act(client, c.mediator, case, "agreement", 1, text="退还多收的停车费"))[0] == 201
    got, answer = await act(client, c.mediator, case, "paper", 1, party="p2",
                            photo=b64(jpeg()))
    assert got == 201, answer
    name = answer["case"]["parties"][1]["signed"]["photo"]
    outsiders = (t.rb, t.rc, t.worker1, t.worker3, t.sup1, t.street_sup, t.admin,
                 c.other_mediator, c.other_company)
    routes = [("GET", f"{P}/cases/{{}}", None),
              ("POST", f"{P}/cases/{{}}/acts", {"act": "sign", "request": "sign-000001"}),
              ("POST", f"{P}/cases/{{}}/acts", {"act": "session", "request": "sess-000009",
                                                "note": "偷看"}),
              ("POST", f"{P}/cases/{{}}/acts", {"act": "bogus", "state": "closed"}),
              ("GET", f"{P}/cases/{{}}/photos/{name}", None),
              ("GET", f"{P}/cases/{{}}?unmask=1", None)]
    audit_before = len(await audited(city, case))
    for user in outsiders:
        for method, path, body in routes:
            mine = await call(client, user, method, path.format(case), body)
            made_up = await call(client, user, method, path.format(MADE_UP), body)
            assert mine == made_up and mine[0] == (400 if "?" in path else 404), (
                user, path, mine, made_up)
        got, listed = await call(client, user, "GET", f"{P}/cases")
        assert got == 200 and listed == {"cases": []}, (user, listed)
    # No /couch/ route reaches the cases' database, not even the admin's.
    for user in (t.admin, t.ra, c.mediator):
        for path in (f"/couch/{MEDIATION_DB}/_all_docs", f"/couch/{MEDIATION_DB}/{case}"):
            got, answer = await call(client, user, "GET", path)
            assert got in (403, 404) and "matter" not in json.dumps(answer), (user, path)
    assert len(await audited(city, case)) == audit_before  # outsiders read nothing
    # The circle reads it, and each read is an entry of the audit: who, which case, what part.
    for user, part in ((c.mediator, "mediator"), (t.ra, "party"), (c.company_staff, "party"),
                       (c.overseer, "supervisor")):
        got, answer = await call(client, user, "GET", f"{P}/cases/{case}")
        assert got == 200 and answer["case"]["part"] == part, answer
        shown = json.dumps(answer, ensure_ascii=False)
        assert t.ra not in shown and c.mediator not in shown and COMPANY not in shown
        assert answer["case"]["mediator"] == "老娘舅陈"
        assert [p["name"] for p in answer["case"]["parties"]] == ["王伟", "越城物业"]
        got, listed = await call(client, user, "GET", f"{P}/cases")
        assert [x["id"] for x in listed["cases"]] == [case]
        assert "matter" not in listed["cases"][0]
        resp = await client.get(f"{P}/cases/{case}/photos/{name}", headers=basic(user))
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        clean = await resp.read()
        assert b"WHERE-I-LIVE" not in clean and not Image.open(io.BytesIO(clean)).getexif()
    entries = await audited(city, case)
    assert len(entries) == audit_before + 12
    by_user = {(e["user"], e["reason"]) for e in entries}
    assert {(c.mediator, "mediation_mediator"), (t.ra, "mediation_party"),
            (c.company_staff, "mediation_party"), (c.overseer, "mediation_supervisor")} <= by_user
    assert all("退还" not in json.dumps(e, ensure_ascii=False) for e in entries)
    # The admin's audit lists them (the reveals' list), naming the case, not its content.
    got, listed = await call(client, t.admin, "GET", f"/api/audit?kind=mediation&record={case}")
    assert got == 200 and listed["total"] >= 12
    # A mediator who loses the right leaves the circle.
    await city.run(lambda: _revoke(city, c.mediator))
    await wait_for_rights(client, c.mediator)
    got, answer = await call(client, c.mediator, "GET", f"{P}/cases/{case}")
    assert got == 404


def _revoke(city: City, name: str) -> None:
    db = city.couch[DIRECTORY_DB]
    doc = db[f"user:{name}"]
    doc["rights"] = []
    db.save(doc)


async def wait_for_rights(client: TestClient, name: str) -> None:
    from server.web.keys import DIRECTORY
    for _ in range(200):
        user = client.app[DIRECTORY].users.get(name)
        if user is not None and not user.rights:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the directory never took the change")


async def test_the_workflow_goes_forward_once_per_act(client: TestClient, city: City) -> None:
    c = await a_circle(client, city)
    t = c.town
    case = await a_case(client, c, 2)
    # The same opening again is the same case.
    got, again = await call(client, c.overseer, "POST", f"{P}/cases", opening(c, 2))
    assert got == 200 and again["repeated"] is True and again["case"]["id"] == case
    # Nothing to sign yet; a party cannot record a session; the mediator cannot sign for one.
    assert (await act(client, t.ra, case, "sign", 1))[0] == 409
    assert (await act(client, t.ra, case, "session", 1, note="我来记"))[0] == 403
    assert (await act(client, c.overseer, case, "close", 1))[0] == 403
    assert (await act(client, c.mediator, case, "follow_up", 1, note="回访"))[0] == 409
    # Bad acts by label, nothing applied.
    for body, words in (({"act": "session", "request": "sess-000001"}, "记录内容"),
                        ({"act": "session", "request": "x", "note": "记录"}, "请求编号"),
                        ({"act": "session", "request": "sess-000001", "note": "记录",
                          "state": "closed"}, "“状态”由服务器填写"),
                        ({"act": "session", "request": "sess-000001", "note": "记录",
                          "text": "协议"}, "不属于这项办理事项"),
                        ({"act": "nap", "request": "sess-000001"}, "办理事项"),
                        ({"act": "paper", "request": "pape-000001", "party": "p1"},
                         "签字照片")):
        got, answer = await call(client, c.mediator, "POST", f"{P}/cases/{case}/acts", body)
        assert got == 400 and words in answer["reason"], (body, answer)
    # Ten sessions sent at once, each twice: each recorded once, in some order.
    sent = [act(client, c.mediator, case, "session", n % 10, note=f"第{n % 10}次调解")
            for n in range(20)]
    answers = await asyncio.gather(*sent)
    assert sorted(s for s, _ in answers) == [200] * 10 + [201] * 10, answers
    got, answer = await call(client, c.mediator, "GET", f"{P}/cases/{case}")
    assert [a["act"] for a in answer["case"]["acts"]] == ["session"] * 10
    assert answer["case"]["state"] == "mediating"
    assert (await act(client, c.mediator, case, "agreement", 1, text="物业退还停车费"))[0] == 201
    assert (await act(client, c.mediator, case, "agreement", 2, text="改一改"))[0] == 409
    got, answer = await act(client, t.ra, case, "sign", 1)
    assert got == 201 and answer["case"]["state"] == "mediating"
    assert (await act(client, t.ra, case, "sign", 2))[0] == 409  # signed already
    assert (await act(client, c.mediator, case, "paper", 1, party="p1",
                      photo=b64(jpeg())))[0] == 409
    # A paper photo over the limit, or not an image, is refused by the reports' photo check.
    for photo in ({"data": base64.b64encode(b"%PDF-1.4 not a photo").decode()},
                  {"data": "!!!"}, {"data": base64.b64encode(b"\xff" * 3_000_000).decode()}):
        got, answer = await act(client, c.mediator, case, "paper", 3, party="p2", photo=photo)
        assert got in (400, 413) and set(answer) == {"error", "reason"}, answer
    got, answer = await call(client, c.company_staff, "POST", f"{P}/cases/{case}/acts",
                             {"act": "sign", "request": "sign-company1"})
    assert got == 201 and answer["case"]["state"] == "agreed", answer
    assert [p["signed"]["how"] for p in answer["case"]["parties"]] == ["app", "app"]
    assert (await act(client, c.mediator, case, "session", 99, note="再谈"))[0] == 409
    assert (await act(client, c.mediator, case, "follow_up", 1, note="已退还"))[0] == 201
    got, answer = await act(client, c.mediator, case, "close", 1)
    assert got == 201 and answer["case"]["state"] == "closed" and answer["case"]["moves"] == []
    for what in ("session", "follow_up", "fail"):
        assert (await act(client, c.mediator, case, what, 50, note="再来"))[0] == 409
    # A replay of an act made long ago is still that act, not a new one.
    got, answer = await act(client, c.mediator, case, "follow_up", 1, note="已退还")
    assert got == 200 and answer["repeated"] is True
    doc = await city.run(lambda: city.couch[MEDIATION_DB][case])
    assert [a["act"] for a in doc["acts"]].count("follow_up") == 1


async def test_the_figures_count_without_details(client: TestClient, city: City) -> None:
    c = await a_circle(client, city)
    t = c.town
    for n in range(6):
        case = await a_case(client, c, 100 + n)
        if n < 5:
            assert (await act(client, c.mediator, case, "fail", n, note="一方不愿调解"))[0] == 201
    got, _ = await call(client, t.ra, "GET", f"{P}/figures")
    assert got == 403
    got, found = await call(client, t.sup1, "GET", f"{P}/figures")
    assert got == 200, found
    mine = next(a for a in found["communities"] if a["code"] == t.c1)
    assert (mine["cases"], mine["by_kind"]["property"]) == (6, 6)
    assert mine["days_median"] is not None  # five settled: a median of five is shown
    # One case still open: withheld, and the failed five with it (6 - 5 would give it back),
    # and the settled five and their days (failed = settled - agreed = the days' sum).
    assert mine["by_outcome"] == {"agreed": 0, "failed": None, "open": None}
    assert mine["settled"] is None and mine["by_days"]["le7"] is None
    shown = json.dumps(found, ensure_ascii=False)
    assert "停车费" not in shown and t.ra not in shown and c.mediator not in shown
    # A street supervisor's view of the street withholds at least as much of the community.
    got, street = await call(client, t.street_sup, "GET", f"{P}/figures")
    assert set(mine["withheld"]) <= set(next(
        a for a in street["communities"] if a["code"] == t.c1)["withheld"])
    assert street["total"]["by_outcome"]["open"] is None


async def test_a_list_reads_only_the_cases_of_its_readers_circles(client: TestClient,
                                                                   city: City) -> None:
    """The list reads the cases through the index of cases by circle: a case outside every
    circle of the reader is neither listed nor read. The outsider case here is one the rules
    could not even read (its parties are not a list): had the list read it, the list would
    fail; and no entry of the audit names it."""
    c = await a_circle(client, city)
    t = c.town
    case = await a_case(client, c, 7)
    stray = "mediation_case:ffffffffffff0007"

    def put_stray() -> None:
        db = city.couch[MEDIATION_DB]
        db.save({"_id": stray, "type": "mediation_case", "schema_version": 1,
                 "community": "x-nowhere", "mediator": "x-nobody", "parties": 7,
                 "kind": "other", "matter": "不该被读到", "state": "open",
                 "opened_at": "2026-01-01T00:00:00+00:00", "acts": []})

    def drop_stray() -> None:
        db = city.couch[MEDIATION_DB]
        db.delete(db[stray])

    await city.run(put_stray)
    try:
        for user in (c.mediator, t.ra, c.company_staff, c.overseer):
            got, listed = await call(client, user, "GET", f"{P}/cases")
            assert got == 200, (user, listed)
            ids = [x["id"] for x in listed["cases"]]
            assert case in ids and stray not in ids, (user, ids)
        for user in (t.rb, t.worker1, t.sup1, t.street_sup, t.admin, c.other_mediator,
                     c.other_company):
            got, listed = await call(client, user, "GET", f"{P}/cases")
            assert (got, listed) == (200, {"cases": []}), (user, listed)
        assert await audited(city, stray) == []
        # The case of the circle was read, once per reader's list.
        reads = [e for e in await audited(city, case) if "list" in json.dumps(e)]
        assert len(reads) == 4, reads
    finally:
        await city.run(drop_stray)
