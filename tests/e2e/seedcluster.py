"""The original write-up's cluster as real processes: 3 servers + 1 client on 127.0.0.11-14.

Every agent uses Consul's standard ports on its own loopback address, started with the
write-up's flags (plus `raft_multiplier = 1`, Consul's own advice for fast test clusters).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

FAST = "-hcl=performance { raft_multiplier = 1 }"
SERVERS = {"node1": "127.0.0.11", "node2": "127.0.0.12", "node3": "127.0.0.13"}
CLIENT = ("node4", "127.0.0.14")


def eventually(
    probe: Callable[[], object], timeout: float = 20.0, what: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


class Agent:
    def __init__(self, name: str, ip: str, args: list[str], root: Path) -> None:
        self.name, self.ip, self.args = name, ip, args
        self.log_path = root / f"{name}-{ip}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.ip}:8500"

    def start(self) -> Agent:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gitkv", "agent", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        eventually(self._http_up, 15, f"{self.name} HTTP API")
        return self

    def _http_up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.output()[-2000:]}")
        # 403: up, with ACLs that deny anonymous agent:read
        return httpx.get(f"{self.url}/v1/agent/self", timeout=1).status_code in (200, 403)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def leader(self) -> str:
        return httpx.get(f"{self.url}/v1/status/leader", timeout=2).json()

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class SeedCluster:
    """`with SeedCluster() as c:` — node1 first, then node2, node3 and the client node4."""

    def __init__(
        self,
        extra: list[str] | None = None,
        client: bool = True,
        *,
        servers: dict[str, str] | None = None,
        client_node: tuple[str, str] | None = None,
        client_extra: list[str] | None = None,
    ) -> None:
        """`servers`/`client_node`: other addresses than the write-up's (a module that owns its
        own loopback range); `client_extra`: flags for the client agent alone."""
        self.tmp = tempfile.TemporaryDirectory(prefix="gitkv-seed-")
        self.root = Path(self.tmp.name)
        self.extra = list(extra or [])
        self.client_extra = list(client_extra or [])
        self.with_client = client
        self.servers = dict(servers or SERVERS)
        self.client_node = client_node or CLIENT
        self.first = next(iter(self.servers.values()))
        self.agents: dict[str, Agent] = {}

    def server_args(self, name: str, ip: str, join: bool) -> list[str]:
        args = ["-server", "-bootstrap-expect=3"]
        if join:
            args.append(f"-join={self.first}")
        return args + [
            f"-data-dir={self.root / name}",
            f"-node={name}",
            f"-bind={ip}",
            f"-client={ip}",
            "-datacenter=shenzhen",
            "-ui",
            FAST,
            *self.extra,
        ]

    def client_args(self, name: str, ip: str, data: str | None = None) -> list[str]:
        return [
            f"-data-dir={self.root / (data or name)}",
            f"-node={name}",
            f"-join={self.first}",
            f"-bind={ip}",
            f"-client={ip}",
            "-datacenter=shenzhen",
            "-ui",
            *self.client_extra,
        ]

    def start(self) -> SeedCluster:
        for index, (name, ip) in enumerate(self.servers.items()):
            # Registered before start: close() must reach an agent whose start failed.
            agent = Agent(name, ip, self.server_args(name, ip, index > 0), self.root)
            self.agents[name] = agent
            agent.start()
        if self.with_client:
            name, ip = self.client_node
            agent = Agent(name, ip, self.client_args(name, ip), self.root)
            self.agents[name] = agent
            agent.start()
        self.wait_leader()
        # A leader that can commit: the first write after an election can still meet a
        # re-election on a busy machine; tests start once a write has gone through.
        eventually(self._write_ok, 30, "a committed write")
        return self

    def _write_ok(self) -> bool:
        for agent in self.agents.values():
            if agent.alive:
                answer = httpx.put(f"{agent.url}/v1/kv/_seedcluster/ready", content=b"1", timeout=5)
                if answer.status_code not in (200, 403):  # 403: an ACL-enabled cluster
                    return False
        return True

    def restart(self, name: str) -> Agent:
        old = self.agents[name]
        agent = Agent(name, old.ip, old.args, self.root)
        self.agents[name] = agent  # before start, for close()
        return agent.start()

    def wait_leader(self, timeout: float = 30.0, not_on: str | None = None) -> str:
        def agreed() -> str:
            leaders = {a.leader() for a in self.agents.values() if a.alive}
            if len(leaders) != 1 or "" in leaders:
                return ""
            leader = leaders.pop()
            return "" if not_on and leader.startswith(f"{not_on}:") else leader

        return eventually(agreed, timeout, "one leader known to every agent")

    def leader_agent(self) -> Agent:
        address = self.wait_leader()
        ip = address.rsplit(":", 1)[0]
        return next(a for a in self.agents.values() if a.ip == ip)

    def __enter__(self) -> SeedCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for agent in self.agents.values():
            agent.kill(signal.SIGKILL)
        if os.environ.get("GITKV_KEEP_LOGS"):
            print(f"agent logs kept in {self.root}")
        else:
            self.tmp.cleanup()
