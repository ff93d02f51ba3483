"""The built-in Connect proxy's parts: flags, config, SPIFFE checks, TLS contexts, caches, the
pipe, and a whole proxy pair in one event loop on an in-memory agent twin (`FakeAgent`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import ssl
import stat
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gitkv.cli import main as gitkv_main
from gitkv.connect.agentapi import Instance, instances_from_catalog, instances_from_health
from gitkv.connect.authz import Authorizer
from gitkv.connect.cache import TTLCache
from gitkv.connect.certs import Certificates
from gitkv.connect.cli import proxy_settings
from gitkv.connect.config import (
    ProxyConfig,
    PublicListener,
    Upstream,
    find_sidecar,
    from_flags,
    from_registration,
    split_host_port,
)
from gitkv.connect.errors import ConfigError, PeerError, UsageError
from gitkv.connect.flags import UpstreamFlag, parse_proxy_flags, parse_upstream
from gitkv.connect.listeners import Connections
from gitkv.connect.pipe import Side, join
from gitkv.connect.proxy import Proxy
from gitkv.connect.spiffe import (
    parse_service_uri,
    peer_serial,
    peer_uri,
    service_sni,
    service_uri,
    verify_service,
)
from gitkv.connect.tls import KeyDir, Leaf, client_context, roots_bundle, server_context

TD = "11111111-2222-3333-4444-555555555555.consul"


# -- a small Connect CA, shaped like Consul's built-in one ----------------------------------


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class MiniCA:
    """A root like Consul's (EC P-256, spiffe://<trust-domain> SAN) signing leaves with an
    empty subject and one SPIFFE URI SAN."""

    def __init__(self, trust_domain: str = TD) -> None:
        self.trust_domain = trust_domain
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.serial = 1
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pri-test.consul.ca.test")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(1)
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.root_pem = _pem(self.cert)

    def leaf(self, service: str, dc: str = "dc1") -> dict[str, Any]:
        """The JSON of `GET /v1/agent/connect/ca/leaf/<service>`."""
        key = ec.generate_private_key(ec.SECP256R1())
        self.serial += 1
        uri = service_uri(self.trust_domain, dc, service)
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(self.serial)
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=3))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, True, True, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        return {
            "CertPEM": _pem(cert),
            "PrivateKeyPEM": key_pem,
            "SerialNumber": f"{self.serial:02x}",
            "ServiceURI": uri,
        }

    def root(self, active: bool = True) -> dict[str, Any]:
        return {"RootCert": self.root_pem, "IntermediateCerts": None, "Active": active}


class FakeAgent:
    """The agent endpoints the proxy calls (`LocalAgent`), in memory. Blocking queries park on
    an event that `rotate()` sets, the way a real long-poll wakes on a new index; a changed
    registration is whatever a test puts on `registrations`."""

    def __init__(self, ca: MiniCA) -> None:
        self.ca = ca
        self.roots_list = [ca.root()]
        self.leaves: dict[str, dict[str, Any]] = {}
        self.index = 10
        self.changed = asyncio.Event()
        self.allow: dict[str, bool] = {}
        self.authorize_calls = 0
        self.authorize_error: Exception | None = None  # raised by authorize() when set
        self.instances: dict[str, list[Instance]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.registrations: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def leaf_for(self, service: str) -> dict[str, Any]:
        if service not in self.leaves:
            self.leaves[service] = self.ca.leaf(service)
        return self.leaves[service]

    async def _park(self, index: int) -> None:
        while index and index >= self.index:
            self.changed.clear()
            await self.changed.wait()

    async def agent_service(self, service_id: str) -> dict[str, Any] | None:
        return self.services.get(service_id)

    async def agent_service_changed(
        self, service_id: str, digest: str, wait: float = 60
    ) -> tuple[dict[str, Any] | None, str]:
        body = await self.registrations.get()
        return body, str(body.get("ContentHash") or "")

    async def agent_services(self) -> dict[str, dict[str, Any]]:
        return dict(self.services)

    async def roots(self, index: int = 0, wait: float = 60) -> tuple[dict[str, Any], int]:
        await self._park(index)
        return {"TrustDomain": self.ca.trust_domain, "Roots": list(self.roots_list)}, self.index

    async def leaf(
        self, service: str, index: int = 0, wait: float = 60
    ) -> tuple[dict[str, Any], int]:
        await self._park(index)
        return self.leaf_for(service), self.index

    async def authorize(self, target: str, client_uri: str, client_serial: str) -> tuple[bool, str]:
        if self.authorize_error is not None:
            raise self.authorize_error
        self.authorize_calls += 1
        source = parse_service_uri(client_uri).service
        allowed = self.allow.get(source, True)
        return allowed, f"{source} => {target}: {'allow' if allowed else 'deny'}"

    async def connect_instances(self, service: str, datacenter: str = "") -> list[Instance]:
        return list(self.instances.get(service, ()))

    def rotate(self, new_ca: MiniCA) -> None:
        """A CA rotation: the new root joins the list, every leaf is re-signed by it."""
        self.ca = new_ca
        self.roots_list = [*(dict(r, Active=False) for r in self.roots_list), new_ca.root()]
        self.leaves.clear()
        self.index += 1
        self.changed.set()


T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


# -- flags -----------------------------------------------------------------------------------


def test_flags_take_go_spellings_and_repeat_upstreams() -> None:
    flags, rest = parse_proxy_flags(
        [
            "-service",
            "web",
            "--listen=:8443",
            "-service-addr=127.0.0.1:8080",
            "-upstream",
            "db:9191",
            "-upstream=cache:127.0.0.10:9292",
            "-log-level",
            "debug",
            "-log-json",
            "-http-addr=127.0.0.1:8501",
            "-token",
            "secret",
        ]
    )
    assert rest == []
    assert flags.service == "web"
    assert flags.listen == ":8443"
    assert flags.service_addr == "127.0.0.1:8080"
    assert flags.upstreams == (
        UpstreamFlag("cache", 9292, "127.0.0.10"),
        UpstreamFlag("db", 9191),
    )
    assert flags.log_level == "debug" and flags.log_json
    assert flags.http == {"http-addr": "127.0.0.1:8501", "token": "secret"}


def test_flags_stop_at_the_first_argument_and_after_double_dash() -> None:
    flags, rest = parse_proxy_flags(["-service", "web", "extra", "-listen", ":1"])
    assert flags.service == "web" and rest == ["extra", "-listen", ":1"]
    flags, rest = parse_proxy_flags(["--", "-service"])
    assert flags.service == "" and rest == ["-service"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-bogus"], "flag provided but not defined: -bogus"),
        (["-service"], "flag needs an argument: -service"),
        (["-log-json=maybe"], 'invalid boolean value "maybe" for -log-json: parse error'),
        (["-upstream", "db"], "Upstream value should be name:addr in 'db'"),
        (["-upstream", "db:x"], 'strconv.ParseInt: parsing "x": invalid syntax'),
        (["-upstream", "db.thing:1"], "Upstream type must be blank, 'service', or 'query'"),
        (["---x"], "bad flag syntax: ---x"),
    ],
)
def test_flag_errors_read_like_go(args: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_proxy_flags(args)
    assert message in str(info.value)


def test_upstream_values_and_env_fallbacks() -> None:
    assert parse_upstream("db:0x10") == UpstreamFlag("db", 16)
    assert parse_upstream("q.query:9000") == UpstreamFlag("q", 9000, "", "prepared_query")
    assert parse_upstream("db.service:1") == UpstreamFlag("db", 1)
    flags, _ = parse_proxy_flags([], {"CONNECT_SIDECAR_FOR": "web", "CONNECT_PROXY_ID": "p"})
    assert (flags.sidecar_for, flags.proxy_id) == ("web", "p")
    flags, _ = parse_proxy_flags(["-sidecar-for", "api"], {"CONNECT_SIDECAR_FOR": "web"})
    assert flags.sidecar_for == "api"
    assert parse_proxy_flags(["-h"])[0].help


def test_http_flags_win_over_the_environment() -> None:
    env = {"CONSUL_HTTP_ADDR": "10.0.0.1:8500", "CONSUL_HTTP_TOKEN_FILE": "/nonexistent"}
    flags, _ = parse_proxy_flags(["-http-addr", "127.0.0.1:9500", "-token", "t0k"])
    settings = proxy_settings(flags, env)
    assert settings.address == "http://127.0.0.1:9500"
    assert settings.token == "t0k"
    assert "t0k" not in repr(settings)


def test_the_gitkv_command_routes_connect_with_consuls_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert gitkv_main(["connect"]) == 1
    assert gitkv_main(["connect", "proxy", "-h"]) == 0
    assert "Usage: gitkv connect proxy" in capsys.readouterr().out
    assert gitkv_main(["connect", "proxy", "-nope"]) == 1
    assert "flag provided but not defined: -nope" in capsys.readouterr().err
    assert gitkv_main(["connect", "proxy", "-service", "web", "stray"]) == 1
    assert "Should have no non-flag arguments." in capsys.readouterr().err
    assert gitkv_main(["connect", "proxy", "-service", "web", "-log-level", "LOUD"]) == 1
    assert "Invalid log level: LOUD" in capsys.readouterr().err


# -- config ----------------------------------------------------------------------------------


def test_config_from_flags() -> None:
    flags, _ = parse_proxy_flags(
        [
            "-service",
            "web",
            "-listen",
            ":8443",
            "-service-addr",
            "127.0.0.1:8080",
            "-upstream",
            "db:9191",
        ]
    )
    config = from_flags(flags)
    assert config == ProxyConfig(
        "web",
        PublicListener("0.0.0.0", 8443, "127.0.0.1", 8080),
        (Upstream("db", 9191, "127.0.0.1"),),
    )
    with pytest.raises(ConfigError, match="-service-addr must be specified with -listen"):
        from_flags(parse_proxy_flags(["-service", "web", "-listen", ":1"])[0])
    with pytest.raises(ConfigError, match="-service or -proxy-id must be specified"):
        from_flags(parse_proxy_flags([])[0])
    with pytest.raises(ConfigError, match="prepared query upstreams are not supported"):
        from_flags(parse_proxy_flags(["-service", "w", "-upstream", "q.query:1"])[0])


def test_host_port_splitting() -> None:
    assert split_host_port(":8443", "-listen") == ("", 8443)
    assert split_host_port("[::1]:80", "-listen") == ("::1", 80)
    for bad in ("8443", "::1:80", "h:99999", "h:x"):
        with pytest.raises(ConfigError):
            split_host_port(bad, "-listen")


SIDECAR: dict[str, Any] = {
    "Kind": "connect-proxy",
    "ID": "web-sidecar-proxy",
    "Service": "web-sidecar-proxy",
    "Address": "127.0.0.1",
    "Port": 21000,
    "Proxy": {
        "DestinationServiceName": "web",
        "DestinationServiceID": "web",
        "LocalServiceAddress": "127.0.0.1",
        "LocalServicePort": 8080,
        "Config": {"local_connect_timeout_ms": 250, "handshake_timeout_ms": 2000},
        "Upstreams": [
            {"DestinationType": "service", "DestinationName": "db", "LocalBindPort": 9191},
            {
                "DestinationName": "cache",
                "Datacenter": "dc2",
                "LocalBindAddress": "127.0.0.10",
                "LocalBindPort": 9292,
                "Config": {"connect_timeout_ms": 1500},
            },
        ],
    },
}


def test_config_from_a_sidecar_registration() -> None:
    config = from_registration(SIDECAR)
    assert config == ProxyConfig(
        "web",
        PublicListener("127.0.0.1", 21000, "127.0.0.1", 8080, 0.25, 2.0),
        (
            Upstream("db", 9191, "127.0.0.1"),
            Upstream("cache", 9292, "127.0.0.10", datacenter="dc2", connect_timeout=1.5),
        ),
        proxy_id="web-sidecar-proxy",
    )
    no_address = dict(SIDECAR, Address="")
    assert from_registration(no_address).public == PublicListener(
        "0.0.0.0", 21000, "127.0.0.1", 8080, 0.25, 2.0
    )
    with pytest.raises(ConfigError, match="not a valid connect proxy"):
        from_registration({"ID": "web", "Kind": "", "Port": 1})
    with pytest.raises(ConfigError, match="no Proxy.DestinationServiceName"):
        from_registration({"ID": "p", "Kind": "connect-proxy", "Port": 1})
    with pytest.raises(ConfigError, match="unix socket"):
        from_registration(
            dict(
                SIDECAR,
                Proxy={
                    "DestinationServiceName": "web",
                    "Upstreams": [{"DestinationName": "db", "LocalBindSocketPath": "/s"}],
                },
                Port=0,
            )
        )


def test_finding_the_sidecar_of_a_service() -> None:
    other = dict(SIDECAR, ID="web-2", Proxy={"DestinationServiceID": "web2"})
    services = {"web-sidecar-proxy": SIDECAR, "web-2": other, "web": {"Kind": ""}}
    assert find_sidecar(services, "web") == "web-sidecar-proxy"
    with pytest.raises(ConfigError, match="No sidecar proxy registered for api"):
        find_sidecar(services, "api")
    twin = dict(SIDECAR, ID="web-proxy-b")
    with pytest.raises(ConfigError, match="one of the following IDs: web-proxy-b, web-sidecar"):
        find_sidecar({**services, "web-proxy-b": twin}, "web")


def test_instances_from_health_and_catalog_answers() -> None:
    health = [
        {"Node": {"Address": "10.0.0.1", "Datacenter": "dc1"}, "Service": {"Port": 21000}},
        {"Node": {"Address": "10.0.0.1"}, "Service": {"Address": "10.0.0.2", "Port": 21001}},
        {"Node": {"Address": "10.0.0.3"}, "Service": {"Port": 0}},
    ]
    assert instances_from_health(health) == [
        Instance("10.0.0.1", 21000, "dc1"),
        Instance("10.0.0.2", 21001, ""),
    ]
    catalog = [{"Address": "10.0.0.1", "ServiceAddress": "", "ServicePort": 5, "Datacenter": "d"}]
    assert instances_from_catalog(catalog) == [Instance("10.0.0.1", 5, "d")]


# -- SPIFFE ----------------------------------------------------------------------------------


def test_service_uris_round_trip() -> None:
    uri = service_uri(TD, "dc1", "web")
    assert uri == f"spiffe://{TD}/ns/default/dc/dc1/svc/web"
    ident = parse_service_uri(uri)
    assert (ident.trust_domain, ident.namespace, ident.datacenter, ident.service) == (
        TD,
        "default",
        "dc1",
        "web",
    )
    assert ident.uri == uri
    part = parse_service_uri(f"spiffe://{TD}/ap/team/ns/ns1/dc/dc1/svc/my%20svc")
    assert (part.partition, part.namespace, part.service) == ("team", "ns1", "my svc")
    assert part.uri == f"spiffe://{TD}/ap/team/ns/ns1/dc/dc1/svc/my%20svc"
    for bad in (f"https://{TD}/ns/default/dc/dc1/svc/web", f"spiffe://{TD}/agent/client/dc/d/id/n"):
        with pytest.raises(PeerError):
            parse_service_uri(bad)


def test_peer_certificate_checks() -> None:
    cert = {
        "subjectAltName": (("DNS", "x"), ("URI", service_uri(TD, "dc1", "db"))),
        "serialNumber": "012C",
    }
    assert peer_uri(cert).endswith("/svc/db")
    assert peer_serial(cert) == "01:2c"
    assert peer_serial({"serialNumber": "07"}) == "07"
    assert verify_service(cert, "db", datacenter="dc1").service == "db"
    assert verify_service(cert, "DB", datacenter="DC1").service == "db"  # case-insensitive
    other_domain = {"subjectAltName": (("URI", service_uri("other.consul", "dc1", "db")),)}
    assert verify_service(other_domain, "db").trust_domain == "other.consul"
    with pytest.raises(
        PeerError, match="peer certificate mismatch: got .*/svc/db, want .*/svc/web"
    ):
        verify_service(cert, "web")
    with pytest.raises(PeerError, match="mismatch"):
        verify_service(cert, "db", datacenter="dc2")
    with pytest.raises(PeerError, match="mismatch"):
        verify_service(cert, "db", namespace="team")
    with pytest.raises(PeerError, match="no URI SAN"):
        verify_service({"subjectAltName": (("DNS", "db"),)}, "db")
    assert service_sni("db", "dc1", TD) == f"db.default.dc1.internal.{TD}"


# -- TLS contexts ----------------------------------------------------------------------------


def _leaf(body: dict[str, Any]) -> Leaf:
    return Leaf.from_api(body)


def test_keys_pass_through_a_private_directory_and_leave_no_file() -> None:
    ca = MiniCA()
    with KeyDir() as keys:
        assert stat.S_IMODE(os.stat(keys.path).st_mode) == 0o700
        server_context(_leaf(ca.leaf("db")), ca.root_pem, keys)
        assert os.listdir(keys.path) == []
        path = keys.path
    assert not os.path.exists(path)


def test_roots_bundle_keeps_every_root_and_intermediate() -> None:
    pem = roots_bundle(
        [
            {"RootCert": "A", "IntermediateCerts": ["B\n"]},
            {"RootCert": "C\n", "IntermediateCerts": None},
        ]
    )
    assert pem == "A\nB\nC\n"
    with pytest.raises(ConfigError, match="no Connect CA roots"):
        roots_bundle([])


async def _handshake(
    server: ssl.SSLContext, client: ssl.SSLContext
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One TLS connection: (what the server saw of the client, what the client saw)."""
    seen: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("peercert"))
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server)
    port = srv.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=""
        )
        got = writer.get_extra_info("peercert")
        await reader.read()
        writer.close()
        try:
            return await asyncio.wait_for(seen, 1.0), got
        except TimeoutError:
            return None, got
    finally:
        srv.close()


