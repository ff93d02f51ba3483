"""Asyncio runners for health checks: one task per interval check, a timer per TTL check.

The runners only observe and report: every result goes to ``update(check_id, status, output)``,
a plain callable the agent provides, always called on the event loop thread. The agent owns the
check's stored status, anti-entropy and persistence.

Pure parts, testable without a loop or clock:

* ``StatusHandler`` - Consul's SuccessBeforePassing / FailuresBeforeWarning /
  FailuresBeforeCritical counters;
* ``TTLClock`` - TTL deadline bookkeeping, takes ``now`` as an argument;
* ``OutputTail`` - keeps the last N bytes of output, like Consul's circular buffer;
* ``initial_delay`` - the random first-run stagger.

I/O parts: the probes (``probe_http``, ``probe_tcp``, ``probe_udp``, ``probe_script``), the
interval loop ``CheckRunner``, the TTL timer ``TTLTracker`` and ``make_runner`` to pick one.
Alias checks read the agent's own state, so the agent runs them; ``make_runner`` returns None.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import os
import random
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from agent.checks import DEFAULT_OUTPUT_MAX_SIZE, CheckDefinition
from agent.durations import format_nanoseconds

__all__ = [
    "CheckRunner",
    "HTTPClients",
    "OutputTail",
    "ProbeResult",
    "Runner",
    "StatusHandler",
    "TTLClock",
    "TTLTracker",
    "UpdateCallback",
    "initial_delay",
    "make_runner",
    "probe_http",
    "probe_script",
    "probe_tcp",
    "probe_udp",
    "split_host_port",
]

log = logging.getLogger(__name__)

UpdateCallback = Callable[[str, str, str], None]

USER_AGENT = "Consul Health Check"
DEFAULT_ACCEPT = "text/plain, text/*, */*"
# Go's http.Client gives up after 10 redirects.
MAX_REDIRECTS = 10


class Runner(Protocol):
    """What the agent holds for each running check."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ProbeResult:
    """One observation. ``counted=False`` bypasses the thresholds (timeouts, setup errors),
    as Consul reports those straight to the agent."""

    status: str
    output: str
    counted: bool = True


# ---------------------------------------------------------------------------------------------
# Pure helpers


class StatusHandler:
    """Debounce check results the way Consul's StatusHandler does.

    Counters start at their thresholds, so the very first result is reported as is. Then a
    passing/warning result is reported only after ``success_before_passing`` consecutive ones,
    and a critical result becomes warning after ``failures_before_warning`` and critical after
    ``failures_before_critical`` consecutive failures.
    """

    def __init__(
        self,
        success_before_passing: int = 0,
        failures_before_warning: int = 0,
        failures_before_critical: int = 0,
    ) -> None:
        self.success_before_passing = success_before_passing
        self.failures_before_warning = failures_before_warning
        self.failures_before_critical = failures_before_critical
        self.successes = success_before_passing
        self.failures = failures_before_critical

    @classmethod
    def for_definition(cls, definition: CheckDefinition) -> StatusHandler:
        return cls(
            definition.success_before_passing,
            definition.effective_failures_before_warning,
            definition.failures_before_critical,
        )

    def observe(self, status: str, output: str) -> tuple[str, str] | None:
        """Feed one result; return the (status, output) to report, or None to hold it back."""
        if status in ("passing", "warning"):
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_before_passing:
                return status, output
            return None
        self.failures += 1
        self.successes = 0
        if self.failures >= self.failures_before_critical:
            return status, output
        if self.failures >= self.failures_before_warning:
            return "warning", output
        return None


class OutputTail:
    """Keep the last ``size`` bytes written and count them all (Consul's circbuf)."""

    def __init__(self, size: int) -> None:
        self.size = max(size, 1)
        self.total = 0
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        self.total += len(data)
        self._buf += data
        if len(self._buf) > self.size:
            del self._buf[: len(self._buf) - self.size]

    @property
    def truncated(self) -> bool:
        return self.total > self.size

    def text(self) -> str:
        return self._buf.decode("utf-8", errors="replace")


def initial_delay(interval: float, *, stagger: bool, rng: random.Random | None = None) -> float:
    """Pause before the first run: uniform in [0, interval) so that many checks registered at
    once do not fire together (Consul's RandomStagger); 0 when ``stagger`` is off."""
    if not stagger or interval <= 0:
        return 0.0
    return (rng or random).uniform(0.0, interval)


def truncate_ttl_output(output: str, limit: int) -> str:
    """TTL updates keep at most ``limit`` bytes and say how much was dropped."""
    raw = output.encode("utf-8")
    if len(raw) <= limit:
        return output
    head = raw[:limit].decode("utf-8", errors="ignore")
    return f"{head} ... (captured {limit} of {len(raw)} bytes)"


