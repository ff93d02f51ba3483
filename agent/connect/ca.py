"""The built-in ("consul") Connect CA of a primary datacenter: roots, rotation, leaf signing.

Pure: the caller passes the time, the next serial number (Consul counts them in Raft: one per
root, cross-signed root and leaf) and the random UID of a root's common name; keys come from
the OS random source. Records are plain dicts with Consul's wire keys.

A root record is what `/v1/connect/ca/roots` lists, plus two keys that are never rendered:
"SigningKey" (the CA's private key PEM) and "RotatedOutAt" (set when a rotation retires it).

    ID                  SHA-1 of the certificate's DER, colon-hex ("aa:bb:...")
    Name                "Consul CA Primary Cert"
    SerialNumber        the certificate's serial, a JSON number
    SigningKeyID        colon-hex SubjectKeyId of the cert that signs leaves (the root itself)
    ExternalTrustDomain the cluster ID (bare UUID)
    NotBefore/NotAfter  RFC 3339
    RootCert            PEM, newline-terminated
    IntermediateCerts   None, or a list whose first entry is the cross-signed cert after a rotation
    Active              True for exactly one root
    PrivateKeyType/Bits "ec" 256 by default, read from the certificate's key

The root certificate: subject CN "pri-<uid8>.consul.ca.<cluster-id[:8]>.consul"; URI SAN
`spiffe://<cluster-id>.consul`; BasicConstraints CA (critical, no path length); KeyUsage
CertSign|CRLSign|DigitalSignature (critical); SubjectKeyId = AuthorityKeyId = SHA-256 of the
public key's PKIX DER; valid from `now` for RootCertTTL.

A leaf (sign_leaf): empty subject; the CSR's SANs, URI last, the extension critical because the
subject is empty; KeyUsage DigitalSignature|KeyEncipherment|DataEncipherment|KeyAgreement
(critical); ExtKeyUsage ClientAuth, ServerAuth; BasicConstraints not-CA (critical);
AuthorityKeyId = the CA key's ID, SubjectKeyId = the CSR key's ID; valid from now - 1 minute
for LeafCertTTL (the minute absorbs clock drift between servers). Leaf keys are always EC P-256.

Consul's CSR refusals (CAError, 500):

    CSR SAN contains an invalid number of URIs: <n>
    CSR SAN does not allow specifying email addresses
    SPIFFE ID in CSR must be a service, mesh-gateway, or agent ID
    SPIFFE ID in CSR from a different datacenter: <dc>, we are <dc>
    SPIFFE ID in CSR from a different trust domain: <host>, we are <trust domain>
    root expired: certificate expired, expiration date: <Go time>   (Consul ends it with a space)

(plus spiffe.parse_uri's). An agent's CSR may carry any trust domain: it is rewritten to ours,
since agents ask for certificates before they know the roots.

The configuration side (validate_ca_config, root_changes, should_cross_sign, ...) lives in
`agent.connect.ca_config` and is re-exported here; `ca_pki` holds the encodings.

Old roots are pruned (`prune_roots`) as Consul's leader does hourly: an inactive root goes once
twice the current LeafCertTTL has passed since it was rotated out (every leaf it signed has
expired by then).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.connect.ca_config import (
    DEFAULT_CONFIG,
    ProviderConfig,
    initial_config,
    parse_provider_config,
    patched_config,
    provider_config,
    render_config,
    root_changes,
    should_cross_sign,
    validate_ca_config,
)
from agent.connect.ca_pki import (
    fingerprint,
    generate_key,
    go_time,
    hex_string,
    key_id,
    key_info,
    key_pem,
    load_cert,
    load_csr,
    load_signer,
    parse_go_time,
    serial_hex,
    signature_hash,
    utc,
)
from agent.connect.errors import CAError
from agent.connect.spiffe import SpiffeID, parse_uri, signing_uri

__all__ = [
    "CROSS_SIGN_VALIDITY",
    "DEFAULT_CONFIG",
    "ProviderConfig",
    "compact_uid",
    "cross_sign",
    "csr_spiffe_id",
    "initial_config",
    "new_leaf_key_and_csr",
    "new_root",
    "parse_provider_config",
    "patched_config",
    "provider_config",
    "prune_roots",
    "render_config",
    "render_leaf",
    "render_root",
    "render_roots",
    "root_changes",
    "roots_pem",
    "rotate",
    "should_cross_sign",
    "sign_leaf",
    "validate_ca_config",
]

CLOCK_DRIFT = dt.timedelta(minutes=1)
# Only old leaves need the cross-signed cert, and they expire within the leaf TTL (3 days
# by default); Consul fixes a week rather than following the TTL.
CROSS_SIGN_VALIDITY = dt.timedelta(days=7)
_PRETTY = {"consul": "Consul", "vault": "Vault", "aws-pca": "Aws-Pca"}
_NOT_DNS = re.compile(r"[^a-z0-9]")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_ROOT_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=True,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_EKU = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
)
_RENDERED_ROOT_KEYS = (
    "ID",
    "Name",
    "SerialNumber",
    "SigningKeyID",
    "ExternalTrustDomain",
    "NotBefore",
    "NotAfter",
    "RootCert",
    "IntermediateCerts",
    "Active",
    "PrivateKeyType",
    "PrivateKeyBits",
)
_LEAF_KEYS = (
    "SerialNumber",
    "CertPEM",
    "PrivateKeyPEM",
    "Service",
    "ServiceURI",
    "Agent",
    "AgentURI",
    "ServerURI",
    "Kind",
    "KindURI",
    "ValidAfter",
    "ValidBefore",
)


def compact_uid(random_bytes: bytes) -> str:
    """Consul's CompactUID from 8 random bytes: a signed base-36 number, cut to 8 characters
    (a negative one keeps its "-", which the common name then drops)."""
    value = int.from_bytes(random_bytes[:8], "little", signed=True)
    digits, rest = [], abs(value)
    while True:
        rest, digit = divmod(rest, 36)
        digits.append(_BASE36[digit])
        if not rest:
            break
    return (("-" if value < 0 else "") + "".join(reversed(digits)))[:8]


def _seconds(when: dt.datetime) -> dt.datetime:
    """A certificate time: X.509 keeps whole seconds, and Go truncates."""
    return utc(when).replace(microsecond=0)


def _ns(ns: int) -> dt.timedelta:
    return dt.timedelta(microseconds=ns // 1000)


def _ski(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return b""


def _with_newline(pem: str) -> str:
    return pem if pem.endswith("\n") else pem + "\n"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _build_root(
    key: Any, cluster_id: str, serial: int, now: dt.datetime, uid: str, ttl: int
) -> str:
    uid8 = _NOT_DNS.sub("", uid.lower())[:8]
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"pri-{uid8}.consul.ca.{cluster_id[:8]}.consul")]
    )
    keyid = key_id(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_seconds(now))
        .not_valid_after(_seconds(utc(now) + _ns(ttl)))
        .add_extension(_ROOT_USAGE, critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(keyid), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier(keyid, None, None), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(signing_uri(cluster_id))]),
            critical=False,
        )
        .sign(key, signature_hash(key))
    )
    return _pem(cert)


def new_root(
    cluster_id: str,
    config: Mapping[str, Any],
    serial: int,
    now: dt.datetime,
    uid: str,
    *,
    private_key_pem: str | None = None,
    root_cert_pem: str | None = None,
) -> dict[str, Any]:
    """A new active root record for the stored configuration `config` (module docstring).

    The key is `private_key_pem`, else Config.PrivateKey, else a fresh one of PrivateKeyType/
    Bits; the certificate is `root_cert_pem`, else Config.RootCert, else one built here with
    `serial` (unused when a certificate is given) and `uid` (see compact_uid)."""
    settings = provider_config(config)
    signing_key = private_key_pem or settings.private_key
    try:
        if signing_key:
            key = load_signer(signing_key)
        else:
            key = generate_key(settings.private_key_type, settings.private_key_bits)
            signing_key = key_pem(key)
    except CAError as exc:
        # Consul quotes the key itself in this message; a PEM private key stays out of ours.
        raise CAError(
            "error generating CA root certificate: error generating CA: "
            f"error parsing private key: {exc.message}"
        ) from None
    pem = root_cert_pem or settings.root_cert
    if not pem:
        pem = _build_root(key, cluster_id, serial, now, uid, settings.root_cert_ttl)
    cert = load_cert(pem)
    key_type, key_bits = key_info(cert.public_key())
    provider = str(config.get("Provider") or "consul")
    return {
        "ID": fingerprint(cert.public_bytes(serialization.Encoding.DER)),
        "Name": f"{_PRETTY.get(provider, provider)} CA Primary Cert",
        "SerialNumber": cert.serial_number & 0xFFFF_FFFF_FFFF_FFFF,  # Go's big.Int.Uint64
        "SigningKeyID": hex_string(_ski(cert)),
        "ExternalTrustDomain": cluster_id,
        "NotBefore": go_time(cert.not_valid_before_utc),
        "NotAfter": go_time(cert.not_valid_after_utc),
        "RootCert": _with_newline(pem),
        "IntermediateCerts": None,
        "Active": True,
        "PrivateKeyType": key_type,
        "PrivateKeyBits": key_bits,
        "SigningKey": signing_key,
    }


def cross_sign(
    old_root: Mapping[str, Any], new_root: Mapping[str, Any], serial: int, now: dt.datetime
) -> str:
    """PEM of `new_root`'s certificate re-issued by the old root: same subject, key and
    extensions, but issuer and AuthorityKeyId of the old root, the old root's signature
    algorithm, a new serial, valid from now - 1 minute for 7 days. Leaves of the old root
    chain to the new root through it while they live out their TTL."""
    old_key = load_signer(old_root["SigningKey"])
    old_cert = load_cert(old_root["RootCert"])
    new_cert = load_cert(new_root["RootCert"])
    start = utc(now) - CLOCK_DRIFT
    builder = (
        x509.CertificateBuilder()
        .subject_name(new_cert.subject)
        .issuer_name(old_cert.subject)
        .public_key(new_cert.public_key())
        .serial_number(serial)
        .not_valid_before(_seconds(start))
        .not_valid_after(_seconds(start + CROSS_SIGN_VALIDITY))
    )
    authority = x509.AuthorityKeyIdentifier(key_id(old_key.public_key()), None, None)
    # The old root's key ID replaces the new root's AuthorityKeyId where it stands, or, when
    # the new root has none, follows its SubjectKeyId as Go's encoder orders them.
    has_authority = any(
        isinstance(extension.value, x509.AuthorityKeyIdentifier)
        for extension in new_cert.extensions
    )
    placed = False
    for extension in new_cert.extensions:
        if isinstance(extension.value, x509.AuthorityKeyIdentifier):
            builder, placed = builder.add_extension(authority, critical=False), True
            continue
        builder = builder.add_extension(extension.value, critical=extension.critical)
        if isinstance(extension.value, x509.SubjectKeyIdentifier) and not has_authority:
            builder, placed = builder.add_extension(authority, critical=False), True
    if not placed:
        builder = builder.add_extension(authority, critical=False)
    digest = old_cert.signature_hash_algorithm or hashes.SHA256()
    return _pem(builder.sign(old_key, digest))


def rotate(
    roots: Sequence[Mapping[str, Any]],
    new_root: Mapping[str, Any],
    cross_pem: str | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The roots after a rotation: the active one retired (Active False, RotatedOutAt now),
    every old root kept in order, `new_root` appended active with the cross-signed cert (if
    any) first among its IntermediateCerts."""
    result = []
    for root in roots:
        copy = dict(root)
        if copy.get("Active"):
            copy["Active"] = False
            copy["RotatedOutAt"] = go_time(now)
        result.append(copy)
    newest = dict(new_root)
    newest["Active"] = True
    if cross_pem:
        newest["IntermediateCerts"] = [cross_pem, *(newest.get("IntermediateCerts") or [])]
    result.append(newest)
    return result