def test_mutual_tls_needs_certificates_from_the_roots() -> None:
    ca, stranger = MiniCA(), MiniCA("other.consul")
    with KeyDir() as keys:
        server = server_context(_leaf(ca.leaf("db")), ca.root_pem, keys)
        good = client_context(_leaf(ca.leaf("web")), ca.root_pem, keys)
        seen, got = run(_handshake(server, good))
        assert seen is not None and peer_uri(seen).endswith("/svc/web")
        assert got is not None and peer_uri(got).endswith("/svc/db")
        # A client whose certificate another CA signed is refused by the server.
        forged = client_context(_leaf(stranger.leaf("web")), ca.root_pem, keys)
        assert run(_handshake(server, forged))[0] is None
        # A server whose certificate another CA signed is refused by the client.
        rogue = server_context(_leaf(stranger.leaf("db")), ca.root_pem, keys)
        with pytest.raises(ssl.SSLCertVerificationError):
            run(_handshake(rogue, good))


def test_a_rotation_moves_new_handshakes_onto_the_new_certificates() -> None:
    async def scenario() -> None:
        old_ca, new_ca = MiniCA(), MiniCA()
        agent = FakeAgent(old_ca)
        with KeyDir() as keys:
            certs = Certificates(agent, "db", keys)
            await certs.load()
            first_server = certs.server
            watcher = asyncio.ensure_future(certs.watch())
            await asyncio.sleep(0)
            agent.rotate(new_ca)
            for _ in range(100):
                if certs.rotations >= 2 and certs.leaf and "svc/db" in certs.leaf.uri:
                    break
                await asyncio.sleep(0.01)
            assert certs.server is not first_server
            # Served through the *first* context (the one a listener was created with), the
            # handshake still ends on the current one: new leaf, new trust store.
            new_client = client_context(_leaf(new_ca.leaf("web")), new_ca.root_pem, keys)
            seen, got = await _handshake(first_server, new_client)
            assert seen is not None and got is not None
            assert peer_serial(got) == agent.leaves["db"]["SerialNumber"]
            # Clients with a leaf of the old CA still verify: the old root stays listed.
            old_client = client_context(_leaf(old_ca.leaf("web")), certs.roots_pem, keys)
            assert (await _handshake(first_server, old_client))[0] is not None
            watcher.cancel()

    run(scenario())


