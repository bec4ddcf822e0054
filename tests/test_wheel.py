"""A wheel works (issue 14): the schemas and the PWA travel inside the package (setup.py copies
them there), so `linli serve` installed from a wheel, run from a folder that is not the checkout,
serves the app and validates records against the schemas. Before, both were found through the
checkout (`parents[2]`), and the wheel held neither, nor the server's layers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from conftest import City, basic, eventually, visit

from server.domain.scope import grid_db
from server.store.embedded import PROJECT_ROOT, EmbeddedStore, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment holding the wheel built from a clean copy of the checkout
    (its tracked and new files, and what scripts/setup generated into pwa/generated/: no build/
    left over from an earlier build). The wheel's
    dependencies are the test's own environment's, reached through a .pth file: offline, and
    seconds instead of a download. The checkout is not on its path."""
    work = tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    source = work / "source"
    generated = [p.relative_to(PROJECT_ROOT).as_posix()
                 for p in (PROJECT_ROOT / "pwa" / "generated").iterdir()]
    for name in [*filter(None, listed.decode().split("\0")), *generated]:
        if (PROJECT_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(work / "dist"), str(source)], check=True, timeout=600)
    (wheel,) = (work / "dist").glob("linli-*.whl")
    env_dir = work / "venv"
    venv.create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield env_dir


def outside_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "COUCHDB_URL") and not k.startswith("LINLI_")}
    return {**env, **extra}


def test_the_installed_package_is_the_wheels(wheel_venv: Path, tmp_path: Path) -> None:
    found = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c",
         "import server, server.config as c, server.web.app, server.domain.validation as v, "
         "server.store.embedded as e; "
         "print(server.__file__); print(c.shipped('pwa')); print(v.SCHEMA_DIR); "
         "print(e.NO_DISK_SIZE)"],
        cwd=tmp_path, env=outside_env(), capture_output=True, text=True, check=True)
    package, pwa, schemas, preload = [Path(line) for line in found.stdout.split()]
    assert package.is_relative_to(wheel_venv), package
    assert preload.is_relative_to(wheel_venv) and preload.is_file()  # the store's --require
    assert pwa == package.parent / "pwa" and (pwa / "index.html").is_file()
    assert schemas == package.parent / "schemas"
    shipped = sorted(p.name for p in schemas.glob("*.schema.json"))
    assert shipped == sorted(p.name for p in (PROJECT_ROOT / "schemas").glob("*.schema.json"))


@pytest.fixture
async def served(wheel_venv: Path, store: EmbeddedStore,
                 tmp_path: Path) -> AsyncIterator[str]:
    """`linli serve` of the wheel, on the test's store, started from an empty folder."""
    port = free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = outside_env(COUCHDB_URL=store.url, LINLI_AGGREGATES_WARM_UP="false")
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [str(wheel_venv / "bin" / "linli"), "serve", "--port", str(port),
             "--data", str(tmp_path / "var")], cwd=elsewhere, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def answers() -> bool:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    async with session.get(base + "/api/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(answers, 60, every=0.1, what="linli serve answers")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_linli_serve_from_the_wheel_serves_the_app_and_validates(
        served: str, city: City) -> None:
    grid = await city.grid()
    worker = await city.user(grids=[grid])
    async with aiohttp.ClientSession(base_url=served) as session:
        async with session.get("/app/") as resp:
            assert resp.status == 200
            assert "text/html" in resp.headers["Content-Type"]
        async with session.get("/app/app.css") as resp:
            assert resp.status == 200
            assert await resp.read() == (PROJECT_ROOT / "pwa" / "app.css").read_bytes()
        async with session.get("/app/generated/validators.js") as resp:  # the phone's checks
            assert resp.status == 200
            assert await resp.read() == (
                PROJECT_ROOT / "pwa" / "generated" / "validators.js").read_bytes()
        async with session.get("/app/schemas.json") as resp:
            assert resp.status == 200
            assert "household_visit" in (await resp.json())["types"]
        async def knows_the_worker() -> bool:  # from the directory's feed
            async with session.get("/api/me", headers=basic(worker)) as resp:
                return resp.status == 200

        await eventually(knows_the_worker, 30, every=0.1, what="the server knows the worker")
        url = f"/couch/{grid_db(grid)}/household_visit:{grid}-"
        async with session.put(url + "1", json=visit(grid, worker, 1),
                               headers=basic(worker)) as resp:
            assert resp.status == 201, await resp.text()
        wrong = visit(grid, worker, 2, outcome="abducted_by_aliens")
        async with session.put(url + "2", json=wrong, headers=basic(worker)) as resp:
            assert resp.status == 403, await resp.text()
            refusal = await resp.json()
        assert refusal["error"] == "forbidden" and "Outcome" in refusal["reason"], refusal
    assert await city.records(grid) == 1
