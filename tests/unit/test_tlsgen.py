"""CA and agent certificates: names, signatures, usages; the CLI's files; agent.tls contexts."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.config import load_config
from agent.tls import TLSConfigError, https_context, rpc_tls, server_name
from gitkv.commands import run
from gitkv.tlsgen import TLSGenError, ca_file_names, create_ca, create_cert, sans_for


@pytest.fixture(scope="module")
def ca():
    return create_ca()


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)
    ]


def test_ca_is_a_self_signed_signing_authority(ca) -> None:
    cert = _load(ca.cert_pem)
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    cert.verify_directly_issued_by(cert)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_server_cert_names_and_usages(ca) -> None:
    pair = create_cert(ca, "server", dc="dc2", ips=["127.0.0.11"], dnsnames=["n1.example"])
    cert = _load(pair.cert_pem)
    cert.verify_directly_issued_by(_load(ca.cert_pem))
    names, ips = _sans(cert)
    assert names == ["server.dc2.consul", "localhost", "n1.example"]
    assert ips == ["127.0.0.1", "127.0.0.11"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_client_and_cli_names() -> None:
    assert sans_for("client") == (["client.dc1.consul", "localhost"], ["127.0.0.1"])
    assert sans_for("cli", domain="example.") == (["cli.client.dc1.example", "localhost"], [])
    names, _ = sans_for("server", node="n1")
    assert names == ["server.dc1.consul", "n1.server.dc1.consul", "localhost"]


def test_bad_input() -> None:
    with pytest.raises(TLSGenError, match="kind"):
        sans_for("router")
    with pytest.raises(TLSGenError, match="IP"):
        sans_for("server", ips=["300.1.1.1"])
    other = create_ca()
    mixed = type(other)(other.cert_pem, create_ca().key_pem)
    with pytest.raises(TLSGenError, match="does not match"):
        create_cert(mixed, "server")


def test_cli_writes_consuls_file_names(tmp_path: Path, capsys) -> None:
    d = str(tmp_path)
    assert run(["tls", "ca", "create", "-dir", d, "-days", "30"]) == 0
    assert ca_file_names() == ("consul-agent-ca.pem", "consul-agent-ca-key.pem")
    assert run(["tls", "cert", "create", "-server", "-dir", d]) == 0
    assert run(["tls", "cert", "create", "-server", "-dir", d, "-dc", "dc1"]) == 0
    assert run(["tls", "cert", "create", "-client", "-dir", d]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [
        "consul-agent-ca-key.pem",
        "consul-agent-ca.pem",
        "dc1-client-consul-0-key.pem",
        "dc1-client-consul-0.pem",
        "dc1-server-consul-0-key.pem",
        "dc1-server-consul-0.pem",
        "dc1-server-consul-1-key.pem",
        "dc1-server-consul-1.pem",
    ]
    assert (tmp_path / "dc1-server-consul-0-key.pem").stat().st_mode & 0o077 == 0
    # never overwrite; a missing kind is an error
    assert run(["tls", "ca", "create", "-dir", d]) == 1
    assert run(["tls", "cert", "create", "-dir", d]) == 1
    assert "already exists" in capsys.readouterr().err


def test_keygen_prints_a_key(capsys) -> None:
    import base64

    assert run(["keygen"]) == 0
    assert len(base64.b64decode(capsys.readouterr().out.strip())) == 32


# ---------------------------------------------------------------------- agent.tls


@pytest.fixture(scope="module")
def files(tmp_path_factory, ca) -> dict[str, str]:
    d = tmp_path_factory.mktemp("pki")
    out = {"ca": d / "ca.pem"}
    out["ca"].write_bytes(ca.cert_pem)
    for kind in ("server", "client"):
        pair = create_cert(ca, kind)
        (d / f"{kind}.pem").write_bytes(pair.cert_pem)
        (d / f"{kind}-key.pem").write_bytes(pair.key_pem)
    return {k: str(d / f"{k}.pem") for k in ("ca", "server", "client")} | {
        "server_key": str(d / "server-key.pem")
    }


def _config(files: dict[str, str], *hcl: str, server: bool = True):
    tls = (
        f'tls {{ defaults {{ ca_file = "{files["ca"]}" cert_file = "{files["server"]}" '
        f'key_file = "{files["server_key"]}" }} }}'
    )
    args = ["-dev"] if server else ["-data-dir", "/nonexistent"]
    args += ["-hcl", tls]
    for extra in hcl:
        args += ["-hcl", extra]
    return load_config(args)


def test_rpc_contexts(files) -> None:
    cfg = _config(
        files,
        "tls { defaults { verify_incoming = true verify_outgoing = true } }",
        "tls { internal_rpc { verify_server_hostname = true } }",
    )
    tls = rpc_tls(cfg)
    assert tls.server is not None and tls.server.verify_mode == ssl.CERT_REQUIRED
    assert tls.client is not None and tls.client.check_hostname
    assert tls.server_name == server_name("dc1", "consul.") == "server.dc1.consul"
    plain = rpc_tls(load_config(["-dev"]))
    assert not plain.enabled


def test_https_context(files) -> None:
    assert https_context(_config(files)) is None  # ports.https disabled
    ctx = https_context(_config(files, "ports { https = 8501 }", "verify_incoming_https = true"))
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED


def test_tls_refusals(files) -> None:
    with pytest.raises(TLSConfigError, match="no CA"):
        rpc_tls(load_config(["-dev", "-hcl", "tls { defaults { verify_outgoing = true } }"]))
    with pytest.raises(TLSConfigError, match="Cert/Key"):
        rpc_tls(load_config(["-dev", "-hcl", "verify_incoming = true"]))
    # ports.https without a certificate listens, as Consul's does, and no handshake succeeds.
    bare = https_context(load_config(["-dev", "-https-port", "8501"]))
    assert bare is not None
    with pytest.raises(TLSConfigError, match="failed to load"):
        rpc_tls(_config(files, 'tls { defaults { cert_file = "/nonexistent.pem" } }'))


def test_handshake_with_generated_certs(files) -> None:
    """A server context from the generated files accepts a CA-signed client, by name."""
    import socket
    import threading

    cfg = _config(
        files,
        "tls { defaults { verify_incoming = true verify_outgoing = true } }",
        "tls { internal_rpc { verify_server_hostname = true } }",
    )
    tls = rpc_tls(cfg)
    assert tls.server is not None and tls.client is not None
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[object] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with tls.server.wrap_socket(conn, server_side=True) as s:
            seen.append(s.getpeercert())
            s.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with tls.client.wrap_socket(raw, server_hostname=tls.server_name) as s:
        assert s.recv(2) == b"ok"
    thread.join(5)
    listener.close()
    assert seen and seen[0]  # the client presented its certificate


def test_client_agent_with_only_the_ca_dials_tls(files, tmp_path) -> None:
    hcl = f'tls {{ defaults {{ ca_file = "{files["ca"]}" verify_outgoing = true }} }}'
    client = rpc_tls(load_config([f"-data-dir={tmp_path}", "-hcl", hcl]))
    assert client.server is None and client.client is not None
    with pytest.raises(TLSConfigError, match="cert_file and key_file"):
        rpc_tls(load_config(["-dev", "-hcl", hcl]))  # a server must listen with TLS too
