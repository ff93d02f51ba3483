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
from typing import TYPE_CHECKING

from agent.checks import CheckError
from agent.filter import FilterError, compile_filter
from agent.http.app import HTTPError, Request, Response, Router, json_response, text_response
from agent.http.bodies import CHECK_DEFINITION, CHECK_UPDATE, SERVICE_DEFINITION
from agent.http.gojson import conform
from agent.membership import serf_tags
from agent.services import ServiceError, content_hash

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps

_EMPTY = b""
_TRUE_VALUES = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE_VALUES = {"0", "f", "F", "false", "FALSE", "False"}


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


def member(agent) -> dict:
    """This agent as a member, from gossip when it runs (else as it would gossip itself)."""
    gossip = agent.cluster.gossip
    if gossip is not None:
        return gossip.local_member().api_dict()
    cfg = agent.config
    return {
        "Name": agent.node_name,
        "Addr": agent.address,
        "Port": cfg.ports.serf_lan if cfg.ports.serf_lan > 0 else 8301,
        "Tags": serf_tags(agent),
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    }


def _stats(agent) -> dict:
    store = agent.store
    usage = resource.getrusage(resource.RUSAGE_SELF)
    consensus = agent.consensus
    tasks = len(asyncio.all_tasks())
    return {
        "agent": {
            "check_monitors": str(
                sum(1 for c in agent.local.checks.values() if c.runner is not None)
            ),
            "check_ttls": str(sum(1 for c in agent.local.checks.values() if c.definition.is_ttl)),
            "checks": str(len(agent.local.checks)),
            "services": str(len(agent.local.services)),
        },
        "build": {
            "prerelease": "",
            "revision": "gitkv",
            "version": agent.version,
            "version_metadata": "",
        },
        "consul": {
            "server": str(agent.config.server).lower(),
            "leader": str(bool(consensus and consensus.is_leader)).lower(),
            "leader_addr": agent.leader_address,
            "bootstrap": str(agent.config.bootstrap or agent.config.dev).lower(),
            "known_datacenters": str(
                len(agent.cluster.wan.datacenters()) if agent.cluster.wan is not None else 1
            ),
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


async def agent_self(req: Request, _: str) -> Response:
    agent = req.agent
    summary = agent.config.summary()
    config = summary.get("Config", {})
    config.update(
        {
            "NodeID": agent.node_id,
            "Revision": "gitkv",
            "Version": agent.version,
            "BuildDate": "2026-01-01T00:00:00Z",
        }
    )
    return json_response(
        req,
        {
            "Config": config,
            "DebugConfig": summary.get("DebugConfig", {}),
            "Coord": {"Vec": [0.0] * 8, "Error": 1.5, "Adjustment": 0.0, "Height": 1e-05},
            "Member": member(agent),
            "Stats": _stats(agent),
            "Meta": {"consul-network-segment": "", "consul-version": agent.version}
            | dict(agent.config.node_meta),
            "xDS": {"SupportedProxies": {}, "Port": -1, "Ports": {"Plaintext": -1, "TLS": -1}},
        },
    )


async def agent_version(req: Request, _: str) -> Response:
    return json_response(
        req,
        {
            "SHA": "gitkv",
            "BuildDate": "2026-01-01T00:00:00Z",
            "HumanVersion": req.agent.version,
            "FIPS": "",
        },
    )


async def agent_host(req: Request, _: str) -> Response:
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
                "uptime": int(time.time() - req.agent.started_at),
            },
            "Disk": {},
            "CollectionTime": int(time.time() * 1e9),
            "Errors": None,
        },
    )


async def agent_members(req: Request, _: str) -> Response:
    if req.has("wan") and req.get("segment"):
        raise HTTPError(400, "Cannot provide a segment with wan=true")
    if req.has("wan"):
        return json_response(req, _filtered(req, _wan_members(req.agent)))
    members = req.agent.members() or [member(req.agent)]
    return json_response(req, _filtered(req, members))


