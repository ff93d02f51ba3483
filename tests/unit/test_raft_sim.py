"""Seeded randomized simulation of a Raft cluster on an unreliable in-memory network.

Each seed drives a schedule of ticks, Ready processing, message deliveries (random order =
reordering), drops, duplicates, partitions, crashes with loss of unpersisted state, restarts,
log compaction, proposals and membership changes, checking the Raft safety properties after
every step (Raft §5.2 election safety, §5.3 log matching, §5.4 leader completeness and
state-machine safety). Then the network heals and the cluster must elect a leader and commit a
new proposal within a bounded number of ticks (liveness).

A failing seed replays exactly: `RAFT_SIM_SEEDS=1 RAFT_SIM_FIRST=<seed> pytest ...`.
More seeds: `RAFT_SIM_SEEDS=1000 RAFT_SIM_STEPS=5000`.
"""

from __future__ import annotations

import os
import random

import pytest

from agent.raft.core import Role
from agent.raft.errors import RaftError
from agent.raft.messages import ConfChange, ConfChangeOp, ConfState, Entry, EntryKind, Message
from tests.harness.raft_env import Cluster, Node

SEEDS = int(os.environ.get("RAFT_SIM_SEEDS", "1000"))  # the issue asks for >= 1,000 in CI
FIRST = int(os.environ.get("RAFT_SIM_FIRST", "0"))
STEPS = int(os.environ.get("RAFT_SIM_STEPS", "5000"))
ELECTION = 10


class Violation(AssertionError):
    pass


