"""The docs are a newcomer's path: the README names the two commands, docs/settings.md is the
output of `linli settings --markdown` (so a setting added to server/config.py and not to the page
fails here), and every linli command is documented."""

from __future__ import annotations

import re

import pytest

from server.cli import build_parser, main
from server.config import SETTINGS
from server.store.embedded import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
SETTINGS_PAGE = DOCS / "settings.md"


def pages() -> list:
    return [PROJECT_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_settings_page_is_the_commands_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "--markdown"]) == 0
    printed = capsys.readouterr().out
    assert SETTINGS_PAGE.read_text(encoding="utf-8") == printed, (
        "docs/settings.md is stale: .venv/bin/linli settings --markdown > docs/settings.md")


def test_every_setting_is_documented() -> None:
    """Each setting has its row, with its name, a default and a meaning."""
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \| (.+) \|$",
                      SETTINGS_PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    documented = {env: (default.strip(), meaning.strip()) for env, default, meaning in rows}
    assert sorted(documented) == sorted(s.env for s in SETTINGS)
    for env, (default, meaning) in documented.items():
        assert default and len(meaning) > 10, env


def test_the_two_commands_and_ci() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "scripts/serve" in readme and "scripts/test" in readme
    assert "scripts/test" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_every_command_is_documented() -> None:
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages())
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        actions = [a for a in sub._actions if a.dest == "action"]
        verbs = list(actions[0].choices) if actions else [""]
        for verb in verbs:
            assert f"linli {name} {verb}".strip() in text, (name, verb)
