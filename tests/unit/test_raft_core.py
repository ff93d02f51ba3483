"""Unit tests for the pure Raft core, each tied to the rule it checks.

Section numbers: "Raft §x" is the extended paper (Ongaro & Ousterhout, In Search of an
Understandable Consensus Algorithm); "thesis §x" is Ongaro's dissertation (Consensus: Bridging
Theory and Practice), which describes pre-vote, check-quorum, leadership transfer and reads.
"""

from __future__ import annotations

import random
from typing import Unpack

import msgspec
import pytest

from agent.raft.core import Config, RaftCore, Ready, Role
from agent.raft.errors import (
    Compacted,
    NotLeader,
    ProposalDropped,
    SnapshotOutOfDate,
    StepLocalMsg,
    Unavailable,
)
from agent.raft.messages import (
    CAMPAIGN_TRANSFER,
    ConfChange,
    ConfChangeOp,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    Snapshot,
    SnapshotMeta,
    from_wire,
    to_wire,
)
from agent.raft.progress import ProgressState
from agent.raft.quorum import VoteResult, committed_index, vote_result
from agent.raft.storage import MemoryStorage
from tests.harness.raft_env import Cluster, CoreOptions

ABC = ("1", "2", "3")


def conf(*voters: str, nonvoters: tuple[str, ...] = ()) -> ConfState:
    return ConfState(tuple(voters), nonvoters, tuple((v, f"a{v}") for v in (*voters, *nonvoters)))


def new_core(
    nid: str = "1",
    voters: tuple[str, ...] = ABC,
    storage: MemoryStorage | None = None,
    rng: random.Random | None = None,
    **kw: Unpack[CoreOptions],
) -> tuple[RaftCore, MemoryStorage]:
    st = storage or MemoryStorage(conf(*voters))
    if rng is None:
        rng = random.Random(int(nid) if nid.isdigit() else 0)
    core = RaftCore(Config(id=nid, rng=rng, **kw), st)
    return core, st


def drain(core: RaftCore, st: MemoryStorage) -> list[Message]:
    """Run one driver turn (persist, then hand back the messages, then advance)."""
    out: list[Message] = []
    while core.has_ready():
        rd = core.ready()
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        out += rd.messages
        core.advance(rd)
    return out


def make_leader(core: RaftCore, st: MemoryStorage) -> None:
    """Win an election by granting votes from every peer."""
    core.campaign()
    for _ in range(2):  # pre-vote round, then the real vote
        for m in drain(core, st):
            if m.type in (MsgType.PRE_VOTE, MsgType.VOTE):
                resp = MsgType.PRE_VOTE_RESP if m.type == MsgType.PRE_VOTE else MsgType.VOTE_RESP
                core.step(Message(resp, to=core.id, frm=m.to, term=m.term))
    assert core.role == Role.LEADER
    drain(core, st)


def cluster(n: int = 3, **kw: Unpack[CoreOptions]) -> Cluster:
    c = Cluster(core_kw=kw)
    ids = tuple(str(i) for i in range(1, n + 1))
    for nid in ids:
        c.add_node(nid, conf(*ids))
    return c


def elect(c: Cluster, nid: str = "1") -> None:
    c.nodes[nid].core.campaign()
    c.stabilize()
    assert c.nodes[nid].core.role == Role.LEADER


def _restarted_long_ago(c: Cluster) -> None:
    """Skip the post-restart vote guard (as if an election timeout passed since restarting)."""
    for n in c.nodes.values():
        n.core.restart_vote_guard = False


def of_type(msgs: list[Message], t: MsgType) -> list[Message]:
    return [m for m in msgs if m.type == t]


# -- Raft §5.1: terms ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["follower", "candidate", "leader"])
def test_5_1_update_term_from_message(role: str) -> None:
    """Raft §5.1: a server seeing a larger term adopts it and reverts to follower."""
    core, st = new_core(pre_vote=False)
    if role == "candidate":
        core.campaign()
    elif role == "leader":
        make_leader(core, st)
    core.step(Message(MsgType.APP, to="1", frm="2", term=5))
    assert (core.role, core.term, core.lead) == (Role.FOLLOWER, 5, "2")


def test_5_1_reject_stale_term_message() -> None:
    """Raft §5.1: a request with a stale term is rejected (answered with our term)."""
    core, st = new_core()
    core.step(Message(MsgType.APP, to="1", frm="2", term=3))
    drain(core, st)
    core.step(Message(MsgType.APP, to="1", frm="3", term=2, entries=(Entry(1, 2),)))
    msgs = drain(core, st)
    assert core.raft_log.last_index() == 0
    assert [(m.type, m.to, m.term) for m in msgs] == [(MsgType.APP_RESP, "3", 3)]


# -- Raft §5.2: leader election -----------------------------------------------------------------


def test_5_2_start_as_follower() -> None:
    core, _ = new_core()
    assert core.role == Role.FOLLOWER and core.term == 0


def test_5_2_leader_bcast_beat() -> None:
    """Raft §5.2: the leader sends heartbeats to all followers every heartbeat interval."""
    core, st = new_core(heartbeat_tick=2)
    make_leader(core, st)
    core.tick()
    assert drain(core, st) == []
    core.tick()
    beats = of_type(drain(core, st), MsgType.HEARTBEAT)
    assert sorted(m.to for m in beats) == ["2", "3"]


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE])
def test_5_2_nonleader_starts_election(role: Role) -> None:
    """Raft §5.2: after an election timeout a follower/candidate increments its term, votes for
    itself and requests votes from every other server."""
    core, st = new_core(pre_vote=False)
    if role == Role.CANDIDATE:
        core.campaign()
        drain(core, st)
    term = core.term
    for _ in range(2 * core.election_timeout):
        core.tick()
    assert core.role == Role.CANDIDATE and core.term == term + 1 and core.vote == "1"
    votes = of_type(drain(core, st), MsgType.VOTE)
    assert sorted(m.to for m in votes) == ["2", "3"]
    assert all(m.term == term + 1 for m in votes)


