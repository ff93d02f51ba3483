"""The probes of interval checks: one observation each of an HTTP endpoint, a TCP or UDP
address, or a script's exit code, as a ``ProbeResult``.

Their failure texts are shaped like Go's (``dial tcp 127.0.0.1:1: connect: connection
refused``), since users compare them with what Consul shows. A probe never raises for what it
observes; thresholds and scheduling are the runner's (``agent.check_runners``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import os
import signal
import socket
import ssl

import httpx

from agent.check_status import OutputTail, ProbeResult
from agent.checks import DEFAULT_OUTPUT_MAX_SIZE, CheckDefinition
from agent.durations import format_nanoseconds

__all__ = [
    "HTTPClients",
    "probe_http",
    "probe_script",
    "probe_tcp",
    "probe_udp",
    "split_host_port",
]

# The runners' logger: a probe's warnings sit with the rest of its check's lines.
log = logging.getLogger("agent.check_runners")

USER_AGENT = "Consul Health Check"
DEFAULT_ACCEPT = "text/plain, text/*, */*"
# Go's http.Client gives up after 10 redirects.
MAX_REDIRECTS = 10


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
