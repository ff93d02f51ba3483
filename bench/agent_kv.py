"""Benchmark of the bundled agent's KV path: throughput, blocking wake-up, memory and restart.

    python bench/agent_kv.py [--quick] [--json FILE] [--only get,put,watch,mem]

Stages, each against agent processes this script starts (on 127.0.0.31, data in a temp dir):

1. GET/s and PUT/s with p50/p99 latency, measured by `wrk -t2 -c64` (installed from Debian
   packages when missing): GET of one 100-byte key; PUT (fsync'd) spread over 10,000 keys.
2. Wake-up of 10,000 blocking queries parked on one key: a separate process (raw asyncio
   sockets, hand-written HTTP/1.1) parks them, then one PUT; we time every answer.
3. 1,000,000 keys of 1 KiB loaded through /v1/txn (64 ops each), the agent's RSS, the data
   dir size, then SIGTERM and a restart from the data dir timed until the last key reads back.

Everything stays on 127.0.0.x; every wait is bounded; agents and helpers are stopped and the
temp dir removed on exit, Ctrl-C and SIGTERM included. Figures are noisy on a shared box.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import os
import re
import resource
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "lua" / "kv.lua"
REPO = HERE.parent

HOST = "127.0.0.31"
PORT = 8500
NOFILE_WANTED = 65536

GET_KEY = "bench/get"
PUT_PREFIX = "bench/put/"
WATCH_KEY = "bench/watch"
MEM_PREFIX = "bench/mem/"
TXN_OPS = 64
VALUE_BYTES = 1024


class BenchError(Exception):
    """A stage could not run (agent did not start, load generator missing, ...)."""


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    key: str
    label: str
    value: float | int | None
    unit: str = ""
    target: str = ""
    ok: bool | None = None  # None: no target for this figure

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if isinstance(self.value, float):
            digits = 0 if abs(self.value) >= 1000 else 1 if abs(self.value) >= 10 else 3
            return f"{self.value:,.{digits}f} {self.unit}".strip()
        return f"{self.value:,} {self.unit}".strip()


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        verdict = "" if fig.ok is None else ("  [ok]" if fig.ok else "  [MISSED]")
        target = f"  (target {fig.target})" if fig.target else ""
        print(f"  {fig.label:<44} {fig.shown():>16}{target}{verdict}", flush=True)
        return fig

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def table(self) -> str:
        rows = [("figure", "value", "target", "")]
        for f in self.figures:
            verdict = "" if f.ok is None else ("ok" if f.ok else "MISSED")
            rows.append((f.label, f.shown(), f.target, verdict))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = []
        for n, r in enumerate(rows):
            lines.append(
                f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
            )
            if n == 0:
                lines.append("-" * len(lines[0]))
        return "\n".join(lines)


def at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def at_most(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


# --------------------------------------------------------------------------- environment


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        # Only root may raise the hard limit; otherwise settle for the hard limit.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing it from Debian packages (apt-get install -y wrk)", flush=True)
    apt = ["apt-get", "install", "-y", "-q", "wrk"]
    if os.geteuid() != 0:
        apt = ["sudo", "-n", *apt]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(apt, env=env, timeout=600).returncode != 0:
        update = [*apt[: apt.index("install")], "update", "-q"]
        subprocess.run(update, env=env, timeout=600)
        subprocess.run(apt, env=env, timeout=600)
    found = shutil.which("wrk")
    if not found:
        raise BenchError(
            "could not install wrk (apt-get install -y wrk failed); install it by hand "
            "(Debian/Ubuntu: apt-get update && apt-get install -y wrk) and rerun"
        )
    return found


def git_head() -> str:
    """The work tree's commit (with "+dirty" when files differ), to label published figures."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "-uno"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


# --------------------------------------------------------------------------- agent process


