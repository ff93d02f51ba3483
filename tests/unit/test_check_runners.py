"""Check runners against real local servers, real processes and real timers.

Every server binds 127.0.0.1 on a free port. Waits are bounded (poll until the expected
update or 5 s); no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.check_probes import HTTPClients, split_host_port
from agent.check_runners import CheckRunner, TTLTracker, make_runner
from agent.check_status import OutputTail, ProbeResult, StatusHandler, TTLClock, initial_delay
from agent.checks import CheckDefinition, parse_check_registration

WAIT = 5.0
T = TypeVar("T")
Update = tuple[str, str, str]


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(_bounded(coro))


async def _bounded(coro: Awaitable[T]) -> T:
    return await asyncio.wait_for(coro, 30)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on (bound and released at once)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check(body: dict[str, Any]) -> CheckDefinition:
    return parse_check_registration({"Name": "c", **body}, enable_script_checks=True)


class Recorder:
    """The agent's update callback, recording every call."""

    def __init__(self) -> None:
        self.updates: list[Update] = []

    def __call__(self, check_id: str, status: str, output: str) -> None:
        self.updates.append((check_id, status, output))

    async def wait_for(self, predicate: Callable[[Update], bool]) -> Update:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while loop.time() < deadline:
            for update in self.updates:
                if predicate(update):
                    return update
            await asyncio.sleep(0.01)
        raise AssertionError(f"no matching update within {WAIT}s: {self.updates}")


async def probe(definition: CheckDefinition, **kwargs: Any) -> tuple[ProbeResult, Recorder]:
    """Run one probe through a CheckRunner and return the observation and the updates."""
    recorder = Recorder()
    runner = CheckRunner(definition, recorder, stagger=False, **kwargs)
    try:
        result = await runner.run_once()
    finally:
        await runner.stop()
    return result, recorder


# ---------------------------------------------------------------------------------------------
# A tiny HTTP/1.1 server