@pytest.mark.parametrize(
    ("n", "grants", "want"),
    [
        (1, {}, Role.LEADER),
        (3, {"2": True}, Role.LEADER),
        (3, {"2": True, "3": True}, Role.LEADER),
        (5, {"2": True, "3": True}, Role.LEADER),
        (5, {"2": True}, Role.CANDIDATE),
        (3, {"2": False, "3": False}, Role.FOLLOWER),
        (5, {"2": False, "3": False, "4": False}, Role.FOLLOWER),
    ],
)
def test_5_2_leader_election_in_one_round(n: int, grants: dict[str, bool], want: Role) -> None:
    """Raft §5.2: a candidate wins with a majority, loses once a majority refused, else waits."""
    ids = tuple(str(i) for i in range(1, n + 1))
    core, st = new_core(voters=ids, pre_vote=False)
    core.campaign()
    drain(core, st)
    for frm, ok in grants.items():
        core.step(Message(MsgType.VOTE_RESP, to="1", frm=frm, term=1, reject=not ok))
    assert core.role == want


def test_5_2_follower_votes_once_per_term() -> None:
    """Raft §5.2: each server votes for at most one candidate per term, first come first served."""
    core, st = new_core(check_quorum=False)
    core.step(Message(MsgType.VOTE, to="1", frm="2", term=1))
    core.step(Message(MsgType.VOTE, to="1", frm="3", term=1))
    core.step(Message(MsgType.VOTE, to="1", frm="2", term=1))  # a retry is granted again
    resps = of_type(drain(core, st), MsgType.VOTE_RESP)
    assert [(m.to, m.reject) for m in resps] == [("2", False), ("3", True), ("2", False)]
    assert st.hard_state.vote == "2"


def test_5_2_candidate_falls_back_to_leader_of_same_term() -> None:
    """Raft §5.2: a candidate receiving AppendEntries from a leader of its term steps down."""
    core, st = new_core(pre_vote=False)
    core.campaign()
    core.step(Message(MsgType.APP, to="1", frm="2", term=1))
    assert (core.role, core.lead) == (Role.FOLLOWER, "2")


def test_5_2_election_timeout_is_randomized() -> None:
    """Raft §5.2: timeouts are drawn from [election_tick, 2*election_tick) to split votes."""
    seen = set()
    for seed in range(50):
        core, _ = new_core(rng=random.Random(seed), pre_vote=False)
        ticks = 0
        while core.role == Role.FOLLOWER:
            core.tick()
            ticks += 1
        assert 10 <= ticks < 20
        seen.add(ticks)
    assert len(seen) > 3


def test_5_2_simulated_cluster_elects_one_leader() -> None:
    c = cluster(5)
    for _ in range(40):
        for n in c.nodes.values():
            n.core.tick()
        c.stabilize()
    leaders = [n.id for n in c.nodes.values() if n.core.role == Role.LEADER]
    assert len(leaders) == 1
    assert {n.core.lead for n in c.nodes.values()} == set(leaders)


# -- Raft §5.3: log replication -----------------------------------------------------------------


def test_5_3_leader_start_replication() -> None:
    """Raft §5.3: the leader appends the command and sends AppendEntries with the preceding
    entry's index and term."""
    core, st = new_core()
    make_leader(core, st)
    for p in ("2", "3"):  # followers acknowledged the NOOP
        core.step(Message(MsgType.APP_RESP, to="1", frm=p, term=1, index=1))
    drain(core, st)
    idx = core.propose(b"x")
    assert idx == 2
    apps = of_type(drain(core, st), MsgType.APP)
    assert [(m.to, m.index, m.log_term, m.entries) for m in apps] == [
        (p, 1, 1, (Entry(2, 1, EntryKind.NORMAL, b"x"),)) for p in ("2", "3")
    ]


def test_5_3_leader_commits_after_majority_and_tells_followers() -> None:
    """Raft §5.3: an entry is committed once a majority stored it; the commit index reaches
    followers with the next AppendEntries."""
    c = cluster(3)
    elect(c)
    lead = c.nodes["1"]
    idx = lead.core.propose(b"v")
    c.process_ready(lead)
    apps = c.take_for("2")
    for m in apps:
        c.deliver(m)
    c.pending.clear()  # node 3 never hears of it
    c.process_ready(c.nodes["2"])
    for m in c.take_for("1"):
        c.deliver(m)
    assert lead.core.raft_log.committed == idx
    rd = c.process_ready(lead)
    assert [e.data for e in rd.committed_entries] == [b"v"]
    c.stabilize()
    assert all(n.applied_index == idx for n in c.nodes.values())