# -- caches ----------------------------------------------------------------------------------


def test_ttl_cache_single_flight_and_expiry() -> None:
    async def scenario() -> None:
        now = [0.0]
        cache: TTLCache[str, int] = TTLCache(0.5, lambda: now[0])
        calls = 0
        gate = asyncio.Event()

        async def load() -> int:
            nonlocal calls
            calls += 1
            await gate.wait()
            return calls

        waiters = [asyncio.ensure_future(cache.get("k", load)) for _ in range(5)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*waiters) == [1] * 5 and calls == 1
        now[0] = 0.4
        assert await cache.get("k", load) == 1
        now[0] = 0.6
        assert await cache.get("k", load) == 2

        async def boom() -> int:
            raise RuntimeError("agent down")

        with pytest.raises(RuntimeError):
            await cache.get("e", boom)
        assert await cache.get("e", load) == 3  # failures are not kept

    run(scenario())


def test_authorizer_caches_briefly_and_fails_closed() -> None:
    async def scenario() -> None:
        now = [0.0]
        agent = FakeAgent(MiniCA())
        authz = Authorizer(agent, "db", ttl=0.5, clock=lambda: now[0])
        web = service_uri(TD, "dc1", "web")
        assert (await authz.decide(web, "02")).authorized
        agent.allow["web"] = False
        assert (await authz.decide(web, "02")).authorized  # still cached
        now[0] = 0.51
        decision = await authz.decide(web, "02")
        assert not decision.authorized and "deny" in decision.reason
        assert agent.authorize_calls == 2

        agent.authorize_error = OSError("connection refused")
        now[0] = 2.0
        decision = await authz.decide(web, "02")
        assert not decision.authorized and "connection refused" in decision.reason

    run(scenario())