class HTTPServer:
    """Answers by path: /ok 200, /busy 429, /fail 500, /big 200 + 10 000 bytes, /echo 200 with
    the request line, headers and body, /slow never answers, /moved 302 to /ok."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> HTTPServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = [line for line in lines[1:] if line]
            length = 0
            for line in headers:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            if path == "/slow":
                await asyncio.sleep(60)
                return
            status, reason, payload, extra = self._answer(method, path, headers, body)
            response = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(payload)}"]
            response += extra + ["Connection: close", "", ""]
            writer.write("\r\n".join(response).encode() + payload)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(
        self, method: str, path: str, headers: list[str], body: bytes
    ) -> tuple[int, str, bytes, list[str]]:
        if path == "/ok":
            return 200, "OK", b"all good", []
        if path == "/busy":
            return 429, "Too Many Requests", b"slow down", []
        if path == "/fail":
            return 500, "Internal Server Error", b"boom", []
        if path == "/big":
            return 200, "OK", b"a" * 5_000 + b"b" * 5_000, []
        if path == "/moved":
            return 302, "Found", b"", [f"Location: {self.url('/ok')}"]
        if path == "/echo":
            text = "\n".join([f"{method} {path}", *headers, body.decode()])
            return 200, "OK", text.encode(), []
        return 404, "Not Found", b"", []


@contextlib.asynccontextmanager
async def http_server() -> AsyncIterator[HTTPServer]:
    async with HTTPServer() as server:
        yield server


@pytest.mark.parametrize(
    ("path", "status", "output"),
    [
        ("/ok", "passing", "200 OK Output: all good"),
        ("/busy", "warning", "429 Too Many Requests Output: slow down"),
        ("/fail", "critical", "500 Internal Server Error Output: boom"),
        ("/missing", "critical", "404 Not Found Output: "),
    ],
)
def test_http_status_mapping(path: str, status: str, output: str) -> None:
    async def scenario() -> None:
        async with http_server() as server:
            url = server.url(path)
            result, recorder = await probe(check({"HTTP": url, "Interval": "10s"}))
            expected = f"HTTP GET {url}: {output}"
            assert (result.status, result.output) == (status, expected)
            assert recorder.updates == [("c", status, expected)]

    run(scenario())


def test_http_method_headers_and_body_are_sent() -> None:
    async def scenario() -> None:
        async with http_server() as server:
            definition = check(
                {
                    "HTTP": server.url("/echo"),
                    "Method": "POST",
                    "Header": {"X-Check": ["one", "two"]},
                    "Body": "ping",
                    "Interval": "10s",
                }
            )
            result, _ = await probe(definition)
        assert result.status == "passing"
        echoed = result.output.split(" Output: ", 1)[1].lower()
        assert echoed.startswith("post /echo\n")
        assert "x-check: one" in echoed and "x-check: two" in echoed
        assert "user-agent: consul health check" in echoed
        assert "accept: text/plain, text/*, */*" in echoed
        assert echoed.endswith("\nping")

    run(scenario())


def test_http_output_keeps_the_tail_of_large_bodies() -> None:
    async def scenario() -> None:
        async with http_server() as server:
            definition = check({"HTTP": server.url("/big"), "Interval": "10s"})
            result, _ = await probe(definition, output_max_size=100)
        assert result.status == "passing"
        assert result.output.endswith(" Output: " + "b" * 100)

    run(scenario())


def test_http_redirects_followed_unless_disabled() -> None:
    async def scenario() -> None:
        async with http_server() as server:
            followed, _ = await probe(check({"HTTP": server.url("/moved"), "Interval": "10s"}))
            kept, _ = await probe(
                check({"HTTP": server.url("/moved"), "Interval": "10s", "DisableRedirects": True})
            )
        assert followed.status == "passing"
        assert kept.status == "critical" and "302 Found" in kept.output

    run(scenario())


def test_http_timeout_is_critical() -> None:
    async def scenario() -> None:
        async with http_server() as server:
            url = server.url("/slow")
            result, _ = await probe(check({"HTTP": url, "Interval": "10s", "Timeout": "200ms"}))
        assert result.status == "critical"
        assert result.output.startswith(f'Get "{url}": context deadline exceeded')

    run(scenario())


def test_http_closed_port_is_critical() -> None:
    async def scenario() -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        result, _ = await probe(check({"HTTP": url, "Interval": "10s"}))
        assert result.status == "critical"
        assert result.output == (
            f'Get "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
        )

    run(scenario())


def test_http_shared_clients_are_left_open_for_the_agent() -> None:
    async def scenario() -> None:
        clients = HTTPClients()
        async with http_server() as server:
            definition = check({"HTTP": server.url("/ok"), "Interval": "10s"})
            first, _ = await probe(definition, http_clients=clients)
            second, _ = await probe(definition, http_clients=clients)
        await clients.aclose()
        assert first.status == second.status == "passing"

    run(scenario())


# ---------------------------------------------------------------------------------------------
# TLS (self-signed certificate made with the openssl CLI)


@pytest.fixture
def server_tls(tmp_path: Path) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def https_ok_server(context: ssl.SSLContext) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


def test_https_self_signed_needs_tls_skip_verify(server_tls: ssl.SSLContext) -> None:
    async def scenario() -> None:
        server = await https_ok_server(server_tls)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/ok"
        try:
            skipped, _ = await probe(check({"HTTP": url, "Interval": "10s", "TLSSkipVerify": True}))
            verified, _ = await probe(check({"HTTP": url, "Interval": "10s"}))
        finally:
            server.close()
        assert (skipped.status, skipped.output) == ("passing", f"HTTP GET {url}: 200 OK Output: ok")
        assert verified.status == "critical"
        assert verified.output.startswith(f'Get "{url}": tls: failed to verify certificate: ')

    run(scenario())


def test_tcp_with_tls(server_tls: ssl.SSLContext) -> None:
    async def scenario() -> None:
        server = await https_ok_server(server_tls)
        address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            result, _ = await probe(
                check({"TCP": address, "TCPUseTLS": True, "TLSSkipVerify": True, "Interval": "10s"})
            )
        finally:
            server.close()
        assert (result.status, result.output) == ("passing", f"TCP+TLS connect {address}: Success")

    run(scenario())


# ---------------------------------------------------------------------------------------------
# TCP and UDP


def test_tcp_listener_passes_and_closed_port_fails() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            ok, recorder = await probe(check({"TCP": f"127.0.0.1:{port}", "Interval": "10s"}))
        finally:
            server.close()
        assert (ok.status, ok.output) == ("passing", f"TCP connect 127.0.0.1:{port}: Success")
        assert recorder.updates == [("c", "passing", ok.output)]

        closed = free_port()
        bad, _ = await probe(check({"TCP": f"127.0.0.1:{closed}", "Interval": "10s"}))
        assert bad.status == "critical"
        assert bad.output == f"dial tcp 127.0.0.1:{closed}: connect: connection refused"

    run(scenario())


def test_tcp_bad_address_is_critical() -> None:
    async def scenario() -> None:
        result, _ = await probe(check({"TCP": "127.0.0.1", "Interval": "10s"}))
        assert result.status == "critical"
        assert result.output == "dial tcp address 127.0.0.1: missing port in address"

    run(scenario())


class _Echo(asyncio.DatagramProtocol):
    """Answers every datagram; `transport` is the endpoint's, set once it exists."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            self.transport.sendto(b"pong", addr)


