"""`gitkv up` / `down` / `status`: the spec's agents as separate `gitkv agent` processes.

Layout beside the spec: `.gitkv/<dc>/<node>/{data/, agent.log, agent.pid}`. The launch plan is
a pure function of the spec (`launch_plan`); starting, waiting and stopping are the I/O around
it. Every agent gets its own loopback address with Consul's standard ports, like the hosts in
the original write-up.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from gitkv.errors import GitkvError
from gitkv.spec.load import LoadedSpec


class ClusterStartError(GitkvError):
    pass


@dataclass(frozen=True)
class AgentLaunch:
    datacenter: str
    name: str
    server: bool
    bind: str
    http_address: str
    ports: dict[str, int]
    argv: tuple[str, ...]
    home: Path

    @property
    def pid_file(self) -> Path:
        return self.home / "agent.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "agent.log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"


def state_root(loaded: LoadedSpec) -> Path:
    return loaded.base_dir / ".gitkv"


def launch_plan(loaded: LoadedSpec) -> list[AgentLaunch]:
    """Every agent of every datacenter, servers first, with the flags it is started with."""
    root = state_root(loaded)
    launches: list[AgentLaunch] = []
    for dc_name, dc in loaded.spec.datacenters.items():
        servers = [(n, a) for n, a in dc.agents.items() if a.server]
        clients = [(n, a) for n, a in dc.agents.items() if not a.server]
        first_server = servers[0][1].bind if servers else None
        for index, (name, agent) in enumerate(servers + clients):
            home = root / dc_name / name
            client = agent.client or agent.bind
            ports = agent.ports
            argv = [
                f"-node={name}",
                f"-bind={agent.bind}",
                f"-client={client}",
                f"-datacenter={dc_name}",
                f"-http-port={ports.http}",
                f"-dns-port={ports.dns}",
                f"-server-port={ports.server}",
                f"-serf-lan-port={ports.serf_lan}",
                f"-serf-wan-port={ports.serf_wan}",
            ]
            if agent.dev:
                argv.insert(0, "-dev")
            else:
                argv.append(f"-data-dir={home / 'data'}")
                if agent.server:
                    expect = agent.bootstrap_expect or len(servers)
                    argv[:0] = ["-server", f"-bootstrap-expect={expect}"]
                if first_server and index > 0:
                    argv.append(f"-retry-join={first_server}:{ports.serf_lan}")
            if agent.ui:
                argv.append("-ui")
            argv.extend(agent.args)
            launches.append(
                AgentLaunch(
                    datacenter=dc_name,
                    name=name,
                    server=agent.server,
                    bind=agent.bind,
                    http_address=agent.http_address,
                    ports=ports.model_dump(),
                    argv=tuple(argv),
                    home=home,
                )
            )
    return launches


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(launch: AgentLaunch) -> int | None:
    try:
        pid = int(launch.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _port_taken(host: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    if port <= 0:
        return False
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as sock:
        # As the agent binds: a port in TIME_WAIT after `gitkv down` is free, a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def preflight(launches: list[AgentLaunch]) -> None:
    """Refuse before starting anything: a cluster still running, or an address/port taken."""
    alive = [f"{la.name} (pid {pid})" for la in launches if (pid := running_pid(la))]
    if alive:
        raise ClusterStartError(
            "a previous cluster of this spec is still running: "
            + ", ".join(alive)
            + "; stop it with `gitkv down`"
        )
    taken = []
    for la in launches:
        host = la.http_address.split("//", 1)[1].rsplit(":", 1)[0].strip("[]")
        for what, port, kind in (
            ("http", la.ports["http"], socket.SOCK_STREAM),
            ("server", la.ports["server"], socket.SOCK_STREAM),
        ):
            bind_host = host if what == "http" else la.bind
            if _port_taken(bind_host, port, kind):
                taken.append(f"{la.name}: {bind_host}:{port} ({what})")
    if taken:
        raise ClusterStartError("address already in use: " + "; ".join(taken))


def _spawn(launch: AgentLaunch) -> int:
    launch.home.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "gitkv", "agent", *launch.argv]
    with open(launch.log_file, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the terminal that ran `gitkv up`
            close_fds=True,
        )
    launch.pid_file.write_text(str(proc.pid))
    return proc.pid


def _log_tail(launch: AgentLaunch, lines: int = 5) -> str:
    try:
        text = launch.log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _ready(launch: AgentLaunch, client: httpx.Client) -> bool:
    try:
        leader = client.get(f"{launch.http_address}/v1/status/leader", timeout=1.0)
    except httpx.HTTPError:
        return False
    return leader.status_code == 200 and leader.json() != ""


def up(
    loaded: LoadedSpec,
    *,
    timeout: float = 60.0,
    progress: Callable[[str], None] = lambda message: None,
) -> list[AgentLaunch]:
    launches = launch_plan(loaded)
    if not launches:
        raise ClusterStartError("the spec lists no agents to start")
    preflight(launches)
    for la in launches:
        pid = _spawn(la)
        progress(f"started {la.name} (pid {pid}) on {la.http_address}")
    deadline = time.monotonic() + timeout
    pending = list(launches)
    with httpx.Client() as client:
        while pending:
            for la in list(pending):
                if running_pid(la) is None:
                    down_launches(launches)
                    raise ClusterStartError(
                        f"agent {la.name} exited during start-up: {_log_tail(la)} "
                        f"(log: {la.log_file})"
                    )
                if _ready(la, client):
                    pending.remove(la)
                    progress(f"{la.name} is up (leader known)")
            if pending and time.monotonic() > deadline:
                names = ", ".join(la.name for la in pending)
                raise ClusterStartError(
                    f"no cluster leader after {timeout:.0f}s on {names}; the agents keep "
                    f"running (see {state_root(loaded)}/*/*/agent.log, stop with `gitkv down`)"
                )
            if pending:
                time.sleep(0.2)
    return launches


def down_launches(
    launches: list[AgentLaunch],
    *,
    purge: bool = False,
    timeout: float = 15.0,
    progress: Callable[[str], None] = lambda message: None,
) -> int:
    """Stop every agent gracefully (leave, then SIGTERM; SIGKILL as the last resort)."""
    stopped = 0
    for la in reversed(launches):  # clients first, servers last
        pid = running_pid(la)
        if pid is None:
            la.pid_file.unlink(missing_ok=True)
            continue
        try:
            httpx.put(f"{la.http_address}/v1/agent/leave", timeout=2.0)
        except httpx.HTTPError:
            pass
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            progress(f"{la.name} did not stop in {timeout:.0f}s: killed")
        _reap(pid)
        la.pid_file.unlink(missing_ok=True)
        stopped += 1
        progress(f"stopped {la.name}")
    if purge:
        for la in launches:
            shutil.rmtree(la.home, ignore_errors=True)
    return stopped


def _reap(pid: int) -> None:
    """Collect our own child if `up` and `down` run in one process (tests)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def status(loaded: LoadedSpec) -> list[dict]:
    """Per agent: pid, whether its API answers, the leader it sees, and its members view."""
    rows = []
    with httpx.Client(timeout=2.0) as client:
        for la in launch_plan(loaded):
            row = {
                "name": la.name,
                "datacenter": la.datacenter,
                "address": la.http_address,
                "pid": running_pid(la),
                "leader": None,
                "members": None,
            }
            try:
                row["leader"] = client.get(f"{la.http_address}/v1/status/leader").json()
                members = client.get(f"{la.http_address}/v1/agent/members").json()
                row["members"] = {m["Name"]: m["Status"] for m in members}
            except (httpx.HTTPError, ValueError):
                pass
            rows.append(row)
    return rows
