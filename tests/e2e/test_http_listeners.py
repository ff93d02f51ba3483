"""The HTTP API where HashiCorp's Go client tests put it (api/api_test.go, sdk/testutil):

- on a unix socket (`addresses.http = "unix:///path"`), its file made with `unix_sockets`
  mode, a stale file replaced, the file gone after the agent stops; a bad user or mode is
  Consul's "Failed setting up socket: ..." and the agent does not start;
- over HTTPS on `ports.https` with the certificate files as testutil writes them (top-level
  `ca_file`/`cert_file`/`key_file`, `verify_incoming_https`) or under `tls.defaults`: with
  verification a client without a certificate is refused and one with a CA-signed
  certificate gets through; without it both get through. A test server always sets
  `ports.https`, certificates or not, and still starts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.e2e.agentproc import AgentProc, free_port


def _testutil_config(tmp: Path, **extra: object) -> Path:
    """A config as sdk/testutil's defaultServerConfig writes it (every port set)."""
    config = {
        "node_name": "node-go",
        "node_id": "6a3f1a3e-9a7b-4c1e-8a0a-1b2c3d4e5f60",
        "disable_update_check": True,
        "performance": {"raft_multiplier": 1},
        "bootstrap": True,
        "server": True,
        "log_level": "debug",
        "bind_addr": "127.0.0.1",
        "addresses": {},
        "ports": {
            name: free_port()
            for name in ("dns", "http", "https", "serf_lan", "serf_wan", "server", "grpc")
        },
        "data_dir": str(tmp / "data"),
        "segments": None,
        "skip_leave_on_interrupt": True,
        "connect": {
            "enabled": True,
            "ca_config": {"cluster_id": "11111111-2222-3333-4444-555555555555"},
        },
        **extra,
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


def _launch(config: Path, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "gitkv", "agent", "-config-file", str(config)]
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_api_on_a_unix_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "test.sock"
    socket_path.write_text("left over")  # replaced, as Consul replaces it
    config = _testutil_config(
        tmp_path,
        addresses={"http": f"unix://{socket_path}"},
        unix_sockets={"mode": "600"},
    )
    proc = _launch(config, tmp_path / "agent.log")
    try:
        transport = httpx.HTTPTransport(uds=str(socket_path))
        with httpx.Client(transport=transport, base_url="http://consul", timeout=5) as http:
            info = None
            for _ in range(200):  # the agent starts in well under 20 s
                assert proc.poll() is None, (tmp_path / "agent.log").read_text()
                try:
                    info = http.get("/v1/agent/self").json()
                    break
                except (httpx.TransportError, ValueError):
                    time.sleep(0.1)
            assert info is not None and info["Config"]["NodeName"] == "node-go"
            assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
            assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
            assert http.put("/v1/kv/over-uds", content=b"v").json() is True
    finally:
        _stop(proc)
    assert not socket_path.exists()


@pytest.mark.parametrize(
    ("unix_sockets", "why"),
    [
        ({"user": "no-such-user-here"}, "invalid user specified: no-such-user-here"),
        ({"group": "wheel"}, "invalid group specified: wheel"),
        ({"mode": "9x"}, "invalid mode specified: 9x"),
    ],
)
def test_bad_unix_socket_settings_stop_the_start(tmp_path: Path, unix_sockets, why) -> None:
    config = _testutil_config(
        tmp_path,
        addresses={"http": f"unix://{tmp_path / 'bad.sock'}"},
        unix_sockets=unix_sockets,
    )
    proc = _launch(config, tmp_path / "agent.log")
    try:
        assert proc.wait(30) != 0
    finally:
        _stop(proc)
    assert f"Failed setting up socket: {why}" in (tmp_path / "agent.log").read_text()


# ---------------------------------------------------------------------- HTTPS


def _certs(tmp: Path) -> dict[str, str]:
    """A CA, a server certificate for consul.test and a client certificate, as PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": str(tmp / "rootca.crt")}
    Path(files["ca"]).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for serial, (name, usage) in enumerate(
        (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)),
        start=2,
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName("consul.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        files[f"{name}_crt"] = str(tmp / f"{name}.crt")
        files[f"{name}_key"] = str(tmp / f"{name}.key")
        Path(files[f"{name}_crt"]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        Path(files[f"{name}_key"]).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return files


def _https_get(port: int, certs: dict[str, str], with_cert: bool) -> int:
    context = ssl.create_default_context(cafile=certs["ca"])
    if with_cert:
        context.load_cert_chain(certs["client_crt"], certs["client_key"])
    with httpx.Client(verify=context, timeout=10) as http:
        return http.get(f"https://127.0.0.1:{port}/v1/agent/self").status_code


def _https_agent(tmp: Path, tls_keys: dict) -> tuple[AgentProc, int]:
    config = _testutil_config(tmp, **tls_keys)
    https = json.loads(config.read_text())["ports"]["https"]
    http = json.loads(config.read_text())["ports"]["http"]
    return AgentProc(f"-config-file={config}", http_port=http).start(timeout=30), https


@pytest.mark.parametrize("layout", ["testutil", "tls.defaults"])
def test_https_with_verify_incoming(tmp_path: Path, layout: str) -> None:
    certs = _certs(tmp_path)
    files = {
        "ca_file": certs["ca"],
        "cert_file": certs["server_crt"],
        "key_file": certs["server_key"],
    }
    if layout == "testutil":
        keys = {**files, "verify_incoming_https": True}
    else:
        keys = {"tls": {"defaults": {**files, "verify_incoming": True}}}
    agent, https = _https_agent(tmp_path, keys)
    try:
        with pytest.raises(httpx.TransportError):
            _https_get(https, certs, with_cert=False)
        assert _https_get(https, certs, with_cert=True) == 200
    finally:
        agent.cleanup()


def test_https_without_verify_incoming(tmp_path: Path) -> None:
    certs = _certs(tmp_path)
    files = {
        "ca_file": certs["ca"],
        "cert_file": certs["server_crt"],
        "key_file": certs["server_key"],
    }
    agent, https = _https_agent(tmp_path, files)
    try:
        assert _https_get(https, certs, with_cert=False) == 200
        assert _https_get(https, certs, with_cert=True) == 200
    finally:
        agent.cleanup()


def test_https_port_without_certificates_still_starts(tmp_path: Path) -> None:
    """makeClient's servers: ports.https set, no certificate; HTTP answers, TLS cannot."""
    agent, https = _https_agent(tmp_path, {})
    try:
        with agent.client() as http:
            assert http.get("/v1/agent/self").status_code == 200
        with pytest.raises(httpx.TransportError), httpx.Client(verify=False, timeout=5) as client:
            client.get(f"https://127.0.0.1:{https}/v1/agent/self")
    finally:
        agent.cleanup()
