"""inline-certificate's checks: Consul's InlineCertificateConfigEntry.Validate with Go's
encoding/pem, crypto/x509 and crypto/tls behaviour, done with `cryptography`.

In order: the key's first PEM block must decode; an "RSA PRIVATE KEY" must be at least 2048
bits; the certificate's first PEM block must decode and parse; then `tls.X509KeyPair` pairs
the CERTIFICATE blocks with the first "... PRIVATE KEY" block (its own messages); last, the
certificate's CN, DNS SANs and IP SANs must each be a DNS name as miekg/dns sees it (so a
certificate without a CN is refused: Consul checks the empty CN too).
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from agent.connect.entry_checks import go_quote, is_domain_name

__all__ = ["inline_certificate_problem", "pem_blocks"]

_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END \1-----", re.S)


def pem_blocks(text: str) -> list[tuple[str, bytes]]:
    """Every PEM block encoding/pem would decode, in order: (type, DER bytes)."""
    blocks = []
    for match in _BLOCK.finditer(text.encode("utf-8", "surrogatepass")):
        body = match.group(2)
        lines = body.split(b"\n")
        if lines and b":" in lines[0]:  # RFC 1421 headers end at the first blank line
            while lines and lines[0].strip():
                lines.pop(0)
        try:
            der = base64.b64decode(b"".join(line.strip() for line in lines), validate=True)
        except (binascii.Error, ValueError):
            continue
        blocks.append((match.group(1).decode("latin-1"), der))
    return blocks


def _parse_key(der: bytes) -> object | None:
    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        return None


def _key_pair_problem(cert_pem: str, key_pem: str) -> str | None:
    """tls.X509KeyPair's refusals."""
    cert_blocks = pem_blocks(cert_pem)
    certs = [der for kind, der in cert_blocks if kind == "CERTIFICATE"]
    if not certs:
        if not cert_blocks:
            return "tls: failed to find any PEM data in certificate input"
        skipped = " ".join(kind for kind, _ in cert_blocks)
        return (
            'tls: failed to find "CERTIFICATE" PEM block in certificate input after skipping '
            f"PEM blocks of the following types: [{skipped}]"
        )
    key_blocks = pem_blocks(key_pem)
    key_der = next(
        (der for kind, der in key_blocks if kind == "PRIVATE KEY" or kind.endswith(" PRIVATE KEY")),
        None,
    )
    if key_der is None:
        if not key_blocks:
            return "tls: failed to find any PEM data in key input"
        skipped = " ".join(kind for kind, _ in key_blocks)
        return (
            'tls: failed to find PEM block with type ending in "PRIVATE KEY" in key input after '
            f"skipping PEM blocks of the following types: [{skipped}]"
        )
    try:
        leaf = x509.load_der_x509_certificate(certs[0])
    except ValueError:
        return "x509: malformed certificate"
    key = _parse_key(key_der)
    if key is None:
        return "tls: failed to parse private key"
    public = leaf.public_key()
    pairs = (
        (rsa.RSAPublicKey, rsa.RSAPrivateKey),
        (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey),
        (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey),
    )
    for public_type, private_type in pairs:
        if isinstance(public, public_type):
            if not isinstance(key, private_type):
                return "tls: private key type does not match public key type"
            if key.public_key() != public:  # type: ignore[attr-defined]
                return "tls: private key does not match public key"
            return None
    return "tls: unknown public key algorithm"


def _hosts(cert: x509.Certificate) -> list[str]:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    hosts = [str(names[0].value) if names else ""]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return hosts
    hosts += san.get_values_for_type(x509.DNSName)
    hosts += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return hosts


def inline_certificate_problem(cert_pem: str, key_pem: str) -> str | None:
    """The first problem Consul finds with a certificate/key pair, or None."""
    key_blocks = pem_blocks(key_pem)
    if not key_blocks:
        return "failed to parse private key PEM"
    kind, der = key_blocks[0]
    if kind == "RSA PRIVATE KEY":
        key = _parse_key(der)
        if not isinstance(key, rsa.RSAPrivateKey):
            return "x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)"
        if key.key_size < 2048:
            return "key length must be at least 2048 bits"
    cert_blocks = pem_blocks(cert_pem)
    if not cert_blocks:
        return "failed to parse certificate PEM"
    try:
        cert = x509.load_der_x509_certificate(cert_blocks[0][1])
    except ValueError:
        return "failed to parse certificate: x509: malformed certificate"
    if problem := _key_pair_problem(cert_pem, key_pem):
        return problem
    for host in _hosts(cert):
        if not is_domain_name(host):
            return f"host {go_quote(host)} must be a valid DNS hostname"
    return None