def test_5_3_follower_rejects_mismatch_with_hint() -> None:
    """Raft §5.3: the follower refuses entries whose predecessor it lacks; the rejection
    carries a hint so the leader can skip a whole term at once."""
    st = MemoryStorage(conf(*ABC))
    st.append([Entry(1, 1), Entry(2, 1), Entry(3, 2), Entry(4, 2)])
    st.set_hard_state(HardState(2, "", 1))
    core, _ = new_core(storage=st)
    core.step(Message(MsgType.APP, to="1", frm="2", term=3, index=4, log_term=3, commit=1))
    (resp,) = drain(core, st)
    assert resp.reject and resp.index == 4
    # Our entries at term 2 are newer than the leader's term-3 claim? No: term(4)=2 <= 3.
    assert (resp.reject_hint, resp.log_term) == (4, 2)
    core.step(Message(MsgType.APP, to="1", frm="2", term=3, index=6, log_term=3))
    (resp,) = drain(core, st)
    assert resp.reject and (resp.reject_hint, resp.log_term) == (4, 2)


def test_5_3_follower_truncates_conflicting_suffix() -> None:
    """Raft §5.3: an existing entry that conflicts with a new one (same index, other term) is
    deleted with everything after it."""
    st = MemoryStorage(conf(*ABC))
    st.append([Entry(1, 1), Entry(2, 1, data=b"old"), Entry(3, 1, data=b"old2")])
    st.set_hard_state(HardState(1, "", 1))
    core, _ = new_core(storage=st)
    core.step(
        Message(
            MsgType.APP,
            to="1",
            frm="2",
            term=2,
            index=1,
            log_term=1,
            entries=(Entry(2, 2, data=b"new"),),
        )
    )
    drain(core, st)
    assert [(e.index, e.term, e.data) for e in st.all_entries()] == [
        (1, 1, b""),
        (2, 2, b"new"),
    ]


@pytest.mark.parametrize(
    "follower_terms",
    [
        [1, 1, 1, 4, 4, 5, 5, 6, 6],  # (a) missing entries
        [1, 1, 1, 4],  # (b)
        [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],  # (c) extra uncommitted entries
        [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],  # (d)
        [1, 1, 1, 4, 4, 4, 4],  # (e)
        [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],  # (f)
    ],
)
def test_5_3_leader_brings_any_follower_log_in_sync(follower_terms: list[int]) -> None:
    """Raft §5.3 Figure 7: whatever the follower's log, the leader's log ends up replicated."""
    leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
    c = Cluster()
    ids = ABC
    for nid in ids:
        c.add_node(nid, conf(*ids))
    for nid, terms in (("1", leader_terms), ("2", follower_terms), ("3", leader_terms)):
        node = c.nodes[nid]
        node.storage.append(
            [Entry(i + 1, t, data=f"{nid}-{i}".encode()) for i, t in enumerate(terms)]
        )
        node.storage.set_hard_state(HardState(7, "", 0))
        c.restart(nid)
    # Node 3 shares the leader's log, so 1 can win with 3's vote.
    ents = c.nodes["1"].storage.all_entries()
    c.nodes["3"].storage.append(ents)
    c.restart("3")
    _restarted_long_ago(c)
    elect(c)
    c.stabilize()
    want = [(e.index, e.term) for e in c.nodes["1"].storage.all_entries()]
    assert [(e.index, e.term) for e in c.nodes["2"].storage.all_entries()] == want
    assert c.nodes["2"].core.raft_log.committed == len(want)


def test_5_3_fast_backtracking_needs_few_round_trips() -> None:
    """Raft §5.3 (end): with rejection hints the leader skips a conflicting term per round trip
    instead of one entry."""
    c = cluster(3)
    lead_st = c.nodes["1"].storage
    lead_st.append([Entry(i, 1) for i in range(1, 4)] + [Entry(i, 5) for i in range(4, 50)])
    lead_st.set_hard_state(HardState(5, "", 3))
    f = c.nodes["2"].storage
    f.append([Entry(i, 1) for i in range(1, 4)] + [Entry(i, 2) for i in range(4, 100)])
    f.set_hard_state(HardState(5, "", 3))
    c.nodes["3"].storage.append(lead_st.all_entries())
    c.nodes["3"].storage.set_hard_state(HardState(5, "", 3))
    for nid in ABC:
        c.restart(nid)
    _restarted_long_ago(c)
    elect(c)
    rejects = 0
    for _ in range(200):
        if not c.pending and not any(n.core.has_ready() for n in c.nodes.values()):
            break
        for n in c.nodes.values():
            if n.core.has_ready():
                c.process_ready(n)
        pending, c.pending = c.pending, []
        for m in pending:
            rejects += m.type == MsgType.APP_RESP and m.reject and m.frm == "2"
            c.deliver(m)
    assert c.nodes["2"].storage.last_index() == c.nodes["1"].storage.last_index()
    assert rejects <= 2


def test_5_3_batching_respects_max_size_per_msg() -> None:
    """Several entries ride in one APP, up to max_size_per_msg bytes (but at least one)."""
    core, st = new_core(max_size_per_msg=100)
    make_leader(core, st)
    for p in ("2", "3"):
        core.step(Message(MsgType.APP_RESP, to="1", frm=p, term=1, index=1))
    drain(core, st)
    # Ack nothing while proposing: entries accumulate behind the inflight window.
    for _ in range(10):
        core.propose(b"x" * 20)
    apps = [m for m in drain(core, st) if m.type == MsgType.APP and m.to == "2"]
    assert all(sum(e.size() for e in m.entries) <= 100 or len(m.entries) == 1 for m in apps)
    assert sum(len(m.entries) for m in apps) == 10
    assert any(len(m.entries) > 1 for m in apps) or len(apps) == 10


