"""Text scenarios for the gossip core (see `tests/harness/gossip_env.py` for the commands).

Each `tests/scenarios/gossip/*.txt` runs on a fresh simulated network seeded with 0. After an
intended behaviour change regenerate the expected output with

    GOSSIP_REWRITE=1 pytest tests/unit/test_gossip_scenarios.py

and review the diff: it is the behaviour change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.gossip_env import Case, GossipEnv, parse_script, render_script

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios" / "gossip"
REWRITE = os.environ.get("GOSSIP_REWRITE") == "1"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.txt")), ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    items = parse_script(path.read_text())
    env = GossipEnv(seed=0)
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
    assert len(list(SCENARIOS.glob("*.txt"))) >= 4
