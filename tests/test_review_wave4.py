"""Wave-4 review probes (attacker's view) of fees, mutual aid, the PIPL work and the handler's
queue: each test is one class of hostile input that once crashed, leaked or revealed, kept
so that it stays fixed (/work/review-wave4.md has the write-up)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from conftest import City, basic
from test_mutual_aid import PREFIX
from test_volunteering import ready_town


async def test_listing_pages_refuse_a_limit_that_is_no_ascii_number(client: TestClient,
                                                                     city: City) -> None:
    town = await ready_town(client, city)
    for limit in ("%C2%B2", "%D9%A3", "1" * 5000, "-1", "0", "51", "1.5", ""):
        resp = await client.get(f"{PREFIX}/listings?limit={limit}", headers=basic(town.ra))
        assert resp.status == 400, (limit, resp.status, await resp.text())
        answer = await resp.json()
        assert set(answer) == {"error", "reason"} and "条数" in answer["reason"], answer
