"""agent.connect.intentions: precedence, the Intention view of service-intentions entries,
matching and decisions with Consul's reasons, and the legacy/exact writes with Consul's
messages. Pure: entries are plain dicts keyed by (kind, name)."""

from __future__ import annotations

import base64
import copy
import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from agent.connect.errors import IntentionError
from agent.connect.intention_names import go_quote, multierror
from agent.connect.intentions import (
    ACL_DEFAULT_REASON,
    DEFAULT_POLICY_REASON,
    ParsedName,
    all_intentions,
    check_apply_body,
    check_legacy_request,
    check_query,
    create_legacy,
    decide,
    delete_exact,
    delete_legacy,
    exact_query,
    find_legacy,
    get_exact,
    get_legacy,
    intention_string,
    intentions_view,
    legacy_destination,
    match,
    match_query,
    normalize_intentions,
    parse_service_name,
    precedence,
    rfc3339,
    update_legacy,
    upsert_exact,
    validate_legacy,
)

KIND = "service-intentions"
ID1 = "8bb2a1d4-5b5c-4a4e-9a3c-1f2e3d4c5b6a"
ID2 = "0c6e2d1b-7f3a-4e5d-8c9b-a1b2c3d4e5f6"
T0 = datetime(2024, 5, 1, 12, 0, 0, 123450, tzinfo=UTC)
T1 = datetime(2024, 5, 2, 8, 30, 0, tzinfo=UTC)


def entry(name: str, *sources: dict, **extra: object) -> dict:
    out: dict = {"Kind": KIND, "Name": name, "Sources": list(sources)}
    out.update(extra)
    return normalize_intentions(out, legacy=all(s.get("LegacyID") for s in sources))


def src(name: str, action: str | None = "allow", **extra: object) -> dict:
    out: dict = {"Name": name, "Type": "consul"}
    if action:
        out["Action"] = action
    out.update(extra)
    return out


def store(*entries: dict) -> dict:
    return {(KIND, e["Name"]): e for e in entries}


@contextmanager
def fails(message: str, status: int = 500) -> Iterator[None]:
    with pytest.raises(IntentionError) as caught:
        yield
    assert caught.value.message == str(caught.value) == message
    assert caught.value.status == status


# -- precedence and names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [
        (("default", "web"), ("default", "db"), 9),
        (("default", "*"), ("default", "db"), 8),
        (("*", "*"), ("default", "db"), 7),
        (("default", "web"), ("default", "*"), 6),
        (("default", "*"), ("default", "*"), 5),
        (("*", "*"), ("default", "*"), 4),
        (("default", "web"), ("*", "*"), 3),
        (("default", "*"), ("*", "*"), 2),
        (("*", "*"), ("*", "*"), 1),
    ],
)
def test_precedence_table(source, destination, expected) -> None:
    assert precedence(*source, *destination) == expected


def test_permissions_do_not_change_precedence() -> None:
    l7 = entry(
        "db", src("web", None, Permissions=[{"Action": "allow", "HTTP": {"PathPrefix": "/"}}])
    )
    assert l7["Sources"][0]["Precedence"] == 9


@pytest.mark.parametrize(
    ("value", "allow_peer", "expected"),
    [
        ("web", False, ParsedName("web")),
        ("ns1/web", False, ParsedName("web", namespace="ns1")),
        ("ap/ns1/web", False, ParsedName("web", namespace="ns1", partition="ap")),
        ("peer:east/web", True, ParsedName("web", peer="east")),
        ("peer:east/ns1/web", True, ParsedName("web", namespace="ns1", peer="east")),
        ("*", False, ParsedName("*")),
    ],
)
def test_parse_service_name(value, allow_peer, expected) -> None:
    assert parse_service_name(value, allow_peer) == expected


@pytest.mark.parametrize(
    ("value", "allow_peer", "message"),
    [
        ("a/b/c/d", False, "input can contain at most two '/'"),
        ("peer:east/web", False, "cannot specify a peer here"),
        ("peer:east", True, "need to specify the service name as well"),
    ],
)
def test_parse_service_name_errors(value, allow_peer, message) -> None:
    with fails(message):
        parse_service_name(value, allow_peer)


