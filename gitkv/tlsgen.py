"""Certificate authority and agent certificates, as `consul tls ca/cert create` makes them.

Pure functions: they take values and return PEM bytes (plus the file names Consul's tool would
use); `gitkv.commands.tls` does the file I/O. Keys are ECDSA P-256, as Consul's tool generates.

An agent certificate carries the names Consul's TLS checks look for:

- server: `server.<dc>.<domain>` (what `verify_server_hostname` checks), `localhost`,
  `127.0.0.1`, plus `<node>.server.<dc>.<domain>` with a node name;
- client: `client.<dc>.<domain>`, `localhost`, `127.0.0.1`;
- cli: `cli.client.<dc>.<domain>`, `localhost`;

and any `-additional-dnsname` / `-additional-ipaddress` given.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "KINDS",
    "CertPair",
    "TLSGenError",
    "ca_file_names",
    "cert_file_stem",
    "create_ca",
    "create_cert",
    "sans_for",
]

KINDS = ("server", "client", "cli")
CA_DAYS = 1825
CERT_DAYS = 365


class TLSGenError(ValueError):
    """Bad input for a CA or certificate (unknown kind, bad IP, CA files that do not load)."""


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes


def ca_file_names(domain: str = "consul") -> tuple[str, str]:
    """(certificate, key) file names of a CA for `domain`."""
    domain = _plain_domain(domain)
    return f"{domain}-agent-ca.pem", f"{domain}-agent-ca-key.pem"


def cert_file_stem(kind: str, dc: str = "dc1", domain: str = "consul", n: int = 0) -> str:
    """`dc1-server-consul-0`: the name stem for the n-th certificate of a kind."""
    return f"{dc}-{kind}-{_plain_domain(domain)}-{n}"


def create_ca(
    *,
    days: int = CA_DAYS,
    domain: str = "consul",
    common_name: str | None = None,
    name_constraint: bool = False,
    additional_domains: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> CertPair:
    """A self-signed CA allowed to sign agent certificates.

    :param name_constraint: limit the CA to `<domain>`, `localhost` and the additional domains
    """
    if days <= 0:
        raise TLSGenError("days must be positive")
    domain = _plain_domain(domain)
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"Consul Agent CA {serial}")]
    )
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if name_constraint:
        permitted = [x509.DNSName(d) for d in (domain, "localhost", *additional_domains)]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None),
            critical=True,
        )
    cert = builder.sign(key, hashes.SHA256())
    return CertPair(_cert_pem(cert), _key_pem(key))


def sans_for(
    kind: str,
    *,
    dc: str = "dc1",
    domain: str = "consul",
    node: str | None = None,
    dnsnames: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) a certificate of `kind` carries, in Consul's order."""
    if kind not in KINDS:
        raise TLSGenError(f"unknown certificate kind {kind!r} (expected one of {', '.join(KINDS)})")
    domain = _plain_domain(domain)
    if kind == "server":
        names = [f"server.{dc}.{domain}"]
        if node:
            names.append(f"{node}.server.{dc}.{domain}")
        names.append("localhost")
        addrs = ["127.0.0.1"]
    elif kind == "client":
        names, addrs = [f"client.{dc}.{domain}", "localhost"], ["127.0.0.1"]
    else:
        names, addrs = [f"cli.client.{dc}.{domain}", "localhost"], []
    for name in dnsnames:
        if name not in names:
            names.append(name)
    for ip in ips:
        try:
            text = str(ipaddress.ip_address(ip))
        except ValueError:
            raise TLSGenError(f"invalid IP address {ip!r}") from None
        if text not in addrs:
            addrs.append(text)
    return names, addrs


def create_cert(
    ca: CertPair,
    kind: str,
    *,
    dc: str = "dc1",
    domain: str = "consul",
    days: int = CERT_DAYS,
    node: str | None = None,
    dnsnames: Sequence[str] = (),
    ips: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> CertPair:
    """A certificate of `kind` signed by `ca`, usable for both TLS server and client auth."""
    if days <= 0:
        raise TLSGenError("days must be positive")
    try:
        ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
        ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise TLSGenError(f"could not load the CA: {exc}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | _rsa_key_type()):
        raise TLSGenError("the CA key must be an ECDSA or RSA private key")
    if _spki(ca_key.public_key()) != _spki(ca_cert.public_key()):
        raise TLSGenError("the CA key does not match the CA certificate")
    names, addrs = sans_for(kind, dc=dc, domain=domain, node=node, dnsnames=dnsnames, ips=ips)
    key = ec.generate_private_key(ec.SECP256R1())
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=1)
    san = [x509.DNSName(n) for n in names] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in addrs
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return CertPair(_cert_pem(cert), _key_pem(key))


def _rsa_key_type() -> type:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.RSAPrivateKey


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _plain_domain(domain: str) -> str:
    domain = domain.strip().strip(".")
    if not domain:
        raise TLSGenError("domain cannot be empty")
    return domain


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
