"""Issue 22, item 7: a user's figures open on the level of their scope (server/domain/scope.py
home_area, given by /api/me as `home`): a community's supervisor on the community, not on the
city (全市); a street's on the street; an admin on the city."""

from __future__ import annotations

from typing import Any

from conftest import City, basic, wait_for_user

from server.domain.scope import Grid, User, home_area

COMMUNITY, OTHER_COMMUNITY = "339997001001", "339997001002"
STREET = "339997001"


def user(role: str, **scope: Any) -> User:
    return User(name="u", role=role, **{k: frozenset(v) for k, v in scope.items()})


def test_the_smallest_area_that_holds_the_whole_scope() -> None:
    grid = Grid.from_doc({"code": "ga", "name": "A", "community": COMMUNITY, "street": STREET})
    other = Grid.from_doc({"code": "gb", "name": "B", "community": OTHER_COMMUNITY,
                           "street": STREET})
    assert home_area(user("admin")) == ("city", "")
    assert home_area(user("supervisor", communities=[COMMUNITY])) == ("community", COMMUNITY)
    assert home_area(user("supervisor", streets=[STREET])) == ("street", STREET)
    assert home_area(user("supervisor", communities=[COMMUNITY, OTHER_COMMUNITY])) == (
        "street", STREET)
    assert home_area(user("supervisor", communities=[COMMUNITY, "339997002001"])) == (
        "district", "339997")
    assert home_area(user("supervisor", communities=[COMMUNITY, "440000001001"])) == ("city", "")
    assert home_area(user("worker", grids=["ga"]), [grid]) == ("grid", "ga")
    assert home_area(user("worker", grids=["ga", "gb"]), [grid, other]) == ("street", STREET)


async def test_me_says_where_the_figures_open(client: Any, city: City) -> None:
    await city.grid(community=COMMUNITY, street=STREET)
    supervisor = await city.user("supervisor", communities=[COMMUNITY])
    admin = await city.user("admin")
    for name in (supervisor, admin):
        await wait_for_user(client, name)
    me = await (await client.get("/api/me", headers=basic(supervisor))).json()
    assert me["home"] == {"level": "community", "code": COMMUNITY}
    me = await (await client.get("/api/me", headers=basic(admin))).json()
    assert me["home"] == {"level": "city", "code": ""}