def test_go_text_helpers() -> None:
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert go_quote("é\x01") == '"é\\x01"'
    assert multierror([]) is None
    assert multierror(["x"]) == "1 error occurred:\n\t* x\n\n"
    assert multierror(["x", "y"]) == "2 errors occurred:\n\t* x\n\t* y\n\n"
    assert rfc3339(T0) == "2024-05-01T12:00:00.12345Z"
    assert rfc3339(T1) == "2024-05-02T08:30:00Z"
    assert rfc3339(datetime(2024, 5, 2, 8, 30)) == "2024-05-02T08:30:00Z"


# -- the Intention view -----------------------------------------------------------------------


def test_view_of_config_entry_sources() -> None:
    perms = [{"Action": "deny", "HTTP": {"PathExact": "/admin"}}]
    stored = entry(
        "db",
        src("web", Description="front"),
        src("api", None, Permissions=perms),
        Meta={"owner": "team"},
        CreateIndex=7,
        ModifyIndex=11,
    )
    web, api = intentions_view(stored)
    assert list(web) == [
        "Description",
        "SourceNS",
        "SourceName",
        "DestinationNS",
        "DestinationName",
        "SourceType",
        "Action",
        "Meta",
        "Precedence",
        "CreateIndex",
        "ModifyIndex",
    ]
    assert web == {
        "Description": "front",
        "SourceNS": "default",
        "SourceName": "web",
        "DestinationNS": "default",
        "DestinationName": "db",
        "SourceType": "consul",
        "Action": "allow",
        "Meta": {"owner": "team"},  # the entry's Meta, for every non-legacy source
        "Precedence": 9,
        "CreateIndex": 7,
        "ModifyIndex": 11,
    }
    assert "Action" not in api and api["Permissions"] == perms
    assert api["CreateIndex"] == 7 and api["ModifyIndex"] == 11


def test_view_of_legacy_source() -> None:
    stored = create_legacy(None, legacy_body(Meta={"k": "v"}), ID1, T0)
    stored.update(CreateIndex=5, ModifyIndex=5)
    (ixn,) = intentions_view(stored)
    # Go's Intention.MarshalJSON puts the times first.
    assert list(ixn)[:3] == ["CreatedAt", "UpdatedAt", "ID"]
    assert list(ixn)[-3:] == ["Hash", "CreateIndex", "ModifyIndex"]
    assert ixn["CreatedAt"] == ixn["UpdatedAt"] == "2024-05-01T12:00:00.12345Z"
    assert ixn["ID"] == ID1 and ixn["Meta"] == {"k": "v"} and ixn["Precedence"] == 9
    digest = hashlib.blake2b(digest_size=32)
    for part in (ID1, "", "default", "web", "default", "db", "consul", "allow"):
        digest.update(part.encode())
    digest.update(struct.pack("<Q", 9))
    digest.update(b"k")
    digest.update(b"v")
    assert ixn["Hash"] == base64.b64encode(digest.digest()).decode()


def test_view_of_peer_source_and_jwt() -> None:
    stored = entry("db", src("web", Peer="east"), JWT={"Providers": [{"Name": "okta"}]})
    (ixn,) = intentions_view(stored)
    assert ixn["SourcePeer"] == "east"
    assert ixn["JWT"] == {"Providers": [{"Name": "okta"}]}
    assert list(ixn).index("SourcePeer") < list(ixn).index("SourceType") < list(ixn).index("JWT")


def test_intention_string() -> None:
    l4 = {
        "SourceNS": "default",
        "SourceName": "web",
        "DestinationNS": "default",
        "DestinationName": "db",
        "Action": "allow",
        "Precedence": 9,
    }
    assert intention_string(l4) == "default/web => default/db (Precedence: 9, Action: ALLOW)"
    legacy = dict(l4, ID=ID1, Action="deny")
    assert intention_string(legacy) == (
        f"default/web => default/db (ID: {ID1}, Precedence: 9, Action: DENY)"
    )
    l7 = dict(l4, Action="", Permissions=[{}, {}], SourcePeer="east")
    assert intention_string(l7) == (
        "peer(east)/default/web => default/db (Precedence: 9, Permissions: 2)"
    )


# -- listing and matching ---------------------------------------------------------------------