class TTLClock:
    """TTL bookkeeping with time passed in: a deadline that each update pushes back.

    When the deadline passes the check turns critical once; it stays so until the next update
    re-arms it (Consul's timer does not repeat).
    """

    def __init__(self, ttl: float, output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE) -> None:
        self.ttl = ttl
        self.output_max_size = output_max_size
        self.deadline: float | None = None
        self.last_output = ""

    def arm(self, now: float) -> None:
        self.deadline = now + self.ttl

    def update(self, now: float, output: str) -> str:
        """Record an update at ``now``; returns the (possibly truncated) output to report."""
        self.last_output = truncate_ttl_output(output, self.output_max_size)
        self.arm(now)
        return self.last_output

    def remaining(self, now: float) -> float | None:
        return None if self.deadline is None else max(self.deadline - now, 0.0)

    def poll(self, now: float) -> str | None:
        """The expiry output if the TTL has run out at ``now`` (and disarm), else None."""
        if self.deadline is None or now < self.deadline:
            return None
        self.deadline = None
        return self.expired_output()

    def expired_output(self) -> str:
        if not self.last_output:
            return "TTL expired"
        return f"TTL expired (last output before timeout follows): {self.last_output}"


def split_host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port``; raises ValueError with Go's wording."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"address {address}: missing ']' in address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep:
            raise ValueError(f"address {address}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {address}: too many colons in address")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"address {port_text}: invalid port")
    return host, port


# ---------------------------------------------------------------------------------------------
# Error texts shaped like Go's, since users compare them with what Consul shows.


