"""Helpers for the `gitkv watch` and CI-example end-to-end tests.

`UpCluster`: a one-agent `-dev` cluster started with the real `gitkv up` (free ports on
127.0.0.1) and stopped with `gitkv down`. `SpecRepo`: a real Git repository in a temp dir (a
work tree plus a bare `origin` reachable as a `file://` URL). `WatchProc`: a `gitkv watch`
process whose JSON event log is read back. Every wait is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import git
import httpx

from tests.e2e.agentproc import free_port

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def gitkv(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "gitkv", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    env.update(extra)
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class UpCluster:
    """`gitkv up` of a spec with one `-dev` agent on 127.0.0.1 and free ports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        ports = {k: free_port() for k in ("http", "dns", "server", "serf_lan", "serf_wan")}
        self.url = f"http://127.0.0.1:{ports['http']}"
        port_text = ", ".join(f"{k}: {v}" for k, v in ports.items())
        self.spec = root / "cluster.yaml"
        self.spec.write_text(
            "version: 1\n"
            "datacenters:\n"
            "  dc1:\n"
            f"    address: {self.url}\n"
            "    agents:\n"
            f"      dev: {{server: true, dev: true, bind: 127.0.0.1, ports: {{{port_text}}}}}\n"
        )

    def up(self) -> UpCluster:
        done = gitkv("up", str(self.spec), "--timeout", "60")
        assert done.returncode == 0, done.stderr
        return self

    def pids(self) -> list[int]:
        return [int(p.read_text()) for p in self.root.glob(".gitkv/*/*/agent.pid")]

    def down(self) -> list[int]:
        """Stop the cluster; the agent pids it had (for a no-process-left check)."""
        pids = self.pids()
        done = gitkv("down", str(self.spec), "--purge")
        assert done.returncode == 0, done.stderr
        return pids

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0)

    def kv(self, key: str) -> str | None:
        with self.http() as h:
            resp = h.get(f"/v1/kv/{key}", params={"raw": ""})
            return resp.text if resp.status_code == 200 else None

    def kv_entry(self, key: str) -> dict[str, Any] | None:
        with self.http() as h:
            resp = h.get(f"/v1/kv/{key}")
            return resp.json()[0] if resp.status_code == 200 else None

    def put(self, key: str, value: str) -> None:
        with self.http() as h:
            assert h.put(f"/v1/kv/{key}", content=value.encode()).json() is True

    def json_key(self, key: str) -> dict[str, Any] | None:
        entry = self.kv_entry(key)
        if not entry or not entry.get("Value"):
            return None
        return json.loads(base64.b64decode(entry["Value"]))


def spec_text(name: str, url: str, kv: dict[str, str], extra: str = "") -> str:
    lines = [
        "version: 1",
        f"name: {name}",
        "datacenters:",
        "  dc1:",
        f"    address: {url}",
        f"    kv_prefixes: [{name}/]",
        "    kv:",
    ]
    lines += [f"      {k}: {json.dumps(v)}" for k, v in kv.items()]
    return "\n".join(lines) + "\n" + extra


class SpecRepo:
    """A Git work tree with a bare `origin`; commits are pushed to origin on request."""

    def __init__(self, root: Path, branch: str = "main") -> None:
        self.branch = branch
        self.bare_path = root / "origin.git"
        self.work_path = root / "work"
        git.Repo.init(self.bare_path, bare=True, initial_branch=branch)
        self.repo = git.Repo.init(self.work_path, initial_branch=branch)
        with self.repo.config_writer() as cfg:
            cfg.set_value("user", "name", "gitkv tests")
            cfg.set_value("user", "email", "tests@example.invalid")
        self.repo.create_remote("origin", str(self.bare_path))

    @property
    def url(self) -> str:
        return self.bare_path.as_uri()

    def commit(self, files: dict[str, str], message: str = "update", push: bool = True) -> str:
        for rel, text in files.items():
            path = self.work_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.repo.index.add(list(files))
        sha = self.repo.index.commit(message).hexsha
        if push:
            self.repo.remotes.origin.push(f"{self.branch}:{self.branch}")
        return sha


class WatchProc:
    """A running `gitkv watch`; its JSON event lines are read from a log file."""

    def __init__(self, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.args = args
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gitkv", "watch", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env or clean_env(),
            )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a traceback line would show in the failure message
        return out

    def wait_event(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20.0, what: str = ""
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events():
                if pred(ev):
                    return ev
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"no event {what or pred} (exit {self.proc.poll()}); log:\n"
            + self.log_path.read_text(errors="replace")[-4000:]
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def github_push(url: str, secret: str, branch: str = "main", sign: bool = True) -> httpx.Response:
    body = json.dumps({"ref": f"refs/heads/{branch}"}).encode()
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
    if sign:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    return httpx.post(url, content=body, headers=headers, timeout=10.0)
