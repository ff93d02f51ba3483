"""`/v1/agent/*`: this agent's own view — config, members, local services and checks.

Agent endpoints answer from local state and carry no index headers (Consul's behaviour).
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from agent.checks import CheckError
from agent.filter import FilterError, compile_filter
from agent.http.app import HTTPError, Request, Response, Router, json_response, text_response
from agent.http.blocking import query_options
from agent.http.bodies import CHECK_DEFINITION, CHECK_UPDATE, SERVICE_DEFINITION
from agent.http.gojson import conform
from agent.logstream import broadcaster
from agent.membership import serf_tags
from agent.services import ServiceError, content_hash

if TYPE_CHECKING:
    from agent.cluster import ClusterManager
    from agent.http.deps import AgentControl, HTTPDeps
    from agent.local import LocalState
    from agent.metrics import Metrics
    from agent.ports import AgentIdentity, Leadership
    from agent.raft.node import RaftNode
    from agent.services import ServiceDefinition
    from agent.state.store import Store

__all__ = ["AgentPorts", "member", "register"]

_EMPTY = b""
_TRUE_VALUES = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE_VALUES = {"0", "f", "F", "false", "FALSE", "False"}


@dataclass(frozen=True)
class AgentPorts:
    """What `/v1/agent/*` uses: who this agent is, its local services and checks, its
    lifecycle and membership (`control`), the gossip pools (`cluster`, None in twins) and, for
    `/v1/agent/self` and the metrics, the store, consensus (servers only) and leadership."""

    identity: AgentIdentity
    local: LocalState
    control: AgentControl
    cluster: ClusterManager | None
    store: Store
    consensus: RaftNode | None
    leadership: Leadership
    metrics: Metrics


def _ok() -> Response:
    return Response(_EMPTY, 200)


def _filtered(req: Request, items: list[dict]) -> list[dict]:
    expression = req.get("filter") if req.raw_query else None
    if not expression:
        return items
    try:
        return compile_filter(expression).select(items)
    except FilterError as exc:
        raise HTTPError(400, f"Failed to create boolean expression evaluator: {exc}") from None


def member(identity: AgentIdentity, cluster: ClusterManager | None) -> dict:
    """This agent as a member, from gossip when it runs (else as it would gossip itself)."""
    gossip = cluster.gossip if cluster is not None else None
    if gossip is not None:
        return gossip.local_member().api_dict()
    cfg = identity.config
    return {
        "Name": identity.node_name,
        "Addr": identity.address,
        "Port": cfg.ports.serf_lan if cfg.ports.serf_lan > 0 else 8301,
        "Tags": serf_tags(identity),
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    }


def _stats(
    identity: AgentIdentity,
    local: LocalState,
    cluster: ClusterManager | None,
    store: Store,
    consensus: RaftNode | None,
    leadership: Leadership,
) -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    tasks = len(asyncio.all_tasks())
    wan = cluster.wan if cluster is not None else None
    return {
        "agent": {
            "check_monitors": str(sum(1 for c in local.checks.values() if c.runner is not None)),
            "check_ttls": str(sum(1 for c in local.checks.values() if c.definition.is_ttl)),
            "checks": str(len(local.checks)),
            "services": str(len(local.services)),
        },
        "build": {
            "prerelease": "",
            "revision": "gitkv",
            "version": identity.version,
            "version_metadata": "",
        },
        "consul": {
            "server": str(identity.config.server).lower(),
            "leader": str(bool(consensus and consensus.is_leader)).lower(),
            "leader_addr": leadership.leader_address,
            "bootstrap": str(identity.config.bootstrap or identity.config.dev).lower(),
            "known_datacenters": str(len(wan.datacenters()) if wan is not None else 1),
        },
        "raft": {
            "applied_index": str(store.last_index),
            "commit_index": str(store.last_index),
            "last_log_index": str(consensus.last_index if consensus else 0),
            "state": "Leader" if consensus and consensus.is_leader else "Follower",
            "num_peers": "0",
            "term": str(consensus.term if consensus else 0),
        },
        "runtime": {
            "arch": platform.machine(),
            "os": sys.platform,
            "version": f"python{platform.python_version()}",
            "cpu_count": str(os.cpu_count() or 1),
            "goroutines": str(tasks),
            "max_procs": str(os.cpu_count() or 1),
            "max_rss_kb": str(usage.ru_maxrss),
        },
        "serf_lan": {"members": "1", "failed": "0", "left": "0", "health_score": "0"},
        "kv": {"keys": str(len(store.kv))},
    }


async def agent_self(ports: AgentPorts, req: Request, _: str) -> Response:
    identity = ports.identity
    summary = identity.config.summary()
    config = summary.get("Config", {})
    config.update(
        {
            "NodeID": identity.node_id,
            "Revision": "gitkv",
            "Version": identity.version,
            "BuildDate": "2026-01-01T00:00:00Z",
        }
    )
    return json_response(
        req,
        {
            "Config": config,
            "DebugConfig": summary.get("DebugConfig", {}),
            "Coord": {"Vec": [0.0] * 8, "Error": 1.5, "Adjustment": 0.0, "Height": 1e-05},
            "Member": member(identity, ports.cluster),
            "Stats": _stats(
                identity, ports.local, ports.cluster, ports.store, ports.consensus, ports.leadership
            ),
            "Meta": {"consul-network-segment": "", "consul-version": identity.version}
            | dict(identity.config.node_meta),
            "xDS": {"SupportedProxies": {}, "Port": -1, "Ports": {"Plaintext": -1, "TLS": -1}},
        },
    )


async def agent_version(ports: AgentPorts, req: Request, _: str) -> Response:
    identity = ports.identity
    return json_response(
        req,
        {
            "SHA": "gitkv",
            "BuildDate": "2026-01-01T00:00:00Z",
            "HumanVersion": identity.version,
            "FIPS": "",
        },
    )


async def agent_host(ports: AgentPorts, req: Request, _: str) -> Response:
    identity = ports.identity
    uname = platform.uname()
    return json_response(
        req,
        {
            "Memory": {},
            "CPU": [],
            "Host": {
                "hostname": uname.node,
                "os": uname.system.lower(),
                "platform": uname.system.lower(),
                "kernelVersion": uname.release,
                "uptime": int(time.time() - identity.started_at),
            },
            "Disk": {},
            "CollectionTime": int(time.time() * 1e9),
            "Errors": None,
        },
    )


async def agent_members(ports: AgentPorts, req: Request, _: str) -> Response:
    if req.has("wan") and req.get("segment"):
        raise HTTPError(400, "Cannot provide a segment with wan=true")
    if req.has("wan"):
        return json_response(
            req, _filtered(req, _wan_members(ports.identity, ports.control, ports.cluster))
        )
    members = ports.control.members() or [member(ports.identity, ports.cluster)]
    return json_response(req, _filtered(req, members))


def _wan_members(
    identity: AgentIdentity, control: AgentControl, cluster: ClusterManager | None
) -> list[dict]:
    """Servers show their WAN pool; clients are in none. A server whose WAN pool could not
    start shows what it would gossip there: its datacenter's servers, named node.dc."""
    if not identity.config.server:
        return []
    if cluster is not None and cluster.wan is not None:
        return control.wan_members()
    return [
        m
        | {
            "Name": f"{m['Name']}.{m['Tags'].get('dc', '')}",
            "Port": int(m["Tags"].get("wan_join_port", 8302)),
        }
        for m in control.members() or [member(identity, cluster)]
        if m["Tags"].get("role") == "consul"
    ]


