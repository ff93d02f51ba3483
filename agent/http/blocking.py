"""Blocking queries and the read headers every Consul read carries.

`?index=N` turns a read into a long poll: answer as soon as the result's index passes N, or
with the unchanged result when `?wait` (default 5 min, max 10 min, plus up to wait/16 jitter)
runs out. The waiter is registered on the store's watch topics *before* the query runs, and
nothing awaits in between, so a write can never slip between "read" and "park".
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from agent.aio import wake
from agent.durations import DurationError, parse_duration
from agent.http.app import HTTPError, Request

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0


@dataclass(frozen=True, slots=True)
class QueryOptions:
    index: int = 0
    wait: float = DEFAULT_WAIT
    consistency: str = "leader"


_PLAIN = QueryOptions()


def query_options(req: Request) -> QueryOptions:
    if not req.raw_query:
        return _PLAIN
    stale, consistent = req.has("stale"), req.has("consistent")
    if stale and consistent:
        raise HTTPError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
    if req.has("cached") and consistent:
        raise HTTPError(400, "Cannot specify ?cached with ?consistent, conflicting semantics.")
    max_stale = req.get("max_stale")
    if max_stale:
        try:
            if parse_duration(max_stale) > 0:
                stale = True
        except DurationError:
            raise HTTPError(400, f'Invalid max_stale value "{max_stale}"') from None
    index = 0
    raw_index = req.get("index")
    if raw_index:
        try:
            index = int(raw_index)
            if index < 0:
                raise ValueError
        except ValueError:
            raise HTTPError(400, "Invalid index") from None
    wait = DEFAULT_WAIT
    raw_wait = req.get("wait")
    if raw_wait:
        try:
            wait = parse_duration(raw_wait)
        except DurationError:
            raise HTTPError(400, "Invalid wait time") from None
        wait = min(max(wait, 0.0), MAX_WAIT)
    consistency = "stale" if stale else "consistent" if consistent else "leader"
    return QueryOptions(index, wait, consistency)


def read_headers(
    req: Request, index: int, consistency: str = "leader"
) -> list[tuple[bytes, bytes]]:
    leadership = req.reads.leadership
    return [
        (b"x-consul-index", str(index if index > 0 else 1).encode()),
        (b"x-consul-knownleader", b"true" if leadership.leader_address else b"false"),
        (b"x-consul-lastcontact", str(leadership.last_contact_ms()).encode()),
        (b"x-consul-effective-consistency", consistency.encode()),
    ]


def query_meta(req: Request, index: int, consistency: str) -> dict[str, Any]:
    """Go's `structs.QueryMeta` as the few endpoints that embed it in their body encode it
    (the same facts as `read_headers`; LastContact a Go time.Duration in nanoseconds)."""
    leadership = req.reads.leadership
    return {
        "Index": index,
        "LastContact": leadership.last_contact_ms() * 1_000_000,
        "KnownLeader": bool(leadership.leader_address),
        "ConsistencyLevel": consistency,
        "NotModified": False,
        "Backend": 0,  # blocking-query
        "ResultsFilteredByACLs": False,
    }


async def blocking_query(
    req: Request,
    topics: Iterable[Hashable],
    query: Callable[[], tuple[int, Any]],
    opts: QueryOptions | None = None,
) -> tuple[int, Any, QueryOptions]:
    """Run `query` -> (index, result), long-polling on `topics` when the request asks to."""
    opts = opts or query_options(req)
    if opts.consistency == "consistent":
        await req.reads.leadership.barrier()
    if opts.index <= 0:
        index, result = query()
        return index, result, opts
    loop = asyncio.get_running_loop()
    wait = opts.wait + random.random() * opts.wait / 16
    deadline = loop.time() + wait
    watches = req.reads.watches
    topics = tuple(topics)
    while True:
        waiter = loop.create_future()
        watches.add(topics, waiter)
        try:
            index, result = query()
            remaining = deadline - loop.time()
            if index > opts.index or remaining <= 0:
                return index, result, opts
            timer = loop.call_later(remaining, wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        finally:
            watches.remove(topics, waiter)
