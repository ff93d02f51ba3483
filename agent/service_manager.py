"""Consul's service manager: central service config merged into this agent's own proxies and
gateways, so that what the agent shows and what anti-entropy writes into the catalog is the
merged registration.

With `enable_central_service_config` (Consul's default: on) a connect-proxy or gateway
registered with this agent takes what `proxy-defaults/global` and its destination's
`service-defaults` add (`agent.connect.central_config`); the registration as it was sent stays
the source of truth (it is what is persisted), the merged one is derived from it and the
entries of the moment. When an entry changes the merged result, `watch` tells the local state,
which syncs the catalog again and wakes `/v1/agent/service/<id>?hash=` readers (their
ContentHash changed). With the setting off nothing is merged, as Consul registers such
services directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from agent import render
from agent.connect.central_config import GATEWAY_KINDS, PROXY_KIND, merged_proxy
from agent.state.structs import ConnectProxyConfig

if TYPE_CHECKING:
    from agent.services import ServiceDefinition

log = logging.getLogger("agent.local")

Entries = Mapping[tuple[str, str], Mapping[str, Any]]
_IDLE = 1.0  # how often a state without proxies or gateways looks again


class CentralConfig(Protocol):
    """proxy-defaults and service-defaults: the store's on a server, a server's on a client."""

    async def entries(self) -> Entries: ...

    def version(self) -> int: ...

    async def wait_change(self, version: int, timeout: float) -> int:
        """Return once `version()` differs from `version` (or at `timeout`), with it."""
        ...


def merges(defn: ServiceDefinition) -> bool:
    kind = defn.service.get("Kind") or ""
    return kind == PROXY_KIND or kind in GATEWAY_KINDS


def merged_definition(defn: ServiceDefinition, entries: Entries) -> ServiceDefinition:
    """`defn` with the central config merged into both its views: the agent API's `Proxy`
    and the catalog record's. A service that takes no central config comes back as it is."""
    if not merges(defn) or "Proxy" not in defn.service:
        return defn
    kind, name = defn.service["Kind"], defn.name
    service = dict(defn.service)
    service["Proxy"] = merged_proxy(entries, kind, name, service["Proxy"], agent=True)
    record = dict(defn.record)
    stored = msgspec.convert(record.get("Proxy") or {}, ConnectProxyConfig)
    catalog_view = merged_proxy(entries, kind, name, render.proxy(stored))
    record["Proxy"] = msgspec.to_builtins(msgspec.convert(catalog_view, ConnectProxyConfig))
    return replace(defn, service=service, record=record)


class ServiceManager:
    """The merge for a local state; `source` None when central config is off."""

    def __init__(self, source: CentralConfig | None) -> None:
        self.source = source

    async def merged(self, defn: ServiceDefinition) -> ServiceDefinition:
        if self.source is None or not merges(defn):
            return defn
        return merged_definition(defn, await self.source.entries())

    async def merged_all(self, defns: Iterable[ServiceDefinition]) -> list[ServiceDefinition]:
        defns = list(defns)
        if self.source is None or not any(merges(d) for d in defns):
            return defns
        entries = await self.source.entries()
        return [merged_definition(d, entries) for d in defns]

    async def watch(
        self,
        services: Callable[[], Iterable[ServiceDefinition]],
        changed: Callable[[], None],
        timeout: float = 60.0,
    ) -> None:
        """Run until cancelled: call `changed` whenever an entry change alters the merged
        registration of one of `services()` (Consul re-registers on its config watch)."""
        source = self.source
        if source is None:
            return
        seen: dict[str, tuple[dict, dict]] = {}
        version = -1
        while True:
            if not any(merges(d) for d in services()):
                # Nothing here takes central config: no reason to follow the entries.
                seen, version = {}, -1
                await asyncio.sleep(_IDLE)
                continue
            try:
                version = await source.wait_change(version, timeout)
                merged = await self.merged_all(d for d in services() if merges(d))
            except Exception as exc:  # keep watching: the next change must not be missed
                log.warning("central service config: %s", exc)
                await asyncio.sleep(_IDLE)
                continue
            now = {
                d.id: (d.service.get("Proxy") or {}, d.record.get("Proxy") or {}) for d in merged
            }
            if any(sid in seen and seen[sid] != view for sid, view in now.items()):
                log.info("central service config changed: re-registering local proxies")
                changed()
            seen = now
