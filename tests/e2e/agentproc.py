"""A real `python -m gitkv agent ...` subprocess for end-to-end tests.

The agent's output goes to a temporary file rather than a pipe: a chatty agent can never
block on a full pipe buffer, and the log survives for the failure message.

    with AgentProc("-dev", http_port=free_port()).start() as agent:
        agent.client().get("/v1/status/leader")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

__all__ = ["AgentProc", "AgentStartError", "free_port", "port_busy"]


class AgentStartError(RuntimeError):
    """The agent exited or never answered; the message carries the tail of its log."""


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the agent binds it shortly after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def port_busy(ip: str, port: int) -> bool:
    """Whether `ip:port` cannot be bound now (an agent on it, or a socket in TIME_WAIT)."""
    with socket.socket() as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return True
    return False


class AgentProc:
    def __init__(
        self,
        *args: str,
        ip: str = "127.0.0.1",
        http_port: int | None = None,
        data_dir: str | os.PathLike | None = None,
        dev: bool = False,
    ) -> None:
        self.ip = ip
        self.http_port = http_port if http_port is not None else free_port(ip)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.args = list(args)
        if dev and "-dev" not in self.args:
            self.args.insert(0, "-dev")
        if not any(a.startswith(("-http-port", "--http-port")) for a in self.args):
            self.args.append(f"-http-port={self.http_port}")
        if self.data_dir is not None and not any(
            a.startswith(("-data-dir", "--data-dir")) for a in self.args
        ):
            self.args.append(f"-data-dir={self.data_dir}")
        self.proc: subprocess.Popen | None = None
        fd, path = tempfile.mkstemp(prefix="gitkv-agent-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.http_port}"

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def start(self, timeout: float = 15.0) -> AgentProc:
        """Launch and wait until /v1/status/leader names a leader."""
        command = [sys.executable, "-m", "gitkv", "agent", *self.args]
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        with httpx.Client(base_url=self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                code = self.proc.poll()
                if code is not None:
                    raise AgentStartError(
                        f"agent exited with {code} during start ({' '.join(command)}):\n{self._tail()}"
                    )
                try:
                    answer = http.get("/v1/status/leader")
                    if answer.status_code == 200 and answer.json():
                        return self
                    last_error = f"{answer.status_code} {answer.text!r}"
                except (httpx.HTTPError, ValueError) as exc:
                    last_error = repr(exc)
                time.sleep(0.05)
        self.kill()
        raise AgentStartError(
            f"agent did not become ready in {timeout}s ({last_error}):\n{self._tail()}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the agent and wait for it; falls back to SIGKILL. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self) -> None:
        """Stop the process and remove the log file."""
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> AgentProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
