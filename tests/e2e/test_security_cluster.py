"""Transport security end to end: gossip encryption, HTTPS, TLS on server RPC, with ACLs.

(a) gossip keys: an agent with another key, or none, cannot join an encrypted agent and says
    why; one with the same key joins.
(b) HTTPS with verify_incoming: a CA-signed client certificate is served; no certificate,
    an untrusted one, or plain HTTP is refused; gitkv's client works through CONSUL_* env.
(c) the seed's 3 servers (127.0.0.11-13, standard ports, HTTPS on 8501 and no HTTP) with ACLs
    (default deny), gossip encryption and mutual TLS on RPC: the management token works, gitkv
    applies policies and tokens from a spec, a token made through one server works on the
    others, and an agent with a wrong gossip key is refused.

Everything binds loopback addresses only; every wait is bounded.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agent.gossip.crypto import generate_key
from gitkv.client import ConsulClient, ConsulSettings
from gitkv.commands import run
from gitkv.tlsgen import create_ca, create_cert
from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.seedcluster import SERVERS, Agent, SeedCluster, eventually

DC = "shenzhen"
MGMT = "5c3a5b7e-2f39-4c36-9a55-1d6f0b1c9e01"
SECURE_IPS = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"]
HTTPS_IP = "127.0.0.171"
GOSSIP_IPS = ("127.0.0.161", "127.0.0.162", "127.0.0.163", "127.0.0.164")


# ---------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class PKI:
    ca: str
    server: str
    server_key: str
    client: str
    client_key: str
    rogue: str  # a client certificate from a CA nobody trusts
    rogue_key: str

    def context(self, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        return ctx

    def good(self) -> ssl.SSLContext:
        return self.context(self.client, self.client_key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca = create_ca()
    files = {"ca": ca.cert_pem}
    server = create_cert(ca, "server", dc=DC, ips=[*SECURE_IPS, HTTPS_IP, *GOSSIP_IPS])
    client = create_cert(ca, "client", dc=DC)
    rogue = create_cert(create_ca(), "client", dc=DC)
    for name, pair in (("server", server), ("client", client), ("rogue", rogue)):
        files[name], files[f"{name}_key"] = pair.cert_pem, pair.key_pem
    for name, data in files.items():
        (d / f"{name}.pem").write_bytes(data)
    return PKI(**{name: str(d / f"{name}.pem") for name in files})


# ---------------------------------------------------------------------- (a) gossip keys


def _gossip_args(ip: str, data_dir: Path, *extra: str) -> list[str]:
    return [
        f"-bind={ip}",
        f"-client={ip}",
        f"-data-dir={data_dir}",
        f"-node=n-{ip.rsplit('.', 1)[1]}",
        "-dns-port=-1",
        "-serf-wan-port=-1",
        *extra,
    ]


def _refused_join(args: list[str], timeout: float = 60.0) -> str:
    """Run an agent that must fail to join; return its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "gitkv", "agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_gossip_keys_must_match(tmp_path: Path) -> None:
    key = generate_key()
    seed_ip, same_ip, other_ip, none_ip = GOSSIP_IPS
    server = AgentProc(
        "-dev", *_gossip_args(seed_ip, tmp_path / "s", f"-encrypt={key}"), ip=seed_ip
    )
    with server.start():
        join = f"-join={seed_ip}"
        wrong = _refused_join(
            _gossip_args(other_ip, tmp_path / "o", join, f"-encrypt={generate_key()}")
        )
        assert "gossip keys differ" in wrong, wrong
        missing = _refused_join(_gossip_args(none_ip, tmp_path / "n", join))
        assert "gossip keys differ" in missing, missing
        joiner = AgentProc(*_gossip_args(same_ip, tmp_path / "j", join, f"-encrypt={key}"), ip=same_ip)  # fmt: skip
        with joiner.start(), server.client() as http:
            names = eventually(
                lambda: {m["Name"] for m in http.get("/v1/agent/members").json()},
                20,
                "the joiner in the member list",
            )
        assert names == {"n-161", "n-162"}
        # The keyring endpoint shows the one key, primary.
        with server.client() as http:
            [ring] = http.get("/v1/operator/keyring").json()
        assert ring["Keys"] == {key: 1} and ring["PrimaryKeys"] == {key: 1}
    assert key not in server.output()  # the key never reaches the log


# ---------------------------------------------------------------------- (b) HTTPS


