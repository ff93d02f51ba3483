"""In-memory Raft cluster for tests: nodes = RaftCore + MemoryStorage + a hash-chain state machine.

Used by the text scenarios (`tests/scenarios/raft/*.txt`, one handler per command below) and
by the seeded simulation. The driver loop here is the reference for `agent/raft/node.py`:
persist snapshot/entries/hard state, then send messages, then apply, then `advance`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from agent.raft.core import Config, RaftCore, Ready, Role
from agent.raft.errors import RaftError
from agent.raft.messages import (
    ConfChange,
    ConfChangeOp,
    ConfState,
    Entry,
    EntryKind,
    Message,
    MsgType,
    Snapshot,
)
from agent.raft.storage import MemoryStorage

# -- formatting ---------------------------------------------------------------------------------


def fmt_entry(e: Entry) -> str:
    if e.kind == EntryKind.NOOP:
        body = "noop"
    elif e.kind == EntryKind.CONF_CHANGE:
        cc = ConfChange.decode(e.data)
        body = f"conf:{cc.op.name.lower().replace('_', '-')} {cc.node_id}"
    else:
        body = repr(e.data.decode(errors="replace"))
    return f"{e.term}/{e.index} {body}"


def fmt_conf(c: ConfState) -> str:
    s = f"voters=({' '.join(c.voters)})"
    if c.nonvoters:
        s += f" nonvoters=({' '.join(c.nonvoters)})"
    return s


def fmt_snapshot(s: Snapshot) -> str:
    return f"Snapshot Index:{s.meta.index} Term:{s.meta.term} {fmt_conf(s.meta.conf)}"


_TYPE_NAMES = {
    MsgType.APP: "App",
    MsgType.APP_RESP: "AppResp",
    MsgType.VOTE: "Vote",
    MsgType.VOTE_RESP: "VoteResp",
    MsgType.PRE_VOTE: "PreVote",
    MsgType.PRE_VOTE_RESP: "PreVoteResp",
    MsgType.HEARTBEAT: "Heartbeat",
    MsgType.HEARTBEAT_RESP: "HeartbeatResp",
    MsgType.SNAP: "Snap",
    MsgType.TIMEOUT_NOW: "TimeoutNow",
    MsgType.READ_INDEX: "ReadIndex",
    MsgType.READ_INDEX_RESP: "ReadIndexResp",
    MsgType.TRANSFER_LEADER: "TransferLeader",
    MsgType.PROP: "Prop",
}


def fmt_msg(m: Message) -> str:
    s = f"{m.frm}->{m.to} {_TYPE_NAMES.get(m.type, m.type.name)} Term:{m.term}"
    if m.type in (MsgType.APP, MsgType.VOTE, MsgType.PRE_VOTE) or (
        m.type == MsgType.APP_RESP and m.reject
    ):
        s += f" Log:{m.log_term}/{m.index}"
    elif m.type in (MsgType.APP_RESP, MsgType.READ_INDEX_RESP):
        s += f" Index:{m.index}"
    if m.commit:
        s += f" Commit:{m.commit}"
    if m.reject:
        s += f" Rejected (Hint: {m.reject_hint})"
    if m.entries:
        s += " Entries:[" + ", ".join(fmt_entry(e) for e in m.entries) + "]"
    if m.snapshot is not None:
        s += " " + fmt_snapshot(m.snapshot)
    if m.context:
        s += f" Context:{m.context.decode(errors='replace')}"
    return s


# -- one node -----------------------------------------------------------------------------------


def chain(prev: bytes, e: Entry) -> bytes:
    """The state machine: a hash chain over applied entries (equal hashes = equal histories)."""
    return hashlib.sha256(prev + e.index.to_bytes(8, "big") + bytes([e.kind]) + e.data).digest()


@dataclass
class Node:
    id: str
    storage: MemoryStorage
    core: RaftCore
    rng_seed: int
    applied_index: int = 0
    sm: bytes = b""  # hash chain after applied_index
    applied: list[Entry] = field(default_factory=list)  # since the last restart/snapshot
    sm_history: dict[int, bytes] = field(default_factory=dict)  # applied index -> hash
    read_states: list[tuple[int, bytes]] = field(default_factory=list)


class CoreOptions(TypedDict, total=False):
    """The `Config` tunables a test sets for every core of a cluster."""

    election_tick: int
    heartbeat_tick: int
    pre_vote: bool
    check_quorum: bool
    max_size_per_msg: int
    max_inflight_msgs: int
    max_uncommitted_entries: int
    max_committed_size_per_ready: int


def make_core(
    node_id: str, storage: MemoryStorage, applied: int, seed: int, **kw: Unpack[CoreOptions]
) -> RaftCore:
    cfg = Config(id=node_id, applied=applied, rng=random.Random(seed), **kw)
    return RaftCore(cfg, storage)


class Cluster:
    """Nodes plus a message pool. Delivery order and loss are up to the caller."""

    def __init__(self, core_kw: CoreOptions | None = None) -> None:
        self.nodes: dict[str, Node] = {}
        self.pending: list[Message] = []
        self.core_kw: CoreOptions = core_kw or {}
        self.groups: list[set[str]] | None = None  # partition; None = fully connected
        self.cut_links: set[frozenset[str]] = set()  # single broken links (non-transitive)
        self.on_apply: Callable[[Node, Entry, bytes], None] | None = None
        self.on_snapshot: Callable[[Node, Snapshot], None] | None = None

    def add_node(self, node_id: str, conf: ConfState, seed: int | None = None) -> Node:
        storage = MemoryStorage(conf)
        seed = int(node_id) if seed is None and node_id.isdigit() else (seed or 0)
        core = make_core(node_id, storage, 0, seed, **self.core_kw)
        node = Node(node_id, storage, core, seed)
        self.nodes[node_id] = node
        return node

    def restart(self, node_id: str) -> None:
        """Crash (losing everything not persisted) and restart from storage."""
        old = self.nodes[node_id]
        snap = old.storage.snapshot()
        # The app restores its snapshot and re-applies the log after it.
        node = Node(node_id, old.storage, old.core, old.rng_seed + 1000)
        node.applied_index = snap.meta.index
        node.sm = snap.data
        if not snap.is_empty():
            old.storage.set_conf_state(snap.meta.conf)
        node.core = make_core(node_id, old.storage, snap.meta.index, node.rng_seed, **self.core_kw)
        self.nodes[node_id] = node

    def connected(self, a: str, b: str) -> bool:
        if frozenset((a, b)) in self.cut_links:
            return False
        if self.groups is None:
            return True
        return any(a in g and b in g for g in self.groups)

    def process_ready(self, node: Node) -> Ready:
        """One turn of the driver loop: persist, send, apply, advance."""
        core, st = node.core, node.storage
        rd = core.ready()
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        self.pending.extend(rd.messages)
        if rd.snapshot is not None:
            node.applied_index = rd.snapshot.meta.index
            node.sm = rd.snapshot.data
            node.applied = []
            if self.on_snapshot:
                self.on_snapshot(node, rd.snapshot)
        for e in rd.committed_entries:
            if e.index <= node.applied_index:
                continue
            assert e.index == node.applied_index + 1, f"{node.id}: apply gap at {e.index}"
            if e.kind == EntryKind.CONF_CHANGE:
                conf = core.apply_conf_change(ConfChange.decode(e.data))
                st.set_conf_state(conf)
            node.sm = chain(node.sm, e)
            node.sm_history[e.index] = node.sm
            node.applied_index = e.index
            node.applied.append(e)
            if self.on_apply:
                self.on_apply(node, e, node.sm)
        node.read_states.extend((r.index, r.context) for r in rd.read_states)
        core.advance(rd)
        return rd

    def take_for(self, node_id: str) -> list[Message]:
        msgs = [m for m in self.pending if m.to == node_id]
        self.pending = [m for m in self.pending if m.to != node_id]
        return msgs

    def deliver(self, m: Message) -> bool:
        """Step `m` into its recipient unless partitioned away; True if delivered."""
        node = self.nodes.get(m.to)
        if node is None or not self.connected(m.frm, m.to):
            return False
        node.core.step(m)
        return True

    def stabilize(self, max_rounds: int = 1000) -> None:
        """Process Ready and deliver everything (partitioned messages are lost) until quiet."""
        for _ in range(max_rounds):
            moved = False
            for node in list(self.nodes.values()):
                if node.core.has_ready():
                    self.process_ready(node)
                    moved = True
            pending, self.pending = self.pending, []
            for m in pending:
                self.deliver(m)
                moved = True
            if not moved:
                return
        raise AssertionError("cluster did not stabilize")

    def leader(self) -> Node | None:
        leaders = [n for n in self.nodes.values() if n.core.role == Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: n.core.term)

    def compact(self, node: Node, index: int) -> None:
        """Snapshot the state machine at `index` (<= applied) and drop the log up to it."""
        assert index == node.applied_index, "the harness snapshots at the applied index"
        snap = node.storage.create_snapshot(index, node.core.conf, node.sm)
        del snap
        node.storage.compact(index)


# -- the scenario interpreter -------------------------------------------------------------------


_ARG = re.compile(r"(\w[\w-]*)=\(([^)]*)\)|(\w[\w-]*)=(\S+)|(\S+)")


def parse_args(line: str) -> tuple[str, list[str], dict[str, list[str]]]:
    """`cmd a b k=v k=(x y)` -> ("cmd", ["a", "b"], {"k": ["v"], ...}); `/` is positional."""
    cmd, _, rest = line.strip().partition(" ")
    pos: list[str] = []
    kw: dict[str, list[str]] = {}
    for m in _ARG.finditer(rest):
        if m.group(1):
            kw[m.group(1)] = m.group(2).replace(",", " ").split()
        elif m.group(3):
            kw[m.group(3)] = [m.group(4)]
        else:
            pos.append(m.group(5))
    return cmd, pos, kw


class InteractionEnv:
    """Runs scenario commands against a `Cluster`; each handler returns its output lines."""

    def __init__(self) -> None:
        self.cluster = Cluster()
        self.handlers: dict[str, Callable[[list[str], dict[str, list[str]]], list[str]]] = {
            "add-nodes": self.h_add_nodes,
            "campaign": self.h_campaign,
            "tick": self.h_tick,
            "process-ready": self.h_process_ready,
            "deliver-msgs": self.h_deliver_msgs,
            "stabilize": self.h_stabilize,
            "partition": self.h_partition,
            "heal": self.h_heal,
            "propose": self.h_propose,
            "propose-conf-change": self.h_propose_conf_change,
            "compact": self.h_compact,
            "status": self.h_status,
            "raft-log": self.h_raft_log,
            "read-index": self.h_read_index,
            "transfer-leadership": self.h_transfer,
            "restart": self.h_restart,
            "lease": self.h_lease,
            "report-unreachable": self.h_report_unreachable,
        }

    def run(self, line: str) -> str:
        cmd, pos, kw = parse_args(line)
        handler = self.handlers.get(cmd)
        if handler is None:
            raise ValueError(f"unknown command {cmd!r}")
        out = handler(pos, kw)
        return "\n".join(out) if out else "ok"

    def node(self, nid: str) -> Node:
        return self.cluster.nodes[nid]

    def ids(self, pos: list[str]) -> list[str]:
        return pos or sorted(self.cluster.nodes, key=_idkey)

    # -- handlers -------------------------------------------------------------------------------

    def h_add_nodes(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        """add-nodes N [voters=(ids)] [nonvoters=(ids)] [election=10] [pre-vote=true] ..."""
        n = int(pos[0])
        start = len(self.cluster.nodes) + 1
        new = [str(i) for i in range(start, start + n)]
        voters = tuple(kw.get("voters", new))
        nonvoters = tuple(kw.get("nonvoters", []))
        addrs = tuple((v, f"127.0.0.{10 + int(v)}:8300") for v in sorted((*voters, *nonvoters)))
        conf = ConfState(tuple(sorted(voters)), tuple(sorted(nonvoters)), addrs)
        opts = self.cluster.core_kw
        if "election" in kw:
            opts["election_tick"] = int(kw["election"][0])
        if "heartbeat" in kw:
            opts["heartbeat_tick"] = int(kw["heartbeat"][0])
        if "max-inflight" in kw:
            opts["max_inflight_msgs"] = int(kw["max-inflight"][0])
        if "max-size" in kw:
            opts["max_size_per_msg"] = int(kw["max-size"][0])
        if "pre-vote" in kw:
            opts["pre_vote"] = kw["pre-vote"][0] == "true"
        if "check-quorum" in kw:
            opts["check_quorum"] = kw["check-quorum"][0] == "true"
        out = []
        for nid in new:
            self.cluster.add_node(nid, conf)
            st = self.node(nid).core.status()
            out.append(f"INFO {nid} became follower at term {st.term} {fmt_conf(conf)}")
        return out

    def h_campaign(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        node = self.node(pos[0])
        before = node.core.role
        node.core.campaign()
        return [self._role_line(node, before)]

    def _role_line(self, node: Node, before: Role) -> str:
        st = node.core.status()
        if st.role == before:
            return f"INFO {node.id} stays {st.role.name.lower()} at term {st.term}"
        return f"INFO {node.id} became {st.role.name.lower()} at term {st.term}"

    def h_tick(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        """tick ID [N]: N ticks on node ID; prints role changes."""
        node = self.node(pos[0])
        n = int(pos[1]) if len(pos) > 1 else 1
        out = []
        for _ in range(n):
            before = node.core.role
            node.core.tick()
            if node.core.role != before:
                out.append(self._role_line(node, before))
        return out

    def _ready_lines(self, node: Node) -> list[str]:
        if not node.core.has_ready():
            return []
        rd = self.cluster.process_ready(node)
        out = [f"> {node.id} handling Ready"]
        if rd.soft_state is not None:
            lead = rd.soft_state.leader or "none"
            out.append(f"  State:{rd.soft_state.role.name.lower()} Lead:{lead}")
        if rd.hard_state is not None:
            hs = rd.hard_state
            out.append(f"  HardState Term:{hs.term} Vote:{hs.vote or '-'} Commit:{hs.commit}")
        if rd.snapshot is not None:
            out.append("  " + fmt_snapshot(rd.snapshot))
        if rd.entries:
            out.append("  Entries:")
            out += [f"    {fmt_entry(e)}" for e in rd.entries]
        if rd.committed_entries:
            out.append("  CommittedEntries:")
            out += [f"    {fmt_entry(e)}" for e in rd.committed_entries]
        if rd.messages:
            out.append("  Messages:")
            for m in rd.messages:
                if self.cluster.connected(m.frm, m.to):
                    out.append(f"    {fmt_msg(m)}")
                else:  # sent into a partition: lost now, not when the partition heals
                    self.cluster.pending.remove(m)
                    out.append(f"    {fmt_msg(m)} DROPPED")
        if rd.read_states:
            out.append("  ReadStates:")
            out += [
                f"    Index:{r.index} Context:{r.context.decode(errors='replace')}"
                for r in rd.read_states
            ]
        return out

    def h_process_ready(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        out: list[str] = []
        for nid in self.ids(pos):
            out += self._ready_lines(self.node(nid))
        return out

    def _deliver_lines(self, nid: str, drop: set[str]) -> list[str]:
        msgs = self.cluster.take_for(nid)
        if not msgs:
            return []
        node = self.node(nid)
        out = [f"> {nid} receiving messages"]
        for m in msgs:
            if nid in drop or not self.cluster.connected(m.frm, m.to):
                out.append(f"  {fmt_msg(m)} DROPPED")
                continue
            before = node.core.role
            out.append(f"  {fmt_msg(m)}")
            self.cluster.deliver(m)
            if node.core.role != before:
                out.append("  " + self._role_line(node, before))
        return out

    def h_deliver_msgs(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        """deliver-msgs [IDs] [drop=(IDs)]: deliver (or drop) everything pending for them."""
        drop = set(kw.get("drop", []))
        targets = pos or sorted({m.to for m in self.cluster.pending} | drop, key=_idkey)
        out: list[str] = []
        for nid in targets:
            out += self._deliver_lines(nid, drop)
        return out

    def h_stabilize(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        """stabilize [IDs]: process-ready and deliver among them until nothing moves."""
        ids = self.ids(pos)
        out: list[str] = []
        for _ in range(1000):
            moved = False
            for nid in ids:
                lines = self._ready_lines(self.node(nid))
                moved |= bool(lines)
                out += lines
            for nid in ids:
                lines = self._deliver_lines(nid, set())
                moved |= bool(lines)
                out += lines
            if not moved:
                return out
        raise AssertionError("stabilize did not converge")

    def h_partition(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        """partition 1 / 2 3: messages between the groups are dropped until `heal`."""
        groups: list[set[str]] = [set()]
        for p in pos:
            if p == "/":
                groups.append(set())
            else:
                groups[-1].add(p)
        rest = set(self.cluster.nodes) - set().union(*groups)
        groups += [{r} for r in rest]
        self.cluster.groups = groups
        return []

    def h_heal(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        self.cluster.groups = None
        return []

    def h_propose(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        try:
            idx = self.node(pos[0]).core.propose(" ".join(pos[1:]).encode())
        except RaftError as e:
            return [f"error: {type(e).__name__}: {e}"]
        return [f"index {idx}"]

    def h_propose_conf_change(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        """propose-conf-change ID add-voter|add-nonvoter|remove NODE"""
        op = ConfChangeOp[pos[1].upper().replace("-", "_")]
        addr = f"127.0.0.{10 + int(pos[2])}:8300" if pos[2].isdigit() else ""
        try:
            idx = self.node(pos[0]).core.propose_conf_change(ConfChange(op, pos[2], addr))
        except RaftError as e:
            return [f"error: {type(e).__name__}: {e}"]
        return [f"index {idx}"]

    def h_compact(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        """compact ID [INDEX]: snapshot the state machine at INDEX (default: the applied
        index, which INDEX must not pass) and drop the log up to it."""
        node = self.node(pos[0])
        index = int(pos[1]) if len(pos) > 1 else node.applied_index
        if index > node.applied_index:
            return [f"error: index {index} is not applied yet (applied {node.applied_index})"]
        data = node.sm_history.get(index, node.sm if index == node.applied_index else b"")
        node.storage.create_snapshot(index, node.core.conf, data)
        node.storage.compact(index)
        return [f"snapshot at {index}, first index now {node.storage.first_index()}"]

    def h_status(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        out = []
        for nid in self.ids(pos):
            st = self.node(nid).core.status()
            out.append(
                f"{nid}: {st.role.name.lower()} term:{st.term} lead:{st.leader or '-'} "
                f"commit:{st.commit} applied:{st.applied} last:{st.last_index} "
                f"{fmt_conf(ConfState(st.voters, st.nonvoters))}"
            )
            for pid, p in st.progress.items():
                flags = "" if p.voter else " nonvoter"
                out.append(
                    f"  {pid}: {p.state} match={p.match} next={p.next}"
                    f"{' active' if p.recent_active else ''}{flags}"
                )
        return out

    def h_raft_log(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        node = self.node(pos[0])
        rl = node.core.raft_log
        ents = rl.entries(rl.first_index())
        if not ents:
            return [f"log is empty: first index={rl.first_index()}, last index={rl.last_index()}"]
        return [fmt_entry(e) for e in ents]

    def h_read_index(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        try:
            self.node(pos[0]).core.read_index(pos[1].encode())
        except RaftError as e:
            return [f"error: {type(e).__name__}: {e}"]
        return []

    def h_transfer(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        """transfer-leadership FROM TO"""
        try:
            self.node(pos[0]).core.transfer_leadership(pos[1])
        except RaftError as e:
            return [f"error: {type(e).__name__}: {e}"]
        return []

    def h_restart(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        self.cluster.restart(pos[0])
        st = self.node(pos[0]).core.status()
        return [f"INFO {pos[0]} restarted at term {st.term} commit {st.commit}"]

    def h_lease(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        return [f"{nid}: lease {self.node(nid).core.leader_lease_valid()}" for nid in self.ids(pos)]

    def h_report_unreachable(self, pos: list[str], kw: dict[str, list[str]]) -> list[str]:
        self.node(pos[0]).core.report_unreachable(pos[1])
        return []


def _idkey(s: str) -> tuple[int, str]:
    return (int(s), s) if s.isdigit() else (1 << 30, s)


# -- the scenario file format -------------------------------------------------------------------


@dataclass
class Case:
    line: int
    command: str
    expected: str


def parse_script(text: str) -> list[Case | str]:
    """Blocks of `command`, `----`, expected output (ending at a blank line). Comment lines
    (`#`) and blank lines are kept verbatim as strings so `render_script` can rewrite."""
    lines = text.split("\n")
    items: list[Case | str] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if not ln.strip() or ln.lstrip().startswith("#"):
            items.append(ln)
            i += 1
            continue
        assert i + 1 < len(lines) and lines[i + 1] == "----", f"line {i + 1}: expected ----"
        j = i + 2
        out = []
        while j < len(lines) and lines[j].strip():
            out.append(lines[j])
            j += 1
        items.append(Case(i + 1, ln, "\n".join(out)))
        i = j
    while items and items[-1] == "":
        items.pop()
    return items


def render_script(items: list[Case | str]) -> str:
    out: list[str] = []
    for it in items:
        if isinstance(it, Case):
            out += [it.command, "----", it.expected]
        else:
            out.append(it)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip("\n") + "\n"


__all__ = ["Cluster", "InteractionEnv", "Node", "chain", "fmt_msg", "parse_script"]
