"""agent/http/session.py on in-memory twins: a create proposed through the writer starts the
session's TTL window in the reaper, a renew restarts it, the reads list it, and refusals
(an unknown session, a TTL out of range) write nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.http import session
from agent.http.app import HTTPError
from agent.http.catalog import build_register
from agent.http.deps import HTTPDeps
from agent.sessions_reaper import SessionReaper
from tests.harness.areas import call, dev_deps
from tests.harness.twins import MemoryWriter


def _deps_with_node() -> HTTPDeps:
    deps = dev_deps()
    node = deps.identity.node_name
    asyncio.run(deps.writer.write(build_register({"Node": node, "Address": "10.0.0.1"}, "dc1", [])))
    return deps


def test_create_starts_the_ttl_window_and_lists() -> None:
    deps = _deps_with_node()
    body = json.dumps({"Name": "lock", "TTL": "30s", "Checks": []}).encode()
    session_id = json.loads(
        call(session.register, deps, "PUT", "/v1/session/create", body=body).body
    )["ID"]
    created = deps.store.sessions.get(session_id)
    assert created is not None and created.Node == deps.identity.node_name
    reaper = deps.sessions_reaper
    assert isinstance(reaper, SessionReaper)
    assert session_id in reaper.timers.deadlines
    reaper.timers.clear(session_id)
    renewed = call(session.register, deps, "PUT", f"/v1/session/renew/{session_id}")
    assert [s["ID"] for s in json.loads(renewed.body)] == [session_id]
    assert session_id in reaper.timers.deadlines
    listed = json.loads(call(session.register, deps, "GET", "/v1/session/list").body)
    assert [s["Name"] for s in listed] == ["lock"]
    node = deps.identity.node_name
    on_node = json.loads(call(session.register, deps, "GET", f"/v1/session/node/{node}").body)
    assert [s["ID"] for s in on_node] == [session_id]


def test_destroy_goes_through_the_writer() -> None:
    deps = _deps_with_node()
    body = json.dumps({"Checks": []}).encode()
    session_id = json.loads(
        call(session.register, deps, "PUT", "/v1/session/create", body=body).body
    )["ID"]
    assert json.loads(call(session.register, deps, "PUT", f"/v1/session/destroy/{session_id}").body)
    assert deps.store.sessions.get(session_id) is None
    info = json.loads(call(session.register, deps, "GET", f"/v1/session/info/{session_id}").body)
    assert info == []


def test_renew_of_an_unknown_session_is_404() -> None:
    deps = dev_deps()
    with pytest.raises(HTTPError) as refused:
        call(session.register, deps, "PUT", "/v1/session/renew/nope")
    assert (refused.value.status, refused.value.message) == (404, "Session id 'nope' not found")


def test_ttl_below_the_minimum_is_refused_before_the_log() -> None:
    deps = _deps_with_node()
    assert isinstance(deps.writer, MemoryWriter)
    written = len(deps.writer.commands)
    body = json.dumps({"TTL": "1s", "Checks": []}).encode()
    with pytest.raises(HTTPError) as refused:
        call(session.register, deps, "PUT", "/v1/session/create", body=body)
    assert refused.value.status == 500
    assert refused.value.message.startswith("Invalid Session TTL '1000000000'")
    assert len(deps.writer.commands) == written
