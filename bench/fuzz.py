"""Bad-input fuzzing at volume: N generated requests against one real agent (issue 11).

    python bench/fuzz.py                      # 50,000 requests, seed 0
    python bench/fuzz.py --requests 5000 --seed 7 --concurrency 8

The requests come from the Hypothesis strategies of tests/harness/badinput.py, the same as the
e2e fuzz test's, and the agent is held to the same rules (tests/harness/fuzzagent.py). A
Hypothesis draw costs tens of microseconds per choice, far slower than the agent answers, so
the requests are drawn first, in worker processes (16 fixed shards, each seeded from --seed:
the same seed gives the same requests on any machine), and then sent by concurrent clients.

Prints requests/s, status counts, 5xx by endpoint (carrying a Python exception's text, Consul's
own, other), timeouts, the agent's log failures and peak RSS (VmHWM), then the post-run checks.
Exit code 1 if any 5xx carries an exception text or a post-run check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import random
import re
import sys
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    import uvloop
except ImportError:  # the client is cheaper on uvloop, not different
    uvloop = None

from tests.harness.badinput import ENDPOINTS, Request, endpoint_of, requests  # noqa: E402
from tests.harness.fuzzagent import (  # noqa: E402
    EXCEPTION_TEXT,
    TOKEN,
    Findings,
    check_after,
    fuzz_agent,
    log_crashes,
    verdict,
)

IP = "127.0.0.92"  # the bench's own loopback address (the e2e fuzz test uses .91)
SHARDS = 16


# ------------------------------------------------------------------------------ drawing


def draw_shard(seed: int, shard: int, count: int, only: tuple = (), without: tuple = ()) -> bytes:
    """`count` requests drawn with a Random seeded from (seed, shard), pickled and compressed
    (a 70 KB name compresses to nothing, so the whole run fits in memory)."""
    strategy = requests(only, without)
    rnd = random.Random(f"{seed}/{shard}")
    try:
        drawn = _draw_direct(strategy, rnd, count)
    except (ImportError, TypeError, AttributeError):  # Hypothesis internals moved
        drawn = _draw_with_given(strategy, rnd.getrandbits(64), count)
    return zlib.compress(pickle.dumps(drawn))


def _draw_direct(strategy, rnd: random.Random, count: int) -> list[Request]:
    """Straight draws from the strategy, without the test engine's bookkeeping (about 2x
    faster). This leans on Hypothesis internals, hence the fallback above."""
    from hypothesis.control import BuildContext
    from hypothesis.errors import StopTest
    from hypothesis.internal.conjecture.data import ConjectureData

    out: list[Request] = []
    while len(out) < count:
        data = ConjectureData(random=rnd)
        try:
            with BuildContext(data, wrapped_test=draw_shard):
                out.append(data.draw(strategy))
        except StopTest:  # the draw ran past Hypothesis's size limit: draw another
            continue
    return out


def _draw_with_given(strategy, seed: int, count: int) -> list[Request]:
    """The public way: a seeded @given run that keeps what it was given."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    out: list[Request] = []

    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @with_seed(seed)
    @given(strategy)
    def collect(request: Request) -> None:
        out.append(request)

    collect()
    return out[:count]