# -- the pipe ---------------------------------------------------------------------------------


def test_the_pipe_copies_both_ways_and_passes_half_close_on_plain_tcp() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read()  # until the client's EOF arrives through the pipe
            writer.write(data.upper())
            writer.close()

        backend = await asyncio.start_server(echo, "127.0.0.1", 0)
        backend_port = backend.sockets[0].getsockname()[1]

        async def relay(front_side: Side) -> None:
            _, back_side = await loop.create_connection(Side, "127.0.0.1", backend_port)
            await join(front_side, back_side)

        connections = Connections()
        front = await loop.create_server(connections.protocol_factory(relay), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", front.sockets[0].getsockname()[1]
        )
        payload = os.urandom(3_000_000).hex().encode()
        writer.write(payload)
        writer.write_eof()
        assert await reader.read() == payload.upper()
        writer.close()
        await asyncio.sleep(0.05)
        assert not connections.tasks and connections.failed == 0
        front.close()
        backend.close()

    run(scenario())


# -- a proxy pair -----------------------------------------------------------------------------


async def _echo_server() -> tuple[asyncio.AbstractServer, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _round_trip(port: int, message: bytes, host: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(message)
        await writer.drain()
        got = b""
        while len(got) < len(message):
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 2.0)
            except ConnectionResetError:  # a refused connection is aborted
                break
            if not chunk:
                break
            got += chunk
        return got
    finally:
        writer.close()


async def _pair(
    agent: FakeAgent,
) -> tuple[Proxy, Proxy, Callable[[], Awaitable[None]]]:
    echo, echo_port = await _echo_server()
    db = Proxy(
        ProxyConfig("db", PublicListener("127.0.0.1", 0, "127.0.0.1", echo_port)),
        agent,
    )
    await db.start()
    agent.instances["db"] = [Instance("127.0.0.1", db.public_port, "dc1")]
    web = Proxy(ProxyConfig("web", None, (Upstream("db", 0),)), agent)
    await web.start()

    async def stop() -> None:
        await web.close()
        await db.close()
        echo.close()

    return web, db, stop


def test_a_proxy_pair_carries_traffic_and_obeys_intentions() -> None:
    async def scenario() -> None:
        agent = FakeAgent(MiniCA())
        web, db, stop = await _pair(agent)
        try:
            port = web.upstream_ports["db"]
            message = os.urandom(300_000)
            assert await _round_trip(port, message) == message
            db.authorizer._cache.clear()
            agent.allow["web"] = False
            assert await _round_trip(port, b"hello") == b""
            assert not os.listdir(db.keys.path)
        finally:
            await stop()
        assert not os.path.exists(db.keys.path)

    run(scenario())


def test_a_connection_survives_a_ca_rotation_and_new_ones_use_the_new_certificates() -> None:
    async def scenario() -> None:
        agent = FakeAgent(MiniCA())
        web, db, stop = await _pair(agent)
        try:
            port = web.upstream_ports["db"]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"before")
            assert await reader.readexactly(6) == b"before"
            agent.rotate(MiniCA())
            for _ in range(200):
                if web.certs.rotations >= 2 and db.certs.rotations >= 2:
                    break
                await asyncio.sleep(0.01)
            assert web.certs.rotations >= 2 and db.certs.rotations >= 2
            writer.write(b"after")  # the old connection keeps its old TLS session
            assert await reader.readexactly(5) == b"after"
            writer.close()
            assert await _round_trip(port, b"fresh") == b"fresh"
        finally:
            await stop()

    run(scenario())


