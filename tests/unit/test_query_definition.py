"""Prepared query definitions: Go's decoding of a body, and Consul's parseQuery checks."""

from __future__ import annotations

import pytest

from agent.queries.definition import (
    REDACTED,
    QueryError,
    acl_prefix,
    blank,
    decode,
    id_problem,
    validate,
)


def _service(**fields: object) -> dict:
    return {"Name": "q", "Service": {"Service": "db", **fields}}


def test_decode_fills_every_field_at_its_zero_value() -> None:
    query = decode({"name": "geo", "service": {"service": "db", "failover": {"nearestn": 2}}})
    assert query == {
        "ID": "",
        "Name": "geo",
        "Session": "",
        "Token": "",
        "Template": {"Type": "", "Regexp": "", "RemoveEmptyTags": False},
        "Service": {
            "Service": "db",
            "SamenessGroup": "",
            "Failover": {"NearestN": 2, "Datacenters": None, "Targets": None},
            "OnlyPassing": False,
            "IgnoreCheckIDs": None,
            "Near": "",
            "Tags": None,
            "NodeMeta": None,
            "ServiceMeta": None,
            "Connect": False,
            "Peer": "",
        },
        "DNS": {"TTL": ""},
        "CreateIndex": 0,
        "ModifyIndex": 0,
    }
    assert list(query) == list(blank())  # Go's field order, for rendering


def test_decode_ignores_unknown_fields_and_takes_null_as_zero() -> None:
    query = decode({"Name": None, "Bogus": 1, "Service": {"Service": "db", "Extra": [1]}})
    assert query["Name"] == "" and "Bogus" not in query and "Extra" not in query["Service"]


def test_decode_keeps_targets_complete() -> None:
    query = decode(_service(Failover={"Targets": [{"Peer": "p1"}, {"Datacenter": "dc2"}]}))
    assert query["Service"]["Failover"]["Targets"] == [
        {"Peer": "p1", "Datacenter": ""},
        {"Peer": "", "Datacenter": "dc2"},
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            [1],
            "json: cannot unmarshal array into Go value of type structs.PreparedQuery",
        ),
        (
            {"Name": 5},
            "json: cannot unmarshal number into Go struct field PreparedQuery.Name of type string",
        ),
        (
            _service(Failover={"NearestN": "3"}),
            "json: cannot unmarshal string into Go struct field "
            "QueryFailoverOptions.Service.Failover.NearestN of type int",
        ),
        (
            _service(Failover={"NearestN": 1.5}),
            "json: cannot unmarshal number 1.5 into Go struct field "
            "QueryFailoverOptions.Service.Failover.NearestN of type int",
        ),
        (
            _service(Tags="primary"),
            "json: cannot unmarshal string into Go struct field ServiceQuery.Service.Tags "
            "of type []string",
        ),
        (
            _service(OnlyPassing="yes"),
            "json: cannot unmarshal string into Go struct field ServiceQuery.Service.OnlyPassing "
            "of type bool",
        ),
        (
            {"DNS": {"TTL": 10}},
            "json: cannot unmarshal number into Go struct field QueryDNSOptions.DNS.TTL "
            "of type string",
        ),
    ],
)
def test_decode_refuses_what_go_cannot_decode(body: object, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        decode(body)
    assert caught.value.status == 400
    assert caught.value.message == f"Request decode failed: {message}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Service": {"Service": "db"}}, "Must be bound to a session"),
        (
            {"Name": "q", "Token": REDACTED, "Service": {"Service": "db"}},
            "Bad Token '<hidden>', it looks like a query definition with a redacted token "
            "was submitted",
        ),
        ({"Name": "q"}, "Must provide a Service name to query"),
        (_service(Failover={"NearestN": -1}), "Bad NearestN '-1', must be >= 0"),
        (
            _service(Failover={"NearestN": 1, "Targets": [{"Datacenter": "dc2"}]}),
            "Targets cannot be populated with NearestN or Datacenters",
        ),
        (
            _service(Failover={"Datacenters": ["dc2"], "Targets": [{"Peer": "p"}]}),
            "Targets cannot be populated with NearestN or Datacenters",
        ),
        (_service(SamenessGroup="sg"), "sameness-groups are an enterprise-only feature"),
        (
            _service(NodeMeta={"bad key": "v"}),
            "Couldn't load metadata pair ('bad key', 'v'): Key contains invalid characters",
        ),
        (
            {**_service(), "DNS": {"TTL": "soon"}},
            "Bad DNS TTL 'soon': time: invalid duration \"soon\"",
        ),
        (
            {**_service(), "DNS": {"TTL": "10"}},
            "Bad DNS TTL '10': time: missing unit in duration \"10\"",
        ),
        ({**_service(), "DNS": {"TTL": "-1s"}}, "DNS TTL '-1000000000', must be >=0"),
    ],
)
def test_validate_refuses_as_parse_query_does(body: dict, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        validate(decode(body))
    assert caught.value.status == 500
    assert caught.value.message == f"Invalid prepared query: {message}"


@pytest.mark.parametrize(
    "body",
    [
        _service(),
        {"Session": "s", "Service": {"Service": "db"}},  # unnamed, bound to a session
        {"Template": {"Type": "name_prefix_match"}, "Service": {"Service": "db"}},
        _service(NodeMeta={"consul-zone": "a"}),  # Consul allows its own prefix here
        {**_service(), "DNS": {"TTL": "0"}},
        _service(Failover={"Targets": [{"Peer": "p", "Datacenter": "dc2"}]}),
    ],
)
def test_validate_accepts(body: dict) -> None:
    validate(decode(body))


def test_acl_prefix_is_the_name_of_named_queries_and_templates() -> None:
    assert acl_prefix(decode(_service())) == "q"
    assert acl_prefix(decode({"Template": {"Type": "name_prefix_match"}})) == ""
    assert acl_prefix(decode({"Session": "s"})) is None


@pytest.mark.parametrize(
    ("query_id", "problem"),
    [
        ("0c6a2ed2-cd6d-4a36-a4c5-1f6b7e5b3d51", None),
        ("0C6A2ED2-CD6D-4A36-A4C5-1F6B7E5B3D51", None),
        ("nope", "UUID must be 36 characters"),
        ("", "UUID must be 36 characters"),
        (
            "0c6a2ed2-cd6d-4a36-a4c5-1f6b7e5b3d5g",
            "Invalid UUID: encoding/hex: invalid byte: U+0067 'g'",
        ),
        ("0c6a2ed2-cd6d-4a36-a4c5-1f6b7e-b3-d5", 'UUID should have maximum of 4 "-"; got 6'),
    ],
)
def test_id_problem_is_go_memdb_uuid_parse(query_id: str, problem: str | None) -> None:
    assert id_problem(query_id) == problem