def _wan_members(agent) -> list[dict]:
    """Servers show their WAN pool; clients are in none. A server whose WAN pool could not
    start shows what it would gossip there: its datacenter's servers, named node.dc."""
    if not agent.config.server:
        return []
    if agent.cluster.wan is not None:
        return agent.wan_members()
    return [
        m
        | {
            "Name": f"{m['Name']}.{m['Tags'].get('dc', '')}",
            "Port": int(m["Tags"].get("wan_join_port", 8302)),
        }
        for m in agent.members() or [member(agent)]
        if m["Tags"].get("role") == "consul"
    ]


async def agent_services(req: Request, _: str) -> Response:
    local = req.agent.local
    rendered = [local.render_service(d) for d in local.services.values()]
    rendered = _filtered(req, rendered)
    return json_response(req, {s["ID"]: s for s in rendered})


async def agent_service(req: Request, service_id: str) -> Response:
    local = req.agent.local
    defn = local.services.get(service_id)
    if defn is None:
        raise HTTPError(404, f"unknown service ID: {service_id}")
    body = local.render_service(defn)
    digest = content_hash(body)
    wanted = req.get("hash") if req.raw_query else None
    if wanted and wanted == digest:
        # hash-based blocking: park until the definition changes or wait runs out
        from agent.http.blocking import query_options

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


async def agent_checks(req: Request, _: str) -> Response:
    local = req.agent.local
    rendered = _filtered(req, [local.render_check(c) for c in local.checks.values()])
    return json_response(req, {c["CheckID"]: c for c in rendered})


async def service_register(req: Request, _: str) -> Response:
    agent = req.agent
    body = await req.json()
    conform(body, SERVICE_DEFINITION)  # kinds and ranges; services.py checks the meaning
    replace = req.has("replace-existing-checks") and req.get("replace-existing-checks") in (
        "",
        "true",
        "1",
    )
    try:
        agent.local.add_service(body, replace_checks=replace)
    except ServiceError as exc:
        raise HTTPError(exc.status, exc.message) from None
    except CheckError as exc:
        raise HTTPError(getattr(exc, "status", None) or 400, str(exc)) from None
    await agent.local.flush()
    return _ok()


async def service_deregister(req: Request, service_id: str) -> Response:
    local = req.agent.local
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


async def service_maintenance(req: Request, service_id: str) -> Response:
    local = req.agent.local
    if not service_id:
        raise HTTPError(400, "Missing service ID")
    enable = _enable_flag(req)
    if service_id not in local.services:
        raise HTTPError(404, f'Unknown service ID "{service_id}"')
    local.set_service_maintenance(service_id, enable, req.get("reason") or "")
    await local.flush()
    return _ok()


async def node_maintenance(req: Request, _: str) -> Response:
    enable = _enable_flag(req)
    req.agent.local.set_node_maintenance(enable, req.get("reason") or "")
    await req.agent.local.flush()
    return _ok()


async def check_register(req: Request, _: str) -> Response:
    body = await req.json()
    conform(body, CHECK_DEFINITION)
    local = req.agent.local
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


async def check_deregister(req: Request, check_id: str) -> Response:
    local = req.agent.local
    if not local.remove_check(check_id):
        raise HTTPError(
            404,
            f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.',
        )
    await local.flush()
    return _ok()


def _ttl(status: str):
    async def handler(req: Request, check_id: str) -> Response:
        note = req.get("note") or ""
        await _ttl_update(req, check_id, status, note)
        return _ok()

    return handler


async def _ttl_update(req: Request, check_id: str, status: str, output: str) -> None:
    local = req.agent.local
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


async def check_update(req: Request, check_id: str) -> Response:
    body = conform(await req.json(), CHECK_UPDATE) or {}
    status = body.get("Status", "")
    if status not in ("passing", "warning", "critical"):
        raise HTTPError(400, f"Invalid check status: '{status}'")
    await _ttl_update(req, check_id, status, body.get("Output", "") or "")
    return _ok()


async def agent_reload(req: Request, _: str) -> Response:
    try:
        req.agent.reload()
    except Exception as exc:
        raise HTTPError(500, f"Failed to reload configs: {exc}") from None
    return _ok()


