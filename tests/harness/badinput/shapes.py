"""Consul's body shapes (checks, services, nodes, txn ops, ACL links), each field with its good
values; `obj` breaks a few of them per draw."""

from __future__ import annotations

import base64

from hypothesis import strategies as st

from tests.harness.badinput.breaking import F, obj, seg, text_of
from tests.harness.badinput.values import (
    IDS,
    NAMES,
    NODES,
    S,
    addresses,
    durations,
    ports,
    str_maps,
    tags,
    text,
    u64s,
    weighted,
)

# KV keys: always under fz/ (see the module docstring); dot segments stay inside it.
_KEY_TAILS = (
    "a", "b", "dir/", "dir/x", "a%2Fb", "%2e%2e/a", "a/%2e%2e/b", "%ff", "%00", "a/../b", "./a",
    "a/.", "a/..", "../fz/b", "dir//x", "%20", "~", "%C3%A9", "a%3Fb", "%ED%A0%80",
)  # fmt: skip
kv_keys = weighted(
    (8, st.sampled_from(_KEY_TAILS)),
    (3, st.text(max_size=8).map(seg)),
    (
        1,
        st.builds(
            lambda n, unit: unit * n,
            st.sampled_from((300, 1024, 4096, 70_000)),
            st.sampled_from(("k", "%41", "%C3%A9")),
        ),
    ),
).map(lambda tail: "fz/" + tail)
kv_body_keys = st.one_of(
    st.sampled_from(("a", "dir/", "dir/x", "", "..", "../fz", "\x00", "\ud800")), text.map(text_of)
).map(lambda tail: "fz/" + tail)
b64 = st.one_of(
    st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(("", "!!!", "YQ", "YQ==", "YQ===", "a b", "é", "AAAA" * 3)),
)
verbs_kv = st.sampled_from(
    ("set", "cas", "lock", "unlock", "get", "get-tree", "check-index", "check-session",
     "check-not-exists", "delete", "delete-tree", "delete-cas", "SET", "", "drop", "set ")
)  # fmt: skip
verbs_other = st.sampled_from(("set", "cas", "get", "delete", "delete-cas", "SET", "", "bogus"))
statuses = st.sampled_from(("passing", "warning", "critical", "maintenance", "PASSING", "", "x"))


def some(strategy: S, most: int = 2) -> S:
    """A short list: mostly empty or one element (nested bodies multiply the draws)."""
    return st.one_of(st.just([]), st.lists(strategy, max_size=1), st.lists(strategy, max_size=most))


# ---------------------------------------------------------------------------- body shapes

check_def = obj(
    CheckID=NAMES,
    Name=NAMES,
    Notes=text,
    ServiceID=NAMES,
    Status=statuses,
    TTL=durations,
    Interval=durations,
    Timeout=durations,
    DeregisterCriticalServiceAfter=durations,
    HTTP=st.sampled_from(("http://127.0.0.98:1/", "ftp://x", "http://[::1", "", "127.0.0.98")),
    Method=st.sampled_from(("GET", "", "G E T", "\n")),
    Header=st.sampled_from(({}, {"X": ["1"]}, {"X": "1"})),
    TCP=st.sampled_from(("127.0.0.98:1", "127.0.0.98", ":", "")),
    Args=st.sampled_from(([], ["true"], [""])),
    SuccessBeforePassing=ports,
    FailuresBeforeCritical=ports,
    OutputMaxSize=ports,
)
weights = obj(Passing=ports, Warning=ports)
service_def = obj(
    ID=IDS,
    Name=NAMES,
    Tags=tags,
    Address=addresses,
    Port=ports,
    Meta=str_maps,
    Kind=st.sampled_from(("", "connect-proxy", "mesh-gateway", "bogus")),
    TaggedAddresses=st.one_of(
        st.just({}),
        st.dictionaries(
            st.sampled_from(("lan", "wan", "")), obj(Address=addresses, Port=ports), max_size=1
        ),
    ),
    Weights=weights,
    EnableTagOverride=st.booleans(),
    Check=check_def,
    Checks=some(check_def),
)
catalog_service = obj(
    ID=IDS,
    Service=NAMES,
    Tags=tags,
    Address=addresses,
    Port=ports,
    Meta=str_maps,
    Weights=weights,
    EnableTagOverride=st.booleans(),
    ModifyIndex=u64s,
)
catalog_check = obj(
    Node=NODES,
    CheckID=NAMES,
    Name=NAMES,
    Status=statuses,
    ServiceID=NAMES,
    Output=text,
    ModifyIndex=u64s,
    Definition=obj(HTTP=st.just("http://127.0.0.98:1/"), Interval=durations),
)
node_def = obj(
    ID=st.one_of(st.uuids().map(str), NAMES),
    Node=NODES,
    Address=addresses,
    Datacenter=NAMES,
    TaggedAddresses=str_maps,
    Meta=str_maps,
    ModifyIndex=u64s,
)
txn_op = st.one_of(
    obj(
        KV=F(
            obj(
                Verb=verbs_kv,
                Key=F(kv_body_keys, protected=True),
                Value=b64,
                Flags=u64s,
                Index=u64s,
                Session=IDS,
            ),
            protected=True,
        )
    ),
    obj(Node=obj(Verb=verbs_other, Node=node_def)),
    obj(Service=obj(Verb=verbs_other, Node=NODES, Service=catalog_service)),
    obj(Check=obj(Verb=verbs_other, Check=catalog_check)),
    st.fixed_dictionaries({"KV": st.just({"Verb": "get", "Key": "fz/a"}), "Node": node_def}),
)
links = some(obj(ID=IDS, Name=NAMES))
service_identities = some(obj(ServiceName=NAMES, Datacenters=some(NAMES)))
node_identities = some(obj(NodeName=NODES, Datacenter=NAMES))
rules = st.sampled_from(
    (
        'key_prefix "fz/" { policy = "read" }',
        "",
        "{",
        'key "" { policy = "bogus" }',
        '{"key_prefix": {"fz/": {"policy": "read"}}}',
        'service "x" { policy = 1 }',
    )
)