def test_udp_answer_passes_and_closed_port_fails() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, echo = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
        echo.transport = transport
        port = transport.get_extra_info("sockname")[1]
        try:
            ok, _ = await probe(check({"UDP": f"127.0.0.1:{port}", "Interval": "10s"}))
        finally:
            transport.close()
        assert (ok.status, ok.output) == ("passing", f"UDP connect 127.0.0.1:{port}: Success")

        closed = free_port(socket.SOCK_DGRAM)
        bad, _ = await probe(
            check({"UDP": f"127.0.0.1:{closed}", "Interval": "10s", "Timeout": "3s"})
        )
        assert bad.status == "critical"
        assert bad.output == f"read udp 127.0.0.1:{closed}: read: connection refused"

    run(scenario())


# ---------------------------------------------------------------------------------------------
# Scripts


@pytest.mark.parametrize(
    ("script", "status", "output"),
    [
        ("echo fine", "passing", "fine\n"),
        ("echo degraded >&2; exit 1", "warning", "degraded\n"),
        ("echo broken; exit 2", "critical", "broken\n"),
        ("kill -9 $$", "critical", ""),
    ],
)
def test_script_exit_codes(script: str, status: str, output: str) -> None:
    async def scenario() -> None:
        result, recorder = await probe(
            check({"Args": ["/bin/sh", "-c", script], "Interval": "10s"})
        )
        assert (result.status, result.output) == (status, output)
        assert recorder.updates == [("c", status, output)]

    run(scenario())


def test_script_output_is_truncated_to_the_tail() -> None:
    async def scenario() -> None:
        definition = check(
            {"Args": ["/bin/sh", "-c", "printf '%0300d' 0; printf END"], "Interval": "10s"}
        )
        result, _ = await probe(definition, output_max_size=50)
        assert result.status == "passing"
        assert result.output == "Captured 50 of 303 bytes\n...\n" + "0" * 47 + "END"

    run(scenario())


def test_script_timeout_kills_it_and_reports_critical() -> None:
    async def scenario() -> None:
        definition = check(
            {
                "Args": ["/bin/sh", "-c", "echo started; sleep 60 & wait"],
                "Interval": "10s",
                "Timeout": "300ms",
                # Thresholds never hold back a timeout.
                "FailuresBeforeCritical": 5,
            }
        )
        result, recorder = await probe(definition)
        assert result.status == "critical"
        assert result.output == "Timed out (300ms) running check\n\nstarted\n"
        assert recorder.updates == [("c", "critical", result.output)]

    run(scenario())


def test_script_missing_program() -> None:
    async def scenario() -> None:
        result, _ = await probe(check({"Args": ["no-such-program-xyz"], "Interval": "10s"}))
        assert result.status == "critical"
        assert result.output == 'exec: "no-such-program-xyz": executable file not found in $PATH'

    run(scenario())


def test_runner_loop_reports_and_stops() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        definition = check({"Args": ["/bin/sh", "-c", "exit 1"], "Interval": "1s"})
        runner = CheckRunner(definition, recorder, stagger=False)
        runner.start()
        runner.start()  # idempotent
        try:
            update = await recorder.wait_for(lambda u: u[1] == "warning")
        finally:
            await runner.stop()
        assert update == ("c", "warning", "")
        count = len(recorder.updates)
        await asyncio.sleep(0.05)
        assert len(recorder.updates) == count  # nothing after stop

    run(scenario())


def test_runner_applies_thresholds() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        definition = check(
            {
                "Args": ["/bin/sh", "-c", "exit 0"],
                "Interval": "10s",
                "SuccessBeforePassing": 2,
            }
        )
        runner = CheckRunner(definition, recorder, stagger=False)
        try:
            for _ in range(3):
                await runner.run_once()
        finally:
            await runner.stop()
        # Counters start at the threshold and only a failure resets them, so a steady
        # passing check is reported every time.
        assert [u[1] for u in recorder.updates] == ["passing", "passing", "passing"]

    run(scenario())


def test_callback_errors_do_not_kill_the_runner() -> None:
    async def scenario() -> None:
        calls: list[str] = []

        def flaky(check_id: str, status: str, output: str) -> None:
            calls.append(status)
            raise RuntimeError("agent bug")

        runner = CheckRunner(check({"TTL": "1s"}), flaky, stagger=False)
        result = await runner.run_once()
        await runner.stop()
        assert result.status == "critical" and calls == ["critical"]

    run(scenario())


# ---------------------------------------------------------------------------------------------
# TTL