def test_5_3_pipelining_limited_by_inflight_window() -> None:
    """In REPLICATE state the leader streams APPs without waiting, up to max_inflight_msgs."""
    core, st = new_core(max_inflight_msgs=3)
    make_leader(core, st)
    core.step(Message(MsgType.APP_RESP, to="1", frm="2", term=1, index=1))
    drain(core, st)
    assert core.prs["2"].state == ProgressState.REPLICATE
    for i in range(6):
        core.propose(b"%d" % i)
    to2 = [m for m in drain(core, st) if m.type == MsgType.APP and m.to == "2"]
    assert len(to2) == 3  # window full
    core.step(Message(MsgType.APP_RESP, to="1", frm="2", term=1, index=to2[0].entries[-1].index))
    more = [m for m in drain(core, st) if m.type == MsgType.APP and m.to == "2"]
    assert len(more) == 1 and more[0].entries  # one slot freed, the backlog goes out batched


def test_5_3_probe_state_sends_one_app_until_answered() -> None:
    """A follower whose log position is unknown is probed with one APP at a time."""
    core, st = new_core()
    make_leader(core, st)
    assert core.prs["3"].state == ProgressState.PROBE
    core.propose(b"a")
    core.propose(b"b")
    to3 = [m for m in drain(core, st) if m.type == MsgType.APP and m.to == "3"]
    assert to3 == []  # the NOOP probe is outstanding
    core.step(Message(MsgType.HEARTBEAT_RESP, to="1", frm="3", term=1))
    to3 = [m for m in drain(core, st) if m.type == MsgType.APP and m.to == "3"]
    assert len(to3) == 1


# -- Raft §5.4: safety --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cand_index", "cand_term", "grant"),
    [(3, 2, True), (2, 2, False), (4, 2, True), (9, 1, False), (1, 3, True)],
)
def test_5_4_1_vote_only_for_up_to_date_log(cand_index: int, cand_term: int, grant: bool) -> None:
    """Raft §5.4.1: a voter denies a candidate whose log is less up to date than its own
    (compare last terms first, then lengths)."""
    st = MemoryStorage(conf(*ABC))
    st.append([Entry(1, 1), Entry(2, 2), Entry(3, 2)])
    core, _ = new_core(storage=st)
    core.step(Message(MsgType.VOTE, to="1", frm="2", term=5, index=cand_index, log_term=cand_term))
    (resp,) = of_type(drain(core, st), MsgType.VOTE_RESP)
    assert resp.reject is not grant


def test_5_4_2_leader_appends_noop_on_election() -> None:
    """Raft §8 / thesis §6.4: a new leader commits a blank entry of its own term."""
    core, st = new_core()
    make_leader(core, st)
    (e,) = st.all_entries()
    assert (e.index, e.term, e.kind) == (1, 1, EntryKind.NOOP)


def test_5_4_2_only_current_term_entries_commit_by_counting() -> None:
    """Raft §5.4.2 (Figure 8): replicating an old-term entry to a majority does not commit it;
    it commits with the first entry of the current term."""
    st = MemoryStorage(conf(*ABC))
    st.append([Entry(1, 1), Entry(2, 2)])
    st.set_hard_state(HardState(2, "", 1))
    core, _ = new_core(storage=st, pre_vote=False)
    make_leader(core, st)  # term 3, NOOP at index 3
    core.step(Message(MsgType.APP_RESP, to="1", frm="2", term=3, index=2))
    assert core.raft_log.committed == 1  # entry 2 is from term 2: not by counting
    core.step(Message(MsgType.APP_RESP, to="1", frm="2", term=3, index=3))
    assert core.raft_log.committed == 3


def test_single_node_commits_immediately() -> None:
    core, st = new_core(voters=("1",))
    for _ in range(20):
        core.tick()
    assert core.role == Role.LEADER
    idx = core.propose(b"solo")
    rd = core.ready()
    assert [e.index for e in rd.entries][-1] == idx
    assert rd.committed_entries[-1].index == idx  # persist first, then apply, same Ready
    core.advance(rd)


# -- pre-vote and check-quorum (thesis §9.6, §6.2) ----------------------------------------------


def test_prevote_partitioned_node_does_not_disrupt_leader() -> None:
    """Thesis §9.6: an isolated node's pre-votes fail, so it never raises its term and, on
    rejoining, the leader keeps its leadership."""
    c = cluster(3)
    elect(c)
    term = c.nodes["1"].core.term
    c.groups = [{"1", "2"}, {"3"}]
    for _ in range(100):
        for n in c.nodes.values():
            n.core.tick()
        c.stabilize()
    assert c.nodes["3"].core.term == term
    c.groups = None
    for _ in range(5):
        for n in c.nodes.values():
            n.core.tick()
        c.stabilize()
    assert c.nodes["1"].core.role == Role.LEADER and c.nodes["1"].core.term == term
    assert c.nodes["3"].core.lead == "1"


def test_without_prevote_rejoining_node_bumps_term() -> None:
    """The contrast: without pre-vote the isolated node inflates its term and disrupts."""
    c = cluster(3, pre_vote=False, check_quorum=False)
    elect(c)
    c.groups = [{"1", "2"}, {"3"}]
    for _ in range(50):
        c.nodes["3"].core.tick()
        c.stabilize()
    assert c.nodes["3"].core.term > c.nodes["1"].core.term


