"""`gitkv agent` start-up: Consul's flags, config files, one-line errors, clean shutdown."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.agentproc import AgentProc, free_port


def run_agent(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gitkv", "agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-no-such-flag"], "flag provided but not defined: -no-such-flag"),
        (["-dev", "-bind=not-an-ip"], "-bind"),
        (["-server", "-node=x"], "data_dir"),
        (["-dev", "-http-port=99999"], "http-port"),
        (["-dev", "-log-level=loud"], "log"),
    ],
)
def test_invalid_input_exits_nonzero_with_one_line(args: list[str], needle: str) -> None:
    result = run_agent(*args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


def test_unknown_config_key_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"datacenter": "dc1", "not_a_consul_key": 1}))
    result = run_agent("-dev", f"-config-file={cfg}")
    assert result.returncode != 0
    assert str(cfg) in result.stderr and "not_a_consul_key" in result.stderr


def test_port_in_use_is_refused(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        # Every other port free (gossip's default 8301 may be another agent's): the
        # refusal must be about the HTTP port.
        result = run_agent(
            "-dev", f"-http-port={port}", "-dns-port=-1", f"-server-port={free_port()}",
            f"-serf-lan-port={free_port()}", "-serf-wan-port=-1",
        )  # fmt: skip
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("==>")]
    assert lines and f"127.0.0.1:{port}" in lines[0]


def test_consul_config_dir_loads_and_flags_override(tmp_path: Path) -> None:
    """A config written for real Consul (with keys we do not implement) loads; flags win."""
    conf = tmp_path / "conf"
    conf.mkdir()
    port = free_port()
    (conf / "00-base.json").write_text(
        json.dumps(
            {
                "datacenter": "shenzhen",
                "node_name": "from-file",
                "server": True,
                "bootstrap_expect": 1,
                "data_dir": str(tmp_path / "data"),
                "bind_addr": "127.0.0.1",
                "client_addr": "127.0.0.1",
                "ports": {
                    "http": port,
                    "grpc": 8502,
                    "dns": -1,
                    "server": free_port(),
                    "serf_lan": free_port(),
                },
                "ui_config": {"enabled": True},
                "telemetry": {"prometheus_retention_time": "30s"},
                "performance": {"raft_multiplier": 1},
                "connect": {"enabled": True},
                "services": [{"name": "cfg-svc", "port": 1234, "tags": ["from-config"]}],
            }
        )
    )
    with (
        AgentProc(f"-config-dir={conf}", "-node=from-flag", http_port=port).start() as agent,
        agent.client() as http,
    ):
        self_info = http.get("/v1/agent/self").json()
        assert self_info["Config"]["NodeName"] == "from-flag"
        assert self_info["Config"]["Datacenter"] == "shenzhen"
        assert "cfg-svc" in http.get("/v1/agent/services").json()
        assert http.get("/").status_code in (200, 301)
        log = agent.output()
    assert "ports.grpc" in log and "telemetry" in log


def test_sigterm_and_sigint_shut_down_cleanly(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        data = tmp_path / f"d{sig}"
        agent = AgentProc(
            "-server",
            "-bootstrap-expect=1",
            f"-data-dir={data}",
            "-node=s",
            "-bind=127.0.0.1",
            "-client=127.0.0.1",
            "-dns-port=-1",
            f"-server-port={free_port()}",
            f"-serf-lan-port={free_port()}",
        )
        agent.start()
        assert agent.stop(sig=sig) == 0
        assert "shutting down" in agent.output()
        agent.cleanup()


def test_client_0000_listens_on_all_local_addresses(tmp_path: Path) -> None:
    port = free_port("0.0.0.0")
    agent = AgentProc(
        "-dev",
        "-bind=127.0.0.1",
        "-client=0.0.0.0",
        "-dns-port=-1",
        f"-server-port={free_port()}",
        f"-serf-lan-port={free_port()}",
        "-serf-wan-port=-1",
        ip="127.0.0.1",
        http_port=port,
    )
    with agent.start(), agent.client() as http:
        assert http.get("/v1/status/leader").status_code == 200
        import httpx

        other = httpx.get(f"http://127.0.0.42:{port}/v1/status/leader", timeout=5)
        assert other.status_code == 200