def mesh() -> dict:
    return store(
        entry("db", src("web"), src("*", "deny"), CreateIndex=3, ModifyIndex=9),
        entry("*", src("web", "deny"), src("*", "allow")),
        entry(
            "api", src("web", None, Permissions=[{"Action": "allow", "HTTP": {"PathPrefix": "/"}}])
        ),
        entry("cache", src("ops"), src("web", Peer="east")),
    )


def pairs(intentions: list[dict] | None) -> list[tuple[str, str, int]]:
    return [(i["SourceName"], i["DestinationName"], i["Precedence"]) for i in intentions or ()]


def test_all_intentions_in_precedence_order() -> None:
    listed = all_intentions(mesh())
    assert pairs(listed) == [
        ("ops", "cache", 9),
        ("web", "api", 9),
        ("web", "db", 9),
        ("web", "cache", 9),  # SourcePeer breaks ties before the names: local ones first
        ("*", "db", 8),
        ("web", "*", 6),
        ("*", "*", 5),
    ]
    assert listed[3]["SourcePeer"] == "east"
    assert all_intentions({}) == []
    assert all_intentions({("service-defaults", "db"): {"Kind": "service-defaults"}}) == []


def test_match_by_destination_with_wildcards() -> None:
    found = match(mesh(), "destination", ["db", "nothing", "*"])
    assert pairs(found["db"]) == [("web", "db", 9), ("*", "db", 8), ("web", "*", 6), ("*", "*", 5)]
    assert pairs(found["nothing"]) == [("web", "*", 6), ("*", "*", 5)]
    assert pairs(found["*"]) == [("web", "*", 6), ("*", "*", 5)]


def test_match_by_source_with_wildcards() -> None:
    found = match(mesh(), "source", ["web", "ops", "default/nobody"])
    names = pairs(found["web"])
    # "cache" has only a peered "web": Consul's source index holds local sources only.
    assert ("web", "cache", 9) not in names
    assert names == [
        ("web", "api", 9),
        ("web", "db", 9),
        ("*", "db", 8),
        ("web", "*", 6),
        ("*", "*", 5),
    ]
    assert pairs(found["ops"]) == [("ops", "cache", 9), ("*", "db", 8), ("*", "*", 5)]
    assert pairs(found["default/nobody"]) == [("*", "db", 8), ("*", "*", 5)]


def test_match_by_source_takes_peered_twin_of_local_source() -> None:
    entries = store(entry("cache", src("web", "deny"), src("web", Peer="east")))
    found = match(entries, "source", ["web"])
    assert [i.get("SourcePeer", "") for i in found["web"]] == ["", "east"]


def test_match_with_no_result_is_null() -> None:
    assert match({}, "destination", ["db"]) == {"db": None}
    assert match({}, "source", ["web", "api"]) == {"web": None, "api": None}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"name": ["db"]}, "required query parameter 'by' not set"),
        ({"by": ["source", "source"], "name": ["db"]}, "required query parameter 'by' not set"),
        (
            {"by": ["both"], "name": ["db"]},
            "'by' parameter must be one of 'source' or 'destination'",
        ),
        ({"by": ["source"]}, "required query parameter 'name' not set"),
        ({"by": ["source"], "name": []}, "required query parameter 'name' not set"),
        (
            {"by": ["source"], "name": ["peer:x/db"]},
            'name "peer:x/db" is invalid: cannot specify a peer here',
        ),
        (
            {"by": ["source"], "name": ["a/b/c/d"]},
            "name \"a/b/c/d\" is invalid: input can contain at most two '/'",
        ),
        (
            {"by": ["source"], "name": ["ns1/db"]},
            'Invalid match entry namespace "ns1": Namespaces is a Consul Enterprise feature',
        ),
        (
            {"by": ["source"], "name": ["ap/default/db"]},
            'Invalid match entry partition "ap": Partitions is a Consul Enterprise feature',
        ),
    ],
)
def test_match_query_errors(query, message) -> None:
    with fails(message):
        match_query(query)


def test_match_query_targets() -> None:
    parsed = match_query({"by": ["destination"], "name": ["db", "default/api"]})
    assert parsed.by == "destination"
    assert parsed.names == ("db", "default/api")
    assert [t.name for t in parsed.targets] == ["db", "api"]


