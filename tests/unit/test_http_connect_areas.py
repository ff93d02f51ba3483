"""The mesh's HTTP areas on in-memory twins: the CA (created by the leader's duty, roots,
leaves, configuration), intentions (exact writes, match, check, authorize) and config entries,
each write proposed through the twin writer as the typed command the FSM applies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from cryptography import x509

from agent.http import config_entries, connect_ca, intentions
from agent.http.app import HTTPError, Response
from agent.http.deps import HTTPDeps
from tests.harness.areas import call, dev_deps, header
from tests.harness.twins import MemoryWriter


def _with_ca() -> HTTPDeps:
    deps = dev_deps()
    assert deps.ca is not None
    asyncio.run(deps.ca.ensure_initialized())
    return deps


def refused(answer: Callable[[], Response]) -> HTTPError:
    """The HTTPError a handler raises (the App turns it into the status and text)."""
    with pytest.raises(HTTPError) as caught:
        answer()
    return caught.value


def _writer(deps: HTTPDeps) -> MemoryWriter:
    assert isinstance(deps.writer, MemoryWriter)
    return deps.writer


def test_the_leader_creates_the_ca_once_and_roots_hide_the_key() -> None:
    deps = _with_ca()
    assert deps.ca is not None
    asyncio.run(deps.ca.ensure_initialized())  # a second call writes nothing
    assert _writer(deps).types() == ["connect-ca-set"]
    got = call(connect_ca.register, deps, "GET", "/v1/connect/ca/roots")
    body = json.loads(got.body)
    [root] = body["Roots"]
    assert body["ActiveRootID"] == root["ID"] and root["Active"] is True
    assert body["TrustDomain"] == f"{deps.store.mesh.cluster_id}.consul"
    assert "SigningKey" not in root and "PRIVATE" not in got.body.decode()
    pem = call(connect_ca.register, deps, "GET", "/v1/connect/ca/roots", b"pem=true")
    assert pem.body.decode() == root["RootCert"]
    bad = refused(lambda: call(connect_ca.register, deps, "GET", "/v1/connect/ca/roots", b"pem=x"))
    assert bad.status == 400


def test_a_leaf_is_signed_by_the_active_root_and_cached() -> None:
    deps = _with_ca()
    roots = json.loads(call(connect_ca.register, deps, "GET", "/v1/connect/ca/roots").body)
    root = x509.load_pem_x509_certificate(roots["Roots"][0]["RootCert"].encode())
    first = call(connect_ca.register, deps, "GET", "/v1/agent/connect/ca/leaf/web")
    leaf = json.loads(first.body)
    cert = x509.load_pem_x509_certificate(leaf["CertPEM"].encode())
    cert.verify_directly_issued_by(root)
    assert leaf["ServiceURI"] == (f"spiffe://{roots['TrustDomain']}/ns/default/dc/dc1/svc/web")
    assert header(first, b"x-consul-index") == str(leaf["ModifyIndex"]).encode()
    again = json.loads(call(connect_ca.register, deps, "GET", "/v1/agent/connect/ca/leaf/web").body)
    assert again["SerialNumber"] == leaf["SerialNumber"]


def test_a_failed_rotation_leaves_the_old_root_active() -> None:
    deps = _with_ca()
    before = deps.store.mesh.ca
    body = json.dumps({"Provider": "consul", "Config": {"LeafCertTTL": "1m"}}).encode()
    got = refused(
        lambda: call(connect_ca.register, deps, "PUT", "/v1/connect/ca/configuration", body=body)
    )
    assert got.status == 500 and "leaf cert TTL must be greater or equal than 1h0m0s" in got.message
    assert deps.store.mesh.ca == before


def test_intentions_exact_match_check_and_authorize() -> None:
    deps = _with_ca()
    put = call(
        intentions.register,
        deps,
        "PUT",
        "/v1/connect/intentions/exact",
        b"source=web&destination=db",
        json.dumps({"Action": "deny"}).encode(),
    )
    assert put.status == 200 and json.loads(put.body) is True
    assert _writer(deps).types()[-1] == "config-entry-set"
    matched = json.loads(
        call(
            intentions.register,
            deps,
            "GET",
            "/v1/connect/intentions/match",
            b"by=destination&name=db",
        ).body
    )
    assert [i["SourceName"] for i in matched["db"]] == ["web"]
    check = call(
        intentions.register,
        deps,
        "GET",
        "/v1/connect/intentions/check",
        b"source=web&destination=db",
    )
    assert json.loads(check.body) == {"Allowed": False}
    trust = deps.store.mesh.trust_domain
    ask = {"Target": "db", "ClientCertURI": f"spiffe://{trust}/ns/default/dc/dc1/svc/web"}
    decided = json.loads(
        call(
            intentions.register,
            deps,
            "POST",
            "/v1/agent/connect/authorize",
            body=json.dumps(ask).encode(),
        ).body
    )
    assert decided["Authorized"] is False
    assert decided["Reason"].startswith("Matched L4 intention:")
    missing = refused(
        lambda: call(intentions.register, deps, "GET", "/v1/connect/intentions/match", b"name=x")
    )
    assert missing.status == 500 and missing.message == "required query parameter 'by' not set"


def test_config_entry_put_get_list_delete() -> None:
    deps = dev_deps()
    body = json.dumps({"Kind": "service-defaults", "Name": "web", "Protocol": "http"}).encode()
    assert json.loads(call(config_entries.register, deps, "PUT", "/v1/config", body=body).body)
    # An identical write is answered without a log entry.
    written = len(_writer(deps).commands)
    assert json.loads(call(config_entries.register, deps, "PUT", "/v1/config", body=body).body)
    assert len(_writer(deps).commands) == written
    got = call(config_entries.register, deps, "GET", "/v1/config/service-defaults/web")
    assert json.loads(got.body)["Protocol"] == "http"
    listed = json.loads(
        call(config_entries.register, deps, "GET", "/v1/config/service-defaults").body
    )
    assert [e["Name"] for e in listed] == ["web"]
    gone = call(config_entries.register, deps, "DELETE", "/v1/config/service-defaults/web")
    assert json.loads(gone.body) == {}
    for method, path, status in (
        ("GET", "/v1/config/service-defaults/web", 404),
        ("GET", "/v1/config/nope/web", 500),
        ("DELETE", "/v1/config/nope/web", 400),
    ):
        answer = refused(lambda m=method, p=path: call(config_entries.register, deps, m, p))
        assert answer.status == status
