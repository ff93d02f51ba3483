"""agent/http/txn.py on in-memory twins: a write txn goes through the writer, a read-only one
is answered by the FSM without a log entry, and a refusal (too many ops) proposes nothing."""

from __future__ import annotations

import base64
import json

import pytest

from agent.http import txn
from agent.http.app import HTTPError
from tests.harness.areas import call, dev_deps
from tests.harness.twins import MemoryWriter


def _set(key: str, value: bytes) -> dict:
    return {"KV": {"Verb": "set", "Key": key, "Value": base64.b64encode(value).decode()}}


def test_write_then_read_only_txn() -> None:
    deps = dev_deps()
    body = json.dumps([_set("a", b"1"), _set("b", b"2")]).encode()
    answer = json.loads(call(txn.register, deps, "PUT", "/v1/txn", body=body).body)
    assert [r["KV"]["Key"] for r in answer["Results"]] == ["a", "b"]
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.types() == ["txn"]
    read = json.dumps([{"KV": {"Verb": "get", "Key": "b"}}]).encode()
    got = call(txn.register, deps, "PUT", "/v1/txn", body=read)
    [result] = json.loads(got.body)["Results"]
    assert base64.b64decode(result["KV"]["Value"]) == b"2"
    assert len(deps.writer.commands) == 1  # the read never reached the writer
    assert (b"x-consul-knownleader", b"true") in got.headers


def test_failed_check_answers_409() -> None:
    deps = dev_deps()
    body = json.dumps([{"KV": {"Verb": "check-index", "Key": "missing", "Index": 5}}]).encode()
    answer = call(txn.register, deps, "PUT", "/v1/txn", body=body)
    assert answer.status == 409
    assert json.loads(answer.body)["Results"] is None


def test_too_many_operations_are_refused() -> None:
    deps = dev_deps()
    body = json.dumps([_set(f"k{i}", b"v") for i in range(txn.MAX_OPS + 1)]).encode()
    with pytest.raises(HTTPError) as refused:
        call(txn.register, deps, "PUT", "/v1/txn", body=body)
    assert refused.value.status == 413
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.commands == []
