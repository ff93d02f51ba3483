"""force-leave of a member that is still alive (serf's leave intent, as Consul's agent does).

`/v1/agent/members` shows the member `leaving` (serf status 2) until the member itself hears
the intent and refutes it; then it is alive (1) again everywhere. The client is stopped with
SIGSTOP while the intent is applied, so the `leaving` window is not a race.
"""

from __future__ import annotations

import signal
import time

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.conftest import dev_agent_args

ALIVE, LEAVING = 1, 2


def _status(agent: AgentProc, name: str) -> int | None:
    with agent.client() as http:
        members = http.get("/v1/agent/members").json()
    return next((m["Status"] for m in members if m["Name"] == name), None)


def _wait_status(agent: AgentProc, name: str, status: int, limit: float = 30.0) -> int | None:
    deadline = time.monotonic() + limit
    seen = _status(agent, name)
    while seen != status and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = _status(agent, name)
    return seen


def test_force_leave_of_a_live_member_shows_leaving_until_it_refutes(tmp_path) -> None:
    serf = free_port()
    server_args = [a for a in dev_agent_args() if not a.startswith("-serf-lan")]
    server = AgentProc(*server_args, f"-serf-lan-port={serf}", "-node=srv")
    client = AgentProc(
        "-node=cli",
        "-bind=127.0.0.2",
        "-client=127.0.0.2",
        f"-join=127.0.0.1:{serf}",
        f"-data-dir={tmp_path / 'cli'}",
        f"-server-port={free_port('127.0.0.2')}",
        f"-serf-lan-port={free_port('127.0.0.2')}",
        "-serf-wan-port=-1",
        "-dns-port=-1",
        ip="127.0.0.2",
    )
    try:
        server.start()
        client.start(timeout=30)
        assert _wait_status(server, "cli", ALIVE) == ALIVE
        assert client.proc is not None
        client.proc.send_signal(signal.SIGSTOP)
        try:
            with server.client() as http:
                assert http.put("/v1/agent/force-leave/cli").status_code == 200
            assert _status(server, "cli") == LEAVING
            # Forcing ourselves out is refuted on the spot (the Go client's own test does it).
            with server.client() as http:
                assert http.put("/v1/agent/force-leave/srv").status_code == 200
            assert _status(server, "srv") == ALIVE
        finally:
            client.proc.send_signal(signal.SIGCONT)
        assert _wait_status(server, "cli", ALIVE) == ALIVE
        assert _wait_status(client, "cli", ALIVE) == ALIVE
        with server.client() as http:
            nodes = [n["Node"] for n in http.get("/v1/catalog/nodes").json()]
        assert sorted(nodes) == ["cli", "srv"]
    finally:
        client.cleanup()
        server.cleanup()
