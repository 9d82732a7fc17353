"""The ``modelreg`` dispatcher: help, unknown commands, both flag spellings, and errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from registry.cli import COMMANDS, FlagParser, main
from registry.errors import ConfigError, UsageError


def test_no_arguments_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_names_it(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("spelling", ["--num_requests", "--num-requests"])
def test_every_long_flag_accepts_both_spellings(spelling):
    parser = FlagParser(prog="t")
    parser.add_argument("--num_requests", type=int)
    group = parser.add_argument_group("g")
    group.add_argument("--etcd-endpoints")
    args = parser.parse_args([spelling, "7", "--etcd_endpoints", "http://127.0.0.1:1"])
    assert args.num_requests == 7
    assert args.etcd_endpoints == "http://127.0.0.1:1"


def test_user_errors_become_one_sentence_and_exit_2(monkeypatch, capsys):
    """A command that raises a ModelRegError prints its sentence, not a traceback."""
    import types

    fake = types.ModuleType("fake_cmd")
    fake.add_arguments = lambda parser, command: None

    def run(args):
        raise ConfigError.at("f.yaml:3:5", "expected an integer, found 'abc'", ("models", "a/b", "tp"))

    fake.run = run
    monkeypatch.setitem(sys.modules, "fake_cmd", fake)
    monkeypatch.setitem(COMMANDS, "fake", ("fake_cmd", "test"))
    assert main(["fake"]) == 2
    err = capsys.readouterr().err
    expected = "modelreg fake: error: f.yaml:3:5: models.\"a/b\".tp: expected an integer, found 'abc'"
    assert err.strip() == expected
    assert "Traceback" not in err


def test_usage_error_exit_code():
    assert UsageError("x").exit_code == 2


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "registry", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "commands:" in proc.stdout