def _os_error_in(exc: BaseException) -> OSError | None:
    """The socket-level cause of a (possibly wrapped) connection failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror | ssl.SSLError):
            return current
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def _strerror(err: OSError) -> str:
    if err.errno is not None and err.errno > 0:
        return os.strerror(err.errno).lower()
    return (err.strerror or str(err)).lower()


def _tls_error(err: ssl.SSLError) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {err.verify_message}"
    return f"tls: {(err.reason or str(err)).lower().replace('_', ' ')}"


def _dial_error(network: str, host: str, address: str, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"dial {network} {address}: i/o timeout"
    err = _os_error_in(exc)
    if isinstance(err, socket.gaierror):
        return f"dial {network}: lookup {host}: no such host"
    if isinstance(err, ssl.SSLError):
        return _tls_error(err)
    if err is not None:
        return f"dial {network} {address}: connect: {_strerror(err)}"
    return f"dial {network} {address}: {exc}"


def _go_method(method: str) -> str:
    return method[:1] + method[1:].lower()


def _status_line(response: httpx.Response) -> str:
    reason = response.reason_phrase
    if not reason:
        with contextlib.suppress(ValueError):
            reason = http.HTTPStatus(response.status_code).phrase
    return f"{response.status_code} {reason}".rstrip()


# ---------------------------------------------------------------------------------------------
# Probes


class HTTPClients:
    """The agent's shared HTTP clients for checks: one verifying TLS, one not (TLSSkipVerify).

    Keep-alive is off, as in Consul, so a server closing idle connections never fails a check.
    """

    def __init__(self) -> None:
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def get(self, verify: bool) -> httpx.AsyncClient:
        client = self._clients.get(verify)
        if client is None:
            client = httpx.AsyncClient(
                verify=verify,
                limits=httpx.Limits(max_keepalive_connections=0),
                max_redirects=MAX_REDIRECTS,
                headers={"User-Agent": USER_AGENT, "Accept": DEFAULT_ACCEPT},
                trust_env=False,
            )
            self._clients[verify] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


async def probe_http(
    definition: CheckDefinition,
    clients: HTTPClients,
    output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE,
) -> ProbeResult:
    """2xx passing, 429 warning, anything else or no answer critical."""
    method = definition.method or "GET"
    url = definition.http
    timeout = definition.timeout_seconds
    client = clients.get(verify=not definition.tls_skip_verify)
    headers = [(name, value) for name, values in definition.header for value in values]
    extensions = {"sni_hostname": definition.tls_server_name} if definition.tls_server_name else {}
    try:
        request = client.build_request(
            method,
            url,
            headers=headers,
            content=definition.body.encode() if definition.body else None,
            timeout=httpx.Timeout(timeout),
            extensions=extensions,
        )
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        return ProbeResult("critical", f'parse "{url}": {exc}')

    tail = OutputTail(output_max_size)
    try:
        async with asyncio.timeout(timeout):
            response = await client.send(
                request, stream=True, follow_redirects=not definition.disable_redirects
            )
            try:
                async for chunk in response.aiter_bytes():
                    tail.write(chunk)
            except httpx.HTTPError as exc:
                log.warning("check %s: error reading body: %s", definition.check_id, exc)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return ProbeResult(
            "critical",
            f'{_go_method(method)} "{url}": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)",
        )
    except httpx.HTTPError as exc:
        return ProbeResult("critical", f'{_go_method(method)} "{url}": {_http_error(request, exc)}')

    result = f"HTTP {method} {url}: {_status_line(response)} Output: {tail.text()}"
    code = response.status_code
    if 200 <= code <= 299:
        return ProbeResult("passing", result)
    if code == 429:
        return ProbeResult("warning", result)
    return ProbeResult("critical", result)


def _http_error(request: httpx.Request, exc: httpx.HTTPError) -> str:
    host = request.url.host
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, httpx.ConnectError):
        return _dial_error("tcp", host, address, exc)
    return str(exc) or type(exc).__name__


def _tls_context(definition: CheckDefinition) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if definition.tls_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def probe_tcp(definition: CheckDefinition) -> ProbeResult:
    """Passing when a TCP (or TCP+TLS) connection opens within the timeout."""
    address = definition.tcp
    label = "TCP+TLS" if definition.tcp_use_tls else "TCP"
    try:
        host, port = split_host_port(address)
    except ValueError as exc:
        return ProbeResult("critical", f"dial tcp {exc}")
    tls = _tls_context(definition) if definition.tcp_use_tls else None
    server_hostname = (definition.tls_server_name or host) if tls else None
    try:
        async with asyncio.timeout(definition.timeout_seconds):
            _, writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=server_hostname
            )
    except (TimeoutError, OSError) as exc:
        return ProbeResult("critical", _dial_error("tcp", host, address, exc))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult("passing", f"{label} connect {address}: Success")


async def probe_udp(definition: CheckDefinition) -> ProbeResult:
    """Send an empty datagram and wait for one byte: an answer or silence until the timeout is
    passing, an error such as ICMP port unreachable is critical - Consul's reading of UDP."""
    address = definition.udp
    success = ProbeResult("passing", f"UDP connect {address}: Success")
    try:
        host, port = split_host_port(address)
    except ValueError as exc:
        return ProbeResult("critical", f"dial udp {exc}")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        return ProbeResult("critical", _dial_error("udp", host, address, exc))
    family, kind, proto, _, target = infos[0]
    # A raw socket rather than a datagram transport: asyncio drops empty datagrams, and an
    # empty one is what Consul sends.
    with socket.socket(family, kind, proto) as sock:
        sock.setblocking(False)
        try:
            sock.connect(target)
            sock.send(b"")
            async with asyncio.timeout(definition.timeout_seconds):
                await loop.sock_recv(sock, 1)
        except TimeoutError:
            return success
        except OSError as exc:
            return ProbeResult("critical", f"read udp {address}: read: {_strerror(exc)}")
    return success


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # The script runs in its own session, so this also takes down whatever it started.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _spawn_error(program: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) and "/" not in program:
        return f'exec: "{program}": executable file not found in $PATH'
    return f"fork/exec {program}: {_strerror(exc)}"


async def probe_script(
    definition: CheckDefinition, output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE
) -> ProbeResult:
    """Run ``Args``: exit 0 passing, 1 warning, anything else critical; killed on timeout."""
    args = definition.args
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return ProbeResult("critical", _spawn_error(args[0], exc), counted=False)

    tail = OutputTail(output_max_size)
    stdout = process.stdout
    assert stdout is not None
    timed_out = False
    try:
        async with asyncio.timeout(definition.timeout_seconds):
            while chunk := await stdout.read(65536):
                tail.write(chunk)
            await process.wait()
    except TimeoutError:
        timed_out = True
    finally:
        if process.returncode is None:
            _kill_group(process)
            await process.wait()

    output = tail.text()
    if tail.truncated:
        output = f"Captured {tail.size} of {tail.total} bytes\n...\n{output}"
    if timed_out:
        message = f"Timed out ({_timeout_text(definition)}) running check"
        if output:
            message += "\n\n" + output
        return ProbeResult("critical", message, counted=False)
    if process.returncode == 0:
        return ProbeResult("passing", output)
    if process.returncode == 1:
        return ProbeResult("warning", output)
    return ProbeResult("critical", output)


def _timeout_text(definition: CheckDefinition) -> str:
    return format_nanoseconds(round(definition.timeout_seconds * 1_000_000_000))


# ---------------------------------------------------------------------------------------------
# Runners


