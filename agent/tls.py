"""TLS for the agent's listeners and its server RPC, built from `AgentConfig.tls`.

Two listener families, each with its effective settings (`tls.<family>` over `tls.defaults`):

- **https** (`ports.https`): a server context; `verify_incoming` makes a client certificate
  signed by `ca_file` mandatory (CERT_REQUIRED), as Consul does.
- **internal_rpc** (server port 8300): a server context for the RPC listener and a client context
  for connections to other servers. `verify_incoming` demands a CA-signed client certificate;
  `verify_outgoing` checks the server's certificate against the CA; `verify_server_hostname`
  also requires the name `server.<datacenter>.<domain>` in it, which is what stops a client
  agent's certificate from passing as a server.

One departure from Consul: Consul tells TLS and plaintext apart by the first byte of each RPC
connection; here the RPC port speaks TLS whenever a certificate and key are configured for it,
so every server of a cluster must be configured alike (the usual deployment anyway).

Errors::

    TLSConfigError   settings that cannot work together, or files that do not load (one line)
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import AgentConfig, TLSSettings

__all__ = [
    "RPCTLS",
    "TLSConfigError",
    "https_context",
    "rpc_tls",
    "server_name",
]

log = logging.getLogger("agent.tls")

_MIN_VERSIONS = {
    "tlsv1_0": ssl.TLSVersion.TLSv1,
    "tlsv1_1": ssl.TLSVersion.TLSv1_1,
    "tlsv1_2": ssl.TLSVersion.TLSv1_2,
    "tlsv1_3": ssl.TLSVersion.TLSv1_3,
    "tls10": ssl.TLSVersion.TLSv1,
    "tls11": ssl.TLSVersion.TLSv1_1,
    "tls12": ssl.TLSVersion.TLSv1_2,
    "tls13": ssl.TLSVersion.TLSv1_3,
}


class TLSConfigError(Exception):
    """TLS settings that cannot be used; the message names the setting or file."""


@dataclass(frozen=True)
class RPCTLS:
    """Contexts for server RPC; all None when RPC runs in plaintext."""

    server: ssl.SSLContext | None = None
    client: ssl.SSLContext | None = None
    server_name: str | None = None

    @property
    def enabled(self) -> bool:
        return self.server is not None or self.client is not None


def server_name(datacenter: str, domain: str) -> str:
    """The name every server certificate carries: `server.<dc>.<domain>`."""
    return f"server.{datacenter}.{domain.rstrip('.')}"


def https_context(config: AgentConfig) -> ssl.SSLContext | None:
    """The HTTPS listener's context, or None when `ports.https` is disabled."""
    if config.ports.https <= 0:
        return None
    settings = config.tls.https
    if not (settings.cert_file and settings.key_file):
        # Consul listens on the port all the same and every handshake fails for want of a
        # certificate; its test servers (sdk/testutil) always set ports.https, certificates
        # or not, so refusing to start would refuse them.
        log.warning(
            "agent: ports.https is set but no cert_file and key_file are configured: "
            "TLS handshakes on it will fail"
        )
    return _server_context(settings, "https")


def rpc_tls(config: AgentConfig) -> RPCTLS:
    """Server and client contexts for RPC, from `tls.internal_rpc` (+ `tls.defaults`)."""
    s = config.tls.internal_rpc
    has_pair = bool(s.cert_file and s.key_file)
    if s.verify_incoming and not has_pair:
        raise TLSConfigError("VerifyIncoming set, and no Cert/Key pair provided!")
    # Checking a server's name implies checking its chain (Consul turns verify_outgoing on).
    if (s.verify_outgoing or s.verify_server_hostname) and not (s.ca_file or s.ca_path):
        raise TLSConfigError("VerifyOutgoing set, and no CA certificate provided!")
    # A client agent may hold just the CA (verify_outgoing) and still dial TLS servers.
    outgoing = has_pair or s.verify_outgoing or s.verify_server_hostname
    if not outgoing:
        return RPCTLS()
    if config.server and not has_pair:
        # Its peers would dial it with TLS while it listens in plaintext.
        raise TLSConfigError(
            "a server with verify_outgoing needs cert_file and key_file for its RPC port"
        )
    server = _server_context(s, "internal_rpc") if config.server and has_pair else None
    client = _client_context(s)
    name = server_name(config.datacenter, config.domain)
    return RPCTLS(server=server, client=client, server_name=name)


# ---------------------------------------------------------------------- contexts


def _server_context(s: TLSSettings, family: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _min_version(ctx, s, family)
    _load_pair(ctx, s)
    has_ca = _load_ca(ctx, s)
    if s.verify_incoming:
        if not has_ca:
            raise TLSConfigError(
                f"tls.{family}.verify_incoming is set but no ca_file is configured"
            )
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif has_ca:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _client_context(s: TLSSettings) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _min_version(ctx, s, "internal_rpc")
    _load_pair(ctx, s)  # presented when the other side asks (verify_incoming)
    if s.verify_outgoing or s.verify_server_hostname:
        _load_ca(ctx, s)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = s.verify_server_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _load_pair(ctx: ssl.SSLContext, s: TLSSettings) -> None:
    if not (s.cert_file and s.key_file):
        return
    try:
        ctx.load_cert_chain(s.cert_file, s.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"failed to load cert/key pair {s.cert_file}, {s.key_file}: {_why(exc)}"
        ) from None


def _load_ca(ctx: ssl.SSLContext, s: TLSSettings) -> bool:
    if not (s.ca_file or s.ca_path):
        return False
    try:
        ctx.load_verify_locations(cafile=s.ca_file, capath=s.ca_path)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"failed to load CA {s.ca_file or s.ca_path}: {_why(exc)}") from None
    return True


def _min_version(ctx: ssl.SSLContext, s: TLSSettings, family: str) -> None:
    if not s.tls_min_version:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # Consul's default
        return
    version = _MIN_VERSIONS.get(s.tls_min_version.lower())
    if version is None:
        raise TLSConfigError(
            f"tls.{family}.tls_min_version: invalid value {s.tls_min_version!r} "
            "(valid: TLSv1_0, TLSv1_1, TLSv1_2, TLSv1_3)"
        )
    ctx.minimum_version = version


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
