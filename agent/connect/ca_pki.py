"""The PKI vocabulary the CA shares with Consul's `connect` package: PEM blocks, keys, key IDs,
fingerprints, serials and times, with Consul's encodings and its parse errors.

    hex_string(b"\\x0a\\x1f") == "0a:1f"       HexString: lower-case, colon-joined
    serial_hex(300) == "01:2c"                EncodeSerialNumber: minimal big-endian bytes
    key_id(public_key)                        SHA-256 of the PKIX DER public key (Consul 1.16+)
    fingerprint(der)                          SHA-1 of a certificate's DER, colon-hex (root IDs)
    go_time(when) == "2024-01-02T03:04:05Z"   a certificate time as Go's JSON writes it

Parsing goes through `pem_block` (Go's `pem.Decode`: the first block anywhere in the text), so
the errors read as Consul's: "no PEM-encoded data found", "first PEM-block should be
CERTIFICATE type", "unknown PEM block type for signing key: X". Parsed keys and certificates
are cached by their PEM text: a CA signs every leaf with the same root, and loading its key
costs more than the signature.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from functools import lru_cache
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from agent.connect.errors import CAError

__all__ = [
    "CURVES",
    "Signer",
    "fingerprint",
    "generate_key",
    "go_time",
    "hex_string",
    "key_id",
    "key_info",
    "key_pem",
    "load_cert",
    "load_csr",
    "load_signer",
    "parse_go_time",
    "pem_block",
    "serial_hex",
    "signature_hash",
    "utc",
]

Signer: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CURVES: dict[int, ec.EllipticCurve] = {
    224: ec.SECP224R1(),
    256: ec.SECP256R1(),
    384: ec.SECP384R1(),
    521: ec.SECP521R1(),
}
_PEM = re.compile(
    r"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END \1-----",
    re.DOTALL,
)


def hex_string(data: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in data)


def serial_hex(serial: int) -> str:
    """Consul's EncodeSerialNumber: 7 -> "07", 300 -> "01:2c", 0 -> ""."""
    return hex_string(serial.to_bytes((serial.bit_length() + 7) // 8, "big"))


def key_id(public_key: CertificatePublicKeyTypes) -> bytes:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def fingerprint(der: bytes) -> str:
    return hex_string(hashlib.sha1(der).digest())


def utc(when: dt.datetime) -> dt.datetime:
    """`when` in UTC; a naive datetime is taken to be UTC already."""
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def go_time(when: dt.datetime) -> str:
    """RFC 3339 as Go's time.Time marshals a UTC time: "Z", fraction only when non-zero."""
    when = utc(when)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_go_time(text: str) -> dt.datetime:
    return utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def pem_block(text: str) -> tuple[str, bytes] | None:
    """The type and bytes of the first PEM block in `text`, or None (Go's pem.Decode)."""
    match = _PEM.search(text)
    if match is None:
        return None
    body = "".join(line for line in match.group(2).splitlines() if line.strip() and ":" not in line)
    try:
        return match.group(1), base64.b64decode(body, validate=False)
    except (binascii.Error, ValueError):
        return None


def generate_key(key_type: str, bits: int) -> Signer:
    """A fresh CA key, as validated config describes it ("ec" 224..521 or "rsa" 2048/4096)."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    curve = CURVES.get(bits)
    if curve is None:
        raise CAError("EC key length must be one of (224, 256, 384, 521) bits")
    return ec.generate_private_key(curve)


def key_pem(key: Signer) -> str:
    """SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY", the encodings Consul writes."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@lru_cache(maxsize=64)
def load_signer(pem: str) -> Signer:
    """Consul's ParseSigner: SEC1, PKCS#1 or PKCS#8 (EC or RSA only)."""
    block = pem_block(pem)
    if block is None:
        raise CAError("no PEM-encoded data found")
    kind, der = block
    if kind not in ("EC PRIVATE KEY", "RSA PRIVATE KEY", "PRIVATE KEY"):
        raise CAError(f"unknown PEM block type for signing key: {kind}")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise CAError(f"x509: failed to parse private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CAError("private key is not a valid PrivateKey")
    return key


@lru_cache(maxsize=64)
def load_cert(pem: str) -> x509.Certificate:
    """Consul's ParseCert: the first PEM block must be a CERTIFICATE."""
    block = pem_block(pem)
    if block is None:
        raise CAError("no PEM-encoded data found")
    if block[0] != "CERTIFICATE":
        raise CAError("first PEM-block should be CERTIFICATE type")
    try:
        return x509.load_der_x509_certificate(block[1])
    except ValueError as exc:
        raise CAError(f"x509: malformed certificate: {exc}") from None


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """Consul's ParseCSR: the first PEM block must be a CERTIFICATE REQUEST."""
    block = pem_block(pem)
    if block is None:
        raise CAError("no PEM-encoded data found")
    if block[0] != "CERTIFICATE REQUEST":
        raise CAError("first PEM-block should be CERTIFICATE REQUEST type")
    try:
        return x509.load_der_x509_csr(block[1])
    except ValueError as exc:
        raise CAError(f"x509: malformed certificate request: {exc}") from None


def key_info(public_key: object) -> tuple[str, int]:
    """("ec", curve bits) or ("rsa", modulus bits): Consul's KeyInfoFromCert."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec", public_key.curve.key_size
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa", public_key.key_size
    raise CAError("error extracting root key info: unsupported key type")


def signature_hash(key: Signer) -> hashes.HashAlgorithm:
    """Go's default signature hash for a self-signed CA key: SHA-384/512 for the big curves."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA512() if key.curve.key_size > 384 else hashes.SHA384()
    return hashes.SHA256()