# -- decisions --------------------------------------------------------------------------------


def test_decide_exact_beats_wildcard() -> None:
    decision = decide(mesh(), "web", "db", default_allow=False)
    assert decision.allowed
    assert (
        decision.reason
        == "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)"
    )
    assert decision.matched is not None and decision.matched["SourceName"] == "web"


def test_decide_wildcards() -> None:
    entries = mesh()
    assert decide(entries, "other", "db", True).reason == (
        "Matched L4 intention: default/* => default/db (Precedence: 8, Action: DENY)"
    )
    assert not decide(entries, "other", "db", True).allowed
    web_to_any = decide(entries, "web", "search", False)
    assert not web_to_any.allowed
    assert web_to_any.reason.endswith("default/web => default/* (Precedence: 6, Action: DENY)")
    assert decide(entries, "other", "search", False).allowed


def test_decide_l7_is_denied() -> None:
    decision = decide(mesh(), "web", "api", default_allow=True)
    assert not decision.allowed
    assert decision.reason == (
        "Matched L7 intention: default/web => default/api (Precedence: 9, Permissions: 1)"
    )


def test_decide_legacy_reason_has_id() -> None:
    legacy = create_legacy(None, legacy_body(Action="deny"), ID1, T0)
    decision = decide(store(legacy), "web", "db", True)
    assert not decision.allowed
    assert decision.reason == (
        f"Matched L4 intention: default/web => default/db (ID: {ID1}, Precedence: 9, Action: DENY)"
    )


def test_decide_defaults() -> None:
    assert decide({}, "web", "db", True) == decide({}, "web", "db", True, ACL_DEFAULT_REASON)
    by_acl = decide({}, "web", "db", True)
    assert by_acl.allowed and by_acl.reason == "Default behavior configured by ACLs"
    assert by_acl.matched is None
    by_policy = decide({}, "web", "db", False, DEFAULT_POLICY_REASON)
    assert not by_policy.allowed and by_policy.reason == "Default intention policy"


def test_decide_ignores_peers_and_other_namespaces() -> None:
    entries = store(entry("cache", src("web", Peer="east")))
    assert decide(entries, "web", "cache", False).matched is None
    exact = store(entry("db", src("web")))
    assert decide(exact, "web", "db", False, source_ns="other").matched is None
    assert decide(exact, "web", "db", False, destination_ns="Default").matched is None


def test_check_query() -> None:
    parsed = check_query({"source": ["default/web"], "destination": ["db"]})
    assert (parsed.source, parsed.destination, parsed.destination_ns) == ("web", "db", "default")
    # A differently spelled default passes the check but then matches nothing.
    assert (
        check_query({"source": ["web"], "destination": ["Default/db"]}).destination_ns == "Default"
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"destination": ["db"]}, "required query parameter 'source' not set"),
        (
            {"source": ["a", "b"], "destination": ["db"]},
            "required query parameter 'source' not set",
        ),
        ({"source": ["web"]}, "required query parameter 'destination' not set"),
        (
            {"source": ["a/b/c/d"], "destination": ["db"]},
            "source \"a/b/c/d\" is invalid: input can contain at most two '/'",
        ),
        (
            {"source": ["web"], "destination": ["peer:x/db"]},
            'destination "peer:x/db" is invalid: cannot specify a peer here',
        ),
        (
            {"source": ["ns1/web"], "destination": ["db"]},
            'Invalid source namespace "ns1": Namespaces is a Consul Enterprise feature',
        ),
        (
            {"source": ["web"], "destination": ["ns2/db"]},
            'Invalid destination namespace "ns2": Namespaces is a Consul Enterprise feature',
        ),
        (
            {"source": ["a/b/c/d"], "destination": ["db"], "source-type": ["external"]},
            'unsupported SourceType: "external"',
        ),
    ],
)
def test_check_query_errors(query, message) -> None:
    with fails(message):
        check_query(query)


# -- exact reads and writes -------------------------------------------------------------------


