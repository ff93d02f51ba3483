"""One strategy per write endpoint of the Consul HTTP API the agent serves, and `requests()`
over all of them, weighted; `endpoint_of` names the endpoint of a drawn target in reports."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable

from hypothesis import strategies as st

from tests.harness.badinput.breaking import body, obj, qbool, qnum, query, seg
from tests.harness.badinput.endpoints_c2 import ENDPOINTS_C2, PREFIXES_C2
from tests.harness.badinput.shapes import (
    catalog_check,
    catalog_service,
    kv_keys,
    links,
    node_identities,
    rules,
    service_def,
    service_identities,
    some,
    statuses,
    txn_op,
)
from tests.harness.badinput.values import (
    EDGE_FLOATS,
    EDGE_INTS,
    IDS,
    NAMES,
    NODES,
    Draw,
    S,
    addresses,
    durations,
    mix,
    str_maps,
    text,
    weighted,
)


def _req(target: S, payload: S, method: S = st.just("PUT")) -> S:
    return st.tuples(method, target, payload)


_no_body = mix((b"",), (b"{}", b"\xff", b"[[[["), times=6)


def kv_put() -> S:
    target = st.one_of(
        st.tuples(kv_keys, query(flags=qnum, cas=qnum, acquire=IDS, release=IDS)).map(
            lambda kq: "/v1/kv/" + kq[0] + kq[1]
        ),
        st.sampled_from(("/v1/kv/", "/v1/kv", "/v1/kv/?flags=1", "/v1/kv/fz/a?cas=1&cas=2")),
    )
    value = weighted(
        (19, st.binary(max_size=48)),
        (
            1,
            st.sampled_from((0, 1, 512 * 1024, 512 * 1024 + 1)).map(
                lambda n: b"\x00\xff" * (n // 2) + b"v" * (n % 2)
            ),
        ),
    )
    return _req(target, value)


_SMALL_OPS = (
    {"KV": {"Verb": "get", "Key": "fz/a"}},
    {"KV": {"Verb": "set", "Key": "fz/b", "Value": "YQ=="}},
    {"KV": {"Verb": "delete-tree", "Key": ["fz/"]}},
    {"Node": {"Verb": "set", "Node": {"Node": 1}}},
)


def txn() -> S:
    ops = weighted(
        (8, st.lists(txn_op, max_size=3)),
        (
            1,
            st.tuples(st.sampled_from(_SMALL_OPS), st.sampled_from((64, 65))).map(
                lambda t: [t[0]] * t[1]
            ),
        ),
    )
    return _req(st.just("/v1/txn"), body(ops, top="array"))


def catalog_register() -> S:
    payload = obj(
        ID=st.one_of(st.uuids().map(str), NAMES),
        Node=NODES,
        Address=addresses,
        Datacenter=NAMES,
        TaggedAddresses=str_maps,
        NodeMeta=str_maps,
        Service=catalog_service,
        Check=catalog_check,
        Checks=some(catalog_check),
        SkipNodeUpdate=st.booleans(),
    )
    return _req(st.just("/v1/catalog/register"), body(payload))


def catalog_deregister() -> S:
    payload = obj(Node=NODES, Datacenter=NAMES, ServiceID=NAMES, CheckID=NAMES)
    return _req(st.just("/v1/catalog/deregister"), body(payload))


def service_register() -> S:
    target = query(**{"replace-existing-checks": qbool}).map("/v1/agent/service/register".__add__)
    return _req(target, body(service_def))


def service_deregister() -> S:
    return _req(IDS.map(lambda i: "/v1/agent/service/deregister/" + seg(i)), _no_body)


def check_register() -> S:
    payload = obj(
        ID=NAMES,
        Name=NAMES,
        ServiceID=NAMES,
        Notes=text,
        TTL=durations,
        Status=statuses,
        HTTP=st.just("http://127.0.0.98:1/"),
        Interval=durations,
        DeregisterCriticalServiceAfter=durations,
    )
    return _req(st.just("/v1/agent/check/register"), body(payload))


def check_update() -> S:
    update = _req(
        NAMES.map(lambda i: "/v1/agent/check/update/" + seg(i)),
        body(obj(Status=statuses, Output=text)),
    )
    ttl = st.tuples(st.sampled_from(("pass", "warn", "fail")), NAMES, query(note=text)).map(
        lambda t: f"/v1/agent/check/{t[0]}/{seg(t[1])}{t[2]}"
    )
    return weighted((2, update), (1, _req(ttl, _no_body)))


def session_create() -> S:
    payload = obj(
        LockDelay=st.one_of(durations, st.sampled_from(("99999999h", 10**20, -1, 5, 1.5))),
        Node=NODES,
        Name=NAMES,
        Checks=some(NAMES),
        NodeChecks=some(NAMES),
        ServiceChecks=some(obj(ID=NAMES, Namespace=NAMES)),
        Behavior=st.sampled_from(("release", "delete", "", "DELETE", "explode")),
        TTL=durations,
    )
    return _req(st.just("/v1/session/create"), body(payload))


def session_destroy() -> S:
    target = st.tuples(st.sampled_from(("destroy", "renew")), IDS).map(
        lambda t: f"/v1/session/{t[0]}/{seg(t[1])}"
    )
    return _req(target, _no_body)


def event_fire() -> S:
    target = st.tuples(NAMES, query(node=NAMES, service=NAMES, tag=NAMES)).map(
        lambda t: "/v1/event/fire/" + seg(t[0]) + t[1]
    )
    payload = st.one_of(
        st.binary(max_size=48), st.sampled_from((0, 100, 512, 600, 200_000)).map(b"p".__mul__)
    )
    return _req(target, payload)


def acl() -> S:
    token = obj(
        AccessorID=IDS,
        SecretID=IDS,
        Description=text,
        Policies=links,
        Roles=links,
        ServiceIdentities=service_identities,
        NodeIdentities=node_identities,
        Local=st.booleans(),
        ExpirationTTL=durations,
        ExpirationTime=st.sampled_from(("2030-01-01T00:00:00Z", "x", "")),
    )
    policy = obj(ID=IDS, Name=NAMES, Description=text, Rules=rules, Datacenters=some(NAMES))
    role = obj(
        ID=IDS,
        Name=NAMES,
        Description=text,
        Policies=links,
        ServiceIdentities=service_identities,
        NodeIdentities=node_identities,
    )

    jwt_config = obj(
        JWTValidationPubKeys=some(text),
        JWKSURL=st.sampled_from(("http://127.0.0.1:1/jwks", "ftp://x", "")),
        OIDCDiscoveryURL=st.sampled_from(("", "https://127.0.0.1:1")),
        BoundIssuer=text,
        BoundAudiences=some(text),
        ClaimMappings=str_maps,
        ListClaimMappings=str_maps,
        JWTSupportedAlgs=some(st.sampled_from(("RS256", "ES256", "none", "HS256", ""))),
        ClockSkewLeeway=durations,
        ExpirationLeeway=durations,
    )
    kube_config = obj(Host=text, CACert=text, ServiceAccountJWT=text)
    method = obj(
        Name=NAMES,
        Type=st.sampled_from(("jwt", "kubernetes", "oidc", "", "JWT")),
        DisplayName=text,
        Description=text,
        MaxTokenTTL=durations,
        TokenLocality=st.sampled_from(("", "local", "global", "mars")),
        Config=st.one_of(jwt_config, kube_config),
    )
    binding_rule = obj(
        ID=IDS,
        AuthMethod=NAMES,
        Description=text,
        Selector=st.one_of(
            text,
            st.sampled_from(('value.a == "b"', "list.g is empty", "x ==", "serviceaccount.name")),
        ),
        BindType=st.sampled_from(("service", "node", "role", "policy", "templated-policy", "x")),
        BindName=st.one_of(text, st.sampled_from(("${value.a}", "${", "builtin/service"))),
        BindVars=obj(Name=text),
    )
    login = obj(
        AuthMethod=NAMES,
        BearerToken=st.one_of(text, st.sampled_from(("a.b.c", "eyJhbGciOiJub25lIn0.e30."))),
        Meta=str_maps,
    )

    def at(kind: str) -> S:
        return st.one_of(st.just(f"/v1/acl/{kind}"), IDS.map(lambda i: f"/v1/acl/{kind}/{seg(i)}"))

    return st.one_of(
        _req(at("token"), body(token)),
        _req(at("policy"), body(policy)),
        _req(at("role"), body(role)),
        _req(at("auth-method"), body(method)),
        _req(at("binding-rule"), body(binding_rule)),
        _req(st.just("/v1/acl/login"), body(login), st.just("POST")),
        _req(st.just("/v1/acl/logout"), _no_body, st.just("POST")),
    )


def autopilot() -> S:
    payload = obj(
        CleanupDeadServers=st.booleans(),
        LastContactThreshold=durations,
        MaxTrailingLogs=st.one_of(st.integers(0, 1000), st.sampled_from((-1, 2**64, 2**63))),
        MinQuorum=st.one_of(st.integers(0, 5), st.sampled_from((2**32, 2**64, -1))),
        ServerStabilizationTime=durations,
        RedundancyZoneTag=text,
        DisableUpgradeMigration=st.booleans(),
        UpgradeVersionTag=text,
    )
    target = query(cas=qnum).map("/v1/operator/autopilot/configuration".__add__)
    return _req(target, body(payload))


def transfer_leader() -> S:
    target = query(id=st.one_of(IDS, st.just("unknown"))).map(
        "/v1/operator/raft/transfer-leader".__add__
    )
    return _req(target, _no_body, st.sampled_from(("POST", "POST", "PUT")))


def coordinate_update() -> S:
    vec = st.one_of(
        st.lists(st.floats(-1, 1), min_size=8, max_size=8),
        st.lists(st.sampled_from((*EDGE_FLOATS, *EDGE_INTS)), max_size=10),
    )
    coord = obj(Vec=vec, Error=st.floats(0, 2), Adjustment=st.floats(-1, 1), Height=st.floats(0, 1))
    payload = obj(Node=NODES, Segment=NAMES, Coord=coord)
    return _req(st.just("/v1/coordinate/update"), body(payload))


def _targz(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


@st.composite
def garbage_snapshot(draw: Draw) -> bytes:
    """Not a snapshot of this agent: garbage, a foreign archive, truncated or mislabelled gzip."""
    names = st.sampled_from(("meta.json", "state.bin", "SHA256SUMS", "../x", "", "state"))
    archive = _targz(draw(st.lists(st.tuples(names, st.binary(max_size=48)), max_size=3)))
    how = draw(st.integers(0, 4))
    if how == 0:
        return archive
    if how == 1:
        return archive[: draw(st.integers(0, len(archive) - 1))]
    if how == 2:
        return gzip.compress(draw(st.binary(max_size=128)), mtime=0)
    if how == 3:
        return b"\x1f\x8b" + draw(st.binary(max_size=48))
    return draw(st.binary(max_size=128))


def snapshot() -> S:
    return _req(st.just("/v1/snapshot"), garbage_snapshot())


def maintenance() -> S:
    q = query(enable=qbool, reason=text)
    node = q.map("/v1/agent/maintenance".__add__)
    service = st.tuples(IDS, q).map(lambda t: f"/v1/agent/service/maintenance/{seg(t[0])}{t[1]}")
    return _req(st.one_of(node, service), _no_body)


def join() -> S:
    hosts = st.sampled_from(("127.0.0.97", "127.0.0.98", "127.0.0.99"))  # loopback, no listener
    port = st.sampled_from(("", ":1", ":65535", ":99999", ":-1", ":0", ":x", "::1"))
    addr = st.one_of(
        st.tuples(hosts, port).map("".join),
        st.sampled_from(
            (
                "",
                "::::",
                "[::1",
                "127.0.0.256",
                "fz-nohost.invalid",
                "127.0.0.98:1:2",
                "\x00",
                "a" * 300 + ".invalid",
                "127.0.0.98 ",
                "127.0.0.98/x",
            )
        ),
    )
    target = st.tuples(addr, query(wan=qbool)).map(lambda t: "/v1/agent/join/" + seg(t[0]) + t[1])
    return _req(target, _no_body)


# Endpoint label -> (strategy, weight). txn and the registrations carry the most fields.
ENDPOINTS: dict[str, tuple[Callable[[], S], int]] = {
    "/v1/kv/<key>": (kv_put, 3),
    "/v1/txn": (txn, 4),
    "/v1/catalog/register": (catalog_register, 3),
    "/v1/catalog/deregister": (catalog_deregister, 1),
    "/v1/agent/service/register": (service_register, 3),
    "/v1/agent/service/deregister/<id>": (service_deregister, 1),
    "/v1/agent/check/register": (check_register, 2),
    "/v1/agent/check/update/<id>": (check_update, 2),
    "/v1/session/create": (session_create, 2),
    "/v1/session/destroy/<id>": (session_destroy, 1),
    "/v1/event/fire/<name>": (event_fire, 1),
    "/v1/acl/*": (acl, 3),
    "/v1/operator/autopilot/configuration": (autopilot, 1),
    "/v1/operator/raft/transfer-leader": (transfer_leader, 1),
    "/v1/coordinate/update": (coordinate_update, 1),
    "/v1/snapshot": (snapshot, 1),
    "/v1/agent/maintenance": (maintenance, 1),
    "/v1/agent/join/<addr>": (join, 1),
    **ENDPOINTS_C2,
}


def requests(only: tuple[str, ...] = (), without: tuple[str, ...] = ()) -> S:
    """Requests for every write endpoint (or the labels in `only`), weighted as in ENDPOINTS.

    The endpoint is picked first (sampled_from + flatmap): `one_of` would flatten each
    endpoint's own branches and skew the weights towards the endpoints with most branches.
    """
    chosen = [
        make()
        for label, (make, weight) in ENDPOINTS.items()
        if (not only or label in only) and label not in without
        for _ in range(weight)
    ]
    return st.sampled_from(chosen).flatmap(lambda strategy: strategy)


# Longest prefix first: the label a request target is counted under in reports.
_PREFIXES = (
    ("/v1/agent/service/maintenance/", "/v1/agent/maintenance"),
    ("/v1/agent/service/deregister/", "/v1/agent/service/deregister/<id>"),
    ("/v1/agent/service/register", "/v1/agent/service/register"),
    ("/v1/agent/check/register", "/v1/agent/check/register"),
    ("/v1/agent/check/", "/v1/agent/check/update/<id>"),
    ("/v1/agent/maintenance", "/v1/agent/maintenance"),
    ("/v1/agent/join/", "/v1/agent/join/<addr>"),
    ("/v1/session/create", "/v1/session/create"),
    ("/v1/session/", "/v1/session/destroy/<id>"),
    ("/v1/event/fire/", "/v1/event/fire/<name>"),
    *PREFIXES_C2,
    ("/v1/acl/", "/v1/acl/*"),
    ("/v1/kv", "/v1/kv/<key>"),
)


def endpoint_of(target: str) -> str:
    """The ENDPOINTS label of a request target ("/v1/kv/fz/a?cas=1" -> "/v1/kv/<key>")."""
    path = target.partition("?")[0]
    if path.startswith("/v1/query"):
        suffixed = path.endswith(("/execute", "/explain"))
        return "/v1/query/<id>/execute|explain" if suffixed else "/v1/query[/<id>]"
    for prefix, label in _PREFIXES:
        if path.startswith(prefix):
            return label
    return path
