"""`linli user add --right`, `linli user grant|revoke` and `linli area add`: the directory
documents they write, and what they refuse (bilingual, exit status 1)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path

import couchdb
import pytest
from conftest import PASSWORD

from server import cli
from server.domain.scope import DIRECTORY_DB, User
from server.store.embedded import EmbeddedStore

Linli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def linli(store: EmbeddedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> Linli:
    """`linli ARGS...` in this process, on the tests' store: (status, stdout, stderr)."""
    monkeypatch.setenv("COUCHDB_URL", store.url)

    def command(*args: str, password: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        status = cli.main(["--data", str(tmp_path), *args])
        out, err = capsys.readouterr()
        return status, out, err

    return command


def test_rights_are_given_and_taken_by_the_command(linli: Linli, couch: couchdb.Server) -> None:
    name = f"sup{uuid.uuid4().hex[:8]}"
    status, _, err = linli("user", "add", name, "--role", "supervisor", "--community",
                           "339995001001", "--right", "unmask", "--password-stdin",
                           password=PASSWORD)
    assert status == 0, err
    assert User.from_doc(couch[DIRECTORY_DB][f"user:{name}"]).may("unmask")
    status, out, _ = linli("user", "revoke", name, "unmask")
    assert status == 0 and "-" in out
    assert not User.from_doc(couch[DIRECTORY_DB][f"user:{name}"]).may("unmask")
    status, out, _ = linli("user", "grant", name, "unmask")
    assert status == 0 and "unmask" in out
    status, _, err = linli("user", "grant", "nobody.here", "unmask")
    assert status == 1 and "没有用户" in err and "no user" in err


def test_areas_are_named_by_the_command(linli: Linli, couch: couchdb.Server) -> None:
    status, _, err = linli("area", "add", "community", "339995001002", "--name", "命名社区")
    assert status == 0, err
    doc = couch[DIRECTORY_DB]["community:339995001002"]
    assert (doc["name"], doc["street"], doc["district"]) == ("命名社区", "339995001", "339995")
    status, _, err = linli("area", "add", "street", "Bad Code", "--name", "坏编码")
    assert status == 1 and err
