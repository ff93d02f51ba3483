"""`/v1/operator/*` (raft configuration, autopilot) and `/v1/snapshot`; the keyring is in
agent.http.keyring.

Every write here is checked before it is proposed: an autopilot body is decoded into its typed
fields (agent/http/autopilot.py), a leadership transfer names a server of the configuration,
and a snapshot archive is verified and fully decoded (agent/state/archive.py) before the
restore command reaches the log.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from agent.errors import NotLeader
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.autopilot import ZERO_VALUES, decode_autopilot
from agent.http.blocking import query_options, read_headers
from agent.state.archive import ArchiveInvalid, Server, new_meta, read_verified, write_archive
from agent.state.commands import Autopilot, Restore

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import AgentIdentity, Writer
    from agent.raft.node import RaftNode
    from agent.state.store import Store


@dataclass(frozen=True)
class OperatorPorts:
    """What `/v1/operator/{raft,autopilot}/*` and `/v1/snapshot` use: this server's consensus
    (None on a client agent: no configuration to show or change), the store (autopilot
    settings, snapshots), the writer (autopilot settings, restores) and the agent's identity
    (version and start time in the autopilot health)."""

    consensus: RaftNode | None
    store: Store
    writer: Writer
    identity: AgentIdentity


_INDEXES = {"CreateIndex": 0, "ModifyIndex": 0}


def _servers(consensus: RaftNode | None) -> list[dict]:
    return consensus.configuration() if consensus is not None else []


async def raft_configuration(ports: OperatorPorts, req: Request, _: str) -> Response:
    consensus = ports.consensus
    if consensus is None:
        raise HTTPError(500, "No known Consul servers")
    query_options(req)
    return json_response(req, {"Servers": _servers(consensus), "Index": consensus.conf_index})


async def raft_peer(ports: OperatorPorts, req: Request, _: str) -> Response:
    consensus = ports.consensus
    peer_id, address = req.get("id"), req.get("address")
    if not peer_id and not address:
        raise HTTPError(
            400,
            "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
        )
    known = [s for s in _servers(consensus) if s["ID"] == peer_id or s["Address"] == address]
    if not known or consensus is None:
        what = f"id {peer_id!r}" if peer_id else f"address {address!r}"
        raise HTTPError(500, f"{what} was not found in the Raft configuration")
    await consensus.remove_peer(peer_id=peer_id, address=address)
    return Response(b"", 200)


async def transfer_leader(ports: OperatorPorts, req: Request, _: str) -> Response:
    """`?id=` is checked against the configuration first: the Raft core ignores a transfer to
    a server it does not know, and the caller would only hear of it when the wait times out."""
    consensus = ports.consensus
    if consensus is None:
        raise HTTPError(500, "cannot find peer to transfer leadership to")
    target = req.get("id") or None
    if target is not None:
        server = next((s for s in _servers(consensus) if s["ID"] == target), None)
        if target == consensus.id:
            raise HTTPError(500, "cannot transfer leadership to itself")
        if server is None:
            raise HTTPError(500, f"Could not find address for server id {target}")
        if not server["Voter"]:
            raise HTTPError(500, f"cannot transfer leadership to {target}: it is not a voter")
    try:
        await consensus.transfer_leadership(target)
    except NotLeader as exc:
        raise HTTPError(500, str(exc)) from None
    return json_response(req, {"Success": True})


async def autopilot_configuration(ports: OperatorPorts, req: Request, _: str) -> Response:
    # Until the leader has stored it (its first moments), the agent's own settings answer.
    stored = ports.store.autopilot or ports.identity.config.autopilot | _INDEXES
    return json_response(req, stored)


async def autopilot_set(ports: OperatorPorts, req: Request, _: str) -> Response:
    """Store the autopilot settings (replicated); `?cas=<ModifyIndex>` answers false on a
    mismatch, as Consul does. The settings are kept and reported, not yet acted on."""
    cas = None
    if req.raw_query and req.has("cas"):
        raw = req.get("cas") or ""
        if not (raw.isascii() and raw.isdigit()) or int(raw) >= 2**64:  # a Go uint64
            raise HTTPError(400, f"Error parsing cas value: {raw!r}")
        cas = int(raw)
    # A PUT replaces the whole configuration: what the body leaves out (or sends as null) is
    # the field's zero value, as Consul copies api.AutopilotConfiguration field by field.
    body = ZERO_VALUES | decode_autopilot(await req.body())
    result = await ports.writer.write(Autopilot(Config=body, CAS=cas))
    return json_response(req, bool(result))


def _server_health(ports: OperatorPorts) -> list[dict]:
    """Each server of the Raft configuration as the leader's autopilot sees it."""
    consensus, identity = ports.consensus, ports.identity
    servers = []
    for s in _servers(consensus):
        servers.append(
            {
                "ID": s["ID"],
                "Name": s["Node"],
                "Address": s["Address"],
                "SerfStatus": "alive",
                "Version": identity.version,
                "Leader": s["Leader"],
                "LastContact": "0s",
                "LastTerm": consensus.term if consensus is not None else 1,
                "LastIndex": ports.store.last_index,
                "Healthy": True,
                "Voter": s["Voter"],
                "StableSince": _rfc3339(identity.started_at),
            }
        )
    return servers


