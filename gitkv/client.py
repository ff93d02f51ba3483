"""A thin synchronous client for the public Consul `/v1` HTTP API.

Only documented endpoints and fields are used, so the same code talks to the bundled agent and
to HashiCorp Consul. Environment conventions follow the `consul` CLI:

- `CONSUL_HTTP_ADDR`: `host:port`, `http://host:port` or `https://host:port`
  (default `127.0.0.1:8500`); `CONSUL_HTTP_SSL=true` switches a scheme-less address to https.
- `CONSUL_HTTP_TOKEN`, else the first line of `CONSUL_HTTP_TOKEN_FILE`, sent as
  `X-Consul-Token` (never printed).
- `CONSUL_CACERT`, `CONSUL_CLIENT_CERT` + `CONSUL_CLIENT_KEY`, `CONSUL_HTTP_SSL_VERIFY=false`.

Every failure becomes a `ClusterError` whose message says what to do about it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import msgspec

from gitkv.errors import ClusterError

__all__ = ["ConsulClient", "ConsulSettings", "TxnResult", "normalize_address"]

DEFAULT_ADDRESS = "http://127.0.0.1:8500"
_JSON = {"Content-Type": "application/json"}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def normalize_address(address: str | None, *, ssl_default: bool = False) -> str:
    """`scheme://host:port` from a `CONSUL_HTTP_ADDR`-style value (scheme optional)."""
    addr = (address or "").strip().rstrip("/")
    if not addr:
        return DEFAULT_ADDRESS.replace("http://", "https://") if ssl_default else DEFAULT_ADDRESS
    if "://" not in addr:
        addr = ("https://" if ssl_default else "http://") + addr
    parts = urlsplit(addr)
    if parts.scheme not in {"http", "https"}:
        raise ClusterError(f"unsupported Consul address {address!r}: use http:// or https://")
    return addr


@dataclass(frozen=True)
class ConsulSettings:
    """Connection settings, resolved once from the environment and reused per agent address."""

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    cacert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True
    timeout: float = 30.0

    @classmethod
    def from_env(
        cls, address: str | None = None, env: Mapping[str, str] | None = None
    ) -> ConsulSettings:
        """Settings from `CONSUL_*` variables; an explicit `address` wins over the env."""
        env = os.environ if env is None else env
        ssl_default = _truthy(env.get("CONSUL_HTTP_SSL"))
        token = env.get("CONSUL_HTTP_TOKEN") or None
        token_file = env.get("CONSUL_HTTP_TOKEN_FILE")
        if not token and token_file:
            try:
                token = Path(token_file).read_text().strip().splitlines()[0].strip() or None
            except (OSError, IndexError) as exc:
                raise ClusterError(
                    f"cannot read CONSUL_HTTP_TOKEN_FILE {token_file}: {exc}"
                ) from exc
        verify_env = env.get("CONSUL_HTTP_SSL_VERIFY")
        return cls(
            address=normalize_address(
                address or env.get("CONSUL_HTTP_ADDR"), ssl_default=ssl_default
            ),
            token=token,
            cacert=env.get("CONSUL_CACERT") or None,
            client_cert=env.get("CONSUL_CLIENT_CERT") or None,
            client_key=env.get("CONSUL_CLIENT_KEY") or None,
            verify=not (verify_env is not None and not _truthy(verify_env)),
        )

    def with_address(self, address: str) -> ConsulSettings:
        scheme = urlsplit(self.address).scheme
        return replace(self, address=normalize_address(address, ssl_default=scheme == "https"))

    def __repr__(self) -> str:  # the token must never reach logs or tracebacks
        masked = "***" if self.token else None
        return f"ConsulSettings(address={self.address!r}, token={masked})"


def _ssl_verify(settings: ConsulSettings) -> ssl.SSLContext | bool:
    if not settings.address.startswith("https://"):
        return True
    if not settings.verify:
        return False
    ctx = ssl.create_default_context(cafile=settings.cacert)
    if settings.client_cert:
        ctx.load_cert_chain(settings.client_cert, settings.client_key)
    return ctx


@dataclass(frozen=True)
class TxnResult:
    """The outcome of `PUT /v1/txn`: `ok` and the per-op `results`, or the `errors`
    (`[{"OpIndex": n, "What": "..."}]`) of a rolled-back transaction."""

    ok: bool
    results: tuple[dict[str, Any], ...] = ()
    errors: tuple[dict[str, Any], ...] = ()


class ConsulClient:
    """Blocking `/v1` client. Use as a context manager or call `close()`.

    :param settings: where and how to connect (see `ConsulSettings.from_env`).
    :param transport: an httpx transport (tests pass `httpx.MockTransport`).
    """

    def __init__(
        self,
        settings: ConsulSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings or ConsulSettings.from_env()
        self._transport = transport
        headers = {"User-Agent": "gitkv"}
        if self.settings.token:
            headers["X-Consul-Token"] = self.settings.token
        self._http = httpx.Client(
            base_url=self.settings.address,
            headers=headers,
            timeout=self.settings.timeout,
            verify=_ssl_verify(self.settings),
            transport=transport,
        )

    @property
    def address(self) -> str:
        return self.settings.address

    def for_address(self, address: str) -> ConsulClient:
        """A client for another agent (service registration), same token and TLS settings."""
        return ConsulClient(self.settings.with_address(address), transport=self._transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConsulClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport and error mapping -------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (200,),
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; statuses outside `ok` raise `ClusterError`."""
        try:
            resp = self._http.request(
                method, path, params=params, json=json, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ClusterError(
                f"Consul at {self.address} did not answer {method} {path} in time: {exc}"
            ) from exc
        except httpx.TransportError as exc:
            raise ClusterError(
                f"cannot reach Consul at {self.address}: {exc or type(exc).__name__} "
                "(is the agent running? set CONSUL_HTTP_ADDR or the datacenter's address)"
            ) from exc
        if resp.status_code not in ok:
            raise self._status_error(method, path, resp)
        return resp

    def _status_error(self, method: str, path: str, resp: httpx.Response) -> ClusterError:
        body = resp.text.strip()[:500]
        where = f"{method} {self.address}{path}"
        status = resp.status_code
        if status == 403:
            hint = (
                "the token lacks a permission"
                if self.settings.token
                else "no token was sent; set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE"
            )
            return ClusterError(
                f"permission denied for {where}: {body or 'Permission denied'} ({hint}; "
                "set CONSUL_HTTP_TOKEN to a token with the needed rules)",
                status,
            )
        if status == 401:
            return ClusterError(f"{where} refused: {body or 'unauthorized'}", status)
        if status == 413:
            return ClusterError(f"{where} too large: {body}", status)
        if status == 429:
            return ClusterError(f"Consul rate-limited {where}: {body}; retry later", status)
        return ClusterError(
            f"Consul answered {status} to {where}: {body or '(empty body)'}", status
        )

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.request(method, path, **kw)
        return resp.json() if resp.content else None

    # -- KV and transactions ----------------------------------------------------------------

    def kv_list(self, prefix: str) -> list[dict[str, Any]]:
        """Every entry under `prefix` in one request (`?recurse`); `[]` when none (404)."""
        resp = self.request("GET", "/v1/kv/" + quote(prefix), params={"recurse": ""}, ok=(200, 404))
        if resp.status_code == 404 or not resp.content:
            return []
        return list(msgspec.json.decode(resp.content) or [])

    def kv_get(self, key: str) -> dict[str, Any] | None:
        resp = self.request("GET", "/v1/kv/" + quote(key), ok=(200, 404))
        if resp.status_code == 404 or not resp.content:
            return None
        items = resp.json() or []
        return items[0] if items else None

    def kv_put(self, key: str, value: bytes, flags: int = 0, cas: int | None = None) -> bool:
        params = {"flags": str(flags)} if flags else {}
        if cas is not None:
            params["cas"] = str(cas)
        return bool(self._json("PUT", "/v1/kv/" + quote(key), params=params, content=value))

    def kv_delete(self, key: str, cas: int | None = None) -> bool:
        params = {"cas": str(cas)} if cas is not None else {}
        return bool(self._json("DELETE", "/v1/kv/" + quote(key), params=params))

    def txn(self, ops: list[dict[str, Any]]) -> TxnResult:
        """`PUT /v1/txn`. A 409 (rolled back, nothing applied) is returned, not raised."""
        # msgspec encodes/decodes these bodies several times faster than the json module;
        # with thousands of keys per apply that is most of the client's time.
        resp = self.request(
            "PUT", "/v1/txn", content=msgspec.json.encode(ops), ok=(200, 409), headers=_JSON
        )
        body = (msgspec.json.decode(resp.content) if resp.content else None) or {}
        return TxnResult(
            ok=resp.status_code == 200,
            results=tuple(body.get("Results") or ()),
            errors=tuple(body.get("Errors") or ()),
        )

    # -- agent ----------------------------------------------------------------------------

    def agent_self(self) -> dict[str, Any]:
        return self._json("GET", "/v1/agent/self") or {}

    def agent_members(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/agent/members") or [])

    def agent_services(self) -> dict[str, dict[str, Any]]:
        return dict(self._json("GET", "/v1/agent/services") or {})

    def agent_checks(self) -> dict[str, dict[str, Any]]:
        return dict(self._json("GET", "/v1/agent/checks") or {})

    def agent_service_register(self, body: dict[str, Any]) -> None:
        # replace-existing-checks: the registration body is the whole truth about its checks.
        self.request(
            "PUT",
            "/v1/agent/service/register",
            params={"replace-existing-checks": "true"},
            json=body,
        )

    def agent_service_deregister(self, service_id: str) -> None:
        self.request("PUT", "/v1/agent/service/deregister/" + quote(service_id, safe=""))

    # -- catalog --------------------------------------------------------------------------

    def catalog_nodes(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/catalog/nodes") or [])

    def catalog_node(self, node: str) -> dict[str, Any] | None:
        """`{"Node": {...}, "Services": {id: AgentService}}`, or None for an unknown node."""
        return self._json("GET", "/v1/catalog/node/" + quote(node, safe=""))

    def health_node(self, node: str) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/health/node/" + quote(node, safe="")) or [])

    def catalog_register(self, body: dict[str, Any]) -> None:
        self.request("PUT", "/v1/catalog/register", json=body)

    def catalog_deregister(self, body: dict[str, Any]) -> None:
        self.request("PUT", "/v1/catalog/deregister", json=body)

    # -- ACL ------------------------------------------------------------------------------

    def acl_list(self, what: str) -> list[dict[str, Any]] | None:
        """`GET /v1/acl/<what>` (`policies`, `roles`, `tokens`); None when ACLs are disabled."""
        resp = self.request("GET", f"/v1/acl/{what}", ok=(200, 401))
        if resp.status_code == 401:
            return None
        return list(resp.json() or [])

    def acl_read(self, what: str, ident: str) -> dict[str, Any] | None:
        """`GET /v1/acl/<what>/<id>` (`policy`, `role`, `token`); None when it does not exist."""
        resp = self.request("GET", f"/v1/acl/{what}/{quote(ident, safe='')}", ok=(200, 403, 404))
        if resp.status_code != 200:
            if resp.status_code == 403 and "ACL not found" not in resp.text:
                raise self._status_error("GET", f"/v1/acl/{what}/{ident}", resp)
            return None
        return resp.json()

    def acl_write(
        self, what: str, body: dict[str, Any], ident: str | None = None
    ) -> dict[str, Any]:
        """Create (`ident` None) or replace an ACL object; returns the stored object."""
        path = f"/v1/acl/{what}" + (f"/{quote(ident, safe='')}" if ident else "")
        return self._json("PUT", path, json=body) or {}

    def acl_delete(self, what: str, ident: str) -> None:
        self.request("DELETE", f"/v1/acl/{what}/{quote(ident, safe='')}")

    # -- config entries, prepared queries, auth methods, operator settings -----------------

    def config_list(self, kind: str) -> list[dict[str, Any]]:
        """`GET /v1/config/<kind>`: every entry of a kind, full bodies with ModifyIndex."""
        return list(self._json("GET", f"/v1/config/{quote(kind, safe='')}") or [])

    def config_write(self, body: dict[str, Any], cas: int) -> bool:
        """`PUT /v1/config?cas=<index>` (0: must not exist); False when the entry moved."""
        return self._json("PUT", "/v1/config", params={"cas": str(cas)}, json=body) is True

    def config_delete(self, kind: str, name: str, cas: int) -> bool:
        """`DELETE /v1/config/<kind>/<name>?cas=<index>`; False when the entry moved."""
        path = f"/v1/config/{quote(kind, safe='')}/{quote(name, safe='')}"
        answer = self._json("DELETE", path, params={"cas": str(cas)})
        # Consul answers a bare boolean to a CAS delete; accept its ConfigEntryDeleteResponse
        # shape too, which the RPC carries.
        return answer is True or (isinstance(answer, dict) and answer.get("Deleted") is True)

    def query_list(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/query") or [])

    def query_read(self, ident: str) -> dict[str, Any] | None:
        resp = self.request("GET", f"/v1/query/{quote(ident, safe='')}", ok=(200, 404))
        items = resp.json() if resp.status_code == 200 and resp.content else []
        return items[0] if items else None

    def query_write(self, body: dict[str, Any], ident: str | None = None) -> str:
        """Create (`POST /v1/query`, returns the new ID) or replace a prepared query."""
        if ident is None:
            return str((self._json("POST", "/v1/query", json=body) or {}).get("ID", ""))
        self.request("PUT", f"/v1/query/{quote(ident, safe='')}", json=body)
        return ident

    def query_delete(self, ident: str) -> None:
        self.request("DELETE", f"/v1/query/{quote(ident, safe='')}")

    def autopilot_read(self) -> dict[str, Any]:
        return self._json("GET", "/v1/operator/autopilot/configuration") or {}

    def autopilot_write(self, body: dict[str, Any], cas: int) -> bool:
        """`PUT /v1/operator/autopilot/configuration?cas=<index>`; False when it moved."""
        path = "/v1/operator/autopilot/configuration"
        return self._json("PUT", path, params={"cas": str(cas)}, json=body) is True

    def ca_config_read(self) -> dict[str, Any]:
        return self._json("GET", "/v1/connect/ca/configuration") or {}

    def ca_config_write(self, body: dict[str, Any]) -> None:
        self.request("PUT", "/v1/connect/ca/configuration", json=body)

    def catalog_services(self) -> dict[str, list[str]]:
        return dict(self._json("GET", "/v1/catalog/services") or {})