@pytest.fixture(scope="module")
def https_agent(pki: PKI) -> Iterator[tuple[AgentProc, str]]:
    port = free_port(HTTPS_IP)
    hcl = (
        f'tls {{ defaults {{ ca_file = "{pki.ca}" cert_file = "{pki.server}" '
        f'key_file = "{pki.server_key}" verify_incoming = true }} }}'
    )
    agent = AgentProc(
        "-dev",
        f"-bind={HTTPS_IP}",
        f"-client={HTTPS_IP}",
        f"-server-port={free_port(HTTPS_IP)}",
        f"-serf-lan-port={free_port(HTTPS_IP)}",
        "-serf-wan-port=-1",
        "-dns-port=-1",
        f"-https-port={port}",
        f"-hcl={hcl}",
        ip=HTTPS_IP,
    ).start()
    try:
        yield agent, f"https://{HTTPS_IP}:{port}"
    finally:
        agent.cleanup()


def test_https_serves_a_trusted_client(https_agent, pki: PKI) -> None:
    _, url = https_agent
    with httpx.Client(base_url=url, verify=pki.good(), timeout=10) as http:
        assert http.put("/v1/kv/tls/a", content=b"1").json() is True
        assert http.get("/v1/kv/tls/a", params={"raw": ""}).text == "1"


@pytest.mark.parametrize("who", ["no certificate", "untrusted certificate", "plain http"])
def test_https_refuses(https_agent, pki: PKI, who: str) -> None:
    _, url = https_agent
    if who == "plain http":
        target, verify = url.replace("https://", "http://"), True
    elif who == "no certificate":
        target, verify = url, pki.context()
    else:
        target, verify = url, pki.context(pki.rogue, pki.rogue_key)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{target}/v1/kv/tls/a", verify=verify, timeout=10)


def test_gitkv_client_over_https(https_agent, pki: PKI) -> None:
    _, url = https_agent
    env = {
        "CONSUL_HTTP_ADDR": url,
        "CONSUL_CACERT": pki.ca,
        "CONSUL_CLIENT_CERT": pki.client,
        "CONSUL_CLIENT_KEY": pki.client_key,
    }
    with ConsulClient(ConsulSettings.from_env(env=env)) as client:
        client.kv_put("tls/gitkv", b"ok")
        assert client.kv_get("tls/gitkv") is not None
    # Without the client certificate the same client is refused.
    env.pop("CONSUL_CLIENT_CERT")
    env.pop("CONSUL_CLIENT_KEY")
    with ConsulClient(ConsulSettings.from_env(env=env)) as client, pytest.raises(Exception):  # noqa: B017
        client.kv_get("tls/gitkv")


# ---------------------------------------------------------------------- (c) the seed cluster


class SecureAgent(Agent):
    """A seed agent reached over HTTPS (8501) with the client certificate and a token."""

    pki: PKI

    @property
    def url(self) -> str:
        return f"https://{self.ip}:8501"

    def client(self, timeout: float = 10.0, token: str | None = MGMT) -> httpx.Client:
        headers = {"X-Consul-Token": token} if token else {}
        return httpx.Client(
            base_url=self.url, timeout=timeout, verify=self.pki.good(), headers=headers
        )

    def _http_up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.output()[-2000:]}")
        with self.client(timeout=1) as http:
            return http.get("/v1/status/leader").status_code == 200

    def leader(self) -> str:
        with self.client(timeout=2) as http:
            return http.get("/v1/status/leader").json()


class SecureCluster(SeedCluster):
    def __init__(self, pki: PKI, extra: list[str], gossip_key: str = "") -> None:
        super().__init__(extra=extra, client=False)
        self.pki = pki
        self.gossip_key = gossip_key  # the -encrypt key, which no log may show

    def start(self) -> SecureCluster:
        for index, (name, ip) in enumerate(SERVERS.items()):
            agent = SecureAgent(name, ip, self.server_args(name, ip, index > 0), self.root)
            agent.pki = self.pki
            self.agents[name] = agent.start()
        self.wait_leader()
        return self


def _wait_seed_addresses_free(timeout: float = 240.0) -> None:
    """Other suites use the seed's addresses too; wait (bounded) until nobody listens there."""
    deadline = time.monotonic() + timeout
    busy: list[str] = []
    while time.monotonic() < deadline:
        busy = []
        for ip in SECURE_IPS:
            for port in (8300, 8301, 8500, 8501):
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        sock.bind((ip, port))
                    except OSError:
                        busy.append(f"{ip}:{port}")
        if not busy:
            return
        time.sleep(1)
    pytest.fail(f"the seed cluster's addresses stayed in use: {', '.join(busy)}")


