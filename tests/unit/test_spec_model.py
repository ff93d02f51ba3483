"""The spec models: strict shapes, check rules, durations, addresses, secrets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gitkv.spec.model import (
    Agent,
    AgentPorts,
    Check,
    KVFile,
    KVJson,
    KVValue,
    Spec,
    Token,
    check_ids,
)


def spec(**dc: Any) -> dict[str, Any]:
    return {"version": 1, "datacenters": {"dc1": dc}}


def errors(doc: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        Spec.model_validate(doc)
    return [(tuple(e["loc"]), e["type"]) for e in info.value.errors()]


def test_minimal_spec_has_defaults() -> None:
    s = Spec.model_validate(spec())
    dc = s.datacenters["dc1"]
    assert s.prune is False and s.name is None
    assert dc.address is None and dc.kv == {} and dc.kv_dir == [] and dc.services == []


def test_kv_entry_forms() -> None:
    s = Spec.model_validate(
        spec(kv={"a": "x", "b": {"value": "y", "flags": 7}, "c": {"file": "f"}, "d": {"json": [1]}})
    )
    kv = s.datacenters["dc1"].kv
    assert kv["a"] == "x"
    assert kv["b"] == KVValue(value="y", flags=7)
    assert kv["c"] == KVFile(file="f")
    assert isinstance(kv["d"], KVJson) and kv["d"].json_value == [1]


@pytest.mark.parametrize(
    "value",
    [3, True, None, {"value": "x", "file": "y"}, {"value": "x", "flags": -1}, {"flags": 1}],
)
def test_bad_kv_entries(value: Any) -> None:
    assert errors(spec(kv={"k": value}))


def test_unknown_keys_are_errors_everywhere() -> None:
    assert errors({"version": 1, "datacenters": {"dc1": {}}, "extra": 1}) == [
        (("extra",), "extra_forbidden")
    ]
    got = errors(spec(agents={"n1": {"bnd": "127.0.0.1"}}))
    assert got == [(("datacenters", "dc1", "agents", "n1", "bnd"), "extra_forbidden")]


def test_no_coercion() -> None:
    got = errors(spec(services=[{"name": "web", "agent": "n1", "port": "80"}]))
    assert got == [(("datacenters", "dc1", "services", 0, "port"), "int_type")]


def test_version_and_datacenters_required() -> None:
    assert {loc for loc, _ in errors({})} == {("version",), ("datacenters",)}
    assert errors({"version": 2, "datacenters": {"dc1": {}}}) == [(("version",), "literal_error")]
    assert errors({"version": 1, "datacenters": {}}) == [(("datacenters",), "too_short")]
    assert errors({"version": 1, "datacenters": {"DC1": {}}})[0][1] == "string_pattern_mismatch"


@pytest.mark.parametrize(
    "addr", ["http://127.0.0.1:8500", "https://consul.example:8501", "127.0.0.1:8500"]
)
def test_good_addresses(addr: str) -> None:
    Spec.model_validate(spec(address=addr))


@pytest.mark.parametrize("addr", ["ftp://x:1", "http://", "http://h:99999", "http://h:1/path"])
def test_bad_addresses(addr: str) -> None:
    assert errors(spec(address=addr)) == [(("datacenters", "dc1", "address"), "value_error")]


def test_agent_addresses() -> None:
    assert Agent().http_address == "http://127.0.0.1:8500"
    assert Agent(bind="127.0.0.14").http_address == "http://127.0.0.14:8500"
    agent = Agent(bind="127.0.0.14", client="0.0.0.0", ports=AgentPorts(http=8600))
    assert agent.http_address == "http://127.0.0.14:8600"
    assert errors(spec(agents={"n": {"bind": "127.0.0"}}))[0][1] == "value_error"


@pytest.mark.parametrize("interval", ["10s", "1m30s", "500ms", "1h"])
def test_check_durations(interval: str) -> None:
    assert Check.model_validate({"http": "http://x/", "interval": interval}).kind == "http"


@pytest.mark.parametrize("interval", ["10", "ten seconds", "1x", "", "-5s"])
def test_bad_durations(interval: str) -> None:
    with pytest.raises(ValidationError):
        Check.model_validate({"tcp": "x:1", "interval": interval})


@pytest.mark.parametrize(
    "check",
    [
        {"interval": "10s"},  # no kind
        {"http": "http://x/", "tcp": "x:1", "interval": "10s"},  # two kinds
        {"http": "http://x/"},  # no interval
        {"ttl": "10s", "interval": "10s"},  # ttl takes none
        {"tcp": "x:1", "interval": "10s", "method": "GET"},
    ],
)
def test_bad_checks(check: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Check.model_validate(check)


def test_script_and_ttl_checks() -> None:
    assert Check.model_validate({"args": ["/bin/true"], "interval": "5s"}).kind == "args"
    assert Check.model_validate({"ttl": "30s"}).kind == "ttl"


def test_secrets_only_by_reference() -> None:
    assert Token.model_validate({"secret": {"env": "WEB_TOKEN"}}).secret is not None
    assert Token.model_validate({"secret": {"file": "secrets/web"}}).secret is not None
    for bad in ("s3cr3t", {"value": "s3cr3t"}, {"env": "1BAD"}, {"env": "A", "file": "b"}):
        with pytest.raises(ValidationError):
            Token.model_validate({"secret": bad})


def test_kv_dir_shorthand_becomes_a_list() -> None:
    s = Spec.model_validate(spec(kv_dir="kv/"))
    assert s.datacenters["dc1"].kv_dir == ["kv/"]
    s = Spec.model_validate(spec(kv_dir=["a", {"path": "b", "prefix": "p/"}]))
    assert len(s.datacenters["dc1"].kv_dir) == 2


def test_kv_keys_must_not_start_with_slash() -> None:
    assert errors(spec(kv={"/a": "x"})) == [
        (("datacenters", "dc1", "kv", "/a", "[key]"), "value_error")
    ]


def test_check_ids_follow_consul() -> None:
    assert check_ids("web", [None]) == ["service:web"]
    assert check_ids("web", [None, "mine", None]) == ["service:web:1", "mine", "service:web:3"]


@pytest.mark.parametrize(
    "meta",
    [
        {"bad key": "x"},
        {"consul-x": "y"},
        {"gitkv-checks": "z"},
        {"k" * 129: "v"},
        {"k": "v" * 513},
    ],
)
def test_meta_follows_consul_rules(meta: dict[str, str]) -> None:
    got = errors(spec(services=[{"name": "w", "agent": "a", "meta": meta}]))
    assert got == [(("datacenters", "dc1", "services", 0, "meta"), "value_error")]


def test_meta_size_limit() -> None:
    meta = {f"k{i}": "v" for i in range(65)}
    assert errors(spec(external_services=[{"node": "n", "address": "a", "meta": meta}]))


def test_consul_name_and_address_rules() -> None:
    assert errors(spec(acl={"policies": {"a.b": {}}}))[0][1] == "string_pattern_mismatch"
    svc = {"name": "w", "agent": "a", "address": "0.0.0.0"}
    assert errors(spec(services=[svc])) == [
        (("datacenters", "dc1", "services", 0, "address"), "value_error")
    ]
    assert (
        errors(spec(external_services=[{"node": "n", "address": ""}]))[0][1] == "string_too_short"
    )
