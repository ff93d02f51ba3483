"""Commit-to-applied latency of `gitkv watch`, via push webhook and via polling.

    python bench/watch_latency.py [--commits 20] [--interval 1s]

Starts a `gitkv agent -dev` (127.0.0.1, free ports), a Git repository with a bare origin in a
temp dir, and a `gitkv watch file://...` with `--listen`. For each commit it pushes, then
(webhook run) posts a signed push notification and times until the changed key reads back
from the agent; then the same with polling only (`--interval`). Prints min/median/p90/max.
It also reports the watcher's CPU seconds over a 5 s idle window. Everything stays on
loopback; every wait is bounded; processes and the temp dir are cleaned up on exit.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import git
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.agentproc import AgentProc, free_port  # noqa: E402
from tests.e2e.conftest import dev_agent_args  # noqa: E402

SECRET = "bench-secret"


def spec(url: str, value: int) -> str:
    return (
        f"version: 1\nname: bench\ndatacenters:\n  dc1:\n    address: {url}\n"
        f'    kv_prefixes: [bench/]\n    kv:\n      bench/value: "{value}"\n'
    )


def wait_for(fn, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.005)
    raise SystemExit("timed out")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(commits: int, interval: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gitkv-bench-watch-"))
    agent = AgentProc(*dev_agent_args(), http_port=free_port()).start()
    watchers: list[subprocess.Popen] = []
    try:
        bare = tmp / "origin.git"
        git.Repo.init(bare, bare=True, initial_branch="main")
        repo = git.Repo.init(tmp / "work", initial_branch="main")
        with repo.config_writer() as cfg:
            cfg.set_value("user", "name", "bench")
            cfg.set_value("user", "email", "bench@example.invalid")
        repo.create_remote("origin", str(bare))
        counter = [0]

        def commit() -> int:
            counter[0] += 1
            (tmp / "work" / "gitkv.yaml").write_text(spec(agent.url, counter[0]))
            repo.index.add(["gitkv.yaml"])
            repo.index.commit(f"v{counter[0]}")
            repo.remotes.origin.push("main:main")
            return counter[0]

        def applied(value: int) -> bool:
            r = httpx.get(f"{agent.url}/v1/kv/bench/value", params={"raw": ""})
            return r.status_code == 200 and r.text == str(value)

        commit()
        port = free_port()
        env = {**os.environ, "BENCH_SECRET": SECRET}
        args = [sys.executable, "-m", "gitkv", "watch", bare.as_uri(), "--cache-dir",
                str(tmp / "cache")]  # fmt: skip
        hook = [*args, "--interval", "1h", "--listen", f"127.0.0.1:{port}",
                "--webhook-secret-env", "BENCH_SECRET"]  # fmt: skip
        log = open(tmp / "watch.log", "ab")  # noqa: SIM115 - closed with the processes
        watchers.append(subprocess.Popen(hook, env=env, stderr=log, stdout=log))
        wait_for(lambda: applied(1))
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        figures = []
        for _ in range(commits):
            value = commit()
            started = time.monotonic()
            httpx.post(f"http://127.0.0.1:{port}/", content=body,
                       headers={"X-Hub-Signature-256": sig})  # fmt: skip
            wait_for(lambda v=value: applied(v))
            figures.append(time.monotonic() - started)
        report("webhook: push notification -> applied", figures)

        before = cpu_seconds(watchers[0].pid)
        time.sleep(5)
        idle = cpu_seconds(watchers[0].pid) - before
        print(f"idle watcher CPU over 5 s: {idle:.2f} s ({idle / 5 * 100:.1f}%)")
        watchers[0].terminate()
        watchers[0].wait(timeout=30)

        watchers.append(subprocess.Popen([*args, "--interval", interval], stderr=log, stdout=log))
        wait_for(lambda: applied(counter[0]))
        figures = []
        for _ in range(max(3, commits // 4)):
            value = commit()
            started = time.monotonic()
            wait_for(lambda v=value: applied(v))
            figures.append(time.monotonic() - started)
        report(f"polling every {interval}: push -> applied", figures)
    finally:
        for w in watchers:
            if w.poll() is None:
                w.kill()
                w.wait(timeout=10)
        agent.cleanup()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


def report(what: str, figures: list[float]) -> None:
    ms = sorted(f * 1000 for f in figures)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    print(
        f"{what}: n={len(ms)} min {ms[0]:.0f} ms, median {statistics.median(ms):.0f} ms, "
        f"p90 {p90:.0f} ms, max {ms[-1]:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--interval", default="1s")
    ns = parser.parse_args()
    run(ns.commits, ns.interval)


if __name__ == "__main__":
    main()