def test_check_quorum_leader_steps_down_without_quorum() -> None:
    """Thesis §6.2: a leader that hears from no quorum within an election timeout steps down."""
    c = cluster(3)
    elect(c)
    c.groups = [{"1"}, {"2", "3"}]
    lead = c.nodes["1"].core
    for _ in range(2 * lead.election_timeout):
        lead.tick()
        c.stabilize()
    assert lead.role == Role.FOLLOWER


def test_check_quorum_followers_ignore_votes_while_leader_alive() -> None:
    """Thesis §4.2.3: a server that heard from the leader within the minimum election timeout
    ignores vote requests (this is what makes the leader lease sound)."""
    c = cluster(3)
    elect(c)
    f = c.nodes["2"]
    f.core.step(Message(MsgType.VOTE, to="2", frm="3", term=9, index=99, log_term=9))
    assert f.core.term == 1 and not f.core.msgs
    # ...but a forced vote from a leadership transfer is honoured.
    f.core.step(
        Message(
            MsgType.VOTE, to="2", frm="3", term=9, index=99, log_term=9, context=CAMPAIGN_TRANSFER
        )
    )
    assert f.core.term == 9 and f.core.vote == "3"


def test_stale_leader_learns_new_term_and_steps_down() -> None:
    c = cluster(3)
    elect(c)
    c.groups = [{"1"}, {"2", "3"}]
    for _ in range(40):
        for nid in ("2", "3"):
            c.nodes[nid].core.tick()
        c.stabilize()
    new = c.leader()
    assert new is not None and new.id != "1"
    c.groups = None
    c.nodes["1"].core.tick()  # heartbeat at the stale term
    c.stabilize()
    assert c.nodes["1"].core.role == Role.FOLLOWER
    assert c.nodes["1"].core.term == new.core.term


# -- leader lease and read-index (thesis §6.4) --------------------------------------------------


def test_leader_lease_valid_only_with_recent_quorum() -> None:
    c = cluster(3)
    elect(c)
    lead = c.nodes["1"].core
    lead.tick()
    c.stabilize()
    assert lead.leader_lease_valid()
    c.groups = [{"1"}, {"2", "3"}]
    for _ in range(lead.election_timeout - 1):
        lead.tick()
        c.stabilize()
    assert lead.leader_lease_valid()  # the last acked heartbeat is < election_tick old
    lead.tick()
    assert lead.role == Role.LEADER and not lead.leader_lease_valid()
    assert not c.nodes["2"].core.leader_lease_valid()


def test_leader_lease_void_during_transfer() -> None:
    c = cluster(3)
    elect(c)
    lead = c.nodes["1"].core
    lead.tick()
    c.stabilize()
    c.groups = [{"1", "3"}, {"2"}]
    lead.transfer_leadership("2")
    assert not lead.leader_lease_valid()


def test_read_index_on_leader_confirms_with_heartbeat_quorum() -> None:
    c = cluster(3)
    elect(c)
    lead = c.nodes["1"]
    lead.core.read_index(b"req-1")
    rd = c.process_ready(lead)
    beats = of_type(list(rd.messages), MsgType.HEARTBEAT)
    assert {m.context for m in beats} == {b"req-1"}
    assert lead.read_states == []
    c.stabilize()
    assert lead.read_states == [(lead.core.raft_log.committed, b"req-1")]


def test_read_index_without_quorum_never_answers() -> None:
    c = cluster(3)
    elect(c)
    c.groups = [{"1"}, {"2", "3"}]
    c.nodes["1"].core.read_index(b"r")
    c.stabilize()
    assert c.nodes["1"].read_states == []


def test_read_index_forwarded_from_follower() -> None:
    c = cluster(3)
    elect(c)
    c.nodes["1"].core.propose(b"w")
    c.stabilize()
    c.nodes["3"].core.read_index(b"f")
    c.stabilize()
    assert c.nodes["3"].read_states == [(2, b"f")]


def test_read_index_waits_for_commit_in_current_term() -> None:
    """Thesis §6.4: a new leader answers reads only after its NOOP committed."""
    core, st = new_core()
    make_leader(core, st)
    core.read_index(b"early")
    assert not of_type(drain(core, st), MsgType.HEARTBEAT)
    core.step(Message(MsgType.APP_RESP, to="1", frm="2", term=1, index=1))
    beats = of_type(drain(core, st), MsgType.HEARTBEAT)
    assert beats and beats[0].context == b"early"


def test_read_index_without_leader_raises() -> None:
    core, _ = new_core()
    with pytest.raises(NotLeader):
        core.read_index(b"x")


# -- leadership transfer (thesis §3.10) ---------------------------------------------------------


def test_transfer_leadership_to_up_to_date_follower() -> None:
    c = cluster(3)
    elect(c)
    c.nodes["1"].core.propose(b"a")
    c.stabilize()
    c.nodes["1"].core.transfer_leadership("3")
    c.stabilize()
    assert c.nodes["3"].core.role == Role.LEADER
    assert c.nodes["1"].core.role == Role.FOLLOWER and c.nodes["1"].core.lead == "3"


def test_transfer_leadership_catches_up_lagging_transferee_first() -> None:
    c = cluster(3)
    elect(c)
    c.groups = [{"1", "2"}, {"3"}]
    for i in range(5):
        c.nodes["1"].core.propose(b"%d" % i)
    c.stabilize()
    c.groups = None
    c.nodes["1"].core.transfer_leadership("3")
    with pytest.raises(ProposalDropped):
        c.nodes["1"].core.propose(b"during transfer")
    c.stabilize()
    assert c.nodes["3"].core.role == Role.LEADER
    assert c.nodes["3"].core.raft_log.last_index() >= 7


