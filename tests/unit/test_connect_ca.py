"""The built-in Connect CA (agent/connect/ca.py and friends): certificates checked with
`cryptography` itself (signatures, extensions, validity), and Consul's refusal messages."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.connect import ca, spiffe
from agent.connect.ca_config import initial_config
from agent.connect.ca_pki import serial_hex
from agent.connect.errors import CAError

CLUSTER = "3d0dfd90-1f58-5dc9-4707-e89ff37c5be2"
TD = spiffe.trust_domain(CLUSTER)
NOW = dt.datetime(2024, 1, 2, 3, 4, 5, 678_000, tzinfo=dt.UTC)
LEAF_TTL = 72 * 3600
WEB = spiffe.service_uri(TD, "dc1", "web")


def cert_of(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def chain_of(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def spki_sha256(cert: x509.Certificate) -> bytes:
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def ext(cert: x509.Certificate | x509.CertificateSigningRequest, kind: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture(scope="module")
def config() -> dict:
    return initial_config(CLUSTER)


@pytest.fixture(scope="module")
def root(config: dict) -> dict:
    return ca.new_root(CLUSTER, config, 7, NOW, ca.compact_uid(bytes(range(1, 9))))


def csr_with(names: list[x509.GeneralName]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


# --- roots -----------------------------------------------------------------------------


def test_root_record_matches_its_certificate(root: dict) -> None:
    cert = cert_of(root["RootCert"])
    der = cert.public_bytes(serialization.Encoding.DER)
    assert root["ID"] == colon_hex(hashlib.sha1(der).digest())
    assert len(root["ID"]) == 59
    ski = ext(cert, x509.SubjectKeyIdentifier).value.digest
    assert ski == spki_sha256(cert)
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert root["SigningKeyID"] == colon_hex(ski)
    assert root["Name"] == "Consul CA Primary Cert"
    assert root["SerialNumber"] == cert.serial_number == 7
    assert root["ExternalTrustDomain"] == CLUSTER
    assert root["NotBefore"] == "2024-01-02T03:04:05Z"  # now, whole seconds, not backdated
    assert root["NotAfter"] == "2033-12-30T03:04:05Z"  # + 87600h
    assert root["RootCert"].endswith("-----END CERTIFICATE-----\n")
    assert root["IntermediateCerts"] is None and root["Active"] is True
    assert (root["PrivateKeyType"], root["PrivateKeyBits"]) == ("ec", 256)
    assert root["SigningKey"].startswith("-----BEGIN EC PRIVATE KEY-----")


def test_root_certificate_contents(root: dict) -> None:
    cert = cert_of(root["RootCert"])
    uid8 = ca.compact_uid(bytes(range(1, 9))).lstrip("-")
    (cn,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == f"pri-{uid8}.consul.ca.3d0dfd90.consul"
    assert len(cert.subject) == 1 and cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert ext(cert, x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    ) == [f"spiffe://{TD}"]
    basic = ext(cert, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length is None
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign and usage.value.digital_signature
    assert not usage.value.key_encipherment
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.ExtendedKeyUsage)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_root_from_configured_key_and_cert(config: dict, root: dict) -> None:
    given = {**config, "Config": {"PrivateKey": root["SigningKey"], "RootCert": root["RootCert"]}}
    again = ca.new_root(CLUSTER, given, 99, NOW, "ignored")
    assert again["ID"] == root["ID"] and again["SerialNumber"] == 7
    assert again["SigningKey"] == root["SigningKey"]
    key_only = {**config, "Config": {"PrivateKey": root["SigningKey"]}}
    fresh = ca.new_root(CLUSTER, key_only, 8, NOW, "abc")
    assert fresh["ID"] != root["ID"] and fresh["SigningKeyID"] == root["SigningKeyID"]


def test_root_key_types(config: dict) -> None:
    p384 = ca.new_root(CLUSTER, {**config, "Config": {"PrivateKeyBits": 384}}, 1, NOW, "x")
    assert (p384["PrivateKeyType"], p384["PrivateKeyBits"]) == ("ec", 384)
    assert isinstance(cert_of(p384["RootCert"]).signature_hash_algorithm, hashes.SHA384)
    rsa = ca.new_root(
        CLUSTER,
        {**config, "Config": {"PrivateKeyType": "rsa", "PrivateKeyBits": 2048}},
        1,
        NOW,
        "x",
    )
    assert (rsa["PrivateKeyType"], rsa["PrivateKeyBits"]) == ("rsa", 2048)
    assert rsa["SigningKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    # A leaf signed by an RSA root still carries an EC key and verifies.
    _, csr = ca.new_leaf_key_and_csr(WEB)
    leaf = cert_of(ca.sign_leaf(rsa, csr, 2, NOW, LEAF_TTL, "dc1", TD)["CertPEM"])
    leaf.verify_directly_issued_by(cert_of(rsa["RootCert"]))


def test_compact_uid_and_serial_encoding() -> None:
    assert ca.compact_uid(b"\x00" * 8) == "0"
    assert ca.compact_uid(b"\xff" * 8) == "-1"
    assert len(ca.compact_uid(b"\x12\x34\x56\x78\x9a\xbc\xde\x01")) == 8
    assert serial_hex(7) == "07" and serial_hex(300) == "01:2c" and serial_hex(0) == ""


# --- leaves ----------------------------------------------------------------------------


def test_leaf_verifies_and_has_consul_contents(root: dict) -> None:
    key_pem, csr_pem = ca.new_leaf_key_and_csr(WEB)
    assert key_pem.startswith("-----BEGIN EC PRIVATE KEY-----")
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert len(csr.subject) == 0 and ext(csr, x509.SubjectAlternativeName).critical
    issued = ca.sign_leaf(root, csr_pem, 300, NOW, LEAF_TTL, "dc1", TD)
    assert issued["SerialNumber"] == "01:2c"
    assert issued["Service"] == "web" and issued["ServiceURI"] == WEB
    (leaf,) = chain_of(issued["CertPEM"])
    root_cert = cert_of(root["RootCert"])
    leaf.verify_directly_issued_by(root_cert)
    assert leaf.serial_number == 300
    assert len(leaf.subject) == 0 and leaf.issuer == root_cert.subject
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert leaf.public_key() == key.public_key()
    san = ext(leaf, x509.SubjectAlternativeName)
    assert san.critical and list(san.value) == [x509.UniformResourceIdentifier(WEB)]
    usage = ext(leaf, x509.KeyUsage)
    assert usage.critical
    assert (
        usage.value.digital_signature
        and usage.value.key_encipherment
        and usage.value.data_encipherment
        and usage.value.key_agreement
    )
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    ]
    basic = ext(leaf, x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    assert ext(leaf, x509.SubjectKeyIdentifier).value.digest == spki_sha256(leaf)
    assert (
        ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
        == ext(root_cert, x509.SubjectKeyIdentifier).value.digest
    )
    start = NOW.replace(microsecond=0) - dt.timedelta(minutes=1)
    assert leaf.not_valid_before_utc == start
    assert leaf.not_valid_after_utc == start + dt.timedelta(seconds=LEAF_TTL)
    assert issued["ValidAfter"] == "2024-01-02T03:03:05Z"
    assert issued["ValidBefore"] == "2024-01-05T03:03:05Z"


def test_leaf_dns_sans_and_rendering(root: dict) -> None:
    key_pem, csr = ca.new_leaf_key_and_csr(WEB, ["web.local:8080", "web.local", "", "b.local"])
    issued = ca.sign_leaf(root, csr, 3, NOW, LEAF_TTL, "dc1", TD)
    leaf = chain_of(issued["CertPEM"])[0]
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web.local", "b.local"]
    body = ca.render_leaf(issued, key_pem, 11, 11)
    assert list(body) == [
        "SerialNumber",
        "CertPEM",
        "PrivateKeyPEM",
        "Service",
        "ServiceURI",
        "ValidAfter",
        "ValidBefore",
        "CreateIndex",
        "ModifyIndex",
    ]


def test_agent_and_gateway_leaves(root: dict) -> None:
    other = spiffe.agent_uri("11111111-2222-3333-4444-555555555555.consul", "dc2", "node-1")
    _, csr = ca.new_leaf_key_and_csr(other, ["localhost"], ["127.0.0.1", "::1"])
    issued = ca.sign_leaf(root, csr, 4, NOW, LEAF_TTL, "dc1", TD)
    # Agents may not know the trust domain yet: theirs is replaced by ours.
    assert issued["Agent"] == "node-1"
    assert issued["AgentURI"] == f"spiffe://{TD}/agent/client/dc/dc2/id/node-1"
    leaf = chain_of(issued["CertPEM"])[0]
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [issued["AgentURI"]]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    _, csr = ca.new_leaf_key_and_csr(spiffe.mesh_gateway_uri(TD, "dc1"))
    issued = ca.sign_leaf(root, csr, 5, NOW, LEAF_TTL, "dc1", TD)
    assert issued["Kind"] == "mesh-gateway" and issued["KindURI"].endswith("/gateway/mesh/dc/dc1")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "CSR SAN contains an invalid number of URIs: 0"),
        (
            [x509.UniformResourceIdentifier(WEB), x509.UniformResourceIdentifier(WEB + "2")],
            "CSR SAN contains an invalid number of URIs: 2",
        ),
        (
            [x509.UniformResourceIdentifier(WEB), x509.RFC822Name("a@b.c")],
            "CSR SAN does not allow specifying email addresses",
        ),
        (
            [x509.UniformResourceIdentifier(spiffe.signing_uri(CLUSTER))],
            "SPIFFE ID in CSR must be a service, mesh-gateway, or agent ID",
        ),
        (
            [x509.UniformResourceIdentifier(spiffe.server_uri(TD, "dc1"))],
            "SPIFFE ID in CSR must be a service, mesh-gateway, or agent ID",
        ),
        (
            [x509.UniformResourceIdentifier(spiffe.service_uri(TD, "dc2", "web"))],
            "SPIFFE ID in CSR from a different datacenter: dc2, we are dc1",
        ),
        (
            [x509.UniformResourceIdentifier(spiffe.service_uri("other.consul", "dc1", "web"))],
            f"SPIFFE ID in CSR from a different trust domain: other.consul, we are {TD}",
        ),
        (
            [x509.UniformResourceIdentifier("https://example.com/x")],
            "SPIFFE ID must have 'spiffe' scheme",
        ),
    ],
)
def test_csr_refusals(root: dict, names: list, message: str) -> None:
    with pytest.raises(CAError) as caught:
        ca.sign_leaf(root, csr_with(names), 9, NOW, LEAF_TTL, "dc1", TD)
    assert caught.value.message == message and caught.value.status == 500


def test_trust_domain_check_folds_case(root: dict) -> None:
    upper = spiffe.service_uri(TD.upper(), "dc1", "web")
    issued = ca.sign_leaf(
        root, csr_with([x509.UniformResourceIdentifier(upper)]), 9, NOW, 3600, "dc1", TD
    )
    assert issued["ServiceURI"] == upper


def test_expired_root_refuses(root: dict) -> None:
    _, csr = ca.new_leaf_key_and_csr(WEB)
    with pytest.raises(CAError) as caught:
        ca.sign_leaf(root, csr, 9, NOW + dt.timedelta(days=3651), LEAF_TTL, "dc1", TD)
    assert caught.value.message == (
        "root expired: certificate expired, expiration date: 2033-12-30 03:04:05 +0000 UTC "
    )


def test_csr_spiffe_id(root: dict) -> None:
    _, csr = ca.new_leaf_key_and_csr(WEB)
    who = ca.csr_spiffe_id(csr)
    assert (who.kind, who.service, who.datacenter, who.namespace) == (
        "service",
        "web",
        "dc1",
        "default",
    )


# --- rotation --------------------------------------------------------------------------


def test_rotation_cross_signs_and_new_leaves_verify(config: dict, root: dict) -> None:
    later = NOW + dt.timedelta(hours=5)
    new = ca.new_root(CLUSTER, config, 20, later, "newroot1")
    xc_pem = ca.cross_sign(root, new, 21, later)
    xc, old_cert, new_cert = cert_of(xc_pem), cert_of(root["RootCert"]), cert_of(new["RootCert"])
    xc.verify_directly_issued_by(old_cert)  # signed by the old root's key
    assert xc.subject == new_cert.subject and xc.issuer == old_cert.subject
    assert xc.public_key() == new_cert.public_key() and xc.serial_number == 21
    assert (
        ext(xc, x509.SubjectKeyIdentifier).value == ext(new_cert, x509.SubjectKeyIdentifier).value
    )
    assert ext(xc, x509.AuthorityKeyIdentifier).value.key_identifier == spki_sha256(old_cert)
    assert ext(xc, x509.BasicConstraints).value.ca
    start = later.replace(microsecond=0) - dt.timedelta(minutes=1)
    assert xc.not_valid_before_utc == start
    assert xc.not_valid_after_utc == start + dt.timedelta(days=7)

    roots = ca.rotate([root], new, xc_pem, later)
    old, newest = roots
    assert old["ID"] == root["ID"] and old["Active"] is False
    assert old["RotatedOutAt"] == "2024-01-02T08:04:05.678Z"
    assert newest["Active"] is True and newest["IntermediateCerts"] == [xc_pem]
    assert root["Active"] is True  # inputs are not modified

    _, csr = ca.new_leaf_key_and_csr(WEB)
    issued = ca.sign_leaf(newest, csr, 22, later, LEAF_TTL, "dc1", TD)
    leaf, attached = chain_of(issued["CertPEM"])
    leaf.verify_directly_issued_by(new_cert)
    attached.verify_directly_issued_by(old_cert)  # peers still trusting the old root follow it

    rendered = ca.render_roots(roots, TD)
    assert rendered["ActiveRootID"] == new["ID"] and rendered["TrustDomain"] == TD
    assert [r["ID"] for r in rendered["Roots"]] == [root["ID"], new["ID"]]
    assert all("SigningKey" not in r and "RotatedOutAt" not in r for r in rendered["Roots"])
    assert list(rendered["Roots"][0])[:3] == ["ID", "Name", "SerialNumber"]
    assert list(rendered["Roots"][0])[-2:] == ["CreateIndex", "ModifyIndex"]
    assert ca.roots_pem(roots) == root["RootCert"] + new["RootCert"] + xc_pem

    # Rotated out more than 2 x LeafCertTTL ago: pruned; the active root always stays.
    assert len(ca.prune_roots(roots, later + dt.timedelta(hours=143), LEAF_TTL)) == 2
    kept = ca.prune_roots(roots, later + dt.timedelta(hours=145), LEAF_TTL)
    assert [r["ID"] for r in kept] == [new["ID"]]


def test_render_roots_empty() -> None:
    assert ca.render_roots([], "") == {"ActiveRootID": "", "TrustDomain": "", "Roots": []}


def test_root_changes_and_cross_sign_decision(config: dict) -> None:
    def with_config(**values: object) -> dict:
        return {**config, "Config": {**config["Config"], **values}}

    assert not ca.root_changes(config, with_config(LeafCertTTL="24h", RootCertTTL="90000h"))
    assert not ca.root_changes(config, with_config(PrivateKeyBits=256, PrivateKeyType="ec"))
    assert ca.root_changes(config, with_config(PrivateKeyBits=384))
    assert ca.root_changes(config, with_config(PrivateKey="-----BEGIN EC PRIVATE KEY-----"))
    assert ca.root_changes(config, {**config, "Provider": "vault"})
    assert ca.should_cross_sign(config, with_config(PrivateKeyBits=384))
    assert not ca.should_cross_sign(config, {**config, "ForceWithoutCrossSigning": True})
    with pytest.raises(CAError, match="does not support cross-signing"):
        ca.should_cross_sign(with_config(DisableCrossSigning=True), config)


# --- configuration ---------------------------------------------------------------------


def put(config: dict | None, **fields: object) -> dict:
    body = {"Provider": "consul", "Config": {}, **fields}
    return ca.validate_ca_config(body, config)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"RootCertTTL": "1000h"},
            "root cert TTL is set and is not greater than intermediate cert ttl. "
            "root cert ttl: 1000h0m0s, intermediate cert ttl: 8760h0m0s",
        ),
        ({"LeafCertTTL": "30m"}, "leaf cert TTL must be greater or equal than 1h0m0s"),
        ({"LeafCertTTL": "9000h"}, "leaf cert TTL must be less than 8760h0m0s"),
        ({"IntermediateCertTTL": "2h"}, "Intermediate Cert TTL must be greater or equal than 3h"),
        (
            {"LeafCertTTL": "72h", "IntermediateCertTTL": "100h"},
            "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>=216h0m0s).",
        ),
        ({"PrivateKeyBits": 512}, "EC key length must be one of (224, 256, 384, 521) bits"),
        (
            {"PrivateKeyType": "rsa", "PrivateKeyBits": 1024},
            "RSA key length must be 2048 or 4096 bits",
        ),
        ({"PrivateKeyType": "dsa"}, "private key type must be either 'ec' or 'rsa'"),
        ({"RootCert": "x"}, "must provide a private key when providing a root cert"),
        (
            {"LeafCertTTL": "soon"},
            "error decoding config: 1 error(s) decoding:\n\n"
            "* error decoding 'LeafCertTTL': time: invalid duration \"soon\"",
        ),
        (
            {"PrivateKeyBits": "abc", "leafcertttl": 3600},
            "error decoding config: 1 error(s) decoding:\n\n* cannot parse 'PrivateKeyBits' as "
            'int: strconv.ParseInt: parsing "abc": invalid syntax',
        ),
        # A bare number is nanoseconds, as Go's weak decode reads it.
        ({"LeafCertTTL": 3600}, "leaf cert TTL must be greater or equal than 1h0m0s"),
    ],
)
def test_config_validation_messages(config: dict, settings: dict, message: str) -> None:
    with pytest.raises(CAError) as caught:
        put(config, Config=settings)
    assert caught.value.message == f"error configuring provider: {message}"
    assert caught.value.status == 500


def test_config_weak_typing_and_case(config: dict) -> None:
    stored = put(config, Config={"leafcertttl": "24h", "PrivateKeyBits": "384", "Rotation": 1})
    assert stored["Config"] == {"leafcertttl": "24h", "PrivateKeyBits": "384", "Rotation": 1}
    settings = ca.provider_config(stored)
    assert settings.leaf_ttl_seconds == 24 * 3600 and settings.private_key_bits == 384
    assert settings.intermediate_cert_ttl == 8760 * 3600 * 10**9
    assert ca.provider_config({"Config": {"LeafCertTTL": 7.2e12}}).leaf_cert_ttl == 7200 * 10**9


def test_config_put_rules(config: dict) -> None:
    assert put(config, Config=dict(config["Config"])) == config  # no-op
    stored = put(config, Config={"LeafCertTTL": "24h"}, force_without_cross_signing=True)
    assert stored == {
        "Provider": "consul",
        "Config": {"LeafCertTTL": "24h"},
        "State": None,
        "ForceWithoutCrossSigning": True,
        "ClusterID": CLUSTER,
    }
    assert put(None, Config={"LeafCertTTL": "24h"})["Config"] == {"LeafCertTTL": "24h"}
    with pytest.raises(CAError) as caught:
        put(config, State={"k": "v"})
    assert caught.value.status == 400
    assert caught.value.message == (
        "Provider State is read-only. It must be omitted or identical to the current value"
    )
    with pytest.raises(CAError) as caught:
        put(config, Provider="vault")
    assert caught.value.message == 'could not initialize provider: unknown CA provider "vault"'
    with pytest.raises(CAError) as caught:
        put(config, Provider=5)
    assert caught.value.status == 400
    assert caught.value.message == (
        "Request decode failed: json: cannot unmarshal number into Go struct field .Provider "
        "of type string"
    )
    rendered = ca.render_config({**stored, "CreateIndex": 4, "ModifyIndex": 9})
    assert list(rendered) == [
        "Provider",
        "Config",
        "State",
        "ForceWithoutCrossSigning",
        "CreateIndex",
        "ModifyIndex",
    ]


def test_initial_and_patched_config() -> None:
    made = initial_config("", {"cluster_id": CLUSTER, "leaf_cert_ttl": "12h"}, "consul")
    assert made["ClusterID"] == CLUSTER and made["Config"]["LeafCertTTL"] == "12h"
    assert made["Config"]["RootCertTTL"] == "87600h"
    with pytest.raises(CAError, match="cluster_id was supplied but was not a valid UUID"):
        initial_config("", {"cluster_id": "nope"})
    old = {"Provider": "consul", "Config": {"LeafCertTTL": "72h"}}
    assert ca.patched_config(old)["Config"]["IntermediateCertTTL"] == "8760h0m0s"
    assert "IntermediateCertTTL" not in old["Config"]


# --- SPIFFE IDs ------------------------------------------------------------------------


def test_spiffe_builders_and_parser() -> None:
    assert spiffe.trust_domain("ABC-1") == "abc-1.consul"
    assert spiffe.signing_uri("ABC") == "spiffe://abc.consul"
    assert spiffe.service_uri(TD, "dc1", "web") == f"spiffe://{TD}/ns/default/dc/dc1/svc/web"
    assert spiffe.service_uri(TD, "dc1", "web", "ns1", "part") == (
        f"spiffe://{TD}/ap/part/ns/ns1/dc/dc1/svc/web"
    )
    parsed = spiffe.parse_uri(f"spiffe://{TD}/ap/p1/ns/n1/dc/dc1/svc/a%2Fb")
    assert (parsed.kind, parsed.partition, parsed.namespace, parsed.service) == (
        "service",
        "p1",
        "n1",
        "a/b",
    )
    assert spiffe.parse_uri(WEB).partition == "default" and spiffe.parse_uri(WEB).uri == WEB
    agent = spiffe.parse_uri(spiffe.agent_uri(TD, "dc1", "n1"))
    assert (agent.kind, agent.agent, agent.datacenter) == ("agent", "n1", "dc1")
    assert spiffe.parse_uri(spiffe.server_uri(TD, "dc1")).kind == "server"
    assert spiffe.parse_uri(spiffe.mesh_gateway_uri(TD, "dc1")).kind == "mesh-gateway"
    signing = spiffe.parse_uri(spiffe.signing_uri(CLUSTER))
    assert (signing.kind, signing.cluster_id, signing.domain) == ("signing", CLUSTER, "consul")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://x.consul/ns/default/dc/dc1/svc/web", "SPIFFE ID must have 'spiffe' scheme"),
        (
            "spiffe://x.consul/svc/web",
            "SPIFFE ID is not in the expected format: spiffe://x.consul/svc/web",
        ),
        ("spiffe://nodot", "SPIFFE ID is not in the expected format: spiffe://nodot"),
        ("spiffe://x.consul/", "SPIFFE ID is not in the expected format: spiffe://x.consul/"),
        ("spiffe://x.consul/ns/%zz", 'parse "spiffe://x.consul/ns/%zz": invalid URL escape "%zz"'),
    ],
)
def test_spiffe_parse_errors(uri: str, message: str) -> None:
    with pytest.raises(CAError) as caught:
        spiffe.parse_uri(uri)
    assert caught.value.message == message