def test_ttl_expires_then_recovers_on_update() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        definition = check({"TTL": "200ms", "CheckID": "ttl1"})
        tracker = TTLTracker(definition, recorder)
        tracker.start()
        try:
            await recorder.wait_for(lambda u: u == ("ttl1", "critical", "TTL expired"))
            assert tracker.ttl_update("passing", "all fine") == "all fine"
            assert recorder.updates[-1] == ("ttl1", "passing", "all fine")
            await recorder.wait_for(
                lambda u: u[2] == "TTL expired (last output before timeout follows): all fine"
            )
        finally:
            await tracker.stop()

    run(scenario())


def test_ttl_update_pushes_the_deadline_back() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        tracker = TTLTracker(check({"TTL": "60s"}), recorder)
        tracker.start()
        tracker.ttl_update("warning", "meh")
        await asyncio.sleep(0.05)
        await tracker.stop()
        assert recorder.updates == [("c", "warning", "meh")]

    run(scenario())


def test_make_runner_picks_the_runner() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        assert isinstance(make_runner(check({"TTL": "5s"}), recorder), TTLTracker)
        assert make_runner(check({"AliasService": "db"}), recorder) is None
        runner = make_runner(check({"TCP": "127.0.0.1:1", "Interval": "5s"}), recorder)
        assert isinstance(runner, CheckRunner)
        await runner.stop()
        grpc = make_runner(check({"GRPC": "127.0.0.1:1", "Interval": "5s"}), recorder)
        assert isinstance(grpc, CheckRunner)
        result = await grpc.run_once()
        await grpc.stop()
        assert result == ProbeResult("critical", "grpc checks are not supported by this agent")

    run(scenario())


# ---------------------------------------------------------------------------------------------
# Pure parts


@pytest.mark.parametrize(
    ("thresholds", "observed", "reported"),
    [
        # No thresholds: everything passes straight through.
        ((0, 0, 0), ["passing", "critical", "warning"], ["passing", "critical", "warning"]),
        # SuccessBeforePassing=2: first result reported, then needs two in a row.
        (
            (2, 0, 0),
            ["passing", "critical", "passing", "passing"],
            ["passing", "critical", None, "passing"],
        ),
        # FailuresBeforeCritical=3 (warning defaults to the same): first failure reported,
        # after a success three are needed.
        (
            (0, 3, 3),
            ["critical", "passing", "critical", "critical", "critical"],
            ["critical", "passing", None, None, "critical"],
        ),
        # Warning after 1 failure, critical after 3.
        (
            (0, 1, 3),
            ["passing", "critical", "critical", "critical"],
            ["passing", "warning", "warning", "critical"],
        ),
    ],
)
def test_status_handler(
    thresholds: tuple[int, int, int], observed: list[str], reported: list[str | None]
) -> None:
    handler = StatusHandler(*thresholds)
    got = []
    for status in observed:
        result = handler.observe(status, "out")
        got.append(None if result is None else result[0])
    assert got == reported


def test_status_handler_from_definition_defaults_warning_threshold() -> None:
    handler = StatusHandler.for_definition(check({"TTL": "1s", "FailuresBeforeCritical": 2}))
    assert handler.failures_before_warning == 2


def test_ttl_clock() -> None:
    clock = TTLClock(ttl=10.0, output_max_size=8)
    assert clock.poll(100.0) is None  # not armed
    clock.arm(100.0)
    assert clock.remaining(104.0) == 6.0
    assert clock.poll(109.9) is None
    assert clock.poll(110.0) == "TTL expired"
    assert clock.poll(200.0) is None  # fires once
    assert clock.update(200.0, "0123456789") == "01234567 ... (captured 8 of 10 bytes)"
    assert clock.poll(209.0) is None
    assert clock.poll(210.0) == (
        "TTL expired (last output before timeout follows): 01234567 ... (captured 8 of 10 bytes)"
    )


def test_output_tail() -> None:
    tail = OutputTail(5)
    tail.write(b"abc")
    assert (tail.text(), tail.truncated) == ("abc", False)
    tail.write(b"defgh")
    assert (tail.text(), tail.total, tail.truncated) == ("defgh", 8, True)


def test_initial_delay() -> None:
    rng = random.Random(7)
    delays = [initial_delay(10.0, stagger=True, rng=rng) for _ in range(50)]
    assert all(0.0 <= d < 10.0 for d in delays)
    assert len(set(delays)) > 1
    assert initial_delay(10.0, stagger=False) == 0.0


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:8500", ("::1", 8500)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("localhost", "address localhost: missing port in address"),
        ("::1:80", "address ::1:80: too many colons in address"),
        ("host:http", "address http: invalid port"),
        ("host:70000", "address 70000: invalid port"),
    ],
)
def test_split_host_port_errors(address: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        split_host_port(address)
    assert str(caught.value) == message
