"""Text scenarios for the Raft core (etcd-style interaction tests).

Each `tests/scenarios/raft/*.txt` file is a list of commands (see
`tests/harness/raft_env.py: InteractionEnv` for the command set), each followed by `----` and
the expected output. Regenerate the expected output after an intended behaviour change with

    RAFT_REWRITE=1 pytest tests/unit/test_raft_scenarios.py

and review the diff: it is the behaviour change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.raft_env import Case, InteractionEnv, parse_script, render_script

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios" / "raft"
REWRITE = os.environ.get("RAFT_REWRITE") == "1"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.txt")), ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    items = parse_script(path.read_text())
    env = InteractionEnv()
    mismatches = []
    for it in items:
        if not isinstance(it, Case):
            continue
        got = env.run(it.command)
        if got != it.expected:
            mismatches.append(
                f"{path.name}:{it.line}: {it.command}\n--- want\n{it.expected}\n--- got\n{got}"
            )
            it.expected = got
    if REWRITE:
        path.write_text(render_script(items))
        return
    assert not mismatches, "\n\n".join(mismatches[:3])


def test_scenarios_exist() -> None:
    assert len(list(SCENARIOS.glob("*.txt"))) >= 5
