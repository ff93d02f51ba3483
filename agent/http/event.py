"""`/v1/event/fire/<name>` and `/v1/event/list`: user events over gossip (`agent/events.py`).

Both are answered by the agent asked (never forwarded): an event is gossip, not Raft state,
and each agent lists the events it kept. The list blocks as Consul's does: while the index
(derived from the newest event's UUID) equals the requested one, not until it grows.
"""

from __future__ import annotations

import asyncio
import random
from functools import partial
from typing import TYPE_CHECKING

from agent.events import EventError, UserEvents, list_index, new_event
from agent.filter import FilterError, compile_filter
from agent.http.app import JSON_BODY_LIMIT, HTTPError, Request, Response, Router, json_response
from agent.http.blocking import query_options, read_headers

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps

__all__ = ["register"]


async def event_fire(events: UserEvents, req: Request, name: str) -> Response:
    if not name:
        raise HTTPError(400, "Missing name")
    node = req.get("node") or ""
    service = req.get("service") or ""
    tag = req.get("tag") or ""
    # Consul's limit on a whole event is far smaller (new_event checks it); this bound only
    # keeps an oversize body from being buffered at all.
    payload = await req.body(JSON_BODY_LIMIT)
    try:
        event = events.fire(new_event(name, payload, node, service, tag))
    except EventError as exc:  # Consul answers its validation errors with 500 too
        raise HTTPError(500, str(exc)) from None
    return json_response(req, event.api_dict())


def _filter(req: Request):
    expression = req.get("filter") if req.raw_query else None
    if not expression:
        return None
    try:
        return compile_filter(expression)
    except FilterError as exc:
        raise HTTPError(400, f"Failed to create boolean expression evaluator: {exc}") from None


async def event_list(events: UserEvents, req: Request, rest: str) -> Response:
    opts = query_options(req)
    name = req.get("name") or None
    selector = _filter(req)  # a bad expression fails before blocking
    events_log = events.log
    loop = asyncio.get_running_loop()
    # Consul's jitter: up to wait/16 more, so many watchers do not return in step.
    deadline = loop.time() + opts.wait + random.random() * opts.wait / 16
    while True:
        waiter = events_log.next_change()
        try:
            listed = events_log.events(name)
            index = list_index(listed)
            remaining = deadline - loop.time()
            if opts.index <= 0 or index != opts.index or remaining <= 0:
                break
            try:
                await asyncio.wait_for(asyncio.shield(waiter), remaining)
            except TimeoutError:
                pass
        finally:
            events_log.forget(waiter)
    items = [e.api_dict() for e in listed]
    if selector is not None:
        try:
            items = selector.select(items)
        except FilterError as exc:
            raise HTTPError(500, str(exc)) from None
    return json_response(req, items, read_headers(req, index))


def register(router: Router, deps: HTTPDeps) -> None:
    events = deps.events  # the only port this area uses
    router.add("/v1/event/fire/", {"PUT": partial(event_fire, events)}, prefix=True)
    router.add("/v1/event/list", {"GET": partial(event_list, events)})
