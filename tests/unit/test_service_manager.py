"""The service manager (agent/service_manager.py) on in-memory twins: a local sidecar's
registration reaches the catalog with proxy-defaults and service-defaults merged in, the agent
API shows the same, an entry change re-merges (the watch fires, the next sync writes it), and
with central config off nothing is merged."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from agent.config import load_config
from agent.http import agent_ep, catalog
from agent.http.deps import HTTPDeps
from agent.local import LocalState
from agent.mesh_entries import StoreEntries
from agent.state.commands import ConfigEntrySet
from tests.harness import areas
from tests.harness.twins import LocalHostTwin, http_deps

PROXY_DEFAULTS = {
    "Kind": "proxy-defaults",
    "Name": "global",
    "Config": {"protocol": "http", "foo": "bar"},
    "Mode": "transparent",
    "MeshGateway": {"Mode": "local"},
    "Expose": {"Checks": True},
}


def _deps(central: bool = True) -> HTTPDeps:
    deps = http_deps(load_config(["-dev"], environ={}))
    host = LocalHostTwin(config=deps.identity.config, writer=deps.writer, store=deps.store)
    source = StoreEntries(deps.store) if central else None
    return dataclasses.replace(deps, local=LocalState(host, source))


def _write_entry(deps: HTTPDeps, entry: dict) -> None:
    asyncio.run(deps.writer.write(ConfigEntrySet(Entry=entry)))


def _call(deps: HTTPDeps, method: str, path: str, body: Any = None, query: bytes = b"") -> Any:
    area = {"agent": agent_ep, "catalog": catalog}[path.split("/")[2]]
    raw = json.dumps(body).encode() if body is not None else b""
    answer = areas.call(area.register, deps, method, path, query, raw)
    return json.loads(answer.body) if answer.body else None


def _register_web(deps: HTTPDeps) -> None:
    body = {
        "Name": "web",
        "Port": 8080,
        "Connect": {"SidecarService": {"Proxy": {"Config": {"local": 1, "protocol": "tcp"}}}},
    }
    _call(deps, "PUT", "/v1/agent/service/register", body)
    asyncio.run(deps.local.flush())


def _catalog_proxy(deps: HTTPDeps) -> dict:
    (item,) = _call(deps, "GET", "/v1/catalog/service/web-sidecar-proxy")
    return item["ServiceProxy"]


def test_the_catalog_holds_the_merged_sidecar() -> None:
    deps = _deps()
    _write_entry(deps, PROXY_DEFAULTS)
    _write_entry(deps, {"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"})
    _register_web(deps)
    proxy = _catalog_proxy(deps)
    # the registration wins where it says something; the rest comes from the entries
    assert proxy["Config"] == {"local": 1, "protocol": "tcp", "foo": "bar"}
    assert proxy["Mode"] == "transparent"
    assert proxy["MeshGateway"] == {"Mode": "local"}
    assert proxy["Expose"] == {"Checks": True}
    shown = _call(deps, "GET", "/v1/agent/service/web-sidecar-proxy")
    assert shown["Proxy"]["Config"] == proxy["Config"]
    assert shown["Proxy"]["Mode"] == "transparent"
    # the typical service is untouched, and the persisted registration stays as sent
    (web,) = _call(deps, "GET", "/v1/catalog/service/web")
    assert "Config" not in web["ServiceProxy"] and web["ServiceProxy"]["Mode"] == ""
    assert deps.local.services["web-sidecar-proxy"].record["Proxy"]["Config"] == {
        "local": 1,
        "protocol": "tcp",
    }


def test_an_entry_change_wakes_the_watch_and_the_next_sync_writes_it() -> None:
    deps = _deps()
    _register_web(deps)
    assert _catalog_proxy(deps)["Config"] == {"local": 1, "protocol": "tcp"}
    local = deps.local

    async def run() -> None:
        fired = asyncio.Event()
        watch = asyncio.create_task(
            local.manager.watch(lambda: list(local.services.values()), fired.set, timeout=5)
        )
        try:
            for _ in range(20):  # let the watch take its first look
                await asyncio.sleep(0)
            await deps.writer.write(ConfigEntrySet(Entry=PROXY_DEFAULTS))
            await asyncio.wait_for(fired.wait(), 5)
        finally:
            watch.cancel()
        await local.flush()

    asyncio.run(run())
    proxy = _catalog_proxy(deps)
    assert proxy["Config"] == {"local": 1, "protocol": "tcp", "foo": "bar"}
    assert proxy["Mode"] == "transparent"


def test_an_unrelated_entry_does_not_fire_the_watch() -> None:
    deps = _deps()
    _register_web(deps)
    local = deps.local

    async def run() -> bool:
        fired = asyncio.Event()
        watch = asyncio.create_task(
            local.manager.watch(lambda: list(local.services.values()), fired.set, timeout=5)
        )
        try:
            for _ in range(20):
                await asyncio.sleep(0)
            await deps.writer.write(
                ConfigEntrySet(Entry={"Kind": "service-defaults", "Name": "other"})
            )
            for _ in range(20):  # the watch wakes, merges, finds nothing changed
                await asyncio.sleep(0)
            quiet = not fired.is_set()
            await deps.writer.write(ConfigEntrySet(Entry=PROXY_DEFAULTS))
            await asyncio.wait_for(fired.wait(), 5)  # this one changes the merge
            return quiet
        finally:
            watch.cancel()

    assert asyncio.run(run())


def test_central_config_off_merges_nothing() -> None:
    deps = _deps(central=False)
    _write_entry(deps, PROXY_DEFAULTS)
    _register_web(deps)
    proxy = _catalog_proxy(deps)
    assert proxy["Config"] == {"local": 1, "protocol": "tcp"}
    assert proxy["Mode"] == "" and proxy["MeshGateway"] == {}
    shown = _call(deps, "GET", "/v1/agent/service/web-sidecar-proxy")
    assert shown["Proxy"]["Config"] == {"local": 1, "protocol": "tcp"}
    assert "Mode" not in shown["Proxy"]


def test_enable_central_service_config_defaults_on() -> None:
    assert load_config(["-dev"], environ={}).enable_central_service_config is True
    off = load_config(["-dev", "-hcl", "enable_central_service_config = false"], environ={})
    assert off.enable_central_service_config is False
    assert "enable_central_service_config" not in off.ignored_keys


def test_a_proxy_registered_after_the_watch_started_is_re_merged_too() -> None:
    deps = _deps()
    local = deps.local

    async def run() -> None:
        fired = asyncio.Event()
        watch = asyncio.create_task(
            local.manager.watch(lambda: list(local.services.values()), fired.set, timeout=5)
        )
        try:
            for _ in range(20):  # the watch idles: no proxy yet
                await asyncio.sleep(0)
            body = {"Name": "web", "Port": 8080, "Connect": {"SidecarService": {}}}
            local.add_service(body)
            await local.flush()
            await deps.writer.write(ConfigEntrySet(Entry=PROXY_DEFAULTS))
            await asyncio.wait_for(fired.wait(), 5)
        finally:
            watch.cancel()
        await local.flush()

    asyncio.run(run())
    assert _catalog_proxy(deps)["Config"] == {"protocol": "http", "foo": "bar"}