def test_transfer_aborts_after_election_timeout() -> None:
    c = cluster(3)
    elect(c)
    c.groups = [{"1", "2"}, {"3"}]
    lead = c.nodes["1"].core
    lead.transfer_leadership("3")
    assert lead.lead_transferee == "3"
    for _ in range(lead.election_timeout):
        lead.tick()
        c.stabilize()
    assert lead.lead_transferee == "" and lead.role == Role.LEADER
    lead.propose(b"ok again")


def test_transfer_from_follower_is_forwarded() -> None:
    c = cluster(3)
    elect(c)
    c.nodes["2"].core.transfer_leadership("2")
    c.stabilize()
    assert c.nodes["2"].core.role == Role.LEADER


# -- membership changes (Raft §6, thesis §4.1: single-server) -----------------------------------


def test_add_node_then_it_catches_up_and_votes() -> None:
    c = cluster(3)
    elect(c)
    c.add_node("4", ConfState())  # a fresh joiner knows nobody
    c.nodes["1"].core.propose_conf_change(ConfChange(ConfChangeOp.ADD_VOTER, "4", "a4"))
    c.stabilize()
    lead = c.nodes["1"].core
    assert lead.conf.voters == ("1", "2", "3", "4")
    assert lead.conf.address_of("4") == "a4"
    assert c.nodes["4"].core.conf.voters == ("1", "2", "3", "4")
    assert c.nodes["4"].applied_index == lead.raft_log.committed
    # With 4 voters, a majority is 3: losing two peers stalls commits.
    c.groups = [{"1", "4"}, {"2"}, {"3"}]
    idx = lead.propose(b"x")
    c.stabilize()
    assert lead.raft_log.committed < idx


def test_one_conf_change_at_a_time() -> None:
    c = cluster(3)
    elect(c)
    lead = c.nodes["1"].core
    lead.propose_conf_change(ConfChange(ConfChangeOp.ADD_NONVOTER, "4"))
    with pytest.raises(ProposalDropped):
        lead.propose_conf_change(ConfChange(ConfChangeOp.ADD_NONVOTER, "5"))
    c.stabilize()  # applied: the next one is accepted
    lead.propose_conf_change(ConfChange(ConfChangeOp.ADD_NONVOTER, "5"))


def test_nonvoter_replicates_but_does_not_count() -> None:
    c = cluster(2)
    c.add_node("3", ConfState())
    elect(c)
    lead = c.nodes["1"].core
    lead.propose_conf_change(ConfChange(ConfChangeOp.ADD_NONVOTER, "3"))
    c.stabilize()
    assert c.nodes["3"].applied_index == lead.raft_log.committed
    c.groups = [{"1", "3"}, {"2"}]
    idx = lead.propose(b"y")
    c.stabilize()
    assert lead.raft_log.committed < idx  # 1 of 2 voters is no majority
    for _ in range(50):
        c.nodes["3"].core.tick()
    assert c.nodes["3"].core.role == Role.FOLLOWER  # a nonvoter never campaigns


def test_removed_node_stops_campaigning() -> None:
    c = cluster(3)
    elect(c)
    c.nodes["1"].core.propose_conf_change(ConfChange(ConfChangeOp.REMOVE, "3"))
    c.stabilize()
    gone = c.nodes["3"].core
    assert gone.conf.voters == ("1", "2")
    c.groups = [{"1", "2"}, {"3"}]
    for _ in range(100):
        gone.tick()
    assert gone.role == Role.FOLLOWER and not gone.msgs


def test_leader_removing_itself_steps_down() -> None:
    c = cluster(3)
    elect(c)
    c.nodes["1"].core.propose_conf_change(ConfChange(ConfChangeOp.REMOVE, "1"))
    c.stabilize()
    assert c.nodes["1"].core.role == Role.FOLLOWER
    for _ in range(60):
        for nid in ("2", "3"):
            c.nodes[nid].core.tick()
        c.stabilize()
    new = c.leader()
    assert new is not None and new.id in ("2", "3")


# -- snapshots (Raft §7) ------------------------------------------------------------------------


def test_7_lagging_follower_gets_snapshot_and_resumes() -> None:
    c = cluster(3)
    elect(c)
    c.groups = [{"1", "2"}, {"3"}]
    for i in range(20):
        c.nodes["1"].core.propose(b"%d" % i)
        c.stabilize()
    lead = c.nodes["1"]
    c.compact(lead, lead.applied_index)
    c.groups = None
    for _ in range(3):
        lead.core.tick()
        c.stabilize()
    # The driver reports the snapshot's delivery.
    lead.core.report_snapshot("3", True)
    for _ in range(3):
        lead.core.tick()
        c.stabilize()
    f = c.nodes["3"]
    assert f.storage.snapshot().meta.index == lead.storage.snapshot().meta.index
    assert f.applied_index == lead.applied_index
    assert f.sm == lead.sm
    assert lead.core.prs["3"].state == ProgressState.REPLICATE
    lead.core.propose(b"after")
    c.stabilize()
    assert f.applied_index == lead.applied_index


