"""A real agent under bad-input fuzzing: start it, plant known state, judge answers, check after.

Shared by tests/e2e/test_fuzz_bad_input.py and bench/fuzz.py, so both hold the agent to the
same rules (issue 11):

- an answer of 5xx must not carry a Python exception's text (`verdict`);
- afterwards (`check_after`): no `apply of index` failure and no traceback in the agent's log,
  the known keys read back byte-identical, the catalog and UI reads answer 200, the known
  service is still registered, and the agent's own snapshot restores (a fresh one, and the one
  taken before the fuzzing).

The agent runs with ACLs on (default allow) and every request carries the management token,
so the ACL endpoints decode their bodies instead of answering 401.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpcore
import httpx

from tests.e2e.agentproc import AgentProc, free_port
from tests.harness.badinput import KNOWN_KV_PREFIX, KNOWN_SERVICE, Request, endpoint_of

__all__ = [
    "CONSUL_500",
    "EXCEPTION_TEXT",
    "KNOWN_KV",
    "TOKEN",
    "Findings",
    "FuzzAgent",
    "VerbatimTransport",
    "check_after",
    "failure_key",
    "fuzz_agent",
    "log_crashes",
    "log_problems",
    "signature",
    "verdict",
]

TOKEN = "fuzz-management-token"

# Text that only a Python exception puts in an answer. Consul's 500s are Go error strings.
EXCEPTION_TEXT = re.compile(
    r"Traceback|Error:|object has no attribute|unhashable|not subscriptable|can't serialize"
    r"|maximum recursion|Errno|NoneType|TypeError|KeyError|ValueError|OverflowError"
    r"|IndexError|AttributeError|UnicodeEncodeError|UnicodeDecodeError|RecursionError"
    r"|index out of range|not iterable|object is not|must be str|argument must be"
    r"|invalid literal for|unsupported operand|not supported between|codec can't"
    r"|surrogates not allowed|Expected `\w+`|JSON is malformed|Internal Server Error"
    r"|Object missing required field|- at `\$"  # msgspec's validation errors
    r"|^'[^']*'$"  # str(KeyError('x'))
)
# Consul's own 500 texts: an answer with one of these is Consul's behaviour, not a crash.
CONSUL_500 = re.compile(
    r"^(No cluster leader|No path to datacenter|Permission denied|Missing node registration"
    r"|Must provide|Unknown service ID|Unknown check ID|invalid session|Invalid session"
    r"|Bad node ID|Node '.*' for check '.*' doesn't match register request node"
    r"|Invalid Behavior setting|Invalid Session TTL|Session TTL '|Missing check '"
    r'|CheckID ".*" does not have associated TTL'
    r"|user event exceeds configured limit|Cannot provide tag filter without service filter"
    r"|Scripts are disabled on this agent from remote calls; to enable, configure "
    r'|strconv\.Parse(Uint|Int): parsing "'
    r"|Could not find address for server id |cannot find peer to transfer leadership to"
    r"|cannot transfer leadership to |Failed to join .*: .*dial tcp"
    r'|No node found with name "'
    # ACL auth methods, binding rules and login: the ACL RPC's own refusals
    r"|Invalid Auth Method: |the Type field of an Auth Method is immutable|MaxTokenTTL "
    r"|[Ii]nvalid Binding Rule: |cannot find auth method with name |cannot find binding rule "
    r"|Binding Rule ID invalid UUID|the AuthMethod field of an Binding Rule is immutable"
    r"|missing jwt|error parsing token: |error verifying token: |error validating claims: "
    r"|no known key successfully validated|no issue time, notbefore, or expiration"
    r"|failed to unmarshal claims: |error converting claim |failed to parse and validate JWT"
    r"|lookup failed: |error interpreting template: |invalid bind name: "
    r"|Bind name for templated-policy |failed to interpret templated policy |templated policy failed"
    # prepared queries: parseQuery, the state store's refusals, execute's parameters
    r"|Invalid prepared query: |(Prepared Query lookup failed: )?failed prepared query lookup: "
    r"|Cannot modify non-existent prepared query: |ID must be empty when creating a new prepared"
    r"|raft apply failed: (name '.*' aliases an existing query |a query template with an empty"
    r"|invalid session|failed compiling template: )"
    r"|Bad limit: strconv\.Atoi: |Error parsing 'connect' value: strconv\.ParseBool: "
    r"|Missing Query ID|prepared query templates can only be resolved up by name"
    # peering, answered as a Consul with peering disabled
    r"|rpc error: code = FailedPrecondition desc = peering must be enabled)"
)

# Keys planted before the fuzzing: (key, value, flags). The traffic never writes outside fz/.
KNOWN_KV: tuple[tuple[str, bytes, int], ...] = (
    (KNOWN_KV_PREFIX + "plain", b"hello", 0),
    (KNOWN_KV_PREFIX + "binary", bytes(range(256)), 42),
    (KNOWN_KV_PREFIX + "empty", b"", 0),
    (KNOWN_KV_PREFIX + "nul", b"\x00" * 16, 2**64 - 1),
    (KNOWN_KV_PREFIX + "not-utf8", b"\xff\xfe\xc3\x28\xed\xa0\x80", 7),
    (KNOWN_KV_PREFIX + "dir/nested", b"nested", 0),
    (KNOWN_KV_PREFIX + "with space/é", "ünïcode".encode(), 1),
    (KNOWN_KV_PREFIX + "large", bytes((i * 7 + i // 256) % 256 for i in range(100_000)), 3),
)


def verdict(status: int, body: bytes) -> str:
    """How bad an answer is: "ok" (not 5xx), "consul" (a 5xx with Consul's own text),
    "exception" (a 5xx carrying a Python exception's text, or no text: Consul always says why)
    or "other" (any other 5xx text: not a crash by itself, but worth a look)."""
    if status < 500:
        return "ok"
    text = body.decode("utf-8", "replace").strip()
    if not text or EXCEPTION_TEXT.search(text):
        return "exception"
    return "consul" if CONSUL_500.search(text) else "other"


class Findings:
    """What came back, by status and by endpoint, and one example (the shortest request) of
    each distinct bad answer: kind "exception", "other", "leak", "timeout" (see `verdict`)."""

    REPORTED = ("exception", "other", "leak", "timeout")

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.by_endpoint: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.examples: dict[tuple[str, str, str], tuple[Request, str]] = {}

    def add(
        self, request: Request, status: str, kind: str, text: str, why: str | None = None
    ) -> None:
        endpoint = endpoint_of(request[1])
        self.statuses[status] += 1
        self.by_endpoint[endpoint][kind] += 1
        if kind in self.REPORTED:
            key = (kind, endpoint, f"{status} {why or failure_key(kind, text)}")
            old = self.examples.get(key)
            if old is None or _size(request) < _size(old[0]):
                self.examples[key] = (request, text)

    def count(self, kind: str) -> int:
        return sum(kinds[kind] for kinds in self.by_endpoint.values())

    def lines(self, kind: str, width: int = 300) -> list[str]:
        out = []
        for (k, endpoint, status), ((method, target, body), text) in sorted(self.examples.items()):
            if k == kind:
                shown = body[:width] + (b"..." if len(body) > width else b"")
                out.append(
                    f"{endpoint}: {status.split()[0]} {text[:400]!r}\n"
                    f"    {method} {target[:200]} {shown!r}"
                )
        return out


def _size(request: Request) -> int:
    return len(request[1]) + len(request[2])


class VerbatimTransport(httpx.BaseTransport):
    """Sends `extensions["target"]` as the request target, byte for byte.

    httpx removes dot segments from URLs (`/v1/kv/fz/a/../b` becomes `/v1/kv/fz/b`), and a
    bad path is part of the traffic; httpcore underneath sends whatever target it is given.
    """

    def __init__(self) -> None:
        self._pool = httpcore.ConnectionPool(max_connections=4)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        target = request.extensions.get("target") or url.raw_path
        try:
            answer = self._pool.request(
                request.method,
                httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=target
                ),
                headers=request.headers.raw,
                content=request.read(),
                extensions={"timeout": request.extensions.get("timeout", {})},
            )
        # httpcore's own errors, as httpx's transports map them (the callers catch httpx's)
        except httpcore.TimeoutException as exc:
            raise httpx.TimeoutException(str(exc), request=request) from exc
        except httpcore.NetworkError as exc:
            raise httpx.NetworkError(str(exc), request=request) from exc
        except httpcore.ProtocolError as exc:
            raise httpx.ProtocolError(str(exc), request=request) from exc
        return httpx.Response(answer.status, headers=answer.headers, content=answer.content)

    def close(self) -> None:
        self._pool.close()


@dataclass
class FuzzAgent:
    """The agent process, its HTTP client (token set), and what was planted before fuzzing."""

    proc: AgentProc
    http: httpx.Client
    snapshot_before: bytes = b""

    @property
    def url(self) -> str:
        return self.proc.url

    def send(self, method: str, target: str, body: bytes, timeout: float) -> httpx.Response:
        return self.http.request(  # the URL is a stand-in: the target goes out verbatim
            method,
            "/fuzz",
            content=body,
            extensions={"target": target.encode("ascii"), "timeout": _timeouts(timeout)},
        )

    def log(self) -> str:
        return self.proc.output()

    def alive(self) -> bool:
        return self.proc.proc is not None and self.proc.proc.poll() is None


def _timeouts(seconds: float) -> dict[str, float]:
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


def agent_args(root: Path, ip: str) -> list[str]:
    config = root / "acl.json"
    tokens = {"initial_management": TOKEN, "agent": TOKEN}
    config.write_text(
        json.dumps({"acl": {"enabled": True, "default_policy": "allow", "tokens": tokens}})
    )
    return [
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={root / 'data'}",
        "-node=fuzzagent",
        f"-bind={ip}",
        f"-client={ip}",
        f"-server-port={free_port(ip)}",
        f"-serf-lan-port={free_port(ip)}",
        "-serf-wan-port=-1",
        "-dns-port=-1",
        f"-config-file={config}",
    ]


@contextmanager
def fuzz_agent(ip: str, root: Path | None = None) -> Iterator[FuzzAgent]:
    """A fresh `-server -bootstrap-expect=1` agent on `ip` with its own data dir, known state
    planted and its snapshot taken; stopped (and the temp dir removed) on exit."""
    with tempfile.TemporaryDirectory(prefix="gitkv-fuzz-") as tmp:
        base = Path(root or tmp)
        base.mkdir(parents=True, exist_ok=True)
        proc = AgentProc(*agent_args(base, ip), ip=ip, http_port=free_port(ip)).start(timeout=30)
        http = httpx.Client(
            base_url=proc.url,
            headers={"X-Consul-Token": TOKEN},
            transport=VerbatimTransport(),
            timeout=30,
        )
        try:
            fuzz = FuzzAgent(proc, http)
            plant(fuzz)
            yield fuzz
        finally:
            http.close()
            proc.cleanup()


def _kv_path(key: str) -> str:
    return "/v1/kv/" + quote(key)


def plant(fuzz: FuzzAgent) -> None:
    """Known keys (some binary), the known service, and the agent's own snapshot."""
    http = fuzz.http
    for key, value, flags in KNOWN_KV:
        answer = http.put(_kv_path(key), params={"flags": flags}, content=value)
        assert answer.status_code == 200 and answer.json() is True, (key, answer.text)
    service = {
        "ID": KNOWN_SERVICE,
        "Name": KNOWN_SERVICE,
        "Port": 8080,
        "Tags": ["a", "b"],
        "Meta": {"owner": "fuzz"},
        "Check": {"TTL": "1h", "Status": "passing"},
    }
    answer = http.put("/v1/agent/service/register", json=service)
    assert answer.status_code == 200, answer.text
    _wait_catalog_has_service(http, 10)
    answer = http.get("/v1/snapshot")
    assert answer.status_code == 200, answer.text
    fuzz.snapshot_before = answer.content


def _wait_catalog_has_service(http: httpx.Client, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = http.get(f"/v1/catalog/service/{KNOWN_SERVICE}")
        if answer.status_code == 200 and answer.json():
            return True
        time.sleep(0.1)
    return False


def _known_keys_problems(http: httpx.Client, when: str) -> list[str]:
    problems = []
    for key, value, flags in KNOWN_KV:
        try:
            answer = http.get(_kv_path(key))
        except httpx.HTTPError as exc:
            problems.append(f"{when}: GET {key!r}: {exc!r}")
            continue
        if answer.status_code != 200:
            problems.append(
                f"{when}: GET {key!r} answered {answer.status_code} {answer.text[:200]!r}"
            )
            continue
        entry = answer.json()[0]
        got = base64.b64decode(entry["Value"] or "")
        if got != value or entry["Flags"] != flags:
            problems.append(
                f"{when}: key {key!r} changed: value {got[:40]!r}... ({len(got)} bytes, "
                f"flags {entry['Flags']}) != {value[:40]!r}... ({len(value)} bytes, flags {flags})"
            )
    return problems


def _reads_problems(http: httpx.Client, when: str) -> list[str]:
    problems = []
    for path in ("/v1/catalog/nodes", "/v1/catalog/services", "/v1/internal/ui/nodes"):
        try:
            answer = http.get(path)
        except httpx.HTTPError as exc:
            problems.append(f"{when}: GET {path}: {exc!r}")
            continue
        if answer.status_code != 200:
            problems.append(
                f"{when}: GET {path} answered {answer.status_code} {answer.text[:300]!r}"
            )
    return problems


def _restore_problems(http: httpx.Client, archive: bytes, which: str) -> list[str]:
    answer = http.put("/v1/snapshot", content=archive)
    if answer.status_code != 200:
        return [f"PUT /v1/snapshot of {which} answered {answer.status_code} {answer.text[:300]!r}"]
    after = f"after restoring {which}"
    return _known_keys_problems(http, after) + _reads_problems(http, after)


_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \[\w+\] [\w.]+: ")


_WORD = re.compile(r"^[A-Za-z]+[:,.;]?$")


def signature(text: str, words: int = 6) -> str:
    """The first words of a message with its variable parts (IDs, addresses, numbers, quoted
    parts) blanked, so that one bug counts once however many IDs it was hit with."""
    text = re.sub(r"\"[^\"]*\"|'[^']*'", "…", text)
    out: list[str] = []
    for token in text.split():
        token = token if _WORD.match(token) else "…"
        if token != "…" or not out or out[-1] != "…":
            out.append(token)
    return " ".join(out[:words])


def failure_key(kind: str, text: str) -> str:
    """What makes two bad answers of one endpoint the same bug: for a crash, the Python text
    it leaked ("Errno", "not iterable"); otherwise the first words of the message."""
    leak = EXCEPTION_TEXT.search(text) if kind == "exception" else None
    return leak.group(0) if leak else signature(text)


def log_crashes(log: str) -> list[tuple[str, str]]:
    """(what failed, exception line) for every traceback in an agent log, in order: the log
    record above the traceback ("PUT /v1/txn failed", "raft: apply of index 7 failed") and
    the traceback's last line ("TypeError: 'int' object is not iterable")."""
    lines = log.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last)"):
            continue
        header = _RECORD.sub("", lines[i - 1]) if i else ""
        last = ""
        for follow in lines[i + 1 :]:
            if _RECORD.match(follow):
                break
            if (
                follow
                and not follow[0].isspace()
                and not follow.startswith(("Traceback", "During", "The above"))
            ):
                last = follow
        out.append((header, last))
    return out


def log_problems(log: str) -> list[str]:
    """Distinct apply failures and tracebacks in the agent's log, with their counts."""
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], tuple[str, str]] = {}
    for header, exception in log_crashes(log):
        key = (re.sub(r"\d+", "…", header), exception.partition(":")[0])
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, (header, exception))
    return [
        f"agent log: {counts[key]}x {header}: {exception[:300]}"
        for key, (header, exception) in first.items()
    ]


def check_after(fuzz: FuzzAgent) -> list[str]:
    """Everything that must still hold after the fuzzing (see the module docstring)."""
    if not fuzz.alive():
        return [f"the agent exited (code {fuzz.proc.proc.returncode if fuzz.proc.proc else '?'})"]
    http = fuzz.http
    problems = _known_keys_problems(http, "after fuzzing") + _reads_problems(http, "after fuzzing")
    service = http.get(f"/v1/agent/service/{KNOWN_SERVICE}")
    if service.status_code != 200:
        problems.append(
            f"known service gone from the agent: {service.status_code} {service.text[:200]!r}"
        )
    elif not _wait_catalog_has_service(http, 10):
        problems.append("known service gone from the catalog")
    fresh = http.get("/v1/snapshot")
    if fresh.status_code != 200:
        problems.append(f"GET /v1/snapshot answered {fresh.status_code} {fresh.text[:300]!r}")
    else:
        problems += _restore_problems(http, fresh.content, "the agent's own fresh snapshot")
    problems += _restore_problems(http, fuzz.snapshot_before, "the snapshot taken before fuzzing")
    return problems + log_problems(fuzz.log())
