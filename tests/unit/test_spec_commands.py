"""The command table: lazy imports, missing commands, error handling at the top."""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import pytest

from gitkv import commands
from gitkv.errors import GitkvError, SpecError


@pytest.fixture
def fake_command(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("gitkv_test_fake_command")

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--fail", choices=["gitkv", "spec"])

    def execute(ns: argparse.Namespace) -> int:
        if ns.fail == "gitkv":
            raise GitkvError("the cluster said no")
        if ns.fail == "spec":
            raise SpecError([])
        return 7

    vars(module).update(add_arguments=add_arguments, execute=execute)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(commands.COMMANDS, "fake", (module.__name__, "a fake command"))
    return module


def test_runs_the_chosen_command(fake_command: types.ModuleType) -> None:
    assert commands.run(["fake"]) == 7


def test_gitkv_errors_become_exit_codes(
    fake_command: types.ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert commands.run(["fake", "--fail", "gitkv"]) == 1
    assert capsys.readouterr().err == "Error: the cluster said no\n"


def test_missing_module_only_breaks_its_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(commands.COMMANDS, "ghost", ("gitkv.commands.no_such_module", "not built"))
    assert commands.run(["ghost"]) == 2
    assert "'ghost' command is not available" in capsys.readouterr().err
    (tmp_path / "s.yaml").write_text("version: 1\ndatacenters: {dc1: {}}\n")
    assert commands.run(["validate", str(tmp_path / "s.yaml")]) == 0


def test_help_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.run([]) == 2
    assert "validate" in capsys.readouterr().err
    assert commands.run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "validate" in out and "plan" in out and "agent" in out


def test_validate_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("version: 1\ndatacenters: {dc1: {kv: {a: 1}}}\n")
    assert commands.run(["validate", "--format", "github", str(spec)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(
        f"::error file={spec},line=2,col=29::a KV value must be a string"
    )


def test_github_format_escapes() -> None:
    from gitkv.errors import Diagnostic
    from gitkv.spec.validate import format_diagnostics

    diags = [Diagnostic("a,b:c.yaml", 3, 4, "50% wrong\nsecond line")]
    assert format_diagnostics(diags, "github") == (
        "::error file=a%2Cb%3Ac.yaml,line=3,col=4::50%25 wrong%0Asecond line\n"
    )
    assert format_diagnostics(diags) == "a,b:c.yaml:3:4: 50% wrong\nsecond line\n"