def test_7_failed_snapshot_send_is_retried() -> None:
    core, st = new_core()
    make_leader(core, st)
    for i in range(5):
        core.propose(b"%d" % i)
    core.step(Message(MsgType.APP_RESP, to="1", frm="2", term=1, index=6))
    drain(core, st)
    st.set_hard_state(HardState(1, "1", 6))
    st.create_snapshot(6, core.conf, b"sm")
    st.compact(6)
    core.prs["3"].recent_active = True
    core.step(Message(MsgType.HEARTBEAT_RESP, to="1", frm="3", term=1))
    snaps = of_type(drain(core, st), MsgType.SNAP)
    assert len(snaps) == 1 and core.prs["3"].state == ProgressState.SNAPSHOT
    core.report_snapshot("3", False)
    assert core.prs["3"].state == ProgressState.PROBE
    core.step(Message(MsgType.HEARTBEAT_RESP, to="1", frm="3", term=1))
    assert len(of_type(drain(core, st), MsgType.SNAP)) == 1


def test_7_follower_ignores_older_snapshot() -> None:
    core, st = new_core()
    core.step(
        Message(
            MsgType.APP,
            to="1",
            frm="2",
            term=1,
            entries=tuple(Entry(i, 1) for i in range(1, 6)),
            commit=5,
        )
    )
    drain(core, st)
    snap = Snapshot(SnapshotMeta(3, 1, conf(*ABC)), b"")
    core.step(Message(MsgType.SNAP, to="1", frm="2", term=1, snapshot=snap))
    (resp,) = drain(core, st)
    assert resp.type == MsgType.APP_RESP and resp.index == 5
    assert st.snapshot().is_empty()


# -- restart, Ready/advance, errors -------------------------------------------------------------


def test_restart_keeps_term_vote_and_log() -> None:
    c = cluster(3)
    elect(c)
    c.nodes["1"].core.propose(b"p")
    c.stabilize()
    c.restart("2")
    core = c.nodes["2"].core
    assert (core.term, core.vote, core.raft_log.last_index()) == (1, "1", 2)
    assert core.raft_log.committed == 2
    c.stabilize()
    assert c.nodes["2"].applied_index == 2  # re-applied after restart


def test_ready_contract() -> None:
    core, st = new_core()
    assert not core.has_ready()
    core.step(Message(MsgType.APP, to="1", frm="2", term=1, entries=(Entry(1, 1),), commit=1))
    rd = core.ready()
    assert isinstance(rd, Ready)
    assert rd.hard_state == HardState(1, "", 1)
    assert rd.entries == (Entry(1, 1),) and rd.committed_entries == (Entry(1, 1),)
    assert rd.must_sync and len(rd.messages) == 1
    # Steps between ready() and advance() are kept for the next Ready.
    core.step(Message(MsgType.HEARTBEAT, to="1", frm="2", term=1, commit=1))
    st.append(rd.entries)
    core.advance(rd)
    rd2 = core.ready()
    assert rd2.hard_state is None and rd2.entries == () and rd2.committed_entries == ()
    assert [m.type for m in rd2.messages] == [MsgType.HEARTBEAT_RESP]
    assert not rd2.must_sync
    core.advance(rd2)
    assert not core.has_ready()


def test_propose_on_follower_raises_not_leader_with_hint() -> None:
    c = cluster(3)
    elect(c)
    with pytest.raises(NotLeader) as ei:
        c.nodes["2"].core.propose(b"x")
    assert ei.value.leader == "1"


def test_step_refuses_local_messages() -> None:
    core, _ = new_core()
    for t in (MsgType.HUP, MsgType.BEAT, MsgType.CHECK_QUORUM):
        with pytest.raises(StepLocalMsg):
            core.step(Message(t, to="1", frm="2"))


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        RaftCore(Config(id=""), MemoryStorage())
    with pytest.raises(ValueError):
        RaftCore(Config(id="1", election_tick=1, heartbeat_tick=1), MemoryStorage())


def test_status_reports_progress_on_leader_only() -> None:
    c = cluster(3)
    elect(c)
    st = c.nodes["1"].core.status()
    assert st.role == Role.LEADER and st.leader == "1" and set(st.progress) == set(ABC)
    assert st.progress["2"].match == st.commit
    assert c.nodes["2"].core.status().progress == {}


# -- pure pieces --------------------------------------------------------------------------------


def test_quorum_maths() -> None:
    acked = {"1": 5, "2": 3, "3": 9}
    assert committed_index(("1", "2", "3"), acked.__getitem__) == 5
    assert committed_index(("1", "2", "3", "4"), {**acked, "4": 1}.__getitem__) == 3
    assert vote_result(("1", "2", "3"), {"1": True}) == VoteResult.PENDING
    assert vote_result(("1", "2", "3"), {"1": True, "2": True}) == VoteResult.WON
    assert vote_result(("1", "2", "3"), {"2": False, "3": False}) == VoteResult.LOST


def test_wire_roundtrip_through_msgpack() -> None:
    snap = Snapshot(SnapshotMeta(7, 2, conf("1", "2", nonvoters=("3",))), b"\x00state")
    m = Message(
        MsgType.APP,
        to="2",
        frm="1",
        term=3,
        log_term=2,
        index=6,
        entries=(
            Entry(7, 3, EntryKind.CONF_CHANGE, ConfChange(ConfChangeOp.REMOVE, "3").encode()),
        ),
        commit=6,
        reject=True,
        reject_hint=4,
        snapshot=snap,
        context=b"ctx",
    )
    back = from_wire(msgspec.msgpack.decode(msgspec.msgpack.encode(to_wire(m))))
    assert back == m
    assert ConfChange.decode(back.entries[0].data) == ConfChange(ConfChangeOp.REMOVE, "3")
    with pytest.raises(ValueError):
        from_wire([1, 2])


