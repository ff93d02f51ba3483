"""agent/http/status.py on in-memory twins: the leader from the leadership port, and no
peers where there is no consensus (a client agent)."""

from __future__ import annotations

import json

from agent.http import status
from tests.harness.areas import call, dev_deps


def test_leader_is_the_leadership_ports() -> None:
    deps = dev_deps()
    answer = call(status.register, deps, "GET", "/v1/status/leader")
    assert json.loads(answer.body) == deps.leadership.leader_address == "127.0.0.1:8300"


def test_no_consensus_has_no_peers() -> None:
    deps = dev_deps()
    assert deps.consensus is None
    assert json.loads(call(status.register, deps, "GET", "/v1/status/peers").body) == []