def draw_all(seed: int, total: int, workers: int, only: tuple, without: tuple) -> list[bytes]:
    counts = [total // SHARDS + (1 if i < total % SHARDS else 0) for i in range(SHARDS)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(draw_shard, seed, i, counts[i], only, without) for i in range(SHARDS)]
        return [job.result() for job in jobs]


# ------------------------------------------------------------------------------ sending


class RawHTTP:
    """One keep-alive HTTP/1.1 connection with hand-written requests. The load generator must
    cost far less than the agent, or the figure measures the client (bench/locks.py found
    httpx ~10x dearer); and the target goes out exactly as drawn."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\nX-Consul-Token: {TOKEN}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("closed before answering")
        length, chunked, close = None, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value == b"chunked"
            elif name == b"connection":
                close = value == b"close"
        if chunked:
            content = b""
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                content += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        elif length is not None:
            content = await self.reader.readexactly(length)
        else:
            content, close = await self.reader.read(), True
        if close:
            self.close()
        return int(status_line.split()[1]), content


async def send_all(
    host: str,
    port: int,
    shards: list[bytes],
    concurrency: int,
    timeout: float,
    deadline: float,
    tally: Findings,
) -> int:
    def feed():
        for blob in shards:
            yield from pickle.loads(zlib.decompress(blob))

    queue = feed()
    sent = 0

    async def worker() -> None:
        nonlocal sent
        http = RawHTTP(host, port)
        for request in queue:  # one generator shared by all workers: each request once
            if time.monotonic() > deadline:
                break
            method, target, body = request
            sent += 1
            try:
                status, content = await asyncio.wait_for(
                    http.request(method, target, body), timeout
                )
            except TimeoutError:
                http.close()
                tally.add(request, "timeout", "timeout", f"no answer within {timeout:.0f}s")
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                http.close()  # the agent may close after refusing a body: not a 5xx
                tally.add(request, "closed", "ok", repr(exc))
                continue
            text = content.decode("utf-8", "replace").strip()[:500]
            kind = verdict(status, content)
            if status < 500 and EXCEPTION_TEXT.search(text):
                kind = "leak"  # a refusal, rightly, but in a library's words: worth a look
            tally.add(request, str(status), kind, text)
        http.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


# ------------------------------------------------------------------------------ report

_FAILED = re.compile(r"^(GET|PUT|POST|DELETE) (/\S*) failed")


def crashes_by_endpoint(log: str) -> tuple[Counter[str], Counter[tuple[str, str]], dict]:
    """Tracebacks in the agent's log: handler crashes ("PUT /v1/txn failed") by endpoint; each
    distinct (where, exception type) with its count, and one exception line of each."""
    endpoints: Counter[str] = Counter()
    distinct: Counter[tuple[str, str]] = Counter()
    example: dict[tuple[str, str], str] = {}
    for header, exception in log_crashes(log):
        failed = _FAILED.match(header)
        where = endpoint_of(failed.group(2)) if failed else re.sub(r"\d+", "…", header)
        if failed:
            endpoints[where] += 1
        key = (where, exception.partition(":")[0])
        distinct[key] += 1
        example.setdefault(key, exception[:300])
    return endpoints, distinct, example


def vm_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def report(
    tally: Findings,
    sent: int,
    seconds: float,
    gen_seconds: float,
    log: str,
    memory: dict[str, int | None],
    problems: list[str],
) -> int:
    print(
        f"\nrequests sent     {sent}  in {seconds:.1f}s  = {sent / max(seconds, 1e-9):,.0f} requests/s"
        f"   (drawn beforehand in {gen_seconds:.1f}s = {sent / max(gen_seconds, 1e-9):,.0f}/s)"
    )
    print("statuses          " + ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses.items())))
    print("\n5xx by endpoint   (exception text / Consul's own / other; timeouts)")
    for endpoint, kinds in sorted(tally.by_endpoint.items()):
        if kinds["exception"] or kinds["consul"] or kinds["other"] or kinds["timeout"]:
            print(
                f"  {endpoint:40s} {kinds['exception']:6d} / {kinds['consul']:6d} / "
                f"{kinds['other']:6d};  {kinds['timeout']} timeouts"
            )
    crashed, distinct, example = crashes_by_endpoint(log)
    applies = sum(n for (where, _), n in distinct.items() if "apply of index" in where)
    print(
        f"\nagent log         {applies} apply failures, {sum(distinct.values())} tracebacks; "
        "handler crashes: " + (", ".join(f"{e}: {n}" for e, n in crashed.most_common()) or "none")
    )
    for key, n in distinct.most_common():
        print(f"  {n:6d}x {key[0]}: {example[key]}")
    shown = {k: f"{v / 1024:.0f} MiB" if v else "unknown" for k, v in memory.items()}
    print(
        f"peak RSS          {shown['sent']} (VmHWM after the sending), {shown['checked']} after "
        f"the post-run checks (snapshot restores); VmRSS at the end {shown['rss']}"
    )
    for kind, title in (
        ("exception", "5xx carrying a Python exception's text"),
        ("timeout", "no answer in time"),
        ("other", "5xx with texts that are neither Consul's (allow-listed) nor a crash"),
        ("leak", "4xx refusals in a library's words (not failures)"),
    ):
        if lines := tally.lines(kind, width=200):
            print(f"\n{title}: distinct answers, shortest request of each")
            print("\n".join("  " + line.replace("\n", "\n  ") for line in lines))
    print("\npost-run checks   " + ("all passed" if not problems else f"{len(problems)} failed"))
    for problem in problems:
        print("  " + problem)
    return 1 if tally.count("exception") or problems or applies else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="endpoint labels, comma-separated")
    parser.add_argument("--without", default="", help="endpoint labels to leave out")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="drawing processes"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="stop sending after")
    parser.add_argument("--data-dir", type=Path, help="keep the agent's data dir and log here")
    args = parser.parse_args()

    started = time.monotonic()
    print(
        f"drawing {args.requests} requests (seed {args.seed}, {args.workers} processes)...",
        flush=True,
    )
    labels = {
        name: tuple(filter(None, getattr(args, name).split(","))) for name in ("only", "without")
    }
    unknown = set(labels["only"] + labels["without"]) - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoint labels {sorted(unknown)}; known: {', '.join(ENDPOINTS)}")
    shards = draw_all(args.seed, args.requests, args.workers, labels["only"], labels["without"])
    gen_seconds = time.monotonic() - started
    with fuzz_agent(IP, args.data_dir) as fuzz:
        print(
            f"agent {fuzz.url} (pid {fuzz.proc.proc.pid}), sending with {args.concurrency} "
            "clients...",
            flush=True,
        )
        tally = Findings()
        began = time.monotonic()
        if uvloop is not None:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        sent = asyncio.run(
            send_all(
                fuzz.proc.ip,
                fuzz.proc.http_port,
                shards,
                args.concurrency,
                args.timeout,
                began + args.max_seconds,
                tally,
            )
        )
        seconds = time.monotonic() - began
        pid = fuzz.proc.proc.pid
        memory = {"sent": vm_kib(pid, "VmHWM")}
        print("post-run checks...", flush=True)
        problems = check_after(fuzz)
        memory |= {"checked": vm_kib(pid, "VmHWM"), "rss": vm_kib(pid, "VmRSS")}
        if args.data_dir:
            (args.data_dir / "agent.log").write_text(fuzz.log())
        return report(tally, sent, seconds, gen_seconds, fuzz.log(), memory, problems)


if __name__ == "__main__":
    sys.exit(main())