@pytest.fixture(scope="module")
def secure(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    conf = tmp_path_factory.mktemp("secure") / "secure.hcl"
    conf.write_text(
        "ports { http = -1, https = 8501 }\n"
        'acl { enabled = true, default_policy = "deny"\n'
        f'  tokens {{ initial_management = "{MGMT}", agent = "{MGMT}" }} }}\n'
        "tls {\n"
        f'  defaults {{ ca_file = "{pki.ca}", cert_file = "{pki.server}",'
        f' key_file = "{pki.server_key}", verify_incoming = true, verify_outgoing = true }}\n'
        "  internal_rpc { verify_server_hostname = true }\n"
        "}\n"
    )
    key = generate_key()
    _wait_seed_addresses_free()
    cluster = SecureCluster(pki, [f"-encrypt={key}", f"-config-file={conf}"], gossip_key=key)
    with cluster:
        yield cluster


def test_cluster_formed_over_tls_with_acls(secure: SecureCluster) -> None:
    leader = secure.leader_agent()
    with leader.client() as http:
        peers = http.get("/v1/status/peers").json()
        assert len(peers) == 3
        assert http.get("/v1/acl/token/self").json()["SecretID"] == MGMT
        # the initial management token counts as the bootstrap
        assert http.put("/v1/acl/bootstrap").status_code in (400, 403)
        members = http.get("/v1/agent/members").json()
    assert {m["Name"] for m in members} == set(SERVERS)
    assert {m["Tags"]["use_tls"] for m in members} == {"1"}
    with leader.client(token=None) as anonymous:
        assert anonymous.get("/v1/kv/app/web/x").status_code == 403


def test_cluster_refuses_plain_and_untrusted_clients(secure: SecureCluster, pki: PKI) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get("http://127.0.0.11:8501/v1/status/leader", timeout=5)
    with pytest.raises(httpx.TransportError):
        httpx.get("http://127.0.0.11:8500/v1/status/leader", timeout=5)  # HTTP is off
    rogue = pki.context(pki.rogue, pki.rogue_key)
    with pytest.raises(httpx.TransportError):
        httpx.get("https://127.0.0.11:8501/v1/status/leader", verify=rogue, timeout=5)


def test_rpc_port_speaks_only_tls(secure: SecureCluster) -> None:
    """A plaintext RPC frame to 8300 gets no answer: the TLS handshake fails first."""
    request = b"\x00\x00\x00\x0f\x84\xa1k\xa3req\xa1i\x01\xa1m\xa0\xa1a\xc0"
    with socket.create_connection(("127.0.0.12", 8300), timeout=5) as sock:
        sock.sendall(request)
        try:
            answer = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert b"rep" not in answer


def test_gitkv_applies_acls_and_tokens_work_everywhere(
    secure: SecureCluster,
    pki: PKI,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = str(uuid.uuid4())
    for name, value in {
        "CONSUL_HTTP_TOKEN": MGMT,
        "CONSUL_CACERT": pki.ca,
        "CONSUL_CLIENT_CERT": pki.client,
        "CONSUL_CLIENT_KEY": pki.client_key,
        "WEB_TOKEN": secret,
    }.items():
        monkeypatch.setenv(name, value)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\nname: secure\ndatacenters:\n"
        f"  {DC}:\n"
        "    address: https://127.0.0.11:8501\n"
        "    kv_prefixes: [app/]\n"
        '    kv:\n      app/web/banner: "hello"\n'
        "    acl:\n"
        "      policies:\n"
        '        web-read: {rules: \'key_prefix "app/web/" { policy = "read" }\'}\n'
        "      tokens:\n"
        "        web: {policies: [web-read], secret: {env: WEB_TOKEN}}\n"
    )
    code = run(["apply", str(spec), "--auto-approve"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert secret not in out + err and MGMT not in out + err
    assert run(["plan", str(spec), "--detailed-exitcode"]) == 0, capsys.readouterr()
    # The token created through node1 reads on node2 and node3 (Raft-replicated), and is
    # refused outside its policy.
    for name in ("node2", "node3"):
        agent = secure.agents[name]
        with agent.client(token=secret) as http:
            got = eventually(
                lambda http=http: http.get("/v1/kv/app/web/banner", params={"raw": ""}),
                20,
                f"the spec's token on {name}",
            )
            assert got.status_code == 200 and got.text == "hello"
            assert http.put("/v1/kv/app/web/banner", content=b"x").status_code == 403
            assert http.get("/v1/kv/other").status_code == 403


def test_agent_with_wrong_gossip_key_is_refused(secure: SecureCluster) -> None:
    data = secure.root / "intruder"
    args = [
        f"-data-dir={data}",
        "-node=intruder",
        "-join=127.0.0.11",
        "-bind=127.0.0.14",
        "-client=127.0.0.14",
        f"-datacenter={DC}",
        f"-encrypt={generate_key()}",
    ]
    started = time.monotonic()
    out = _refused_join(args)
    assert "gossip keys differ" in out, out
    assert time.monotonic() - started < 60
    with secure.agents["node1"].client() as http:
        names = {m["Name"] for m in http.get("/v1/agent/members").json()}
    assert "intruder" not in names
    assert secure.gossip_key not in "".join(a.output() for a in secure.agents.values())