async def agent_services(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    rendered = [local.render_service(d) for d in local.services.values()]
    rendered = _filtered(req, rendered)
    return json_response(req, {s["ID"]: s for s in rendered})


async def agent_service(ports: AgentPorts, req: Request, service_id: str) -> Response:
    local = ports.local
    defn = local.services.get(service_id)
    if defn is None:
        raise HTTPError(404, f"unknown service ID: {service_id}")
    body = local.render_service(defn)
    digest = content_hash(body)
    wanted = req.get("hash") if req.raw_query else None
    if wanted and wanted == digest:
        # hash-based blocking: park until the definition changes or wait runs out
        opts = query_options(req)
        deadline = time.monotonic() + opts.wait
        while (remaining := deadline - time.monotonic()) > 0:
            if not await local.wait_change(remaining):
                break
            defn = local.services.get(service_id)
            if defn is None:
                raise HTTPError(404, f"unknown service ID: {service_id}")
            body = local.render_service(defn)
            digest = content_hash(body)
            if digest != wanted:
                break
    body["ContentHash"] = digest
    return json_response(req, body, [(b"x-consul-contenthash", digest.encode())])


async def agent_checks(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    rendered = _filtered(req, [local.render_check(c) for c in local.checks.values()])
    return json_response(req, {c["CheckID"]: c for c in rendered})


async def service_register(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    body = await req.json()
    conform(body, SERVICE_DEFINITION)  # kinds and ranges; services.py checks the meaning
    replace = req.has("replace-existing-checks") and req.get("replace-existing-checks") in (
        "",
        "true",
        "1",
    )
    try:
        local.add_service(body, replace_checks=replace)
    except ServiceError as exc:
        raise HTTPError(exc.status, exc.message) from None
    except CheckError as exc:
        raise HTTPError(getattr(exc, "status", None) or 400, str(exc)) from None
    await local.flush()
    return _ok()


async def service_deregister(ports: AgentPorts, req: Request, service_id: str) -> Response:
    local = ports.local
    if not service_id:
        raise HTTPError(400, "Missing service ID")
    if not local.remove_service(service_id):
        raise HTTPError(
            404,
            f'Unknown service ID "{service_id}". Ensure that the service ID is passed, not the service name.',
        )
    await local.flush()
    return _ok()


def _enable_flag(req: Request) -> bool:
    raw = req.get("enable")
    if raw is None or raw == "":
        raise HTTPError(400, "Missing value for enable")
    if raw in _TRUE_VALUES:
        return True
    if raw in _FALSE_VALUES:
        return False
    raise HTTPError(400, f'Invalid value for enable: "{raw}"')


async def service_maintenance(ports: AgentPorts, req: Request, service_id: str) -> Response:
    local = ports.local
    if not service_id:
        raise HTTPError(400, "Missing service ID")
    enable = _enable_flag(req)
    if service_id not in local.services:
        raise HTTPError(404, f'Unknown service ID "{service_id}"')
    local.set_service_maintenance(service_id, enable, req.get("reason") or "")
    await local.flush()
    return _ok()


async def node_maintenance(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    enable = _enable_flag(req)
    local.set_node_maintenance(enable, req.get("reason") or "")
    await local.flush()
    return _ok()


async def check_register(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    body = await req.json()
    conform(body, CHECK_DEFINITION)
    try:
        local.add_check(body)
    except ServiceError as exc:
        raise HTTPError(
            404 if "does not exist" in exc.message else exc.status, exc.message
        ) from None
    except CheckError as exc:
        raise HTTPError(getattr(exc, "status", None) or 400, str(exc)) from None
    await local.flush()
    return _ok()


async def check_deregister(ports: AgentPorts, req: Request, check_id: str) -> Response:
    local = ports.local
    if not local.remove_check(check_id):
        raise HTTPError(
            404,
            f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.',
        )
    await local.flush()
    return _ok()


def _ttl(status: str):
    async def handler(ports: AgentPorts, req: Request, check_id: str) -> Response:
        note = req.get("note") or ""
        await _ttl_update(ports.local, check_id, status, note)
        return _ok()

    return handler


async def _ttl_update(local: LocalState, check_id: str, status: str, output: str) -> None:
    try:
        local.ttl_update(check_id, status, output)
    except KeyError:
        raise HTTPError(
            404,
            f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.',
        ) from None
    except ValueError as exc:
        raise HTTPError(500, str(exc)) from None
    await local.flush()


async def check_update(ports: AgentPorts, req: Request, check_id: str) -> Response:
    local = ports.local
    body = conform(await req.json(), CHECK_UPDATE) or {}
    status = body.get("Status", "")
    if status not in ("passing", "warning", "critical"):
        raise HTTPError(400, f"Invalid check status: '{status}'")
    await _ttl_update(local, check_id, status, body.get("Output", "") or "")
    return _ok()


async def agent_reload(ports: AgentPorts, req: Request, _: str) -> Response:
    control = ports.control
    try:
        control.reload()
    except Exception as exc:
        raise HTTPError(500, f"Failed to reload configs: {exc}") from None
    return _ok()


async def agent_leave(ports: AgentPorts, req: Request, _: str) -> Response:
    control = ports.control
    await control.graceful_leave()
    # Answer first, then stop: the caller is told the leave happened.
    asyncio.get_running_loop().call_later(0.2, control.request_stop)
    return _ok()


async def agent_join(ports: AgentPorts, req: Request, address: str) -> Response:
    control = ports.control
    await control.join(address, wan=req.has("wan"))
    return _ok()


async def agent_force_leave(ports: AgentPorts, req: Request, node: str) -> Response:
    control = ports.control
    if not node:
        raise HTTPError(500, f"agent: No node found with name '{node}'")
    await control.force_leave(node, prune=req.has("prune"), wan=req.has("wan"))
    return _ok()


def _refresh_gauges(
    m: Metrics,
    store: Store,
    consensus: RaftNode | None,
    local: LocalState,
    control: AgentControl,
) -> None:
    m.set_gauge("consul.runtime.num_goroutines", len(asyncio.all_tasks()))
    m.set_gauge("consul.runtime.alloc_bytes", _rss_bytes())
    m.set_gauge(
        "consul.runtime.sys_bytes", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    m.set_gauge("consul.server.isLeader", 1.0 if consensus and consensus.is_leader else 0.0)
    m.set_gauge("consul.raft.applied_index", store.last_index)
    m.set_gauge("consul.raft.last_index", consensus.last_index if consensus else 0)
    m.set_gauge("consul.kvs.keys", len(store.kv))
    m.set_gauge("consul.catalog.nodes", len(store.nodes))
    m.set_gauge("consul.agent.checks", len(local.checks))
    m.set_gauge("consul.agent.services", len(local.services))
    members = control.members()
    by_status = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}
    for code, name in by_status.items():
        m.set_gauge(
            "consul.serf.lan.members",
            sum(1 for x in members if x["Status"] == code),
            {"status": name},
        )


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def agent_metrics(ports: AgentPorts, req: Request, _: str) -> Response:
    metrics = ports.metrics
    _refresh_gauges(metrics, ports.store, ports.consensus, ports.local, ports.control)
    if req.get("format") == "prometheus":
        body = metrics.render_prometheus().encode()
        return Response(body, 200, b"text/plain; version=0.0.4; charset=utf-8")
    return json_response(req, metrics.render_json())


_LOG_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warn": 30, "error": 40}


async def agent_monitor(req: Request, _: str) -> Response:
    raw = (req.get("loglevel") or "info").lower()
    if raw not in _LOG_LEVELS:
        raise HTTPError(400, f"Unknown log level: {raw}")
    as_json = req.has("logjson") and req.get("logjson") not in ("false", "0")
    queue = broadcaster.subscribe(_LOG_LEVELS[raw], as_json)

    async def lines():
        try:
            while True:
                yield (await queue.get()).encode()
        finally:
            broadcaster.unsubscribe(queue)

    response = Response(b"", 200, b"text/plain; charset=utf-8")
    response.stream = lines()
    return response


def _aggregate(statuses: list[str]) -> str:
    for status in ("critical", "maintenance", "warning"):
        if status in statuses:
            return status
    return "passing"


_HEALTH_CODES = {"passing": 200, "warning": 429, "critical": 503, "maintenance": 503}


def _service_health(local: LocalState, defn: ServiceDefinition) -> tuple[str, dict]:
    checks = [
        local.render_check(c)
        for c in local.checks.values()
        if c.definition.service_id == defn.id
        or (not c.definition.service_id and c.definition.check_id == "_node_maintenance")
    ]
    statuses = []
    for c in checks:
        cid = c["CheckID"]
        statuses.append(
            "maintenance"
            if cid.startswith("_service_maintenance:") or cid == "_node_maintenance"
            else c["Status"]
        )
    status = _aggregate(statuses)
    return status, {
        "AggregatedStatus": status,
        "Service": local.render_service(defn),
        "Checks": checks,
    }


async def health_by_id(ports: AgentPorts, req: Request, service_id: str) -> Response:
    local = ports.local
    defn = local.services.get(service_id)
    text = req.get("format") == "text"
    if defn is None:
        message = f"ServiceId {service_id} not found"
        if text:
            return text_response(message, 404)
        return json_response(req, None, status=404) if False else text_response(message, 404)
    status, body = _service_health(local, defn)
    if text:
        return text_response(status, _HEALTH_CODES[status])
    return json_response(req, body, status=_HEALTH_CODES[status])


async def health_by_name(ports: AgentPorts, req: Request, name: str) -> Response:
    local = ports.local
    entries = [_service_health(local, d) for d in local.services.values() if d.name == name]
    text = req.get("format") == "text"
    if not entries:
        message = f"ServiceName {name} Not Found"
        return text_response(message, 404) if text else json_response(req, [], status=404)
    status = _aggregate([s for s, _ in entries])
    if text:
        return text_response(status, _HEALTH_CODES[status])
    return json_response(req, [b for _, b in entries], status=_HEALTH_CODES[status])


def register(router: Router, deps: HTTPDeps) -> None:
    ports = AgentPorts(
        identity=deps.identity,
        local=deps.local,
        control=deps.control,
        cluster=deps.cluster,
        store=deps.store,
        consensus=deps.consensus,
        leadership=deps.leadership,
        metrics=deps.metrics,
    )
    router.add("/v1/agent/self", {"GET": partial(agent_self, ports)})
    router.add("/v1/agent/version", {"GET": partial(agent_version, ports)})
    router.add("/v1/agent/host", {"GET": partial(agent_host, ports)})
    router.add("/v1/agent/members", {"GET": partial(agent_members, ports)})
    router.add("/v1/agent/services", {"GET": partial(agent_services, ports)})
    router.add("/v1/agent/metrics", {"GET": partial(agent_metrics, ports)})
    router.add("/v1/agent/monitor", {"GET": agent_monitor})
    router.add("/v1/agent/service/register", {"PUT": partial(service_register, ports)})
    router.add(
        "/v1/agent/service/deregister/", {"PUT": partial(service_deregister, ports)}, prefix=True
    )
    router.add(
        "/v1/agent/service/maintenance/", {"PUT": partial(service_maintenance, ports)}, prefix=True
    )
    router.add("/v1/agent/service/", {"GET": partial(agent_service, ports)}, prefix=True)
    router.add("/v1/agent/checks", {"GET": partial(agent_checks, ports)})
    router.add("/v1/agent/check/register", {"PUT": partial(check_register, ports)})
    router.add(
        "/v1/agent/check/deregister/", {"PUT": partial(check_deregister, ports)}, prefix=True
    )
    router.add("/v1/agent/check/pass/", {"PUT": partial(_ttl("passing"), ports)}, prefix=True)
    router.add("/v1/agent/check/warn/", {"PUT": partial(_ttl("warning"), ports)}, prefix=True)
    router.add("/v1/agent/check/fail/", {"PUT": partial(_ttl("critical"), ports)}, prefix=True)
    router.add("/v1/agent/check/update/", {"PUT": partial(check_update, ports)}, prefix=True)
    router.add("/v1/agent/maintenance", {"PUT": partial(node_maintenance, ports)})
    router.add("/v1/agent/reload", {"PUT": partial(agent_reload, ports)})
    router.add("/v1/agent/leave", {"PUT": partial(agent_leave, ports)})
    router.add("/v1/agent/join/", {"PUT": partial(agent_join, ports)}, prefix=True)
    router.add("/v1/agent/force-leave/", {"PUT": partial(agent_force_leave, ports)}, prefix=True)
    router.add("/v1/agent/health/service/id/", {"GET": partial(health_by_id, ports)}, prefix=True)
    router.add(
        "/v1/agent/health/service/name/", {"GET": partial(health_by_name, ports)}, prefix=True
    )
