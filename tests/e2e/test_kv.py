"""KV over real HTTP: wire shapes, query flags, blocking queries, bad input — with httpx and
with the py-consul client."""

from __future__ import annotations

import base64
import threading
import time

import consul
import httpx
import pytest

from tests.e2e.agentproc import AgentProc


@pytest.fixture
def http(dev_agent_module: AgentProc):
    with dev_agent_module.client() as client:
        client.delete("/v1/kv/", params={"recurse": ""})
        yield client


def test_put_get_wire_shape(http: httpx.Client) -> None:
    put = http.put("/v1/kv/app/g", content=b"hello")
    assert (put.status_code, put.json()) == (200, True)
    got = http.get("/v1/kv/app/g")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    [entry] = got.json()
    assert set(entry) == {"LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"}
    assert entry["Key"] == "app/g" and entry["Flags"] == 0 and entry["LockIndex"] == 0
    assert base64.b64decode(entry["Value"]) == b"hello"
    assert int(got.headers["x-consul-index"]) == entry["ModifyIndex"]
    assert got.headers["x-consul-knownleader"] == "true"
    assert got.headers["x-consul-lastcontact"] == "0"
    assert got.headers["x-consul-default-acl-policy"] == "allow"


def test_missing_key_is_404_with_index(http: httpx.Client) -> None:
    got = http.get("/v1/kv/nope")
    assert got.status_code == 404 and got.content == b""
    assert int(got.headers["x-consul-index"]) >= 1


def test_empty_value_is_null_and_raw(http: httpx.Client) -> None:
    http.put("/v1/kv/empty", content=b"")
    assert http.get("/v1/kv/empty").json()[0]["Value"] is None
    http.put("/v1/kv/bin", content=b"\x00\xffraw")
    raw = http.get("/v1/kv/bin", params={"raw": ""})
    assert raw.content == b"\x00\xffraw"
    assert raw.headers["content-type"].startswith("text/plain")


def test_flags_and_cas(http: httpx.Client) -> None:
    assert http.put("/v1/kv/c", params={"flags": "42"}, content=b"1").json() is True
    entry = http.get("/v1/kv/c").json()[0]
    assert entry["Flags"] == 42
    assert http.put("/v1/kv/c", params={"cas": "1"}, content=b"x").json() is False
    assert (
        http.put("/v1/kv/c", params={"cas": str(entry["ModifyIndex"])}, content=b"2").json() is True
    )
    assert http.put("/v1/kv/new", params={"cas": "0"}, content=b"a").json() is True
    assert http.put("/v1/kv/new", params={"cas": "0"}, content=b"b").json() is False
    assert base64.b64decode(http.get("/v1/kv/new").json()[0]["Value"]) == b"a"


def test_recurse_keys_separator(http: httpx.Client) -> None:
    for key in ("a/b/c", "a/b/d", "a/e", "b"):
        http.put(f"/v1/kv/{key}", content=key.encode())
    listing = http.get("/v1/kv/a/", params={"recurse": ""}).json()
    assert [e["Key"] for e in listing] == ["a/b/c", "a/b/d", "a/e"]
    assert http.get("/v1/kv/a/", params={"keys": ""}).json() == ["a/b/c", "a/b/d", "a/e"]
    assert http.get("/v1/kv/a/", params={"keys": "", "separator": "/"}).json() == ["a/b/", "a/e"]
    assert http.get("/v1/kv/", params={"keys": ""}).json() == ["a/b/c", "a/b/d", "a/e", "b"]
    assert http.get("/v1/kv/zz/", params={"recurse": ""}).status_code == 404
    assert http.get("/v1/kv/zz/", params={"keys": ""}).status_code == 404


def test_delete_variants(http: httpx.Client) -> None:
    for key in ("t/1", "t/2", "u"):
        http.put(f"/v1/kv/{key}", content=b"x")
    assert http.delete("/v1/kv/never-existed").json() is True
    idx = http.get("/v1/kv/u").json()[0]["ModifyIndex"]
    assert http.delete("/v1/kv/u", params={"cas": str(idx + 100)}).json() is False
    assert http.delete("/v1/kv/u", params={"cas": str(idx)}).json() is True
    assert http.delete("/v1/kv/t/", params={"recurse": ""}).json() is True
    assert http.get("/v1/kv/", params={"keys": ""}).json() == []


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status", "text"),
    [
        ("GET", "/v1/kv/", {}, b"", 400, "Missing key name"),
        ("PUT", "/v1/kv/", {}, b"x", 400, "Missing key name"),
        ("DELETE", "/v1/kv/", {}, b"", 400, "Missing key name"),
        ("PUT", "/v1/kv/k", {"cas": "1", "acquire": "s"}, b"", 400, "Conflicting flags"),
        ("DELETE", "/v1/kv/k", {"cas": "1", "recurse": ""}, b"", 400, "Conflicting flags"),
        ("PUT", "/v1/kv/k", {"cas": "abc"}, b"", 500, 'parsing "abc": invalid syntax'),
        ("PUT", "/v1/kv/k", {"flags": "-1"}, b"", 500, "invalid syntax"),
        ("GET", "/v1/kv/k", {"index": "abc"}, b"", 400, "Invalid index"),
        ("GET", "/v1/kv/k", {"wait": "10 minutes"}, b"", 400, "Invalid wait time"),
        (
            "GET",
            "/v1/kv/k",
            {"stale": "", "consistent": ""},
            b"",
            400,
            "Cannot specify ?stale with ?consistent",
        ),
        ("GET", "/v1/kv/k", {"dc": "mars"}, b"", 500, "No path to datacenter"),
        ("PUT", "/v1/kv/big", {}, b"x" * (512 * 1024 + 1), 413, "too large"),
    ],
)
def test_bad_input(http, method, path, params, body, status, text) -> None:
    before = http.get("/v1/kv/", params={"recurse": ""})
    answer = http.request(method, path, params=params, content=body)
    assert answer.status_code == status, answer.text
    assert text in answer.text
    after = http.get("/v1/kv/", params={"recurse": ""})
    assert after.status_code == before.status_code and after.content == before.content


