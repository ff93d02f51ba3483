"""agent.limits: Consul's metadata and weight rules word for word, and our identifier bounds."""

from __future__ import annotations

from typing import Any

import pytest

from agent.limits import (
    MAX_IDENTIFIER_BYTES,
    MAX_KV_KEY_BYTES,
    META_KEY_MAX_LENGTH,
    META_MAX_KEY_PAIRS,
    META_VALUE_MAX_LENGTH,
    check_limits_error,
    identifier_error,
    kv_key_error,
    meta_error,
    node_limits_error,
    service_limits_error,
    service_meta_error,
    weights_error,
)


def pair(key: str, value: str, why: str) -> str:
    return f"Couldn't load metadata pair ('{key}', '{value}'): {why}"


def test_meta_within_bounds() -> None:
    assert meta_error(None) is None
    assert meta_error({}) is None
    assert meta_error({"k_e-y": "v", "A9": ""}) is None
    full = {f"k{i}": "v" for i in range(META_MAX_KEY_PAIRS)}
    assert meta_error(full) is None
    edge = {"k" * META_KEY_MAX_LENGTH: "v" * META_VALUE_MAX_LENGTH}
    assert meta_error(edge) is None


def test_meta_too_many_pairs() -> None:
    meta = {f"k{i}": "v" for i in range(META_MAX_KEY_PAIRS + 1)}
    assert meta_error(meta) == "Node metadata cannot contain more than 64 key/value pairs"


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("", "v", "Key cannot be blank"),
        ("(%key&)", "v", "Key contains invalid characters"),
        ("key\n", "v", "Key contains invalid characters"),  # no trailing-newline slack
        ("ключ", "v", "Key contains invalid characters"),
        ("k" * 129, "v", "Key is too long (limit: 128 characters)"),
        ("consul-x", "v", "Key prefix 'consul-' is reserved for internal use"),
        ("key", "b" * 513, "Value is too long (limit: 512 characters)"),
        ("key", "é" * 257, "Value is too long (limit: 512 characters)"),  # bytes, as Go counts
    ],
)
def test_meta_pair_errors(key: str, value: str, why: str) -> None:
    assert meta_error({key: value}) == pair(key, value, why)


def test_meta_consul_prefix_allowances() -> None:
    assert meta_error({"consul-x": "v"}, allow_consul_prefix=True) is None
    assert service_meta_error("mesh-gateway", {"consul-wan-federation": "1"}) is None
    assert service_meta_error("", {"consul-wan-federation": "1"}) == pair(
        "consul-wan-federation", "1", "Key prefix 'consul-' is reserved for internal use"
    )


def test_meta_leaves_wrong_types_to_the_decoder() -> None:
    wrong: Any = {"k": 1}
    assert meta_error(wrong) is None


def test_weights() -> None:
    assert weights_error(1, 0) is None
    assert weights_error(65535, 65535) is None
    assert weights_error(0, 1) == "Passing must be greater than 0"
    assert weights_error(1, -1) == "Warning must be greater or equal than 0"
    assert weights_error(65536, 1) == "DNS Weight must be between 0 and 65535"
    assert weights_error(1, 65536) == "DNS Weight must be between 0 and 65535"


def test_identifier_bound_is_generous_and_in_bytes() -> None:
    assert identifier_error("Service ID", "s" * 70_000) is None  # Consul takes it; so do we
    assert identifier_error("Service ID", "s" * MAX_IDENTIFIER_BYTES) is None
    assert identifier_error("Service ID", "s" * (MAX_IDENTIFIER_BYTES + 1)) == (
        f"Service ID is too long ({MAX_IDENTIFIER_BYTES + 1} bytes, "
        f"limit: {MAX_IDENTIFIER_BYTES} bytes)"
    )
    over_in_bytes = "é" * (MAX_IDENTIFIER_BYTES // 2 + 1)
    assert identifier_error("x", over_in_bytes) is not None
    assert identifier_error("x", None) is None
    assert identifier_error("x", 5) is None
    assert identifier_error("x", "\ud800") is None  # a lone surrogate is measured, not raised


def test_service_limits() -> None:
    assert service_limits_error("web-1", "web", {"a": "b"}) is None
    big = "n" * (MAX_IDENTIFIER_BYTES + 1)
    assert service_limits_error(big, "web").startswith("Service ID is too long")
    assert service_limits_error("id", big).startswith("Service name is too long")
    assert service_limits_error("id", "web", {"": "v"}) == (
        "Invalid Service Meta: " + pair("", "v", "Key cannot be blank")
    )
    assert service_limits_error("id", "gw", {"consul-wan-federation": "1"}, "mesh-gateway") is None


def test_check_node_and_key_limits() -> None:
    big = "c" * (MAX_IDENTIFIER_BYTES + 1)
    assert check_limits_error("service:web", "Service 'web' check") is None
    assert check_limits_error(big, "n").startswith("CheckID is too long")
    assert check_limits_error("id", big).startswith("Check name is too long")
    assert node_limits_error("node-1") is None
    assert node_limits_error(big).startswith("Node name is too long")
    assert node_limits_error("n", {"consul-x": "v"}) == pair(
        "consul-x", "v", "Key prefix 'consul-' is reserved for internal use"
    )
    assert kv_key_error("a/" * 1000) is None
    assert kv_key_error("k" * MAX_KV_KEY_BYTES) is None
    assert kv_key_error("k" * (MAX_KV_KEY_BYTES + 1)).startswith("Key is too long")
