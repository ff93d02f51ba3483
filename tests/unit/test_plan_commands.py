"""`gitkv plan` / `gitkv apply` commands in-process, against the in-memory Consul double."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import gitkv.commands.apply as apply_cmd
import gitkv.commands.plan as plan_cmd
from gitkv.commands import run
from tests.unit.test_plan_fake_consul import FakeConsul


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeConsul:
    fake = FakeConsul()
    monkeypatch.setattr(plan_cmd, "client_for", lambda _address: fake.client())
    monkeypatch.setattr(apply_cmd, "client_for", lambda _address: fake.client())
    return fake


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "version: 1\ndatacenters:\n  dc1:\n    kv:\n"
        '      app/a: "1"\n      app/b: {value: two, flags: 3}\n'
    )
    return path


def _tty(monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda _prompt: answer)


def test_detailed_exitcode(
    fake: FakeConsul, spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["plan", str(spec)]) == 0
    assert run(["plan", str(spec), "--detailed-exitcode"]) == 2
    assert run(["apply", str(spec), "--auto-approve"]) == 0
    assert run(["plan", str(spec), "--detailed-exitcode"]) == 0
    assert fake.value("app/b") == b"two"


def test_confirmation_on_a_terminal(
    fake: FakeConsul,
    spec: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _tty(monkeypatch, "no")
    assert run(["apply", str(spec), "--no-color"]) == 1
    out = capsys.readouterr()
    assert "+ kv app/a" in out.out  # the plan was shown before asking
    assert "apply cancelled" in out.err
    assert fake.value("app/a") is None
    _tty(monkeypatch, "yes")
    assert run(["apply", str(spec), "--no-color"]) == 0
    assert fake.value("app/a") == b"1"


def test_saved_plan_is_applied_as_saved(
    fake: FakeConsul, spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planfile = tmp_path / "plan.json"
    assert run(["plan", str(spec), "-out", str(planfile)]) == 0
    spec.write_text(spec.read_text().replace('"1"', '"changed later"'))
    assert run(["apply", str(planfile), "--auto-approve"]) == 0
    assert fake.value("app/a") == b"1"  # the plan, not the edited spec


def test_negative_max_deletes_is_an_error(
    fake: FakeConsul, spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["apply", str(spec), "--max-deletes", "-1"]) == 1
    assert "--max-deletes" in capsys.readouterr().err