def test_memory_storage_semantics() -> None:
    st = MemoryStorage()
    st.append([Entry(i, 1) for i in range(1, 6)])
    assert (st.first_index(), st.last_index()) == (1, 5)
    st.append([Entry(4, 2), Entry(5, 2), Entry(6, 2)])  # conflicting suffix replaced
    assert [e.term for e in st.all_entries()] == [1, 1, 1, 2, 2, 2]
    snap = st.create_snapshot(4, conf("1"), b"d")
    assert snap.meta.term == 2
    st.compact(4)
    assert (st.first_index(), st.last_index(), st.term(4)) == (5, 6, 2)
    with pytest.raises(Compacted):
        st.entries(3, 5)
    with pytest.raises(Unavailable):
        st.entries(5, 9)
    with pytest.raises(Compacted):
        st.term(2)
    assert len(st.entries(5, 7, max_bytes=1)) == 1
    with pytest.raises(SnapshotOutOfDate):
        st.apply_snapshot(Snapshot(SnapshotMeta(2, 1)))
    st.apply_snapshot(Snapshot(SnapshotMeta(10, 3, conf("1", "2"))))
    assert (st.first_index(), st.last_index()) == (11, 10)
    assert st.initial_state()[1].voters == ("1", "2")


def _lease_run(c: Cluster, guard: bool) -> bool:
    """Tick everyone together; True if node 1 ever held its lease while a newer leader existed."""
    for _ in range(60):
        for n in c.nodes.values():
            n.core.tick()
            if not guard:
                n.core.restart_vote_guard = False
        c.stabilize()
        newer = [n for n in c.nodes.values() if n.core.role == Role.LEADER and n.id != "1"]
        if newer and c.nodes["1"].core.leader_lease_valid():
            return True
    return False


@pytest.mark.parametrize("guard", [True, False])
def test_lease_survives_follower_restart(guard: bool) -> None:
    """The lease rests on followers ignoring votes for an election timeout after hearing from
    the leader. A follower that restarts has forgotten when it last did, so it refuses votes for
    one election timeout after restarting; without that guard a cut-off candidate wins while
    the old leader still trusts its lease."""
    c = cluster(3)
    elect(c)
    c.cut_links.add(frozenset(("1", "3")))  # 3 never hears from 1: it keeps campaigning
    for _ in range(25):
        for n in c.nodes.values():
            n.core.tick()
        c.stabilize()
    assert c.nodes["1"].core.role == Role.LEADER and c.nodes["1"].core.leader_lease_valid()
    c.restart("2")
    c.cut_links.add(frozenset(("1", "2")))  # and now 1 is isolated
    if not guard:
        c.nodes["2"].core.restart_vote_guard = False
    c.nodes["3"].core.campaign()  # 3's election timer happens to fire right now
    c.stabilize()
    assert _lease_run(c, guard) is (not guard)


def test_lease_follower_that_hears_leader_ignores_cut_off_candidate() -> None:
    c = cluster(3)
    elect(c)
    c.cut_links.add(frozenset(("1", "3")))
    for _ in range(60):
        for n in c.nodes.values():
            n.core.tick()
        c.stabilize()
        assert c.nodes["1"].core.role == Role.LEADER
    assert c.nodes["1"].core.leader_lease_valid() and c.nodes["3"].core.role != Role.LEADER


def test_committed_entries_per_ready_are_capped() -> None:
    """After a restart far behind, the app applies the backlog in bounded batches."""
    st = MemoryStorage(conf("1"))
    st.append([Entry(i, 1, data=b"x" * 100) for i in range(1, 51)])
    st.set_hard_state(HardState(1, "1", 50))
    core, _ = new_core(voters=("1",), storage=st, max_committed_size_per_ready=1000)
    seen = []
    while core.has_ready():
        rd = core.ready()
        assert sum(e.size() for e in rd.committed_entries) <= 1000 or len(rd.committed_entries) == 1
        seen += [e.index for e in rd.committed_entries]
        core.advance(rd)
    assert seen == list(range(1, 51))


def test_report_unreachable_falls_back_to_probe() -> None:
    core, st = new_core()
    make_leader(core, st)
    core.step(Message(MsgType.APP_RESP, to="1", frm="2", term=1, index=1))
    assert core.prs["2"].state == ProgressState.REPLICATE
    core.report_unreachable("2")
    assert core.prs["2"].state == ProgressState.PROBE


def test_forwarded_proposal_is_appended_by_leader_and_dropped_elsewhere() -> None:
    core, st = new_core()
    prop = Message(MsgType.PROP, to="1", frm="2", entries=(Entry(0, 0, EntryKind.NORMAL, b"f"),))
    core.step(prop)  # follower without a leader: dropped, no error
    assert core.raft_log.last_index() == 0
    make_leader(core, st)
    core.step(prop)
    assert core.raft_log.entries(2)[0].data == b"f"


def test_propose_many_batches_into_one_append() -> None:
    c = cluster(3)
    elect(c)
    lead = c.nodes["1"]
    last = lead.core.propose_many([b"a", b"b", b"c"])
    rd = c.process_ready(lead)
    apps = of_type(list(rd.messages), MsgType.APP)
    assert [len(m.entries) for m in apps] == [3, 3]
    assert [e.index for e in apps[0].entries] == [last - 2, last - 1, last]
    c.stabilize()
    assert [e.data for e in c.nodes["3"].applied[-3:]] == [b"a", b"b", b"c"]
    with pytest.raises(NotLeader):
        c.nodes["2"].core.propose_many([b"x"])