def test_exact_query() -> None:
    got = exact_query({"source": ["peer:east/web"], "destination": ["db"]})
    assert got.source == ParsedName("web", peer="east") and got.destination == ParsedName("db")
    with fails("required query parameter 'source' not set"):
        exact_query({"source": [""], "destination": ["db"]}, write=True)
    with fails("required query parameter 'destination' not set"):
        exact_query({"source": ["a/b/c/d"]})
    with fails('source "peer:east/web" is invalid: cannot specify a peer here'):
        exact_query({"source": ["peer:east/web"], "destination": ["db"]}, write=True)
    assert exact_query({"source": [""], "destination": ["db"]}).source == ParsedName("")


def test_get_exact() -> None:
    entries = store(entry("db", src("web"), src("web", "deny", Peer="east")))
    assert get_exact(entries, ParsedName("web"), ParsedName("db"))["Action"] == "allow"
    peered = get_exact(entries, ParsedName("web", peer="east"), ParsedName("db"))
    assert peered["Action"] == "deny" and peered["SourcePeer"] == "east"
    with fails("Intention not found", 404):
        get_exact(entries, ParsedName("api"), ParsedName("db"))
    with fails("Intention not found", 404):
        get_exact(entries, ParsedName("web"), ParsedName("nothing"))
    with fails("2 errors occurred:\n\t* SourceName is missing\n\t* DestinationName is missing\n\n"):
        get_exact(entries, ParsedName(""), ParsedName(""))
    with fails('Invalid SourceNS "ns1": Namespaces is a Consul Enterprise feature'):
        get_exact(entries, ParsedName("web", namespace="ns1"), ParsedName("db"))


def test_upsert_exact_creates_entry() -> None:
    body = {"Action": "allow", "Description": "d", "ID": ID1, "CreatedAt": "x"}
    new = upsert_exact(None, "web", "db", body, T0)
    assert new == {
        "Kind": KIND,
        "Name": "db",
        "Sources": [
            {
                "Name": "web",
                "Action": "allow",
                "Precedence": 9,
                "Type": "consul",
                "Description": "d",
            }
        ],
    }


def test_upsert_exact_replaces_and_sorts() -> None:
    current = entry(
        "db", src("*", "deny"), src("web"), Meta={"m": "1"}, CreateIndex=4, ModifyIndex=6
    )
    frozen = copy.deepcopy(current)
    new = upsert_exact(current, "*", "db", {"Action": "allow", "Meta": {"m": "1"}})
    assert current == frozen  # inputs are never changed
    assert [(s["Name"], s["Action"], s["Precedence"]) for s in new["Sources"]] == [
        ("web", "allow", 9),
        ("*", "allow", 8),
    ]
    assert new["Meta"] == {"m": "1"} and new["CreateIndex"] == 4
    added = upsert_exact(current, "api", "db", {"SourceType": "", "Action": "deny"})
    assert [s["Name"] for s in added["Sources"]] == ["web", "api", "*"]
    assert added["Sources"][1]["Type"] == "consul"


def test_upsert_exact_permissions_and_methods() -> None:
    perms = [{"Action": "allow", "HTTP": {"PathPrefix": "/", "Methods": ["get", "Post"]}}]
    new = upsert_exact(None, "web", "db", {"Permissions": perms})
    assert new["Sources"][0]["Permissions"][0]["HTTP"]["Methods"] == ["GET", "POST"]
    assert perms[0]["HTTP"]["Methods"] == ["get", "Post"]
    assert "Action" not in new["Sources"][0]


def test_upsert_exact_clears_legacy_fields_of_all_sources() -> None:
    legacy = create_legacy(None, legacy_body(), ID1, T0)
    new = upsert_exact(legacy, "api", "db", {"Action": "deny"})
    for source in new["Sources"]:
        assert not {"LegacyID", "LegacyCreateTime", "LegacyUpdateTime", "LegacyMeta"} & set(source)
    with_meta = create_legacy(None, legacy_body(Meta={"k": "v"}), ID1, T0)
    kept = upsert_exact(with_meta, "api", "db", {"Action": "deny"})
    # Left for the config-entry validation to refuse ("Sources[i].LegacyMeta must be omitted").
    assert kept["Sources"][0]["LegacyMeta"] == {"k": "v"}


