"""`/v1/operator/*` (raft configuration, autopilot) and `/v1/snapshot`; the keyring is in
agent.http.keyring."""

from __future__ import annotations

import gzip
import io
import tarfile
import time

from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.blocking import query_options, read_headers

SNAPSHOT_MEMBER = "state.bin"


def _servers(agent) -> list[dict]:
    consensus = agent.consensus
    if consensus is None:
        return []
    servers = getattr(consensus, "configuration", None)
    if callable(servers):
        return servers()
    return [
        {
            "ID": agent.node_id,
            "Node": agent.node_name,
            "Address": consensus.address,
            "Leader": consensus.is_leader,
            "ProtocolVersion": "3",
            "Voter": True,
            "LastIndex": consensus.last_index,
        }
    ]


async def raft_configuration(req: Request, _: str) -> Response:
    agent = req.agent
    if agent.consensus is None:
        raise HTTPError(500, "No known Consul servers")
    query_options(req)
    index = getattr(agent.consensus, "conf_index", 0)
    return json_response(req, {"Servers": _servers(agent), "Index": index})


async def raft_peer(req: Request, _: str) -> Response:
    agent = req.agent
    peer_id, address = req.get("id"), req.get("address")
    if not peer_id and not address:
        raise HTTPError(
            400,
            "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
        )
    remove = getattr(agent.consensus, "remove_peer", None)
    known = [s for s in _servers(agent) if s["ID"] == peer_id or s["Address"] == address]
    if not known or remove is None:
        what = f"id {peer_id!r}" if peer_id else f"address {address!r}"
        raise HTTPError(500, f"{what} was not found in the Raft configuration")
    await remove(peer_id=peer_id, address=address)
    return Response(b"", 200)


async def transfer_leader(req: Request, _: str) -> Response:
    transfer = getattr(req.agent.consensus, "transfer_leadership", None)
    if transfer is None:
        raise HTTPError(500, "cannot find peer to transfer leadership to")
    await transfer(req.get("id"))
    return json_response(req, {"Success": True})


_AUTOPILOT = {
    "CleanupDeadServers": True,
    "LastContactThreshold": "200ms",
    "MaxTrailingLogs": 250,
    "MinQuorum": 0,
    "ServerStabilizationTime": "10s",
    "RedundancyZoneTag": "",
    "DisableUpgradeMigration": False,
    "UpgradeVersionTag": "",
    "CreateIndex": 0,
    "ModifyIndex": 0,
}


_AUTOPILOT_FIELDS = {
    "CleanupDeadServers": bool,
    "LastContactThreshold": str,
    "MaxTrailingLogs": int,
    "MinQuorum": int,
    "ServerStabilizationTime": str,
    "RedundancyZoneTag": str,
    "DisableUpgradeMigration": bool,
    "UpgradeVersionTag": str,
}


async def autopilot_configuration(req: Request, _: str) -> Response:
    stored = req.agent.store.autopilot
    return json_response(req, _AUTOPILOT | stored if stored else _AUTOPILOT)


async def autopilot_set(req: Request, _: str) -> Response:
    """Store the autopilot settings (replicated); `?cas=<ModifyIndex>` answers false on a
    mismatch, as Consul does. The settings are kept and reported, not yet acted on."""
    body = normalize_autopilot(await req.json())
    cas = None
    if req.raw_query and req.has("cas"):
        raw = req.get("cas") or ""
        if not raw.isdigit():
            raise HTTPError(400, f"Error parsing cas value: {raw!r}")
        cas = int(raw)
    result = await req.agent.write({"Type": "autopilot", "Config": body, "CAS": cas})
    return json_response(req, bool(result))


def normalize_autopilot(raw: object) -> dict:
    if not isinstance(raw, dict):
        raise HTTPError(400, "Error parsing autopilot config: body must be a JSON object")
    by_lower = {k.lower(): k for k in _AUTOPILOT_FIELDS}
    out = {}
    for key, value in raw.items():
        name = by_lower.get(key.lower())
        if name is None:
            continue  # CreateIndex/ModifyIndex and unknown fields are ignored
        kind = _AUTOPILOT_FIELDS[name]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise HTTPError(400, f"Error parsing autopilot config: {name} must be a number")
        if kind is bool and not isinstance(value, bool):
            raise HTTPError(400, f"Error parsing autopilot config: {name} must be a boolean")
        if kind is str and not isinstance(value, str):
            raise HTTPError(400, f"Error parsing autopilot config: {name} must be a string")
        out[name] = value
    return out


async def autopilot_health(req: Request, _: str) -> Response:
    agent = req.agent
    servers = []
    for s in _servers(agent):
        servers.append(
            {
                "ID": s["ID"],
                "Name": s["Node"],
                "Address": s["Address"],
                "SerfStatus": "alive",
                "Version": agent.version,
                "Leader": s["Leader"],
                "LastContact": "0s",
                "LastTerm": getattr(agent.consensus, "term", 1),
                "LastIndex": agent.store.last_index,
                "Healthy": True,
                "Voter": s["Voter"],
                "StableSince": _rfc3339(agent.started_at),
            }
        )
    voters = sum(1 for s in servers if s["Voter"])
    return json_response(
        req,
        {
            "Healthy": all(s["Healthy"] for s in servers) and bool(servers),
            "FailureTolerance": max(0, (voters - 1) // 2),
            "Servers": servers,
        },
    )


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def snapshot_save(req: Request, _: str) -> Response:
    """The whole state as a gzipped tar (Consul's archive is also a .tgz; clients round-trip
    the bytes)."""
    agent = req.agent
    if agent.consensus is None:
        raise HTTPError(500, "No known Consul servers")
    opts = query_options(req)
    body = agent.store.snapshot()
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        info = tarfile.TarInfo(SNAPSHOT_MEMBER)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    headers = read_headers(req, agent.store.last_index, opts.consistency)
    return Response(buf.getvalue(), 200, b"application/x-gzip", headers)


async def snapshot_restore(req: Request, _: str) -> Response:
    agent = req.agent
    raw = await req.body()
    try:
        with (
            gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz,
            tarfile.open(fileobj=gz, mode="r") as tar,
        ):
            member = tar.extractfile(SNAPSHOT_MEMBER)
            if member is None:
                raise KeyError(SNAPSHOT_MEMBER)
            state = member.read()
    except (OSError, EOFError, tarfile.TarError, KeyError) as exc:
        raise HTTPError(500, f"failed to read snapshot: {exc}") from None
    await agent.write({"Type": "restore", "State": state})
    return Response(b"", 200)


def register(router: Router) -> None:
    router.add("/v1/operator/raft/configuration", {"GET": raft_configuration})
    router.add("/v1/operator/raft/peer", {"DELETE": raft_peer})
    router.add("/v1/operator/raft/transfer-leader", {"POST": transfer_leader})
    router.add(
        "/v1/operator/autopilot/configuration",
        {"GET": autopilot_configuration, "PUT": autopilot_set},
    )
    router.add("/v1/operator/autopilot/health", {"GET": autopilot_health})
    router.add("/v1/operator/autopilot/state", {"GET": autopilot_health})
    router.add("/v1/snapshot", {"GET": snapshot_save, "PUT": snapshot_restore})