def prune_roots(
    roots: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    leaf_ttl_seconds: float = ProviderConfig().leaf_ttl_seconds,
) -> list[dict[str, Any]]:
    """`roots` without the retired ones whose leaves have all expired: inactive, rotated out
    more than 2 x LeafCertTTL before `now` (Consul's pruneCARoots). A root without
    RotatedOutAt is kept, as Consul keeps it."""
    horizon = utc(now) - dt.timedelta(seconds=2 * leaf_ttl_seconds)
    kept = []
    for root in roots:
        rotated = root.get("RotatedOutAt")
        if not root.get("Active") and rotated and parse_go_time(rotated) < horizon:
            continue
        kept.append(dict(root))
    return kept


def _dns_names(names: Iterable[str]) -> list[str]:
    """The CSR's DNS SANs as Consul's CreateCSR takes them: port dropped, empties and
    duplicates skipped, order kept."""
    seen: dict[str, None] = {}
    for name in names:
        host = name.split(":", 1)[0]
        if host:
            seen.setdefault(host, None)
    return list(seen)


def new_leaf_key_and_csr(
    uri: str, dns_sans: Iterable[str] = (), ip_sans: Iterable[str] = ()
) -> tuple[str, str]:
    """A fresh EC P-256 key (SEC1 PEM) and a CSR for `uri`, the way a Consul agent asks for
    a leaf: empty subject, one critical SAN extension (DNS names, IPs, then the URI)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in _dns_names(dns_sans)]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_sans]
    names.append(x509.UniformResourceIdentifier(uri))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key_pem(key), csr.public_bytes(serialization.Encoding.PEM).decode()


def _csr_names(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _identity(csr: x509.CertificateSigningRequest) -> SpiffeID:
    names = _csr_names(csr)
    uris = names.get_values_for_type(x509.UniformResourceIdentifier) if names else []
    if len(uris) != 1:
        raise CAError(f"CSR SAN contains an invalid number of URIs: {len(uris)}")
    if names is not None and names.get_values_for_type(x509.RFC822Name):
        raise CAError("CSR SAN does not allow specifying email addresses")
    identity = parse_uri(uris[0])
    if identity.kind not in ("service", "agent", "mesh-gateway"):
        raise CAError("SPIFFE ID in CSR must be a service, mesh-gateway, or agent ID")
    return identity


def csr_spiffe_id(csr_pem: str) -> SpiffeID:
    """Who a CSR asks a certificate for, with Consul's CSR checks: what the caller authorizes
    (service:write on the service, node:write on the agent, mesh:write for a gateway)
    before `sign_leaf`."""
    return _identity(load_csr(csr_pem))


def _go_time_string(when: dt.datetime) -> str:
    """Go's Time.String for a UTC time: "2033-06-19 14:29:58 +0000 UTC"."""
    return utc(when).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def sign_leaf(
    root: Mapping[str, Any],
    csr_pem: str,
    serial: int,
    now: dt.datetime,
    leaf_ttl_seconds: float,
    datacenter: str,
    trust_domain: str,
) -> dict[str, Any]:
    """The IssuedCert fields for `csr_pem` signed by the active `root` (module docstring):
    SerialNumber (colon-hex), CertPEM (the leaf, then the root's intermediates), the
    holder's name and URI (Service/ServiceURI, Agent/AgentURI or Kind/KindURI), ValidAfter,
    ValidBefore. The caller adds PrivateKeyPEM and the indexes (see render_leaf)."""
    csr = load_csr(csr_pem)
    identity = _identity(csr)
    ours = trust_domain.lower()
    if identity.kind != "agent" and identity.datacenter != datacenter:
        raise CAError(
            f"SPIFFE ID in CSR from a different datacenter: {identity.datacenter}, "
            f"we are {datacenter}"
        )
    names = _csr_names(csr)
    uri = names.get_values_for_type(x509.UniformResourceIdentifier)[0] if names else ""
    if identity.kind == "agent":
        if identity.trust_domain != ours:
            uri = dataclasses.replace(identity, trust_domain=ours).uri
    elif identity.trust_domain.lower() != ours:
        raise CAError(
            f"SPIFFE ID in CSR from a different trust domain: {identity.trust_domain}, "
            f"we are {ours}"
        )
    ca_cert = load_cert(root["RootCert"])
    if ca_cert.not_valid_after_utc < utc(now):
        raise CAError(
            "root expired: certificate expired, expiration date: "
            f"{_go_time_string(ca_cert.not_valid_after_utc)} "
        )
    if not root.get("SigningKey"):
        raise CAError("provider not initialized")  # Consul's ErrNotInitialized
    ca_key = load_signer(root["SigningKey"])
    public_key = csr.public_key()
    start = utc(now) - CLOCK_DRIFT
    sans: list[x509.GeneralName] = []
    if names is not None:
        sans += [x509.DNSName(name) for name in names.get_values_for_type(x509.DNSName)]
        sans += [x509.IPAddress(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    sans.append(x509.UniformResourceIdentifier(uri))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(_seconds(start))
        .not_valid_after(_seconds(start + dt.timedelta(seconds=leaf_ttl_seconds)))
        .add_extension(_LEAF_USAGE, critical=True)
        .add_extension(_LEAF_EKU, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(key_id(public_key)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(key_id(ca_key.public_key()), None, None), critical=False
        )
        # RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    chain = _pem(cert) + "".join(_with_newline(p) for p in root.get("IntermediateCerts") or ())
    issued: dict[str, Any] = {"SerialNumber": serial_hex(serial), "CertPEM": chain}
    if identity.kind == "service":
        issued.update(Service=identity.service, ServiceURI=uri)
    elif identity.kind == "agent":
        issued.update(Agent=identity.agent, AgentURI=uri)
    else:
        issued.update(Kind="mesh-gateway", KindURI=uri)
    issued["ValidAfter"] = go_time(cert.not_valid_before_utc)
    issued["ValidBefore"] = go_time(cert.not_valid_after_utc)
    return issued


def render_leaf(
    issued: Mapping[str, Any], private_key_pem: str, create_index: int, modify_index: int
) -> dict[str, Any]:
    """The /v1/agent/connect/ca/leaf body: IssuedCert's keys in Go's order, empty strings
    omitted (omitempty), then the indexes."""
    fields = {**issued, "PrivateKeyPEM": private_key_pem}
    body = {key: fields[key] for key in _LEAF_KEYS if fields.get(key)}
    body["CreateIndex"] = create_index
    body["ModifyIndex"] = modify_index
    return body


def render_root(root: Mapping[str, Any]) -> dict[str, Any]:
    """One CARoot as the roots endpoint shows it: no SigningKey, no RotatedOutAt."""
    body = {key: root.get(key) for key in _RENDERED_ROOT_KEYS}
    body["RootCert"] = _with_newline(body["RootCert"] or "")
    body["CreateIndex"] = root.get("CreateIndex", 0)
    body["ModifyIndex"] = root.get("ModifyIndex", 0)
    return body


def render_roots(roots: Sequence[Mapping[str, Any]], trust_domain: str) -> dict[str, Any]:
    """The GET /v1/connect/ca/roots body (IndexedCARoots; its QueryMeta is not serialized)."""
    active = next((root["ID"] for root in roots if root.get("Active")), "")
    return {
        "ActiveRootID": active,
        "TrustDomain": trust_domain,
        "Roots": [render_root(root) for root in roots],
    }


def roots_pem(roots: Sequence[Mapping[str, Any]]) -> str:
    """The ?pem=true body: each root's certificate followed by its intermediates, as stored."""
    parts: list[str] = []
    for root in roots:
        parts.append(_with_newline(root.get("RootCert") or ""))
        parts.extend(root.get("IntermediateCerts") or ())
    return "".join(parts)