def test_upsert_exact_meta_rules() -> None:
    with fails("Meta must not be specified"):
        upsert_exact(None, "web", "db", {"Action": "allow", "Meta": {"a": "b"}})
    current = entry("db", src("web"), Meta={"a": "b"})
    with fails("Meta must not be specified, or should be unchanged during an update."):
        upsert_exact(current, "web", "db", {"Action": "allow", "Meta": {"a": "c"}})
    with fails("Meta must not be specified, or should be unchanged during an update."):
        upsert_exact(entry("db", src("web")), "web", "db", {"Action": "allow", "Meta": {"a": "b"}})
    assert upsert_exact(None, "web", "db", {"Action": "allow", "Meta": {}})["Sources"]


def test_source_peer_is_refused_on_writes() -> None:
    message = "SourcePeer field is not supported on this endpoint. Use config entries instead"
    with fails(message):
        check_apply_body({"SourcePeer": "east"})
    with fails(message):
        upsert_exact(None, "web", "db", {"sourcepeer": "east", "Action": "allow"})
    with fails(message):
        create_legacy(None, legacy_body(SourcePeer="east"), ID1, T0)


def test_delete_exact() -> None:
    current = entry("db", src("web"), src("*", "deny"), CreateIndex=2, ModifyIndex=2)
    assert delete_exact(current, "api") is current
    assert delete_exact(None, "web") is None
    new = delete_exact(current, "web")
    assert new is not None and [s["Name"] for s in new["Sources"]] == ["*"]
    assert [s["Name"] for s in current["Sources"]] == ["web", "*"]
    assert delete_exact(delete_exact(current, "*"), "web") is None


def test_delete_exact_needs_a_local_source() -> None:
    peered = entry("db", src("web", Peer="east"))
    assert delete_exact(peered, "web") is peered


def test_delete_exact_turns_legacy_entry_into_config_entry() -> None:
    legacy = create_legacy(
        create_legacy(None, legacy_body(), ID1, T0), legacy_body(SourceName="api"), ID2, T0
    )
    new = delete_exact(legacy, "web")
    assert new is not None and new["Sources"] == [
        {"Name": "api", "Action": "allow", "Precedence": 9, "Type": "consul"}
    ]


# -- legacy writes ----------------------------------------------------------------------------


def legacy_body(**fields: object) -> dict:
    body: dict = {"SourceName": "web", "DestinationName": "db", "Action": "allow"}
    body.update(fields)
    return body


def test_create_legacy_new_entry() -> None:
    new = create_legacy(
        None, legacy_body(Description="d", SourceNS="", DestinationNS="default"), ID1, T0
    )
    stamp = "2024-05-01T12:00:00.12345Z"
    assert new == {
        "Kind": KIND,
        "Name": "db",
        "Sources": [
            {
                "Name": "web",
                "Action": "allow",
                "Precedence": 9,
                "LegacyID": ID1,
                "Type": "consul",
                "Description": "d",
                "LegacyCreateTime": stamp,
                "LegacyUpdateTime": stamp,
            }
        ],
    }


def test_create_legacy_appends_and_sorts() -> None:
    first = create_legacy(None, legacy_body(SourceName="*", Action="deny"), ID1, T0)
    first.update(CreateIndex=3, ModifyIndex=3)
    frozen = copy.deepcopy(first)
    second = create_legacy(first, legacy_body(Meta={"k": "v"}), ID2, T1)
    assert first == frozen
    assert [(s["Name"], s["LegacyID"]) for s in second["Sources"]] == [("web", ID2), ("*", ID1)]
    assert second["Sources"][0]["LegacyMeta"] == {"k": "v"}
    assert second["CreateIndex"] == 3


def test_create_legacy_refusals() -> None:
    with fails("ID must be empty when creating a new intention"):
        create_legacy(None, legacy_body(ID=ID2), ID1, T0)
    config_written = entry("db", src("api"))
    with fails(
        'cannot use legacy intention API to edit intentions with a destination of "db" after '
        "editing them via a service-intentions config entry"
    ):
        create_legacy(config_written, legacy_body(), ID1, T0)
    existing = create_legacy(None, legacy_body(), ID1, T0)
    with fails('Sources[1] defines "web" more than once'):
        create_legacy(existing, legacy_body(Action="deny"), ID2, T0)
    with fails("Sources[0].SamenessGroup: Sameness groups are a Consul Enterprise feature. "):
        create_legacy(None, legacy_body(SourceSamenessGroup="sg"), ID1, T0)
    with fails('Invalid source namespace "ns1": Namespaces is a Consul Enterprise feature'):
        create_legacy(None, legacy_body(SourceNS="ns1"), ID1, T0)