class Sim:
    def __init__(self, seed: int, profile: str = "chaos") -> None:
        """`chaos`: anything goes, nodes tick independently half the time (clock drift).
        `lease`: one global clock, check-quorum on, ticks rare next to deliveries (as with
        real timers vs. network latency), many broken links: probes the leader lease."""
        self.seed = seed
        self.profile = profile
        self.rng = random.Random(seed)
        rng = self.rng
        self.n = rng.choice([3, 3, 5])
        self.cluster = Cluster(
            core_kw={
                "election_tick": ELECTION,
                "heartbeat_tick": 1,
                "max_inflight_msgs": rng.choice([1, 4, 64]),
                "max_size_per_msg": rng.choice([40, 400, 1 << 20]),
                "pre_vote": rng.random() < 0.8,
                "check_quorum": rng.random() < 0.8,
            }
        )
        self.ids = [str(i) for i in range(1, self.n + 1)]
        conf = ConfState(tuple(self.ids), (), tuple((i, f"addr{i}") for i in self.ids))
        for nid in self.ids:
            self.cluster.add_node(nid, conf, seed=seed * 100 + int(nid))
        self.down: set[str] = set()
        # With one global clock (every live node ticks together) the leader lease must hold;
        # with per-node ticking (unbounded clock drift) only the protocol's safety is checked.
        self.sync_ticks = rng.random() < 0.5
        self.drop_rate = rng.choice([0.0, 0.05, 0.2])
        self.tick_p = 0.30
        self.fault_scale = 1.0
        if profile == "lease":
            self.sync_ticks = True
            self.cluster.core_kw["check_quorum"] = True
            for node in self.cluster.nodes.values():
                self.cluster.restart(node.id)  # pick up the config change
            self.drop_rate = rng.choice([0.0, 0.02])
            self.tick_p = 0.08
            self.fault_scale = 0.25
        self.proposals = 0
        # invariant state
        self.leader_of_term: dict[int, str] = {}
        self.entry_at: dict[
            tuple[int, int], tuple[int, bytes, int]
        ] = {}  # (i,t)->(kind,data,prev t)
        self.sm_at: dict[int, bytes] = {}
        self.applied_at: dict[int, tuple[int, int]] = {}  # index -> (term, max leader term then)
        self.max_leader_term = 0
        self.was_leader: dict[str, int] = {}
        self.cluster.on_apply = self._on_apply
        self.trace: list[str] = []

    # -- invariants -----------------------------------------------------------------------------

    def fail(self, what: str) -> None:
        tail = "\n".join(self.trace[-30:])
        raise Violation(f"seed {self.seed}: {what}\nlast steps:\n{tail}")

    def _on_apply(self, node: Node, e: Entry, sm: bytes) -> None:
        prev = self.sm_at.setdefault(e.index, sm)
        if prev != sm:
            self.fail(
                f"state-machine safety: node {node.id} applied a different history at {e.index}"
            )
        if e.index not in self.applied_at:
            self.applied_at[e.index] = (e.term, self.max_leader_term)
        elif self.applied_at[e.index][0] != e.term:
            self.fail(f"state-machine safety: node {node.id} applied term {e.term} at {e.index}")

    def check_persisted(self, node: Node, ents: tuple[Entry, ...]) -> None:
        st = node.storage
        for e in ents:
            if e.index < st.first_index():
                continue
            prev_t = st.term(e.index - 1)
            got = (int(e.kind), e.data, prev_t)
            seen = self.entry_at.setdefault((e.index, e.term), got)
            if seen != got:
                self.fail(
                    f"log matching: node {node.id} has a different entry at {e.index}/{e.term}"
                )

    def check_lease(self) -> None:
        top = max(
            (n.core.term for n in self.cluster.nodes.values() if n.core.role == Role.LEADER),
            default=0,
        )
        for node in self.cluster.nodes.values():
            if node.id not in self.down and node.core.term < top and node.core.leader_lease_valid():
                self.fail(
                    f"leader lease: {node.id} (term {node.core.term}) holds a lease "
                    f"while a leader of term {top} exists"
                )

    def check_leaders(self) -> None:
        if self.sync_ticks:
            self.check_lease()
        for node in self.cluster.nodes.values():
            core = node.core
            if core.role != Role.LEADER:
                self.was_leader.pop(node.id, None)
                continue
            owner = self.leader_of_term.setdefault(core.term, node.id)
            if owner != node.id:
                self.fail(f"election safety: {owner} and {node.id} both lead term {core.term}")
            if self.was_leader.get(node.id) == core.term:
                continue
            self.was_leader[node.id] = core.term
            self.max_leader_term = max(self.max_leader_term, core.term)
            # Leader completeness: everything committed before this term is in its log.
            rl = core.raft_log
            for idx, (term, seen_max) in self.applied_at.items():
                if seen_max >= core.term or idx < rl.first_index():
                    continue
                if rl.zero_term_on_err(idx) != term:
                    self.fail(
                        f"leader completeness: leader {node.id} of term {core.term} lacks "
                        f"committed entry {idx}/{term}"
                    )

    # -- actions --------------------------------------------------------------------------------

    def live(self) -> list[str]:
        return [i for i in self.cluster.nodes if i not in self.down]

    def process(self, nid: str) -> None:
        node = self.cluster.nodes[nid]
        if not node.core.has_ready():
            return
        if self.rng.random() < 0.01 and len(self.down) < (self.n - 1) // 2:
            self.crash_mid_persist(node)
            return
        rd = self.cluster.process_ready(node)
        self.check_persisted(node, rd.entries)

    def crash_mid_persist(self, node: Node) -> None:
        """Crash partway through persisting a Ready: some of snapshot / entries / hard state
        (in the driver's order) reached the disk, no message was sent, nothing was applied."""
        rd = node.core.ready()
        st = node.storage
        steps = self.rng.randrange(3)
        if steps >= 1 and rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        if steps == 1:
            keep = self.rng.randrange(len(rd.entries) + 1)  # a torn batch keeps a prefix
            st.append(rd.entries[:keep])
            self.check_persisted(node, rd.entries[:keep])
        if steps == 2:
            st.append(rd.entries)
            self.check_persisted(node, rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
        self.crash(node.id)
        self.trace[-1] += f" (mid-persist, {steps} steps)"

    def deliver_one(self, drop_rate: float, dup_rate: float = 0.02) -> None:
        pending = self.cluster.pending
        if not pending:
            return
        i = self.rng.randrange(len(pending))
        m = pending[i]
        if self.rng.random() >= dup_rate:
            pending.pop(i)
        if (
            m.to in self.down
            or self.rng.random() < drop_rate
            or not self.cluster.connected(m.frm, m.to)
        ):
            self.trace.append(f"drop {_short(m)}")
            if m.type.name == "SNAP" and m.frm not in self.down:
                # Snapshots go over a stream: the driver learns of the failure and must report it.
                self.cluster.nodes[m.frm].core.report_snapshot(m.to, False)
            return
        if self.cluster.deliver(m):
            self.trace.append(f"deliver {_short(m)}")
            if m.type.name == "SNAP":
                # The driver reports every snapshot send's outcome back to the leader.
                sender = self.cluster.nodes.get(m.frm)
                if sender is not None and m.frm not in self.down:
                    sender.core.report_snapshot(m.to, True)

    def propose(self) -> None:
        leader = self.cluster.leader()
        if leader is None or leader.id in self.down:
            return
        self.proposals += 1
        data = f"s{self.seed}-p{self.proposals}".encode() * self.rng.choice([1, 1, 5])
        try:
            leader.core.propose(data)
            self.trace.append(f"propose on {leader.id}")
        except RaftError:
            pass

    def conf_change(self) -> None:
        leader = self.cluster.leader()
        if leader is None or leader.id in self.down:
            return
        conf = leader.core.conf
        outside = [i for i in self.ids if i not in conf.voters]
        # Prefer bringing nodes back so membership keeps changing both ways.
        victim = self.rng.choice(outside if outside and self.rng.random() < 0.7 else self.ids)
        if victim == leader.id:
            return
        if victim in conf.voters:
            if len(conf.voters) <= 2:
                return
            cc = ConfChange(ConfChangeOp.REMOVE, victim)
        elif victim in conf.nonvoters:
            cc = ConfChange(ConfChangeOp.ADD_VOTER, victim, f"addr{victim}")
        else:
            cc = ConfChange(ConfChangeOp.ADD_NONVOTER, victim, f"addr{victim}")
        try:
            leader.core.propose_conf_change(cc)
            self.trace.append(f"conf change on {leader.id}: {cc.op.name} {victim}")
        except RaftError:
            pass

    def compact(self, nid: str) -> None:
        node = self.cluster.nodes[nid]
        if node.applied_index <= node.storage.snapshot().meta.index:
            return
        self.cluster.compact(node, node.applied_index)
        self.trace.append(f"compact {nid} at {node.applied_index}")

    def partition(self) -> None:
        ids = list(self.cluster.nodes)
        self.rng.shuffle(ids)
        cut = self.rng.randrange(1, len(ids))
        self.cluster.groups = [set(ids[:cut]), set(ids[cut:])]
        self.trace.append(f"partition {ids[:cut]} / {ids[cut:]}")

    def crash(self, nid: str) -> None:
        self.down.add(nid)
        self.trace.append(f"crash {nid}")

    def restart(self, nid: str) -> None:
        self.down.discard(nid)
        self.cluster.restart(nid)
        self.trace.append(f"restart {nid}")

    def step(self) -> None:
        r = self.rng.random()
        live = self.live()
        if r < self.tick_p:
            if self.sync_ticks:
                if self.profile == "lease" or self.rng.random() < 0.3:
                    for nid in live:
                        self.cluster.nodes[nid].core.tick()
            elif live:
                nid = self.rng.choice(live)
                self.cluster.nodes[nid].core.tick()
            self.check_leaders()
            return
        # Map the rest of [tick_p, 1) onto the action table below.
        r = 0.30 + (r - self.tick_p) * 0.70 / (1 - self.tick_p)
        if r >= 0.975 and self.rng.random() > self.fault_scale:
            return  # faults are rarer per tick in the lease profile
        if r < 0.50:
            if live:
                self.process(self.rng.choice(live))
        elif r < 0.88:
            self.deliver_one(self.drop_rate)
        elif r < 0.94:
            self.propose()
        elif r < 0.96:
            if self.profile != "lease":  # keep three voters: overlapping leaders need them
                self.conf_change()
        elif r < 0.975:
            if live:
                self.compact(self.rng.choice(live))
        elif r < 0.985:
            if self.rng.random() < (0.9 if self.profile == "lease" else 0.5):
                a, b = self.rng.sample(self.ids, 2)
                link = frozenset((a, b))
                if link in self.cluster.cut_links:
                    self.cluster.cut_links.discard(link)
                    self.trace.append(f"restore link {a}-{b}")
                else:
                    self.cluster.cut_links.add(link)
                    self.trace.append(f"cut link {a}-{b}")
            elif self.cluster.groups is None:
                self.partition()
            else:
                self.cluster.groups = None
                self.trace.append("heal")
        elif r < 0.995:
            # Crash at most a minority so the cluster can make progress meanwhile.
            if len(self.down) < (self.n - 1) // 2 and live:
                self.crash(self.rng.choice(live))
        elif self.down:
            self.restart(self.rng.choice(sorted(self.down)))
        self.check_leaders()

    # -- liveness -------------------------------------------------------------------------------

    def heal_and_settle(self, max_rounds: int = 60 * ELECTION) -> None:
        self.cluster.groups = None
        self.cluster.cut_links.clear()
        for nid in sorted(self.down):
            self.restart(nid)
        target: int | None = None
        target_term = 0
        for _ in range(max_rounds):
            for nid in self.cluster.nodes:
                self.cluster.nodes[nid].core.tick()
            for _ in range(20):
                moved = False
                for nid in self.cluster.nodes:
                    if self.cluster.nodes[nid].core.has_ready():
                        self.process(nid)
                        moved = True
                pending, self.cluster.pending = self.cluster.pending, []
                for m in pending:
                    self.cluster.deliver(m)
                    moved = True
                    if m.type.name == "SNAP":
                        self.cluster.nodes[m.frm].core.report_snapshot(m.to, True)
                self.check_leaders()
                if not moved:
                    break
            leader = self.cluster.leader()
            if leader is None:
                continue
            if target is None or leader.core.term != target_term:
                try:
                    target = leader.core.propose(b"after-heal")
                    target_term = leader.core.term
                except RaftError:
                    continue
            members = set(leader.core.conf.voters) | set(leader.core.conf.nonvoters)
            if all(self.cluster.nodes[m].applied_index >= target for m in members):
                return
        self.fail("liveness: no proposal committed on all members after healing")


def _short(m: Message) -> str:
    return f"{m.type.name} {m.frm}->{m.to} t{m.term} i{m.index} n{len(m.entries)}"


def run_seed(seed: int, steps: int = STEPS, profile: str = "chaos") -> Sim:
    sim = Sim(seed, profile)
    for _ in range(steps):
        sim.step()
    sim.heal_and_settle()
    if os.environ.get("RAFT_SIM_VERBOSE"):
        terms = max(sim.leader_of_term, default=0)
        print(f"seed {seed}: n={sim.n} applied={len(sim.applied_at)} terms={terms}")
    return sim


@pytest.mark.parametrize("seed", range(FIRST, FIRST + SEEDS))
def test_simulation_safety_and_liveness(seed: int) -> None:
    sim = run_seed(seed)
    # The schedule did something: entries were committed and applied.
    assert sim.applied_at, f"seed {seed}: nothing committed"


@pytest.mark.parametrize("seed", range(FIRST, FIRST + max(1, SEEDS // 2)))
def test_simulation_leader_lease(seed: int) -> None:
    """With one clock for all nodes, no leader holds a lease once a newer leader exists."""
    run_seed(seed, profile="lease")


def test_simulation_is_deterministic() -> None:
    a, b = run_seed(7, 800), run_seed(7, 800)
    assert a.sm_at == b.sm_at
    assert a.leader_of_term == b.leader_of_term


def test_simulation_catches_a_broken_invariant() -> None:
    """The checker itself works: a forged divergent apply is reported."""
    sim = Sim(1)
    sim.sm_at[1] = b"x"
    node = sim.cluster.nodes["1"]
    with pytest.raises(Violation, match="state-machine safety"):
        sim._on_apply(node, Entry(1, 1, EntryKind.NORMAL, b"y"), b"y")
