"""agent/http/kv.py on in-memory twins: a put proposed through the writer and read back, a
delete, and the refusals (too large, conflicting flags) that never reach the log."""

from __future__ import annotations

import base64
import json

import pytest

from agent.http import kv
from agent.http.app import HTTPError
from tests.harness.areas import call, dev_deps, header
from tests.harness.twins import MemoryWriter


def test_put_is_proposed_and_read_back() -> None:
    deps = dev_deps()
    assert json.loads(call(kv.register, deps, "PUT", "/v1/kv/app/a", b"flags=7", b"one").body)
    assert isinstance(deps.writer, MemoryWriter)
    assert [(c.Verb, c.Key, c.Flags) for c in deps.writer.commands] == [("set", "app/a", 7)]
    got = call(kv.register, deps, "GET", "/v1/kv/app/a")
    [entry] = json.loads(got.body)
    assert (entry["Key"], base64.b64decode(entry["Value"]), entry["Flags"]) == ("app/a", b"one", 7)
    assert header(got, b"x-consul-index") == str(entry["ModifyIndex"]).encode()
    raw = call(kv.register, deps, "GET", "/v1/kv/app/a", b"raw")
    assert (raw.status, raw.body) == (200, b"one")


def test_delete_then_missing() -> None:
    deps = dev_deps()
    call(kv.register, deps, "PUT", "/v1/kv/app/a", body=b"one")
    assert json.loads(call(kv.register, deps, "DELETE", "/v1/kv/app/a").body) is True
    assert call(kv.register, deps, "GET", "/v1/kv/app/a").status == 404
    assert call(kv.register, deps, "GET", "/v1/kv/app", b"keys").status == 404


@pytest.mark.parametrize(
    ("query", "body", "status"),
    [
        (b"", b"x" * (512 * 1024 + 1), 413),  # over limits.kv_max_value_size
        (b"cas=0&acquire=s", b"", 400),  # Conflicting flags
        (b"flags=x", b"", 500),  # Go's ParseUint error
    ],
)
def test_refused_put_never_reaches_the_writer(query: bytes, body: bytes, status: int) -> None:
    deps = dev_deps()
    with pytest.raises(HTTPError) as refused:
        call(kv.register, deps, "PUT", "/v1/kv/app/a", query, body)
    assert refused.value.status == status
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.commands == []
