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


def _views(defn: ServiceDefinition) -> tuple[Any, Any]:
    return defn.service.get("Proxy") or {}, defn.record.get("Proxy") or {}


class ServiceManager:
    """The merge for a local state; `source` None when central config is off."""

    def __init__(self, source: CentralConfig | None) -> None:
        self.source = source
        # service ID -> the merged Proxy views the last sync wrote (for `watch` to compare)
        self.synced: dict[str, tuple[Any, Any]] = {}

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

    async def for_sync(self, defns: Iterable[ServiceDefinition]) -> list[ServiceDefinition]:
        """`merged_all` for an anti-entropy pass, remembering what it is about to write."""
        merged = await self.merged_all(defns)
        self.synced = {d.id: _views(d) for d in merged if merges(d)}
        return merged

    async def watch(
        self,
        services: Callable[[], Iterable[ServiceDefinition]],
        changed: Callable[[], None],
        timeout: float = 60.0,
    ) -> None:
        """Run until cancelled: call `changed` whenever the entries make a local proxy's or
        gateway's merged registration differ from what the last sync wrote (Consul
        re-registers on its config watch)."""
        source = self.source
        if source is None:
            return
        version = -1
        while True:
            if not any(merges(d) for d in services()):
                # Nothing here takes central config: no reason to follow the entries.
                version = -1
                await asyncio.sleep(_IDLE)
                continue
            try:
                version = await source.wait_change(version, timeout)
                merged = await self.merged_all(d for d in services() if merges(d))
            except Exception as exc:  # keep watching: the next change must not be missed
                log.warning("central service config: %s", exc)
                await asyncio.sleep(_IDLE)
                continue
            if any(self.synced.get(d.id) != _views(d) for d in merged):
                log.info("central service config changed: re-registering local proxies")
                changed()