def test_an_upstream_that_presents_the_wrong_service_is_refused() -> None:
    async def scenario() -> None:
        agent = FakeAgent(MiniCA())
        web, db, stop = await _pair(agent)
        try:
            # "cache" resolves to db's listener, whose certificate names db, not cache.
            agent.instances["cache"] = agent.instances["db"]
            cache = Proxy(ProxyConfig("web", None, (Upstream("cache", 0),)), agent)
            await cache.start()
            try:
                assert await _round_trip(cache.upstream_ports["cache"], b"x") == b""
            finally:
                await cache.close()
        finally:
            await stop()

    run(scenario())


def test_the_agents_own_ca_certificates_work_both_ways() -> None:
    """Leaves and roots exactly as the agent's CA renders them (critical SAN, empty subject)."""
    from agent.connect import ca as agent_ca

    cluster = "11111111-2222-3333-4444-555555555555"
    now = dt.datetime.now(dt.UTC)
    root = agent_ca.new_root(cluster, {"Provider": "consul", "Config": {}}, 1, now, "abcdefgh")
    roots = agent_ca.render_roots([root], f"{cluster}.consul")

    def leaf(service: str, serial: int) -> Leaf:
        key, csr = agent_ca.new_leaf_key_and_csr(service_uri(f"{cluster}.consul", "dc1", service))
        issued = agent_ca.sign_leaf(root, csr, serial, now, 72 * 3600, "dc1", f"{cluster}.consul")
        return Leaf.from_api(agent_ca.render_leaf(issued, key, serial, serial))

    with KeyDir() as keys:
        trust = roots_bundle(roots["Roots"])
        server = server_context(leaf("db", 2), trust, keys)
        client = client_context(leaf("web", 3), trust, keys)
        seen, got = run(_handshake(server, client))
    assert seen is not None and verify_service(seen, "web", datacenter="dc1")
    assert got is not None and verify_service(got, "db", datacenter="dc1")
    assert peer_serial(seen) == "03"