def _failure_tolerance(servers: list[dict]) -> int:
    voters = sum(1 for s in servers if s["Voter"] and s["Healthy"])
    return max(0, (voters - 1) // 2)


async def autopilot_health(ports: OperatorPorts, req: Request, _: str) -> Response:
    servers = _server_health(ports)
    return json_response(
        req,
        {
            "Healthy": all(s["Healthy"] for s in servers) and bool(servers),
            "FailureTolerance": _failure_tolerance(servers),
            "Servers": servers,
        },
    )


async def autopilot_state(ports: OperatorPorts, req: Request, _: str) -> Response:
    """`api.AutopilotState`: servers keyed by Raft ID with their autopilot status and their
    catalog node's Meta. The fields only Consul Enterprise fills (OptimisticFailureTolerance,
    ReadReplicas, RedundancyZones, Upgrade) are left as Consul CE leaves them."""
    servers = _server_health(ports)
    by_id = {}
    for s in servers:
        node = ports.store.nodes.get(s["Name"])
        by_id[s["ID"]] = {
            "ID": s["ID"],
            "Name": s["Name"],
            "Address": s["Address"],
            "NodeStatus": s["SerfStatus"],
            "Version": s["Version"],
            "LastContact": s["LastContact"],
            "LastTerm": s["LastTerm"],
            "LastIndex": s["LastIndex"],
            "Healthy": s["Healthy"],
            "StableSince": s["StableSince"],
            "ReadReplica": False,
            "Status": "leader" if s["Leader"] else "voter" if s["Voter"] else "non-voter",
            "Meta": dict(node.Meta) if node is not None and node.Meta else None,
            "NodeType": "voter",
        }
    leader = next((s["ID"] for s in servers if s["Leader"]), "")
    return json_response(
        req,
        {
            "Healthy": all(s["Healthy"] for s in servers) and bool(servers),
            "FailureTolerance": _failure_tolerance(servers),
            "OptimisticFailureTolerance": 0,
            "Servers": by_id,
            "Leader": leader,
            "Voters": [s["ID"] for s in servers if s["Voter"]],
        },
    )


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def snapshot_save(ports: OperatorPorts, req: Request, _: str) -> Response:
    """The whole state as Consul's archive (agent/state/archive.py). The store is captured on
    the loop, at one index; encoding and compressing it happen on a thread."""
    consensus, store = ports.consensus, ports.store
    if consensus is None:
        raise HTTPError(500, "No known Consul servers")
    opts = query_options(req)
    captured = store.capture()
    index = store.last_index
    term = consensus.term
    servers = [Server(0 if s["Voter"] else 1, s["ID"], s["Address"]) for s in _servers(consensus)]
    conf_index = consensus.conf_index

    def archive() -> bytes:
        state = b"".join(captured.chunks())
        return write_archive(new_meta(index, term, len(state), servers, conf_index), state)

    body = await asyncio.to_thread(archive)
    headers = read_headers(req, index, opts.consistency)
    return Response(body, 200, b"application/x-gzip", headers)


async def snapshot_restore(ports: OperatorPorts, req: Request, _: str) -> Response:
    """Replace the state with an archive's, once it is known to be whole: checksums, metadata
    and every record are checked here, so a bad archive never reaches the Raft log."""
    raw = await req.body()
    try:
        _, state = await asyncio.to_thread(read_verified, raw)
    except ArchiveInvalid as exc:
        raise HTTPError(400, str(exc)) from None
    await ports.writer.write(Restore(State=state))
    return Response(b"", 200)


def register(router: Router, deps: HTTPDeps) -> None:
    ports = OperatorPorts(deps.consensus, deps.store, deps.writer, deps.identity)
    router.add("/v1/operator/raft/configuration", {"GET": partial(raft_configuration, ports)})
    router.add("/v1/operator/raft/peer", {"DELETE": partial(raft_peer, ports)})
    router.add("/v1/operator/raft/transfer-leader", {"POST": partial(transfer_leader, ports)})
    router.add(
        "/v1/operator/autopilot/configuration",
        {"GET": partial(autopilot_configuration, ports), "PUT": partial(autopilot_set, ports)},
    )
    router.add("/v1/operator/autopilot/health", {"GET": partial(autopilot_health, ports)})
    router.add("/v1/operator/autopilot/state", {"GET": partial(autopilot_state, ports)})
    router.add(
        "/v1/snapshot",
        {"GET": partial(snapshot_save, ports), "PUT": partial(snapshot_restore, ports)},
    )
