"""The PWA's shell at /app/ (server/web/shell.py): compressed, revalidated by ETag, the service
worker stamped with the release and the file list, nothing outside pwa/ reachable."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.web.app import PWA_DIR
from server.web.shell import Shell


async def test_the_shell_is_compressed_and_revalidated(client: Any) -> None:
    resp = await client.get("/app/", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
    etag = resp.headers["ETag"]
    assert etag.endswith('-gz"') and "<!doctype html>" in await resp.text()
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    again = await client.get("/app/", headers={"Accept-Encoding": "gzip",
                                               "If-None-Match": f'W/{etag}, "other"'})
    assert again.status == 304
    plain = await client.get("/app/", headers={"Accept-Encoding": "identity"})
    assert plain.headers["ETag"] != etag and "Content-Encoding" not in plain.headers


async def test_the_service_worker_knows_its_release_and_files(client: Any) -> None:
    resp = await client.get("/app/sw.js")
    text = await resp.text()
    assert "__LINLI" not in text and resp.headers["Content-Type"].startswith("text/javascript")
    shell = json.loads(text.split("const SHELL = ", 1)[1].split(";", 1)[0])
    assert "./" in shell and "schemas.json" in shell and "index.html" not in shell
    assert "vendor/pouchdb-9.0.0.min.js" in shell and "sw.js" not in shell
    # What scripts/setup generated from schemas/ is cached too: the phone checks records offline.
    assert {"generated/validators.js", "generated/rules.js", "validate.js"} <= set(shell)
    for name in shell:
        assert (await client.get(f"/app/{name}")).status == 200, name
    schemas = await (await client.get("/app/schemas.json")).json()
    assert {"household", "person", "resolution"} <= set(schemas["types"])


async def test_nothing_outside_the_shell_is_served(client: Any) -> None:
    for path in ("/app/../server/web/app.py", "/app/%2e%2e/server/web/app.py", "/app/.hidden",
                 "/app/nothing.js"):
        assert (await client.get(path)).status == 404, path
    assert (PWA_DIR / "index.html").exists()
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/app/"


def test_an_app_without_its_generated_checks_is_not_served(tmp_path: Path) -> None:
    """pwa/generated/ is made by scripts/setup, not committed: a checkout that skipped it must
    not serve an app that cannot check a record."""
    shutil.copytree(PWA_DIR, tmp_path / "pwa", ignore=shutil.ignore_patterns("generated"))
    with pytest.raises(FileNotFoundError, match="run scripts/setup"):
        Shell(tmp_path / "pwa")
    assert Shell(PWA_DIR).assets["generated/validators.js"].content_type == "text/javascript"


def test_a_release_in_the_same_folder_is_served_as_changed(tmp_path: Path) -> None:
    """Assets are compressed once per content in a process (server/web/shell.py): a file
    changed in place (a release copied over the old one) is served with its new bytes, its new
    compressed body and ETag, and the service worker names a new release."""
    folder = tmp_path / "pwa"
    shutil.copytree(PWA_DIR, folder)
    before = Shell(folder)
    assert Shell(folder).assets["app.js"] is before.assets["app.js"]  # compressed once
    (folder / "app.js").write_bytes((folder / "app.js").read_bytes() + b"\n// next release\n")
    after = Shell(folder)
    old, new = before.assets["app.js"], after.assets["app.js"]
    assert new.body.endswith(b"// next release\n") and new.etag != old.etag
    assert gzip.decompress(new.gzipped or b"") == new.body
    assert after.release != before.release
    assert after.release.encode() in after.assets["sw.js"].body
