"""One failure mechanism for every command: UserError -> one line + exit 2, a bug -> one line + exit 1, --debug."""

from __future__ import annotations

import argparse

import pytest

from colorization.cli import main as cli_main
from colorization.errors import UserError


def _add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text)
    parser.add_argument("kind", choices=["user", "bug", "ok"])

    def run(args: argparse.Namespace) -> int:
        if args.kind == "user":
            raise UserError("thing.txt: not a thing\nsecond line")
        if args.kind == "bug":
            raise KeyError("boom")
        return 0

    parser.set_defaults(func=run)


@pytest.fixture()
def fake_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    module = types.ModuleType("fake_cli_command")
    module.add_parser = _add_parser
    monkeypatch.setitem(sys.modules, "fake_cli_command", module)
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "fake", ("fake_cli_command", "a test command"))


def test_user_error_is_one_line_exit_2(fake_command: None, capsys: pytest.CaptureFixture) -> None:
    assert cli_main.main(["fake", "user"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "colorization fake: error: thing.txt: not a thing; second line\n"
    assert captured.out == ""


def test_bug_is_one_line_exit_1_with_hint(fake_command: None, capsys: pytest.CaptureFixture) -> None:
    assert cli_main.main(["fake", "bug"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "KeyError: 'boom'" in err and "--debug" in err


def test_debug_reraises_anywhere_on_the_line(fake_command: None) -> None:
    with pytest.raises(KeyError):
        cli_main.main(["fake", "bug", "--debug"])
    with pytest.raises(UserError):
        cli_main.main(["--debug", "fake", "user"])


def test_bad_arguments_return_2_without_raising(fake_command: None, capsys: pytest.CaptureFixture) -> None:
    assert cli_main.main(["fake", "nonsense"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert cli_main.main(["fake", "ok"]) == 0