def test_reconfigure_binds_new_listeners_and_closes_dropped_ones() -> None:
    async def scenario() -> None:
        agent = FakeAgent(MiniCA())
        web, db, stop = await _pair(agent)
        try:
            db_port = web.upstream_ports["db"]
            agent.instances["cache"] = agent.instances["db"]  # same listener: refused (names db)
            config = ProxyConfig(
                "web", None, (Upstream("db", 0, "127.0.0.2"), Upstream("cache", 0))
            )
            await web.reconfigure(config)
            assert set(web.upstream_ports) == {"db", "cache"}
            moved = web.upstream_ports["db"]
            assert await _round_trip(moved, b"moved", host="127.0.0.2") == b"moved"
            assert await _round_trip(web.upstream_ports["cache"], b"x") == b""
            with pytest.raises(OSError):  # the listener it replaced is closed
                await asyncio.open_connection("127.0.0.1", db_port)
            # A new identity: the proxy fetches that service's leaf and authorizes as it.
            await web.reconfigure(ProxyConfig("api", None, (Upstream("db", 0),)))
            assert web.certs.service == "api" and web.authorizer.target == "api"
            assert await _round_trip(web.upstream_ports["db"], b"as api") == b"as api"
            assert web.certs.leaf is not None
            assert web.certs.leaf.serial == agent.leaves["api"]["SerialNumber"]
        finally:
            await stop()

    run(scenario())


def test_follow_registration_reconfigures_on_each_change() -> None:
    async def scenario() -> None:
        from gitkv.connect.proxy import follow_registration

        agent = FakeAgent(MiniCA())
        web, db, stop = await _pair(agent)
        follower = asyncio.ensure_future(follow_registration(web, agent, "web-sidecar-proxy", "h0"))
        try:
            registration = dict(SIDECAR, Port=0, ContentHash="h1")
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            registration["Proxy"] = dict(
                SIDECAR["Proxy"], Upstreams=[{"DestinationName": "db", "LocalBindPort": port}]
            )
            await agent.registrations.put(registration)
            for _ in range(100):
                if web.config.proxy_id == "web-sidecar-proxy":
                    break
                await asyncio.sleep(0.01)
            assert web.config == from_registration(registration)
            assert web.upstream_ports == {"db": port}
            assert await _round_trip(port, b"followed") == b"followed"
        finally:
            follower.cancel()
            await stop()

    run(scenario())