def test_value_at_limit_is_accepted(http: httpx.Client) -> None:
    assert http.put("/v1/kv/limit", content=b"y" * (512 * 1024)).json() is True


def test_blocking_query_wakes_on_change(http: httpx.Client, dev_agent_module: AgentProc) -> None:
    http.put("/v1/kv/watch/me", content=b"1")
    index = int(http.get("/v1/kv/watch/me").headers["x-consul-index"])
    result: dict = {}

    def watcher() -> None:
        with dev_agent_module.client() as c:
            r = c.get("/v1/kv/watch/me", params={"index": str(index), "wait": "30s"})
            result["index"] = int(r.headers["x-consul-index"])
            result["value"] = r.json()[0]["Value"]

    thread = threading.Thread(target=watcher)
    thread.start()
    time.sleep(0.3)  # let it park; the assertion below does not depend on this
    assert thread.is_alive()
    http.put("/v1/kv/watch/me", content=b"2")
    thread.join(20)
    assert not thread.is_alive()
    assert result["index"] > index
    assert base64.b64decode(result["value"]) == b"2"


def test_blocking_query_not_woken_by_other_keys(http: httpx.Client) -> None:
    http.put("/v1/kv/quiet", content=b"1")
    index = int(http.get("/v1/kv/quiet").headers["x-consul-index"])
    http.put("/v1/kv/noisy", content=b"x")
    answer = http.get("/v1/kv/quiet", params={"index": str(index), "wait": "1s"})
    # timed out: same data, same index (a timeout is not an error)
    assert answer.status_code == 200
    assert int(answer.headers["x-consul-index"]) == index


def test_blocking_on_missing_key_wakes_on_create_and_on_prefix(
    http: httpx.Client, dev_agent_module
) -> None:
    first = http.get("/v1/kv/later/k")
    index = int(first.headers["x-consul-index"])
    done = {}

    def wait(path: str, params: dict, name: str) -> None:
        with dev_agent_module.client() as c:
            done[name] = c.get(path, params=params | {"index": str(index), "wait": "30s"})

    threads = [
        threading.Thread(target=wait, args=("/v1/kv/later/k", {}, "key")),
        threading.Thread(target=wait, args=("/v1/kv/later/", {"recurse": ""}, "prefix")),
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)
    http.put("/v1/kv/later/k", content=b"v")
    for t in threads:
        t.join(20)
    assert done["key"].status_code == 200 and done["prefix"].status_code == 200
    assert int(done["prefix"].headers["x-consul-index"]) > index


def test_py_consul_kv_round_trip(dev_agent_module: AgentProc) -> None:
    c = consul.Consul(host=dev_agent_module.ip, port=dev_agent_module.http_port)
    assert c.kv.put("pc/a", "1") is True
    assert c.kv.put("pc/b", "2", flags=7) is True
    index, item = c.kv.get("pc/a")
    assert item["Value"] == b"1" and int(index) >= item["ModifyIndex"]
    _, items = c.kv.get("pc/", recurse=True)
    assert [i["Key"] for i in items] == ["pc/a", "pc/b"]
    assert items[1]["Flags"] == 7
    _, keys = c.kv.get("pc/", keys=True)
    assert keys == ["pc/a", "pc/b"]
    assert c.kv.put("pc/a", "x", cas=1) is False
    assert c.kv.put("pc/a", "x", cas=item["ModifyIndex"]) is True
    assert c.kv.delete("pc/", recurse=True) is True
    assert c.kv.get("pc/a")[1] is None
    # py-consul's blocking get returns after wait with the same index
    idx, _ = c.kv.get("pc/none")
    idx2, _ = c.kv.get("pc/none", index=idx, wait="1s")
    assert idx2 == idx