def test_validate_legacy_multierror() -> None:
    body = {
        "SourceName": "we*b",
        "DestinationNS": "*",
        "DestinationName": "db",
        "Description": "x" * 513,
        "Meta": {"k" * 129: "v", "ok": "v" * 513},
        "Action": "maybe",
        "Permissions": [{"Action": "allow"}],
        "SourceType": "external",
    }
    with pytest.raises(IntentionError) as err:
        validate_legacy(body)
    assert err.value.status == 500
    assert err.value.message == (
        "9 errors occurred:\n"
        "\t* SourceNS must be set\n"
        "\t* SourceName: wildcard character '*' cannot be used with partial values\n"
        "\t* DestinationName: exact value cannot follow wildcard namespace\n"
        "\t* Description exceeds maximum length 512\n"
        f'\t* Meta key "{"k" * 129}" exceeds maximum length 128\n'
        '\t* Meta value for key "ok" exceeds maximum length 512\n'
        "\t* Action must be set to 'allow' or 'deny'\n"
        "\t* Permissions must not be set when using the legacy APIs\n"
        "\t* SourceType must be set to 'consul'\n\n"
    )


def test_validate_legacy_counts_bytes_and_pairs() -> None:
    validate_legacy(legacy_body(SourceNS="default", DestinationNS="default", SourceType="consul"))
    many = {f"k{i}": "v" for i in range(65)}
    with fails("1 error occurred:\n\t* Meta exceeds maximum element count 64\n\n"):
        validate_legacy(
            legacy_body(SourceNS="default", DestinationNS="default", SourceType="consul", Meta=many)
        )
    with fails("1 error occurred:\n\t* Description exceeds maximum length 512\n\n"):
        validate_legacy(
            legacy_body(
                SourceNS="default",
                DestinationNS="default",
                SourceType="consul",
                Description="é" * 257,
            )
        )


def test_create_legacy_validation_after_defaults() -> None:
    with fails("1 error occurred:\n\t* Action must be set to 'allow' or 'deny'\n\n"):
        create_legacy(None, legacy_body(Action=""), ID1, T0)


def test_check_legacy_request() -> None:
    check_legacy_request(legacy_body(SourcePartition="default", SourceNS="Default"))
    with fails("Cannot specify a destination partition with this endpoint", 400):
        check_legacy_request(legacy_body(DestinationPartition="ap"))
    with fails("Cannot specify a source partition with this endpoint", 400):
        check_legacy_request(legacy_body(SourcePartition="ap"), update=True)
    with fails("Invalid SourceNS(ns1): Namespaces is a Consul Enterprise feature", 400):
        check_legacy_request(legacy_body(SourceNS="ns1"))
    with fails("Invalid DestinationNS(*): Namespaces is a Consul Enterprise feature", 400):
        check_legacy_request(legacy_body(DestinationNS="*"))
    check_legacy_request(legacy_body(SourceNS="ns1"), update=True)


def legacy_store() -> dict:
    both = create_legacy(
        create_legacy(None, legacy_body(), ID1, T0), legacy_body(SourceName="*"), ID2, T0
    )
    both.update(CreateIndex=4, ModifyIndex=8)
    return store(both)


