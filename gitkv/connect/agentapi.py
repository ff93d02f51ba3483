"""The slice of the local agent's HTTP API the proxy uses, as an asyncio client (httpx).

Only documented Consul endpoints: the proxy's registration, the Connect CA roots and leaf
(both long-polled with `?index=`), `POST /v1/agent/connect/authorize`, and the Connect-capable
instances of a destination. Address, token and TLS come from `gitkv.client.ConsulSettings`
(the `CONSUL_HTTP_*` conventions). Failures raise `ClusterError`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import msgspec

from gitkv.client import ConsulSettings
from gitkv.connect.config import SIDECAR_SUFFIX
from gitkv.errors import ClusterError

__all__ = [
    "AgentAPI",
    "Instance",
    "LocalAgent",
    "instances_from_catalog",
    "instances_from_health",
]

# How long a blocking query may park at the agent; the HTTP timeout adds a margin on top
# (Consul adds up to wait/16 of jitter).
BLOCK_WAIT = 60.0
# After a 404 from /v1/health/connect (an agent without it), use the catalog for this long
# before asking again.
HEALTH_CONNECT_RETRY = 60.0


@dataclass(frozen=True)
class Instance:
    """A Connect-capable endpoint of a destination: where to dial, and its datacenter."""

    address: str
    port: int
    datacenter: str = ""


def instances_from_health(entries: Any) -> list[Instance]:
    """`/v1/health/connect/<svc>` entries -> endpoints (service address, else the node's)."""
    found = []
    for entry in entries or ():
        svc = entry.get("Service") or {}
        node = entry.get("Node") or {}
        address = svc.get("Address") or node.get("Address") or ""
        port = int(svc.get("Port") or 0)
        if address and port:
            found.append(Instance(address, port, str(node.get("Datacenter") or "")))
    return found


def instances_from_catalog(nodes: Any) -> list[Instance]:
    """`/v1/catalog/service/<svc>-sidecar-proxy` entries -> endpoints."""
    found = []
    for node in nodes or ():
        address = node.get("ServiceAddress") or node.get("Address") or ""
        port = int(node.get("ServicePort") or 0)
        if address and port:
            found.append(Instance(address, port, str(node.get("Datacenter") or "")))
    return found


class LocalAgent(Protocol):
    """What the proxy asks of its local agent: the port `AgentAPI` fills over HTTP and tests
    fill in memory.

    The bodies are the agent's JSON answers as decoded. `roots` and `leaf` are blocking
    queries: given the index of the last answer they may park for up to `wait` seconds until
    something newer exists, and return the new answer with its index. Failures raise (the
    proxy logs them and retries, or, for `authorize`, denies the connection).
    """

    async def agent_service(self, service_id: str) -> dict[str, Any] | None:
        """The local registration `service_id`, or None when the agent has none."""
        ...

    async def agent_service_changed(
        self, service_id: str, digest: str, wait: float = BLOCK_WAIT
    ) -> tuple[dict[str, Any] | None, str]:
        """The registration once its ContentHash differs from `digest`, and that hash."""
        ...

    async def agent_services(self) -> dict[str, dict[str, Any]]:
        """Every local registration by service ID."""
        ...

    async def roots(self, index: int = 0, wait: float = BLOCK_WAIT) -> tuple[dict[str, Any], int]:
        """The Connect CA roots and their index."""
        ...

    async def leaf(
        self, service: str, index: int = 0, wait: float = BLOCK_WAIT
    ) -> tuple[dict[str, Any], int]:
        """`service`'s leaf certificate and key, and their index."""
        ...

    async def authorize(self, target: str, client_uri: str, client_serial: str) -> tuple[bool, str]:
        """Whether intentions let `client_uri` connect to `target`, and the agent's reason."""
        ...

    async def connect_instances(self, service: str, datacenter: str = "") -> list[Instance]:
        """Where `service`'s Connect-capable instances listen."""
        ...


def _verify(settings: ConsulSettings) -> ssl.SSLContext | bool:
    if not settings.address.startswith("https://"):
        return True
    if not settings.verify:
        return False
    ctx = ssl.create_default_context(cafile=settings.cacert)
    if settings.client_cert:
        ctx.load_cert_chain(settings.client_cert, settings.client_key)
    return ctx


class AgentAPI:
    """Async client of the local agent. Call `aclose()` when done."""

    def __init__(
        self,
        settings: ConsulSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.settings = settings
        headers = {"User-Agent": "gitkv-connect-proxy"}
        if settings.token:
            headers["X-Consul-Token"] = settings.token
        self._http = httpx.AsyncClient(
            base_url=settings.address,
            headers=headers,
            timeout=httpx.Timeout(10.0),
            verify=_verify(settings),
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=32, max_connections=64),
        )
        self._clock = clock
        self._no_health_connect_until = 0.0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200,),
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            resp = await self._http.request(
                method,
                path,
                params=params,
                content=None if body is None else msgspec.json.encode(body),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise ClusterError(
                f"cannot reach the agent at {self.settings.address} for {method} {path}: "
                f"{exc or type(exc).__name__} (set -http-addr or CONSUL_HTTP_ADDR)"
            ) from exc
        if resp.status_code not in ok:
            text = resp.text.strip()[:300] or "(empty body)"
            raise ClusterError(
                f"the agent answered {resp.status_code} to {method} {path}: {text}",
                resp.status_code,
            )
        return resp

    @staticmethod
    def _decode(resp: httpx.Response) -> Any:
        return msgspec.json.decode(resp.content) if resp.content else None

    async def _blocking(self, path: str, index: int, wait: float) -> tuple[Any, int]:
        params = {}
        if index > 0:
            params = {"index": str(index), "wait": f"{int(wait * 1000)}ms"}
        resp = await self._request("GET", path, params=params, timeout=wait + wait / 16 + 10)
        try:
            new_index = int(resp.headers.get("X-Consul-Index", "0"))
        except ValueError:
            new_index = 0
        return self._decode(resp), new_index

    # -- registration -----------------------------------------------------------------

    async def agent_service(self, service_id: str) -> dict[str, Any] | None:
        resp = await self._request(
            "GET", "/v1/agent/service/" + quote(service_id, safe=""), ok=(200, 404)
        )
        return None if resp.status_code == 404 else self._decode(resp)

    async def agent_service_changed(
        self, service_id: str, digest: str, wait: float = BLOCK_WAIT
    ) -> tuple[dict[str, Any] | None, str]:
        """The registration once its ContentHash differs from `digest` (or `wait` ran out),
        and its hash; (None, "") when it is gone."""
        resp = await self._request(
            "GET",
            "/v1/agent/service/" + quote(service_id, safe=""),
            params={"hash": digest, "wait": f"{int(wait * 1000)}ms"} if digest else None,
            ok=(200, 404),
            timeout=wait + wait / 16 + 10,
        )
        if resp.status_code == 404:
            return None, ""
        body = self._decode(resp) or {}
        return body, str(body.get("ContentHash") or resp.headers.get("X-Consul-ContentHash", ""))

    async def agent_services(self) -> dict[str, dict[str, Any]]:
        return dict(self._decode(await self._request("GET", "/v1/agent/services")) or {})

    # -- Connect CA ---------------------------------------------------------------------

    async def roots(self, index: int = 0, wait: float = BLOCK_WAIT) -> tuple[dict[str, Any], int]:
        """`{"TrustDomain", "ActiveRootID", "Roots": [...]}` and its index."""
        body, new_index = await self._blocking("/v1/agent/connect/ca/roots", index, wait)
        return dict(body or {}), new_index

    async def leaf(
        self, service: str, index: int = 0, wait: float = BLOCK_WAIT
    ) -> tuple[dict[str, Any], int]:
        """`{"CertPEM", "PrivateKeyPEM", "SerialNumber", "ServiceURI", ...}` and its index."""
        path = "/v1/agent/connect/ca/leaf/" + quote(service, safe="")
        body, new_index = await self._blocking(path, index, wait)
        return dict(body or {}), new_index

    async def authorize(self, target: str, client_uri: str, client_serial: str) -> tuple[bool, str]:
        body = {"Target": target, "ClientCertURI": client_uri, "ClientCertSerial": client_serial}
        answer = self._decode(await self._request("POST", "/v1/agent/connect/authorize", body=body))
        answer = answer or {}
        return bool(answer.get("Authorized")), str(answer.get("Reason") or "")

    # -- discovery ----------------------------------------------------------------------

    async def connect_instances(self, service: str, datacenter: str = "") -> list[Instance]:
        """Passing Connect-capable instances of `service`.

        `/v1/health/connect/<service>?passing` first. When the agent lacks it (404), or
        knows no Connect instance (an agent whose catalog does not link proxies to their
        destination answers `[]`), the sidecars registered under Consul's default name
        `<service>-sidecar-proxy` in the catalog.
        """
        params = {"dc": datacenter} if datacenter else {}
        if self._clock() >= self._no_health_connect_until:
            resp = await self._request(
                "GET",
                "/v1/health/connect/" + quote(service, safe=""),
                params={**params, "passing": "1"},
                ok=(200, 404),
            )
            if resp.status_code == 200:
                found = instances_from_health(self._decode(resp))
                if found:
                    return found
            else:
                self._no_health_connect_until = self._clock() + HEALTH_CONNECT_RETRY
        resp = await self._request(
            "GET", "/v1/catalog/service/" + quote(service + SIDECAR_SUFFIX, safe=""), params=params
        )
        return instances_from_catalog(self._decode(resp))
