"""Issue 23, item 7: production mode refuses to run without TLS in front, and marks every
session cookie Secure, whatever a request says of its scheme (docs/privacy.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from conftest import PASSWORD, City, wait_for_user

from server.config import Config, ConfigError
from server.web.app import create_app


@pytest.mark.parametrize(("values", "words"), [
    ({"production": True}, "TRUST_PROXY"),
    ({"production": True, "trust_proxy": True, "demo": True}, "demo"),
])
def test_production_refuses_to_start_without_tls_or_with_the_demo(
        values: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Config.from_mapping(values)
    with pytest.raises(ConfigError, match=words):
        Config.from_env(environ={f"LINLI_{k.upper()}": str(v).lower() for k, v in values.items()})
    assert Config.from_mapping({**values, "production": False}).production is False


async def test_production_cookies_are_always_secure(aiohttp_client: Any, config: Config,
                                                    city: City) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, production=True, trust_proxy=True)))
    worker = await city.user("worker", grids=[await city.grid()])
    await wait_for_user(client, worker)
    for headers in ({}, {"X-Forwarded-Proto": "http"}, {"X-Forwarded-Proto": "https"}):
        resp = await client.post("/couch/_session", json={"name": worker, "password": PASSWORD},
                                 headers=headers)
        assert resp.status == 200
        cookie = resp.headers["Set-Cookie"]
        assert "AuthSession=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
