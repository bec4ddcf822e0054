"""The server's layers and the direction of their imports (issue 14): web → sync → domain, and
web/sync/admin → store. `domain` holds pure rules: it imports no other layer, no HTTP framework
and no store client, so a rule can be read and tested without a server. A newcomer finds each
feature's room by the tree; this test keeps the tree honest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "server"
LAYERS = ("web", "sync", "domain", "store", "admin", "demo")

# What each part of server/ may import from server/. `config` (settings as data) and `errors`
# (CouchDB's error shapes) are shared by every layer that answers or configures; `cli` is the
# command line on top of everything.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "domain": frozenset({"domain", "config"}),
    "store": frozenset({"store", "errors"}),
    "sync": frozenset({"sync", "domain", "store", "config", "errors"}),
    "web": frozenset({"web", "sync", "domain", "store", "config", "errors"}),
    "admin": frozenset({"admin", "domain", "store", "config"}),
    "demo": frozenset({"demo", "admin", "domain", "store", "config"}),
    "config": frozenset(),
    "errors": frozenset({"domain"}),
    "cli": frozenset({*LAYERS, "config", "errors"}),
    "demo.bench": frozenset({*LAYERS, "config", "errors"}),
    "__main__": frozenset({"cli"}),
    "__init__": frozenset(),
}
# Third-party packages that mean I/O or HTTP: the domain takes plain data and returns plain data.
DOMAIN_MUST_NOT_IMPORT = ("aiohttp", "couchdb", "openpyxl", "socket", "urllib.request", "asyncio",
                          "subprocess", "http")


# The benchmark harness starts the whole server, as the CLI does; only scripts/bench-* use it.
HARNESS = SERVER / "demo" / "bench.py"


def part_of(path: Path) -> str:
    if path == HARNESS:
        return "demo.bench"
    relative = path.relative_to(SERVER).parts
    return relative[0] if len(relative) > 1 else path.stem


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "server":
                found.extend(f"server.{alias.name}" for alias in node.names)
            else:
                found.append(node.module)
    return found


MODULES = sorted(SERVER.rglob("*.py"))


def test_the_tree_has_its_layers() -> None:
    for layer in LAYERS:
        assert (SERVER / layer / "__init__.py").is_file(), f"server/{layer}/ is missing"
    loose = sorted(p.name for p in SERVER.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py", "config.py", "errors.py"], loose


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SERVER)))
def test_imports_go_one_way(path: Path) -> None:
    part = part_of(path)
    allowed = MAY_IMPORT[part]
    wrong = sorted({name for name in imported_modules(path)
                    if name.startswith("server.") and name.split(".")[1] not in allowed})
    assert not wrong, f"server/{path.relative_to(SERVER)} ({part}) may not import {wrong}"


@pytest.mark.parametrize("path", sorted((SERVER / "domain").rglob("*.py")),
                         ids=lambda p: p.name)
def test_the_domain_does_no_io(path: Path) -> None:
    wrong = sorted({name for name in imported_modules(path)
                    if any(name == bad or name.startswith(bad + ".")
                           for bad in DOMAIN_MUST_NOT_IMPORT)})
    assert not wrong, f"server/domain/{path.name} imports {wrong}: rules take and return data"


def test_the_contract_is_not_vacuous() -> None:
    """A module that imports across the line is caught (the checker itself is tested)."""
    sample = SERVER / "domain" / "__init__.py"
    assert part_of(sample) == "domain"
    assert "server.web" not in MAY_IMPORT["domain"]
    tree_import = imported_modules(SERVER / "web" / "app.py")
    assert any(name.startswith("server.sync") for name in tree_import)


def test_the_server_loads_no_blocking_couchdb_client() -> None:
    """The running server talks to the store with its own async client (server/store/couch.py)
    only: python-couchdb blocks, so inside the event loop it would stall every request. It stays
    for the command line (admin/, demo/, store/bulk.py), which the server runs in a thread (the
    demo loader). Checked by what importing every other module really loads, indirect imports
    included."""
    modules = [".".join(p.relative_to(SERVER.parent).with_suffix("").parts)
               for layer in ("web", "sync", "domain", "store")
               for p in sorted((SERVER / layer).rglob("*.py")) if p.name != "bulk.py"]
    assert "server.web.app" in modules and "server.sync.receipts" in modules
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(n for n in sys.modules if n == 'couchdb' or n.startswith('couchdb.')))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=SERVER.parent, check=True, timeout=120).stdout.strip()
    assert found == "[]", f"the server loads python-couchdb: {found}"


def imports_the_harness(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
                alias.name.startswith("server.demo.bench") for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = {alias.name for alias in node.names}
            if (node.module or "").startswith("server.demo.bench") or (
                    node.module == "server.demo" and "bench" in names):
                return True
    return False


def test_only_the_benchmarks_use_the_harness() -> None:
    """server/demo/bench.py may import every layer because nothing of the server outside demo/
    imports it: the scripts/bench-* do."""
    users = sorted(str(path.relative_to(SERVER)) for path in MODULES
                   if part_of(path) not in ("demo", "demo.bench") and imports_the_harness(path))
    assert not users, f"{users} import the benchmark harness"
    assert imports_the_harness(SERVER.parent / "scripts" / "bench-sync")
