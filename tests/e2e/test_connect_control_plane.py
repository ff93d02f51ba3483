"""The mesh's control plane on a real agent: config entries, the Connect CA and its leaf
certificates (verified with `cryptography`, before and after a rotation), intentions and
`/v1/agent/connect/authorize`."""

from __future__ import annotations

import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.agentproc import AgentProc

pytestmark = pytest.mark.timeout(120)


def _roots(client: httpx.Client) -> dict:
    deadline = time.monotonic() + 20
    while True:
        answer = client.get("/v1/connect/ca/roots")
        if answer.status_code == 200 and answer.json().get("ActiveRootID"):
            return answer.json()
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


def _verifies(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, Exception):
        return False
    return True


def _spiffe(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def test_config_entries_round_trip(dev_agent: AgentProc) -> None:
    client = dev_agent.client()
    defaults = {"Kind": "service-defaults", "Name": "web", "Protocol": "HTTP"}
    assert client.put("/v1/config", json=defaults).json() is True
    got = client.get("/v1/config/service-defaults/web")
    assert got.status_code == 200, got.text
    entry = got.json()
    assert entry["Protocol"] == "http" and entry["Kind"] == "service-defaults"
    assert entry["CreateIndex"] == entry["ModifyIndex"] > 0
    assert int(got.headers["X-Consul-Index"]) >= entry["ModifyIndex"]

    snake = {"kind": "proxy-defaults", "name": "global", "config": {"protocol": "http"}}
    assert client.put("/v1/config", json=snake).json() is True
    assert client.get("/v1/config/proxy-defaults/global").json()["Config"] == {"protocol": "http"}

    splitter = {
        "Kind": "service-splitter",
        "Name": "web",
        "Splits": [{"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"}],
    }
    resolver = {
        "Kind": "service-resolver",
        "Name": "web",
        "Subsets": {"v1": {"Filter": "Service.Meta.version == 1"}, "v2": {"Filter": ""}},
    }
    assert client.put("/v1/config", json=resolver).json() is True
    assert client.put("/v1/config", json=splitter).json() is True
    listed = client.get("/v1/config/service-splitter").json()
    assert [e["Name"] for e in listed] == ["web"]

    bad_weights = dict(splitter, Splits=[{"Weight": 90, "ServiceSubset": "v1"}])
    refused = client.put("/v1/config", json=bad_weights)
    assert refused.status_code == 500 and "sum of all split weights must be 100" in refused.text
    unknown = client.put("/v1/config", json={"Kind": "service-defaults", "Name": "x", "Nope": 1})
    assert unknown.status_code == 400 and 'invalid config key "Nope"' in unknown.text
    assert client.get("/v1/config/no-such-kind/x").status_code == 500
    assert client.get("/v1/config/service-defaults/missing").status_code == 404

    # CAS: a stale index is refused with false and changes nothing.
    stale = client.put("/v1/config?cas=1", json=dict(defaults, Protocol="grpc"))
    assert stale.json() is False
    assert client.get("/v1/config/service-defaults/web").json()["Protocol"] == "http"
    index = client.get("/v1/config/service-defaults/web").json()["ModifyIndex"]
    assert client.delete(f"/v1/config/service-defaults/web?cas={index + 100}").json() is False
    # A router needs an HTTP-like protocol: tcp refuses it.
    router = {"Kind": "service-router", "Name": "api", "Routes": []}
    tcp = client.put("/v1/config", json={"Kind": "service-defaults", "Name": "api"})
    assert tcp.json() is True
    client.put("/v1/config", json={"Kind": "proxy-defaults", "Name": "global"})
    answer = client.put(
        "/v1/config",
        json=dict(router, Routes=[{"Match": {"HTTP": {"PathPrefix": "/x"}}}]),
    )
    assert answer.status_code == 500 and "does not permit advanced routing" in answer.text


def test_leaf_certificates_verify_against_the_roots_and_after_a_rotation(
    dev_agent: AgentProc,
) -> None:
    client = dev_agent.client()
    roots = _roots(client)
    trust = roots["TrustDomain"]
    assert trust.endswith(".consul")
    active = next(r for r in roots["Roots"] if r["Active"])
    assert "SigningKey" not in active and active["ID"] == roots["ActiveRootID"]
    root_cert = x509.load_pem_x509_certificate(active["RootCert"].encode())

    leaf = client.get("/v1/agent/connect/ca/leaf/web")
    assert leaf.status_code == 200, leaf.text
    body = leaf.json()
    cert = x509.load_pem_x509_certificate(body["CertPEM"].encode())
    assert _verifies(cert, root_cert)
    assert _spiffe(cert) == [f"spiffe://{trust}/ns/default/dc/dc1/svc/web"]
    assert body["ServiceURI"] == _spiffe(cert)[0] and body["Service"] == "web"
    assert "PRIVATE KEY" in body["PrivateKeyPEM"]
    # The cache hands back the same certificate until it must renew.
    assert (
        client.get("/v1/agent/connect/ca/leaf/web").json()["SerialNumber"] == (body["SerialNumber"])
    )
    agent_roots = client.get("/v1/agent/connect/ca/roots").json()
    assert agent_roots["ActiveRootID"] == roots["ActiveRootID"]

    # Rotate to a new key: the old root stays listed, the new one is active and cross-signed.
    key = ec.generate_private_key(ec.SECP384R1())
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    config = client.get("/v1/connect/ca/configuration").json()
    assert config["Provider"] == "consul"
    put = client.put(
        "/v1/connect/ca/configuration",
        json={"Provider": "consul", "Config": dict(config["Config"], PrivateKey=pem)},
    )
    assert put.status_code == 200, put.text
    after = client.get("/v1/connect/ca/roots").json()
    assert after["ActiveRootID"] != roots["ActiveRootID"]
    assert {r["ID"] for r in after["Roots"]} >= {roots["ActiveRootID"], after["ActiveRootID"]}
    new_active = next(r for r in after["Roots"] if r["Active"])
    new_root = x509.load_pem_x509_certificate(new_active["RootCert"].encode())
    cross = x509.load_pem_x509_certificate(new_active["IntermediateCerts"][0].encode())
    assert _verifies(cross, root_cert)  # the old root vouches for the new key
    renewed = client.get("/v1/agent/connect/ca/leaf/web").json()
    assert renewed["SerialNumber"] != body["SerialNumber"]
    new_leaf = x509.load_pem_x509_certificate(renewed["CertPEM"].encode())
    assert _verifies(new_leaf, new_root)
    bad = client.put("/v1/connect/ca/configuration", json={"Provider": "nope", "Config": {}})
    assert bad.status_code == 500 and "unknown CA provider" in bad.text
    assert client.get("/v1/connect/ca/roots").json()["ActiveRootID"] == after["ActiveRootID"]


def test_intentions_decide_authorize(dev_agent: AgentProc) -> None:
    client = dev_agent.client()
    trust = _roots(client)["TrustDomain"]
    uri = f"spiffe://{trust}/ns/default/dc/dc1/svc/web"

    def authorize(target: str, source_uri: str = uri) -> dict:
        answer = client.post(
            "/v1/agent/connect/authorize",
            json={"Target": target, "ClientCertURI": source_uri},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert authorize("db") == {"Authorized": True, "Reason": "Default intention policy"}
    put = client.put(
        "/v1/connect/intentions/exact?source=web&destination=db", json={"Action": "deny"}
    )
    assert put.json() is True, put.text
    decided = authorize("db")
    assert decided["Authorized"] is False and "Matched L4 intention" in decided["Reason"]
    wildcard = client.put(
        "/v1/connect/intentions/exact?source=*&destination=db", json={"Action": "allow"}
    )
    assert wildcard.json() is True
    assert authorize("db")["Authorized"] is False  # the exact source outranks the wildcard
    other = f"spiffe://{trust}/ns/default/dc/dc1/svc/api"
    assert authorize("db", other)["Authorized"] is True
    matched = client.get("/v1/connect/intentions/match?by=destination&name=db").json()
    assert [i["SourceName"] for i in matched["db"]] == ["web", "*"]
    assert [i["Precedence"] for i in matched["db"]] == [9, 8]
    check = client.get("/v1/connect/intentions/check?source=web&destination=db").json()
    assert check == {"Allowed": False}
    entry = client.get("/v1/config/service-intentions/db").json()
    assert [s["Name"] for s in entry["Sources"]] == ["web", "*"]

    legacy = client.post(
        "/v1/connect/intentions",
        json={"SourceName": "api", "DestinationName": "cache", "Action": "allow"},
    )
    assert legacy.status_code == 200, legacy.text
    ident = legacy.json()["ID"]
    got = client.get(f"/v1/connect/intentions/{ident}").json()
    assert got["ID"] == ident and got["DestinationName"] == "cache"
    assert client.delete(f"/v1/connect/intentions/{ident}").json() is True
    assert client.get(f"/v1/connect/intentions/{ident}").status_code == 404
    assert client.delete("/v1/connect/intentions/exact?source=web&destination=db").json() is True
    assert authorize("db")["Authorized"] is True
    missing = client.get("/v1/connect/intentions/match?name=db")
    assert missing.status_code == 500 and "'by' not set" in missing.text
    bad = client.post("/v1/agent/connect/authorize", json={"Target": "db", "ClientCertURI": "x"})
    assert bad.status_code == 400


def test_gateways_link_services_through_their_entries(dev_agent: AgentProc) -> None:
    client = dev_agent.client()
    _roots(client)
    for body in (
        {"Name": "api", "Port": 9000},
        {"Name": "ingress", "Kind": "ingress-gateway", "Port": 8443},
        {"Name": "egress", "Kind": "terminating-gateway", "Port": 8444},
    ):
        assert client.put("/v1/agent/service/register", json=body).status_code == 200
    ingress = {
        "Kind": "ingress-gateway",
        "Name": "ingress",
        "Listeners": [{"Port": 8080, "Protocol": "tcp", "Services": [{"Name": "api"}]}],
    }
    egress = {"Kind": "terminating-gateway", "Name": "egress", "Services": [{"Name": "*"}]}
    assert client.put("/v1/config", json=ingress).json() is True
    assert client.put("/v1/config", json=egress).json() is True
    linked = client.get("/v1/catalog/gateway-services/ingress").json()
    assert [(g["Service"]["Name"], g["Port"], g["GatewayKind"]) for g in linked] == [
        ("api", 8080, "ingress-gateway")
    ]
    wildcard = client.get("/v1/catalog/gateway-services/egress").json()
    assert {g["Service"]["Name"] for g in wildcard} >= {"api"}
    assert all(g.get("FromWildcard") for g in wildcard)
    exposed = client.get("/v1/health/ingress/api").json()
    assert [e["Service"]["Service"] for e in exposed] == ["ingress"]
    connect = client.get("/v1/health/connect/api").json()
    assert "egress" in [e["Service"]["Service"] for e in connect]
