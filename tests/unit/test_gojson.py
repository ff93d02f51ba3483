"""Bodies decoded as Consul's Go decoder decodes them: kinds, ranges, names, depth."""

from __future__ import annotations

import pytest

from agent import gojson as go
from agent.definition_types import SERVICE_DEFINITION
from agent.http import bodies
from agent.http.errors import HTTPError
from agent.http.gojson import MAX_DEPTH, conform, depth, parse


def refusal(value, spec, prefix="Failed to parse body: ") -> str:
    with pytest.raises(HTTPError) as info:
        conform(value, spec, prefix)
    assert info.value.status == 400
    return info.value.message


def test_wrong_kind_names_the_field_by_its_path_and_innermost_struct():
    message = refusal([{"KV": {"Verb": "delete-tree", "Key": ["a/"]}}], bodies.TXN_OPS)
    assert message == (
        "Failed to parse body: json: cannot unmarshal array into Go struct field "
        "KVTxnOp.KV.Key of type string"
    )


def test_top_level_of_the_wrong_kind():
    assert refusal({"a": 1}, bodies.TXN_OPS) == (
        "Failed to parse body: json: cannot unmarshal object into Go value of type api.TxnOps"
    )


@pytest.mark.parametrize(
    ("flags", "literal"), [(2**64, "18446744073709551616"), (-1, "-1"), (1.5, "1.5")]
)
def test_integers_outside_the_go_type_are_refused_with_their_literal(flags, literal):
    message = refusal([{"KV": {"Verb": "set", "Key": "k", "Flags": flags}}], bodies.TXN_OPS)
    assert f"cannot unmarshal number {literal} into Go struct field KVTxnOp.KV.Flags" in message
    assert message.endswith("of type uint64")


def test_uint64_bounds_are_inclusive():
    ops = conform([{"KV": {"Verb": "set", "Key": "k", "Flags": 2**64 - 1}}], bodies.TXN_OPS)
    assert ops[0]["KV"]["Flags"] == 2**64 - 1


def test_port_beyond_int64():
    body = {"Node": "n", "Service": {"Service": "s", "Port": 2**63}}
    message = refusal(body, bodies.REGISTER, "Request decode failed: ")
    assert message.endswith("into Go struct field NodeService.Service.Port of type int")


def test_names_fold_case_and_snake_case_user_maps_keep_their_keys():
    body = {"node": "n1", "node_meta": {"Rack": "a"}, "service": {"service": "web", "PORT": 80}}
    out = conform(body, bodies.REGISTER)
    assert out == {
        "Node": "n1",
        "NodeMeta": {"Rack": "a"},
        "Service": {"Service": "web", "Port": 80},
    }


def test_null_is_the_zero_value_and_unknown_fields_are_ignored():
    out = conform({"Node": None, "Bogus": [1], "Service": {"Tags": ["a", None]}}, bodies.REGISTER)
    assert out == {"Service": {"Tags": ["a", ""]}}


def test_durations_take_text_or_nanoseconds_but_not_other_kinds():
    assert conform({"LockDelay": "15s"}, bodies.SESSION) == {"LockDelay": "15s"}
    assert conform({"LockDelay": 5}, bodies.SESSION) == {"LockDelay": 5}
    message = refusal({"LockDelay": [1]}, bodies.SESSION, "Request decode failed: ")
    assert message.endswith("Go struct field Session.LockDelay of type time.Duration")


def test_parse_refuses_nesting_beyond_the_bound_without_recursing():
    deep = b"[" * 5000 + b"]" * 5000
    with pytest.raises(HTTPError) as info:
        parse(deep, "Failed to parse body: ")
    assert info.value.status == 400
    assert f"deeper than {MAX_DEPTH}" in info.value.message
    just_enough = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert depth(parse(just_enough)) == MAX_DEPTH


def test_parse_malformed_and_blank():
    assert parse(b"  ", empty=[]) == []
    with pytest.raises(HTTPError) as info:
        parse(b'{"a":', "Request decode failed: ")
    assert info.value.status == 400
    assert info.value.message.startswith("Request decode failed: ")


def test_below_http_a_refusal_is_gos_text_alone():
    with pytest.raises(go.Mismatch) as info:
        go.conform({"weights": {"Passing": "1"}}, SERVICE_DEFINITION)
    assert str(info.value) == (
        "json: cannot unmarshal string into Go struct field Weights.Weights.Passing of type int"
    )


def test_fold_renames_what_the_table_knows_and_keeps_the_rest():
    body = {
        "name": "web",
        "tagged_addresses": {"lan": {"address": "10.0.0.1"}},
        "meta": {"port": "x"},
        "proxy": {"port": 1},
        "bogus": None,
        "weights": [1],
    }
    assert go.fold(body, SERVICE_DEFINITION) == {
        "Name": "web",
        "TaggedAddresses": {"lan": {"Address": "10.0.0.1"}},
        "Meta": {"port": "x"},
        "Proxy": {"port": 1},
        "bogus": None,
        "Weights": [1],
    }