class Agent:
    """One `python -m gitkv agent` server process on HOST:PORT with its own log file."""

    command: list[str] = [sys.executable, "-m", "gitkv", "agent"]  # --agent-cmd replaces it
    source: Path = REPO  # --agent-src: `python -m gitkv` imports from this tree (its cwd)

    def __init__(self, data_dir: Path, log_path: Path, log_level: str = "warn") -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        argv = [
            *self.command, "-server", "-bootstrap-expect=1",
            f"-data-dir={self.data_dir}", "-node=bench1", f"-bind={HOST}", f"-client={HOST}",
            f"-http-port={PORT}", "-dns-port=-1", f"-log-level={self.log_level}",
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it from here
        self.started_at = time.monotonic()
        # A session of its own: Ctrl-C reaches only us, and we stop the agent in order.
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.source,
            env={**os.environ, "PYTHONPATH": str(self.source)}, start_new_session=True,
        )  # fmt: skip
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Until /v1/status/leader names a leader; returns seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"agent exited at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, body, _ = request("GET", "/v1/status/leader", timeout=1.0)
                if status == 200 and body.strip() not in (b"", b'""'):
                    return time.monotonic() - self.started_at
            time.sleep(0.05)
        raise BenchError(f"agent not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM, wait (SIGKILL after timeout); returns seconds until the process exited."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return time.monotonic() - t0

    def proc_status(self, field_name: str) -> int:
        """A kB field of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def nofile_limit(self) -> int:
        with open(f"/proc/{self.pid}/limits") as fh:
            for line in fh:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return 0

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def request(
    method: str, path: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def put_key(key: str, value: bytes) -> None:
    status, body, _ = request("PUT", f"/v1/kv/{key}", value)
    if status != 200 or body.strip() != b"true":
        raise BenchError(f"PUT {key}: {status} {body[:200]!r}")


# --------------------------------------------------------------------------- wrk stage


def run_wrk(
    wrk: str, url: str, seconds: float, env_extra: dict[str, str], connections: int = 64
) -> dict[str, float]:
    argv = [
        wrk, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(LUA_SCRIPT), url,
    ]  # fmt: skip
    env = {**os.environ, **env_extra}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not match:
        raise BenchError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    res = json.loads(match.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(
        res[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors")
    )
    return res


def stage_throughput(report: Report, wrk: str, seconds: float, stages: set[str]) -> None:
    print(f"\n== KV throughput: wrk -t2 -c64, {seconds:.0f} s per run", flush=True)
    base = f"http://{HOST}:{PORT}"
    warm = max(1.0, seconds / 5)  # first connections, allocator and caches settle
    if "get" in stages:
        stage_get(report, wrk, base, seconds, warm)
    if "put" in stages:
        stage_put(report, wrk, base, seconds, warm)


def stage_get(report: Report, wrk: str, base: str, seconds: float, warm: float) -> None:
    put_key(GET_KEY, b"g" * 100)
    run_wrk(wrk, f"{base}/v1/kv/{GET_KEY}", warm, {"BENCH_METHOD": "GET"})
    get = run_wrk(wrk, f"{base}/v1/kv/{GET_KEY}", seconds, {"BENCH_METHOD": "GET"})
    report.add(Figure("get_rps", "GET /v1/kv (one 100 B key) req/s", get["rps"], "/s",
                      ">= 10,000/s", at_least(get["rps"], 10_000)))  # fmt: skip
    report.add(Figure("get_p50_ms", "GET latency p50", get["p50_us"] / 1000, "ms"))
    report.add(Figure("get_p99_ms", "GET latency p99", get["p99_us"] / 1000, "ms"))
    report.add(Figure("get_errors", "GET errors (non-2xx, socket)", get["errors"] + get["timeouts"],
                      "", "0", get["errors"] + get["timeouts"] == 0))  # fmt: skip


def stage_put(report: Report, wrk: str, base: str, seconds: float, warm: float) -> None:
    put_env = {"BENCH_METHOD": "PUT", "BENCH_KEYS": "10000", "BENCH_PREFIX": PUT_PREFIX,
               "BENCH_BODY_BYTES": "100"}  # fmt: skip
    run_wrk(wrk, base + "/", warm, put_env)
    put = run_wrk(wrk, base + "/", seconds, put_env)
    report.add(Figure("put_rps", "PUT /v1/kv (10,000 keys, fsync) req/s", put["rps"], "/s",
                      ">= 3,000/s", at_least(put["rps"], 3_000)))  # fmt: skip
    report.add(Figure("put_p50_ms", "PUT latency p50", put["p50_us"] / 1000, "ms"))
    report.add(Figure("put_p99_ms", "PUT latency p99", put["p99_us"] / 1000, "ms"))
    report.add(Figure("put_errors", "PUT errors (non-2xx, socket)", put["errors"] + put["timeouts"],
                      "", "0", put["errors"] + put["timeouts"] == 0))  # fmt: skip


# --------------------------------------------------------------------------- watcher stage


class _Watcher(asyncio.Protocol):
    """One long-poll on its own connection; records when its full answer arrived."""

    __slots__ = ("request", "state", "buf", "done_at", "status", "index", "lost", "transport")

    def __init__(self, request: bytes, state: _WatchState) -> None:
        self.request = request
        self.state = state
        self.buf = b""
        self.done_at = 0.0
        self.status = 0
        self.index = 0
        self.lost = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()  # first thing: parsing must not count as wake-up time
        if self.done_at:
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(self.buf) - end - 4 < int(headers.get("content-length", "0")):
            return
        self.status = int(head[0].split()[1])
        self.index = int(headers.get("x-consul-index", "0") or 0)
        self.done_at = now
        self.state.answered += 1
        if self.state.answered + self.state.lost >= self.state.expected:
            self.state.all_done.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done_at and not self.lost:
            self.lost = True
            self.state.lost += 1
            if self.state.answered + self.state.lost >= self.state.expected:
                self.state.all_done.set()


class _WatchState:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.answered = 0
        self.lost = 0
        self.all_done = asyncio.Event()


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _watchers_main(count: int, index: int, wait: str, answer_timeout: float) -> None:
    """Child process: park `count` long-polls, report, wait for the PUT time, report wake-ups."""
    loop = asyncio.get_running_loop()
    req = (
        f"GET /v1/kv/{WATCH_KEY}?index={index}&wait={wait} HTTP/1.1\r\n"
        f"Host: {HOST}:{PORT}\r\nUser-Agent: gitkv-bench\r\n\r\n"
    ).encode()
    state = _WatchState(count)
    watchers = [_Watcher(req, state) for _ in range(count)]
    t0 = time.monotonic()
    connect_failures = 0
    step = 200  # connects in flight at once: well under the agent's listen backlog
    for start in range(0, count, step):
        batch = watchers[start : start + step]
        results = await asyncio.gather(
            *(loop.create_connection(lambda w=w: w, HOST, PORT) for w in batch),
            return_exceptions=True,
        )
        for w, res in zip(batch, results, strict=True):
            if isinstance(res, BaseException):
                connect_failures += 1
                w.lost = True
                state.lost += 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_at_sent = usage.ru_utime + usage.ru_stime
    _emit({"event": "sent", "seconds": time.monotonic() - t0, "connect_failures": connect_failures,
           "early": state.answered})  # fmt: skip
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if not line.strip():
        return
    put_sent, put_answered = (float(x) for x in line.split()[1:3])
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.all_done.wait(), answer_timeout)
    done = [w for w in watchers if w.done_at]
    early = [w for w in done if w.done_at < put_sent]
    woken = sorted(w.done_at for w in done if w.done_at >= put_sent)
    statuses: dict[str, int] = {}
    for w in done:
        statuses[str(w.status)] = statuses.get(str(w.status), 0) + 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _emit({
        "event": "result",
        "answered": len(done),
        "answered_after_put": len(woken),
        "early": len(early),
        "lost": sum(1 for w in watchers if w.lost),
        "statuses": statuses,
        "index_advanced": sum(1 for w in done if w.index > index),
        "wake_from_sent": [t - put_sent for t in woken],
        "last_from_answer": (woken[-1] - put_answered) if woken else None,
        "client_cpu_s": usage.ru_utime + usage.ru_stime - cpu_at_sent,
    })  # fmt: skip
    for w in watchers:
        if w.transport is not None:
            w.transport.abort()


def watchers_child(argv: list[str]) -> int:
    count, index, wait, answer_timeout = int(argv[0]), int(argv[1]), argv[2], float(argv[3])
    raise_nofile(count + 1024)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_watchers_main(count, index, wait, answer_timeout))
    return 0


def _read_line(proc: subprocess.Popen[str], timeout: float) -> dict:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise BenchError(f"watcher process silent for {timeout:.0f}s")
    line = proc.stdout.readline()
    if not line:
        raise BenchError(f"watcher process exited ({proc.poll()})")
    return json.loads(line)


def wait_parked(agent: Agent, fds_before: int, count: int, timeout: float) -> float:
    """Until the agent holds ~count more sockets and its CPU has gone quiet; returns seconds.

    Idle CPU after every request was written means every request has been read, parsed and
    parked on its future; the fd count says the connections were all accepted.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    quiet = 0
    cpu = agent.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now_cpu = agent.cpu_seconds()
        busy = now_cpu - cpu > 0.02
        cpu = now_cpu
        accepted = agent.open_fds() - fds_before >= count * 0.999
        quiet = 0 if busy or not accepted else quiet + 1
        if quiet >= 3:
            return time.monotonic() - t0
    raise BenchError(
        f"watchers not parked after {timeout:.0f}s "
        f"(agent fds {agent.open_fds()}, before {fds_before})"
    )


def stage_watchers(report: Report, agent: Agent, count: int) -> None:
    print(f"\n== Blocking-query wake-up: {count:,} watchers on one key", flush=True)
    put_key(WATCH_KEY, b"before")
    status, _, headers = request("GET", f"/v1/kv/{WATCH_KEY}")
    index = int(headers["x-consul-index"])
    fds_before = agent.open_fds()
    report.add(Figure("agent_nofile", "agent open-file limit", agent.nofile_limit(), "",
                      f">= {count + 100:,}", agent.nofile_limit() >= count + 100))  # fmt: skip
    argv = [sys.executable, str(Path(__file__).resolve()), "_watchers", str(count), str(index),
            "60s", "15"]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        sent = _read_line(proc, 120)
        settle = wait_parked(agent, fds_before, count - sent["connect_failures"], 40)
        report.add(Figure("watch_open_s", "time to open and send all watchers",
                          sent["seconds"] + settle, "s"))  # fmt: skip
        if sent["connect_failures"] or sent["early"]:
            report.note(f"{sent['connect_failures']} connects failed, "
                        f"{sent['early']} watchers answered before the PUT")  # fmt: skip
        put_sent = time.monotonic()
        put_key(WATCH_KEY, b"after")
        put_answered = time.monotonic()
        assert proc.stdin is not None
        proc.stdin.write(f"put {put_sent} {put_answered}\n")
        proc.stdin.flush()
        res = _read_line(proc, 60)
    except BaseException:
        proc.kill()  # interrupted or failed: the child may still be opening connections
        raise
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    wake = sorted(res["wake_from_sent"])
    last = wake[-1] if wake else None
    woken_ok = res["answered_after_put"] == count and res["index_advanced"] == count
    report.add(Figure("watch_answered", "watchers answered after the PUT",
                      res["answered_after_put"], f"of {count:,}", f"all {count:,}",
                      woken_ok))  # fmt: skip
    # Times count from the moment the PUT was sent: the agent answers the PUT only after it
    # has woken (and mostly answered) the watchers, so "after the PUT's answer" is ~0 or less.
    report.add(Figure("wake_last_s", "wake-up: last watcher answered", last, "s",
                      "< 0.5 s", None if last is None else last < 0.5))  # fmt: skip
    if wake:
        report.add(Figure("wake_first_ms", "wake-up: first watcher answered",
                          wake[0] * 1000, "ms"))  # fmt: skip
        report.add(Figure("wake_p50_ms", "wake-up latency p50", percentile(wake, 50) * 1000,
                          "ms"))  # fmt: skip
        report.add(Figure("wake_p99_ms", "wake-up latency p99", percentile(wake, 99) * 1000,
                          "ms"))  # fmt: skip
        report.add(Figure("wake_max_ms", "wake-up latency max", wake[-1] * 1000, "ms"))
    report.add(Figure("watch_put_ms", "the waking PUT's own latency",
                      (put_answered - put_sent) * 1000, "ms"))  # fmt: skip
    if res["last_from_answer"] is not None:
        report.add(Figure("wake_last_after_answer_ms", "last watcher answered, after PUT answer",
                          res["last_from_answer"] * 1000, "ms"))  # fmt: skip
    report.add(Figure("watch_client_cpu_s", "watcher client CPU from parked to done",
                      res["client_cpu_s"], "s"))  # fmt: skip
    bad = {k: v for k, v in res["statuses"].items() if k != "200"}
    if bad or res["lost"] or res["early"]:
        report.note(f"watchers: statuses {res['statuses']}, lost {res['lost']}, "
                    f"early {res['early']}")  # fmt: skip


# --------------------------------------------------------------------------- memory stage


_TAIL = b"m" * (VALUE_BYTES - 18)
_TAIL_B64 = base64.b64encode(_TAIL)  # 18-byte head keeps the split on a base64 boundary


def mem_key(i: int) -> str:
    return f"{MEM_PREFIX}{i:07d}"


def mem_value(i: int) -> bytes:
    return f"{i:018d}".encode() + _TAIL


def txn_body(first: int, last: int) -> bytes:
    ops = [
        b'{"KV":{"Verb":"set","Key":"%s","Value":"%s%s"}}'
        % (mem_key(i).encode(), base64.b64encode(b"%018d" % i), _TAIL_B64)
        for i in range(first, last)
    ]
    return b"[" + b",".join(ops) + b"]"


async def _txn_worker(batches: Iterator[tuple[int, int]], deadline: float) -> int:
    reader, writer = await asyncio.open_connection(HOST, PORT)
    done = 0
    try:
        for first, last in batches:
            if time.monotonic() > deadline:
                raise BenchError("load took too long")
            body = txn_body(first, last)
            writer.write(
                b"PUT /v1/txn HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (HOST.encode(), len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            answer = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise BenchError(f"txn failed: {head.splitlines()[0]!r} {answer[:300]!r}")
            done += last - first
    finally:
        writer.close()
    return done


async def load_keys(total: int, connections: int, timeout: float) -> int:
    batches = iter([(i, min(i + TXN_OPS, total)) for i in range(0, total, TXN_OPS)])
    deadline = time.monotonic() + timeout
    done = await asyncio.gather(*(_txn_worker(batches, deadline) for _ in range(connections)))
    return sum(done)


def get_raw(key: str, timeout: float = 2.0) -> bytes | None:
    status, body, _ = request("GET", f"/v1/kv/{key}?raw", timeout=timeout)
    return body if status == 200 else None


def stage_memory(report: Report, workdir: Path, total: int, connections: int) -> None:
    print(f"\n== Memory and restart: {total:,} keys of {VALUE_BYTES} B via /v1/txn", flush=True)
    data_dir = workdir / "mem-data"
    agent = Agent(data_dir, workdir / "agent-mem.log", log_level="info")
    try:
        agent.start()
        agent.wait_ready()
        rss_empty = agent.proc_status("VmRSS")
        t0 = time.monotonic()
        loaded = asyncio.run(load_keys(total, connections, timeout=1800))
        elapsed = time.monotonic() - t0
        report.add(Figure("load_rate", f"load rate ({TXN_OPS} ops/txn, {connections} conns)",
                          loaded / elapsed, "keys/s"))  # fmt: skip
        report.add(Figure("load_s", f"load time for {loaded:,} keys", elapsed, "s"))
        rss = agent.proc_status("VmRSS")
        report.add(Figure("rss_empty_mib", "agent RSS before load", rss_empty / 2**20, "MiB"))
        report.add(Figure("rss_loaded_mib", f"agent RSS with {loaded:,} keys", rss / 2**20,
                          "MiB", "<= 2,048 MiB", at_most(rss, 2 << 30)))  # fmt: skip
        report.add(Figure("rss_peak_mib", "agent peak RSS (VmHWM) during load",
                          agent.proc_status("VmHWM") / 2**20, "MiB"))  # fmt: skip
        last = total - 1
        if get_raw(mem_key(last)) != mem_value(last):
            raise BenchError("the last loaded key does not read back")
        report.add(Figure("data_dir_mib", "data dir size after load",
                          dir_size(data_dir) / 2**20, "MiB"))  # fmt: skip
        stop_s = agent.stop()
        report.add(Figure("stop_s", "shutdown time after SIGTERM", stop_s, "s"))
        report.add(Figure("data_dir_stopped_mib", "data dir size after shutdown",
                          dir_size(data_dir) / 2**20, "MiB"))  # fmt: skip

        agent = Agent(data_dir, workdir / "agent-mem.log", log_level="info")
        log_offset = agent.log_path.stat().st_size
        agent.start()
        restart = wait_for_key(agent, mem_key(last), mem_value(last), timeout=300)
        report.add(Figure("restart_s", "restart until last key reads back", restart, "s",
                          "< 20 s", restart < 20))  # fmt: skip
        # Two spellings of the agent's INFO line, before and after the Raft driver landed.
        text = agent.log_path.read_text(errors="replace")[log_offset:]
        restored = re.search(
            r"restored state at index (\d+) \((\d+) log entries replayed\) in ([\d.]+)s", text
        ) or re.search(
            r"restored state at index (\d+) in ([\d.]+)s \((\d+) log entries to replay", text
        )
        if restored:
            seconds, entries = (
                (restored.group(3), restored.group(2))
                if "replayed)" in restored.group(0)
                else (restored.group(2), restored.group(3))
            )
            report.add(Figure("restore_s", "of which: state restore (agent log line)",
                              float(seconds), "s"))  # fmt: skip
            report.add(Figure("replayed", "log entries replayed at restart", int(entries)))
        report.add(Figure("rss_restarted_mib", "agent RSS after restart",
                          agent.proc_status("VmRSS") / 2**20, "MiB"))  # fmt: skip
        for i in (0, total // 2):
            if get_raw(mem_key(i)) != mem_value(i):
                raise BenchError(f"key {mem_key(i)} wrong after restart")
    finally:
        agent.stop()


def wait_for_key(agent: Agent, key: str, value: bytes, timeout: float) -> float:
    deadline = agent.started_at + timeout
    while time.monotonic() < deadline:
        if not agent.alive():
            raise BenchError(f"agent exited during restart:\n{agent.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if get_raw(key, timeout=1.0) == value:
                return time.monotonic() - agent.started_at
        time.sleep(0.02)
    raise BenchError(f"{key} not readable {timeout:.0f}s after restart:\n{agent.log_tail()}")


# --------------------------------------------------------------------------- main


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs, 100,000 keys")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--only", default="get,put,watch,mem",
                   help="comma list of stages: get,put (wrk), watch, mem")  # fmt: skip
    p.add_argument("--seconds", type=float, help="seconds per wrk run (default 10, quick 3)")
    p.add_argument("--watchers", type=int, default=10_000)
    p.add_argument("--keys", type=int, help="keys for the memory stage (1M, quick 100k)")
    p.add_argument("--load-connections", type=int, default=8)
    p.add_argument("--agent-cmd", metavar="CMD",
                   help="command that starts the agent, to compare builds "
                   "(default: python -m gitkv agent; server flags are appended)")  # fmt: skip
    p.add_argument("--agent-src", metavar="DIR",
                   help="run the agent from this source tree (e.g. a `git archive HEAD` "
                   "export) instead of the working tree")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the temp dir (data, agent logs)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    if argv[:1] == ["_watchers"]:
        return watchers_child(argv[1:])
    args = parse_args(argv)
    stages = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = stages - {"get", "put", "watch", "mem"}
    if unknown:
        print(f"unknown stage(s) in --only: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    keys = args.keys or (100_000 if args.quick else 1_000_000)
    # Also when started from a script that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.agent_src:
        Agent.source = Path(args.agent_src).resolve()
    if args.agent_cmd:
        Agent.command = shlex.split(args.agent_cmd)
    nofile = raise_nofile(NOFILE_WANTED)
    report = Report()
    workdir = Path(tempfile.mkdtemp(prefix="gitkv-bench-"))
    agent: Agent | None = None
    started = time.time()
    print(f"gitkv agent KV bench ({'quick' if args.quick else 'full'}); {os.cpu_count()} CPUs; "
          f"temp dir {workdir}; open-file limit {nofile}", flush=True)  # fmt: skip
    try:
        wrk = ensure_wrk() if stages & {"get", "put"} else ""
        if stages & {"get", "put", "watch"}:
            agent = Agent(workdir / "data", workdir / "agent.log")
            agent.start()
            agent.wait_ready()
            if stages & {"get", "put"}:
                stage_throughput(report, wrk, seconds, stages)
            if "watch" in stages:
                stage_watchers(report, agent, args.watchers)
            agent.stop()
            agent = None
        if "mem" in stages:
            stage_memory(report, workdir, keys, args.load_connections)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbench error: {exc}", file=sys.stderr)
        return 1
    finally:
        if agent is not None:
            agent.stop(timeout=10)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if report.figures:
            print("\n" + report.table())
        if args.json and report.figures:
            out = {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "mode": "quick" if args.quick else "full",
                "cpus": os.cpu_count(),
                "agent_source": str(Agent.source),
                "agent_command": Agent.command,
                "repo_head": git_head(),
                "figures": {f.key: asdict(f) for f in report.figures},
                "notes": report.notes,
            }
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    missed = [f.label for f in report.figures if f.ok is False]
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
