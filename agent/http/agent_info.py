"""`/v1/agent/self`, `version`, `host`, `metrics` and `monitor`: what this agent process
reports about itself (config, build, runtime figures, gauges, its log as a stream).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import sys
from typing import TYPE_CHECKING

from agent.host_info import collect_host_info
from agent.http.agent_common import AgentPorts, member
from agent.http.app import HTTPError, Request, Response, json_response
from agent.logstream import broadcaster
from agent.metrics import INTERVAL as STREAM_INTERVAL

if TYPE_CHECKING:
    from agent.cluster import ClusterManager
    from agent.http.deps import AgentControl
    from agent.local import LocalState
    from agent.metrics import Metrics
    from agent.ports import AgentIdentity, Leadership
    from agent.raft.node import RaftNode
    from agent.state.store import Store

__all__ = [
    "agent_host",
    "agent_metrics",
    "agent_metrics_stream",
    "agent_monitor",
    "agent_self",
    "agent_version",
]


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
    # Reading /proc and statvfs is quick, but it is file I/O: off the loop.
    return json_response(req, await asyncio.to_thread(collect_host_info))


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


async def agent_metrics_stream(ports: AgentPorts, req: Request, _: str) -> Response:
    """go-metrics' InmemSink.Stream: every interval, the summary of the interval that was
    being collected at the previous tick, as indented JSON, until the client goes away."""
    metrics = ports.metrics

    async def summaries():
        interval = metrics.current_interval()
        while True:
            await asyncio.sleep(STREAM_INTERVAL)
            _refresh_gauges(metrics, ports.store, ports.consensus, ports.local, ports.control)
            body = json.dumps(metrics.render_interval(interval), indent=4)
            interval = metrics.current_interval()
            yield body.encode() + b"\n"

    response = Response(b"", 200, b"text/plain; charset=utf-8")
    response.stream = summaries()
    return response


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