def test_find_and_get_legacy() -> None:
    entries = legacy_store()
    found = find_legacy(entries, ID2)
    assert found is not None and found[1]["Name"] == "*"
    assert find_legacy(entries, ID1.upper()) is None
    assert get_legacy(entries, ID1)["ID"] == ID1
    with fails("Intention not found", 404):
        get_legacy(entries, "00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize(
    ("legacy_id", "problem"),
    [
        ("short", "UUID must be 36 characters"),
        ("a-b-c-d-e-f" + "0" * 25, 'UUID should have maximum of 4 "-"; got 5'),
        ("0" * 35 + "-", "Input (without hyphens) must be even length"),
        ("g" + "0" * 35, "Invalid UUID: encoding/hex: invalid byte: U+0067 'g'"),
    ],
)
def test_legacy_id_format(legacy_id, problem) -> None:
    entries = legacy_store()
    with fails(f"failed config entry lookup: {problem}", 400):
        get_legacy(entries, legacy_id)
    with fails(f"Intention lookup failed: failed config entry lookup: {problem}"):
        update_legacy(entries, legacy_id, legacy_body(), T1)
    with fails(f"Intention lookup failed: failed config entry lookup: {problem}"):
        legacy_destination(entries, legacy_id, deleting=True)


def test_update_legacy_keeps_create_time() -> None:
    entries = legacy_store()
    frozen = copy.deepcopy(entries)
    destination, new = update_legacy(entries, ID1, legacy_body(Action="deny", Meta={"a": "b"}), T1)
    assert entries == frozen
    assert destination == "db"
    web = next(s for s in new["Sources"] if s["LegacyID"] == ID1)
    assert web["Action"] == "deny" and web["LegacyMeta"] == {"a": "b"}
    assert web["LegacyCreateTime"] == "2024-05-01T12:00:00.12345Z"
    assert web["LegacyUpdateTime"] == "2024-05-02T08:30:00Z"
    assert new["CreateIndex"] == 4
    (ixn,) = [i for i in intentions_view(new) if i["ID"] == ID1]
    assert ixn["Meta"] == {"a": "b"} and ixn["UpdatedAt"] == "2024-05-02T08:30:00Z"


def test_update_legacy_refusals() -> None:
    entries = legacy_store()
    missing = "00000000-0000-0000-0000-000000000000"
    with fails(f"Cannot modify non-existent intention: '{missing}'"):
        update_legacy(entries, missing, legacy_body(), T1)
    with fails(
        "Cannot modify Destination partition/namespace/name for an intention once it exists."
    ):
        update_legacy(entries, ID1, legacy_body(DestinationName="api"), T1)
    with fails(
        "Cannot modify Destination partition/namespace/name for an intention once it exists."
    ):
        update_legacy(entries, ID1, {"SourceName": "web", "Action": "allow"}, T1)
    with fails('Sources[1] defines "*" more than once'):
        update_legacy(entries, ID1, legacy_body(SourceName="*"), T1)
    with fails('Invalid destination namespace "ns2": Namespaces is a Consul Enterprise feature'):
        update_legacy(entries, ID1, legacy_body(DestinationNS="ns2"), T1)
    assert legacy_destination(entries, ID1) == "db"


def test_delete_legacy() -> None:
    entries = legacy_store()
    destination, new = delete_legacy(entries, ID1)
    assert destination == "db" and new is not None
    assert [s["LegacyID"] for s in new["Sources"]] == [ID2]
    assert len(entries[(KIND, "db")]["Sources"]) == 2
    assert delete_legacy(store(new), ID2) == ("db", None)
    missing = "00000000-0000-0000-0000-000000000000"
    with fails(f"Cannot delete non-existent intention: '{missing}'"):
        delete_legacy(entries, missing)
    with fails(f"Cannot delete non-existent intention: '{missing}'"):
        legacy_destination(entries, missing, deleting=True)


def test_normalize_intentions_is_stable_and_recomputes() -> None:
    raw = {
        "Name": "db",
        "Sources": [
            {"Name": "*", "Action": "deny", "Precedence": 99},
            {"Name": "b", "Action": "allow", "LegacyID": ID1, "LegacyMeta": {}},
            {"Name": "a", "Action": "allow"},
        ],
    }
    new = normalize_intentions(raw)
    assert new["Kind"] == KIND
    assert [(s["Name"], s["Precedence"]) for s in new["Sources"]] == [("b", 9), ("a", 9), ("*", 8)]
    assert new["Sources"][0] == {"Name": "b", "Action": "allow", "Precedence": 9, "Type": "consul"}
    assert raw["Sources"][0]["Precedence"] == 99
    kept = normalize_intentions(raw, legacy=True)
    assert kept["Sources"][0]["LegacyID"] == ID1