class CheckRunner:
    """Runs one interval check (HTTP, TCP, UDP, script) in its own task until stopped.

    The first run comes after a random stagger within the interval (``stagger=False`` runs it
    at once, for tests and for checks the user just registered interactively); later runs wait
    the interval after the previous one finished. Results pass through a ``StatusHandler``.
    """

    def __init__(
        self,
        definition: CheckDefinition,
        update: UpdateCallback,
        *,
        http_clients: HTTPClients | None = None,
        output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE,
        stagger: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.definition = definition
        self._update = update
        self._owns_clients = http_clients is None
        self._clients = http_clients or HTTPClients()
        self._output_max_size = definition.effective_output_max_size(output_max_size)
        self._stagger = stagger
        self._rng = rng
        self._status = StatusHandler.for_definition(definition)
        self._task: asyncio.Task[None] | None = None

    @property
    def check_id(self) -> str:
        return self.definition.check_id

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"check:{self.check_id}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_clients:
            await self._clients.aclose()

    async def run_once(self) -> ProbeResult:
        """Probe once and report through the thresholds; returns the raw observation."""
        try:
            result = await self._probe()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe bug must not kill the loop
            log.exception("check %s: probe failed", self.check_id)
            result = ProbeResult("critical", f"check failed: {exc}", counted=False)
        report = (
            self._status.observe(result.status, result.output)
            if result.counted
            else (result.status, result.output)
        )
        if report is not None:
            self._notify(*report)
        return result

    async def _loop(self) -> None:
        interval = self.definition.interval_seconds
        await asyncio.sleep(initial_delay(interval, stagger=self._stagger, rng=self._rng))
        while True:
            await self.run_once()
            await asyncio.sleep(interval)

    async def _probe(self) -> ProbeResult:
        definition = self.definition
        kind = definition.kind
        if kind == "http":
            return await probe_http(definition, self._clients, self._output_max_size)
        if kind == "tcp":
            return await probe_tcp(definition)
        if kind == "udp":
            return await probe_udp(definition)
        if kind == "script":
            return await probe_script(definition, self._output_max_size)
        return ProbeResult("critical", f"{kind or 'this'} checks are not supported by this agent")

    def _notify(self, status: str, output: str) -> None:
        try:
            self._update(self.check_id, status, output)
        except Exception:
            log.exception("check %s: update callback failed", self.check_id)


class TTLTracker:
    """A TTL check: turns critical with "TTL expired" when no update came within the TTL.

    The agent calls ``ttl_update`` for ``/v1/agent/check/pass|warn|fail|update``; the status is
    reported at once (no thresholds) and the TTL restarts. The deadline logic is ``TTLClock``.
    """

    def __init__(
        self,
        definition: CheckDefinition,
        update: UpdateCallback,
        *,
        output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.definition = definition
        self._update = update
        self._now = clock
        self._clock = TTLClock(
            definition.ttl_seconds, definition.effective_output_max_size(output_max_size)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    @property
    def check_id(self) -> str:
        return self.definition.check_id

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._clock.arm(self._now())
        self._schedule()

    async def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._loop = None

    def ttl_update(self, status: str, output: str) -> str:
        """Record a pass/warn/fail/update; returns the output as stored (maybe truncated)."""
        stored = self._clock.update(self._now(), output)
        self._notify(status, stored)
        if self._loop is not None:
            self._schedule()
        return stored

    def _schedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        remaining = self._clock.remaining(self._now())
        if remaining is not None and self._loop is not None:
            self._handle = self._loop.call_later(remaining, self._fire)

    def _fire(self) -> None:
        self._handle = None
        expired = self._clock.poll(self._now())
        if expired is None:
            self._schedule()  # woke a hair early; the clock decides
            return
        log.warning("check %s missed its TTL, now critical", self.check_id)
        self._notify("critical", expired)

    def _notify(self, status: str, output: str) -> None:
        try:
            self._update(self.check_id, status, output)
        except Exception:
            log.exception("check %s: update callback failed", self.check_id)


def make_runner(
    definition: CheckDefinition,
    update: UpdateCallback,
    *,
    http_clients: HTTPClients | None = None,
    output_max_size: int = DEFAULT_OUTPUT_MAX_SIZE,
    stagger: bool = True,
) -> CheckRunner | TTLTracker | None:
    """The runner for ``definition``: a TTLTracker for TTL checks, None for alias checks (the
    agent evaluates those from its own state), a CheckRunner for everything else."""
    if definition.is_ttl:
        return TTLTracker(definition, update, output_max_size=output_max_size)
    if definition.kind in ("alias", ""):
        return None
    return CheckRunner(
        definition,
        update,
        http_clients=http_clients,
        output_max_size=output_max_size,
        stagger=stagger,
    )