async def agent_leave(req: Request, _: str) -> Response:
    agent = req.agent
    await agent.graceful_leave()
    # Answer first, then stop: the caller is told the leave happened.
    asyncio.get_running_loop().call_later(0.2, agent.request_stop)
    return _ok()


async def agent_join(req: Request, address: str) -> Response:
    join = getattr(req.agent, "join", None)
    if join is None:
        raise HTTPError(
            500,
            f"Failed to join {address}: this agent has no gossip layer yet (single-server mode)",
        )
    await join(address, wan=req.has("wan"))
    return _ok()


async def agent_force_leave(req: Request, node: str) -> Response:
    force_leave = getattr(req.agent, "force_leave", None)
    if force_leave is None or not node:
        raise HTTPError(500, f"agent: No node found with name '{node}'")
    await force_leave(node, prune=req.has("prune"), wan=req.has("wan"))
    return _ok()


def _refresh_gauges(agent) -> None:
    m = agent.metrics
    store = agent.store
    consensus = agent.consensus
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
    m.set_gauge("consul.agent.checks", len(agent.local.checks))
    m.set_gauge("consul.agent.services", len(agent.local.services))
    members = agent.members() if hasattr(agent, "members") else [member(agent)]
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


async def agent_metrics(req: Request, _: str) -> Response:
    agent = req.agent
    _refresh_gauges(agent)
    if req.get("format") == "prometheus":
        body = agent.metrics.render_prometheus().encode()
        return Response(body, 200, b"text/plain; version=0.0.4; charset=utf-8")
    return json_response(req, agent.metrics.render_json())


_LOG_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warn": 30, "error": 40}


async def agent_monitor(req: Request, _: str) -> Response:
    from agent.logstream import broadcaster

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


def _service_health(local, defn) -> tuple[str, dict]:
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


async def health_by_id(req: Request, service_id: str) -> Response:
    local = req.agent.local
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


async def health_by_name(req: Request, name: str) -> Response:
    local = req.agent.local
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
    router.add("/v1/agent/self", {"GET": agent_self})
    router.add("/v1/agent/version", {"GET": agent_version})
    router.add("/v1/agent/host", {"GET": agent_host})
    router.add("/v1/agent/members", {"GET": agent_members})
    router.add("/v1/agent/services", {"GET": agent_services})
    router.add("/v1/agent/metrics", {"GET": agent_metrics})
    router.add("/v1/agent/monitor", {"GET": agent_monitor})
    router.add("/v1/agent/service/register", {"PUT": service_register})
    router.add("/v1/agent/service/deregister/", {"PUT": service_deregister}, prefix=True)
    router.add("/v1/agent/service/maintenance/", {"PUT": service_maintenance}, prefix=True)
    router.add("/v1/agent/service/", {"GET": agent_service}, prefix=True)
    router.add("/v1/agent/checks", {"GET": agent_checks})
    router.add("/v1/agent/check/register", {"PUT": check_register})
    router.add("/v1/agent/check/deregister/", {"PUT": check_deregister}, prefix=True)
    router.add("/v1/agent/check/pass/", {"PUT": _ttl("passing")}, prefix=True)
    router.add("/v1/agent/check/warn/", {"PUT": _ttl("warning")}, prefix=True)
    router.add("/v1/agent/check/fail/", {"PUT": _ttl("critical")}, prefix=True)
    router.add("/v1/agent/check/update/", {"PUT": check_update}, prefix=True)
    router.add("/v1/agent/maintenance", {"PUT": node_maintenance})
    router.add("/v1/agent/reload", {"PUT": agent_reload})
    router.add("/v1/agent/leave", {"PUT": agent_leave})
    router.add("/v1/agent/join/", {"PUT": agent_join}, prefix=True)
    router.add("/v1/agent/force-leave/", {"PUT": agent_force_leave}, prefix=True)
    router.add("/v1/agent/health/service/id/", {"GET": health_by_id}, prefix=True)
    router.add("/v1/agent/health/service/name/", {"GET": health_by_name}, prefix=True)
