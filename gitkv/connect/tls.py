"""`ssl.SSLContext`s for both sides of a Connect connection, from the agent's PEMs.

Both sides present the service's leaf certificate and require the peer's, verified against
every CA root the agent lists (active and rotated-out, with their intermediates) so that
certificates from before and after a CA rotation keep verifying while they overlap.
Hostnames are not checked: a Connect certificate names a service by its SPIFFE URI, which
`gitkv.connect.spiffe` checks after the handshake.

`ssl` loads a certificate chain and key only from files, so `KeyDir` writes them to a private
directory (0700, files 0600) for the moment of loading and removes each file right after;
`close()` removes the directory.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitkv.connect.errors import ConfigError

__all__ = ["KeyDir", "Leaf", "client_context", "roots_bundle", "server_context"]


@dataclass(frozen=True)
class Leaf:
    """The proxy's own certificate (chain first, as the agent returns it) and key."""

    cert_pem: str
    key_pem: str
    serial: str = ""
    uri: str = ""

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Leaf:
        cert, key = body.get("CertPEM"), body.get("PrivateKeyPEM")
        if not cert or not key:
            raise ConfigError("the agent's leaf certificate answer lacks CertPEM or PrivateKeyPEM")
        return cls(
            str(cert),
            str(key),
            str(body.get("SerialNumber") or ""),
            str(body.get("ServiceURI") or ""),
        )


def roots_bundle(roots: Iterable[Mapping[str, Any]]) -> str:
    """Every root and intermediate certificate as one PEM string (the trust store)."""
    parts: list[str] = []
    for root in roots:
        for pem in (root.get("RootCert"), *(root.get("IntermediateCerts") or ())):
            if pem:
                text = str(pem)
                parts.append(text if text.endswith("\n") else text + "\n")
    if not parts:
        raise ConfigError("the agent lists no Connect CA roots")
    return "".join(parts)


class KeyDir:
    """A private directory for the moment `ssl` reads a key from a file."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="gitkv-connect-")  # mode 0700
        self._count = 0

    def load_chain(self, ctx: ssl.SSLContext, leaf: Leaf) -> None:
        self._count += 1
        cert_path = os.path.join(self.path, f"leaf-{self._count}.pem")
        key_path = os.path.join(self.path, f"key-{self._count}.pem")
        try:
            for path, text in ((cert_path, leaf.cert_pem), (key_path, leaf.key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
            ctx.load_cert_chain(cert_path, key_path)
        finally:
            for path in (cert_path, key_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> KeyDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _common(ctx: ssl.SSLContext, leaf: Leaf, roots_pem: str, keys: KeyDir) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cadata=roots_pem)
        keys.load_chain(ctx, leaf)
    except ssl.SSLError as exc:
        raise ConfigError(f"cannot use the agent's certificates: {exc}") from exc
    return ctx


def server_context(leaf: Leaf, roots_pem: str, keys: KeyDir) -> ssl.SSLContext:
    """The public listener's context: client certificates required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # No session tickets: every connection is a full handshake that checks the client
    # certificate, and nothing is written after the handshake that could race the first data.
    ctx.num_tickets = 0
    return _common(ctx, leaf, roots_pem, keys)


def client_context(leaf: Leaf, roots_pem: str, keys: KeyDir) -> ssl.SSLContext:
    """The upstream side's context: the server must chain to the roots; names checked later."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    return _common(ctx, leaf, roots_pem, keys)
