"""agent/http/query.py on in-memory twins: each write is one command through the writer, a
refusal (of the body, of parseQuery, of the state store's checks) writes nothing, and a write
that loses a race to another at apply time answers as Consul's raft apply does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.http import query
from agent.http.app import JSON_BODY_LIMIT, HTTPError
from agent.http.deps import HTTPDeps
from agent.state.commands import Command, PreparedQueryRecord, PreparedQuerySet, typed
from tests.harness.areas import call, dev_deps
from tests.harness.twins import MemoryWriter

OTHER_ID = "7b0e7c0a-5a4e-4f55-9d9b-3c2f6f1b2a10"


def _writer(deps: HTTPDeps) -> MemoryWriter:
    assert isinstance(deps.writer, MemoryWriter)
    return deps.writer


def _create(deps: HTTPDeps, body: dict[str, Any]) -> str:
    response = call(query.register, deps, "POST", "/v1/query", body=json.dumps(body).encode())
    return json.loads(response.body)["ID"]


def _refused(deps: HTTPDeps, method: str, path: str, body: Any) -> HTTPError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(HTTPError) as refused:
        call(query.register, deps, method, path, body=raw)
    return refused.value


def test_crud_writes_one_command_each() -> None:
    deps = dev_deps()
    writer = _writer(deps)
    query_id = _create(deps, {"Name": "geo", "Service": {"Service": "db"}})
    path = f"/v1/query/{query_id}"
    body = json.dumps({"Name": "geo", "Service": {"Service": "web"}}).encode()
    assert call(query.register, deps, "PUT", path, body=body).body == b""
    assert deps.store.queries.get(query_id)["Service"]["Service"] == "web"
    listed = json.loads(call(query.register, deps, "GET", "/v1/query").body)
    assert [q["ID"] for q in listed] == [query_id]
    assert call(query.register, deps, "DELETE", path).body == b""
    assert writer.types() == ["prepared-query-set", "prepared-query-set", "prepared-query-delete"]
    assert json.loads(call(query.register, deps, "GET", "/v1/query").body) == []


def test_an_update_takes_the_id_from_the_path_and_an_empty_body_is_a_blank_query() -> None:
    deps = dev_deps()
    query_id = _create(deps, {"Name": "geo", "Service": {"Service": "db"}})
    body = {"ID": OTHER_ID, "Name": "geo", "Service": {"Service": "web"}}
    call(query.register, deps, "PUT", f"/v1/query/{query_id}", body=json.dumps(body).encode())
    assert deps.store.queries.get(OTHER_ID) is None
    refused = _refused(deps, "PUT", f"/v1/query/{query_id}", b"")
    assert (refused.status, refused.message) == (
        500,
        "Invalid prepared query: Must be bound to a session",
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            b"[]",
            400,
            "Request decode failed: json: cannot unmarshal array into Go value of type structs.PreparedQuery",
        ),
        ({"Name": "q"}, 500, "Invalid prepared query: Must provide a Service name to query"),
        (
            {"Name": "taken", "Service": {"Service": "db"}},
            500,
            "raft apply failed: name 'taken' aliases an existing query name",
        ),
        (
            {
                "Name": "t",
                "Template": {"Type": "name_prefix_match", "Regexp": "["},
                "Service": {"Service": "db"},
            },
            500,
            "raft apply failed: failed compiling template: Bad Regexp: error parsing regexp: "
            "missing closing ]: `[`",
        ),
    ],
)
def test_refusals_write_nothing(body: Any, status: int, message: str) -> None:
    deps = dev_deps()
    _create(deps, {"Name": "taken", "Service": {"Service": "db"}})
    written = len(_writer(deps).commands)
    refused = _refused(deps, "POST", "/v1/query", body)
    assert (refused.status, refused.message) == (status, message)
    assert len(_writer(deps).commands) == written


class RacingWriter(MemoryWriter):
    """Applies a competing command just before the handler's own, as another server's write
    landing between the handler's checks and its entry would."""

    def __init__(self, inner: MemoryWriter, first: Command) -> None:
        super().__init__(inner.fsm)
        self.first: Command | None = first

    async def write(self, command: Command) -> Any:
        if self.first is not None:
            first, self.first = self.first, None
            await super().write(first)
        return await super().write(command)


def test_a_write_that_loses_a_race_answers_as_raft_apply_failed() -> None:
    deps = dev_deps()
    rival = typed(PreparedQueryRecord, {"ID": OTHER_ID, "Name": "geo", "Service": {"Service": "x"}})
    racing = RacingWriter(_writer(deps), PreparedQuerySet(Query=rival))
    object.__setattr__(deps, "writer", racing)
    refused = _refused(deps, "POST", "/v1/query", {"Name": "GEO", "Service": {"Service": "db"}})
    assert (refused.status, refused.message) == (
        500,
        "raft apply failed: name 'GEO' aliases an existing query name",
    )
    assert [q["ID"] for q in deps.store.queries.all()] == [OTHER_ID]


def test_execute_and_explain_are_answered_under_the_prefix() -> None:
    deps = dev_deps()
    query_id = _create(deps, {"Name": "geo", "Service": {"Service": "db"}})
    executed = json.loads(call(query.register, deps, "GET", "/v1/query/geo/execute").body)
    assert executed["Service"] == "db" and executed["Nodes"] == []
    explained = json.loads(call(query.register, deps, "GET", f"/v1/query/{query_id}/explain").body)
    assert explained["Query"]["ID"] == query_id
    refused = _refused(deps, "PUT", "/v1/query/geo/execute", b"")
    assert refused.status == 405 and refused.headers == [(b"allow", b"OPTIONS,GET")]


def test_a_body_beyond_the_json_limit_is_413_and_writes_nothing() -> None:
    deps = dev_deps()
    body = json.dumps({"Name": "big", "Service": {"Service": "db"}, "X": "x" * JSON_BODY_LIMIT})
    refused = _refused(deps, "POST", "/v1/query", body.encode())
    assert refused.status == 413 and _writer(deps).commands == []
