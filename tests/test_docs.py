"""The README is a newcomer's path: it names the two commands, and documents every setting and
every linli command, so adding one without documenting it fails here."""

from __future__ import annotations

from server.cli import build_parser
from server.config import SETTINGS
from server.store.embedded import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in README]
    assert not missing, f"settings missing from README: {missing}"


def test_the_two_commands_and_ci() -> None:
    assert "scripts/serve" in README and "scripts/test" in README
    assert "scripts/test" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_every_command_is_documented() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        actions = [a for a in sub._actions if a.dest == "action"]
        verbs = list(actions[0].choices) if actions else [""]
        for verb in verbs:
            assert f"linli {name} {verb}".strip() in README, (name, verb)
