"""Whole clusters of pure gossip cores on a simulated network and a fake clock."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from agent.gossip import (
    Member,
    MemberConflict,
    MemberFailed,
    MemberJoin,
    MemberLeave,
    MemberReap,
    MemberStatus,
    MemberUpdate,
    UnknownMember,
    UserEvent,
)
from agent.gossip.config import GossipConfig
from agent.gossip.messages import NodeState
from agent.gossip.sim import Simulation
from agent.gossip.suspicion import suspicion_timeout

ALIVE, LEFT, FAILED = int(MemberStatus.ALIVE), int(MemberStatus.LEFT), int(MemberStatus.FAILED)


def cluster(n: int, seed: int = 0, config: GossipConfig | None = None) -> Simulation:
    sim = Simulation(seed=seed, config=config)
    for i in range(1, n + 1):
        sim.add_node(f"n{i}", {"dc": "dc1", "role": "node"})
    for i in range(2, n + 1):
        assert sim.join(f"n{i}", ["n1"]).joined == 1
    # Gossip usually converges in a second; periodic push-pulls (every 30 s) are the backstop.
    assert sim.run_until(lambda: sim.converged(all_alive(n)), limit=65)
    return sim


def all_alive(n: int) -> dict[str, int]:
    return {f"n{i}": ALIVE for i in range(1, n + 1)}


def events_of(sim: Simulation, key: str, kind: type) -> list[Any]:
    return [ev for _, ev in sim.nodes[key].events if isinstance(ev, kind)]


def member_of(sim: Simulation, observer: str, name: str) -> Member:
    """`name` as `observer` sees it; the test expects it in the table."""
    member = sim.core(observer).member(name)
    assert member is not None, f"{observer} does not know {name}"
    return member


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_join_of_n_nodes_converges(seed: int) -> None:
    sim = Simulation(seed=seed)
    for i in range(1, 9):
        sim.add_node(f"n{i}", {"dc": "dc1"})
    # Each joins some earlier node, not always the same seed node.
    for i in range(2, 9):
        assert sim.join(f"n{i}", [f"n{max(1, i // 2)}"]).joined == 1
    assert sim.run_until(lambda: sim.converged(all_alive(8)), limit=65)
    for key in sim.nodes:
        joined = {ev.member.name for ev in events_of(sim, key, MemberJoin)}
        assert joined == set(all_alive(8))
    members = sim.core("n5").members()
    m = next(m for m in members if m.name == "n1")
    assert (m.addr, m.port, m.tags, m.status) == ("10.0.0.1", 8301, {"dc": "dc1"}, 1)
    assert (m.protocol_min, m.protocol_max, m.protocol_cur) == (1, 5, 2)
    assert (m.delegate_min, m.delegate_max, m.delegate_cur) == (2, 5, 4)


def test_join_without_port_uses_own_gossip_port() -> None:
    sim = Simulation()
    sim.add_node("a")
    sim.add_node("b")
    token = sim.act("b", lambda c, now: c.join(["10.0.0.1"], now))
    sim.run_for(1)
    result = sim.core("b").join_result(token)
    assert result is not None and result.joined == 1


def test_join_unreachable_reports_each_address() -> None:
    sim = Simulation()
    sim.add_node("a")
    token = sim.act("a", lambda c, now: c.join(["10.9.9.9:8301"], now))
    sim.run_for(1)
    result = sim.core("a").join_result(token)
    assert result is not None
    assert result.joined == 0
    assert "connection refused" in result.errors["10.9.9.9:8301"]


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_killed_node_is_suspected_then_failed_within_memberlist_bound(seed: int) -> None:
    n = 5
    sim = cluster(n, seed)
    cfg = sim.config
    sim.run_for(5)
    t0 = sim.now
    sim.kill("n3")
    others = ["n1", "n2", "n4", "n5"]
    assert sim.run_until(
        lambda: any(sim.core(k).node_state("n3") == NodeState.SUSPECT for k in others), limit=30
    )
    t_suspect = sim.now
    # Each member probes every other within two shuffled rounds of (N-1) probes.
    assert t_suspect - t0 <= 2 * (n - 1) * cfg.probe_interval + cfg.probe_interval
    assert sim.run_until(lambda: all(sim.statuses(k)["n3"] == FAILED for k in others), limit=60)
    min_timeout = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
    max_timeout = cfg.suspicion_max_timeout_mult * min_timeout
    first_failed = min(
        t for k in others for t, ev in sim.nodes[k].events if isinstance(ev, MemberFailed)
    )
    # Lifeguard: never before the minimum timeout, never after the maximum (+ gossip slack).
    # (t_suspect is sampled every 0.05 s, so it may trail the true start by one step.)
    assert first_failed - t_suspect >= min_timeout - 0.06
    assert sim.now - t_suspect <= max_timeout + 2.0
    for k in others:
        assert [ev.member.name for ev in events_of(sim, k, MemberFailed)] == ["n3"]


def test_paused_node_refutes_suspicion_and_never_fails() -> None:
    sim = cluster(5, seed=4)
    sim.run_for(3)
    sim.pause("n3")
    others = ["n1", "n2", "n4", "n5"]
    assert sim.run_until(
        lambda: any(sim.core(k).node_state("n3") == NodeState.SUSPECT for k in others), limit=30
    )
    sim.resume("n3")
    sim.run_for(30)
    assert sim.converged(all_alive(5))
    for k in sim.nodes:
        assert events_of(sim, k, MemberFailed) == []
    assert (sim.core("n3").incarnation("n3") or 0) > 1  # it refuted with a higher incarnation
    assert all(sim.core(k).incarnation("n3") == sim.core("n3").incarnation("n3") for k in others)


def test_partitioned_minority_fails_then_rejoins_after_heal() -> None:
    sim = cluster(5, seed=5)
    majority, minority = ["n1", "n2", "n3"], ["n4", "n5"]
    sim.partition(majority, minority)
    assert sim.run_until(
        lambda: (
            all(sim.statuses(k)["n4"] == sim.statuses(k)["n5"] == FAILED for k in majority)
            and all(all(sim.statuses(k)[m] == FAILED for m in majority) for k in minority)
        ),
        limit=90,
    )
    sim.heal()
    healed_at = sim.now
    # serf's reconnect (every 30 s) pushes state to a failed member; both sides refute. (The
    # minority's stale "dead" news may briefly fail a majority member too; it refutes as well.)
    assert sim.run_until(lambda: sim.converged(all_alive(5)), limit=120)
    rejoined = {
        ev.member.name
        for t, ev in sim.nodes["n1"].events
        if t >= healed_at and isinstance(ev, MemberJoin)
    }
    assert {"n4", "n5"} <= rejoined


def test_direct_link_down_is_covered_by_indirect_probes() -> None:
    sim = cluster(5, seed=6)
    sim.cut("n1", "n2")
    sim.run_for(60)
    assert sim.converged(all_alive(5))
    assert events_of(sim, "n1", MemberFailed) == []


def test_graceful_leave_shows_left_everywhere() -> None:
    sim = cluster(5, seed=8)
    sim.act("n2", lambda c, now: c.leave(now))
    assert sim.core("n2").local_member().status == MemberStatus.LEAVING
    assert sim.run_until(lambda: sim.core("n2").leave_complete, limit=10)
    assert sim.core("n2").local_member().status == MemberStatus.LEFT
    sim.kill("n2")  # the agent shuts down after leaving
    expected = {**all_alive(5), "n2": LEFT}
    assert sim.run_until(lambda: sim.converged(expected), limit=5)
    sim.run_for(60)  # left stays left: no failure, no resurrection
    assert sim.converged(expected)
    for k in ["n1", "n3", "n4", "n5"]:
        assert [ev.member.name for ev in events_of(sim, k, MemberLeave)] == ["n2"]
        assert events_of(sim, k, MemberFailed) == []


def test_tags_update_propagates() -> None:
    sim = cluster(4, seed=9)
    sim.act("n2", lambda c, now: c.update_tags({"dc": "dc1", "role": "consul"}, now))
    assert sim.run_until(
        lambda: all(
            next(m for m in sim.core(k).members() if m.name == "n2").tags["role"] == "consul"
            for k in sim.nodes
        ),
        limit=5,
    )
    for k in sim.nodes:
        updates = events_of(sim, k, MemberUpdate)
        assert [(u.member.name, u.member.tags["role"]) for u in updates] == [("n2", "consul")]


def test_user_events_reach_every_member_exactly_once() -> None:
    sim = cluster(6, seed=10)
    fired = [
        sim.act("n1", lambda c, now: c.broadcast_user_event("deploy", b"v1", now)),
        sim.act("n4", lambda c, now: c.broadcast_user_event("deploy", b"v1", now)),
        sim.act("n6", lambda c, now: c.broadcast_user_event("restart", b"", now)),
    ]
    sim.run_for(30)
    want = sorted((e.name, e.payload, e.id) for e in fired)
    for k in sim.nodes:
        got = sorted((e.name, e.payload, e.id) for e in events_of(sim, k, UserEvent))
        assert got == want, k


def test_user_event_size_limit() -> None:
    sim = cluster(2)
    from agent.gossip import UserEventTooLarge

    with pytest.raises(UserEventTooLarge, match="512"):
        sim.core("n1").broadcast_user_event("big", b"x" * 600, sim.now)


def test_name_conflict_is_refused_and_existing_member_unaffected() -> None:
    sim = cluster(3, seed=11)
    sim.add_node("n3", {"dc": "dc1"}, addr="10.0.0.14:8301")
    result = sim.join("n3@10.0.0.14:8301", ["n1"])
    assert result.joined == 0
    msg = result.errors["10.0.0.1:8301"]
    assert "Member 'n3' has conflicting name" in msg
    assert "Mine: 10.0.0.3:8301 Theirs: 10.0.0.14:8301" in msg
    sim.run_for(30)
    assert sim.converged(all_alive(3), observers=["n1", "n2", "n3"])
    for k in ["n1", "n2", "n3"]:
        assert next(m for m in sim.core(k).members() if m.name == "n3").addr == "10.0.0.3"
    assert [m.name for m in sim.core("n3@10.0.0.14:8301").members()] == ["n3"]


def test_alive_message_with_conflicting_address_is_ignored() -> None:
    from agent.gossip.messages import Alive, encode

    sim = cluster(2)
    sim.act(
        "n1",
        lambda c, now: c.handle_packet(
            "10.0.0.9:8301", encode(Alive(9, "n2", "10.0.0.9:8301", {})), now
        ),
    )
    conflicts = events_of(sim, "n1", MemberConflict)
    assert conflicts and conflicts[0].other_addr == "10.0.0.9:8301"
    assert member_of(sim, "n1", "n2").addr == "10.0.0.2"


def test_wrong_datacenter_is_refused() -> None:
    sim = cluster(2, seed=12)
    sim.add_node("x", {"dc": "dc2"})
    result = sim.join("x", ["n1"])
    assert result.joined == 0
    assert result.errors["10.0.0.1:8301"] == "Member 'x' part of wrong datacenter 'dc2'"
    assert sim.converged(all_alive(2), observers=["n1", "n2"])


def test_custom_merge_delegate_can_refuse() -> None:
    sim = Simulation()
    sim.add_node(
        "a", merge_delegate=lambda peers: "no" if any(p.name == "b" for p in peers) else None
    )
    sim.add_node("b")
    assert sim.join("b", ["a"]).errors == {"10.0.0.1:8301": "no"}


def test_failed_member_is_reaped_after_reconnect_timeout() -> None:
    cfg = GossipConfig(reconnect_timeout=120.0, reap_interval=5.0)
    sim = cluster(4, seed=13, config=cfg)
    sim.kill("n4")
    assert sim.run_until(lambda: sim.statuses("n1").get("n4") == FAILED, limit=60)
    assert sim.run_until(lambda: "n4" not in sim.statuses("n1"), limit=cfg.reconnect_timeout + 10)
    assert [ev.member.name for ev in events_of(sim, "n1", MemberReap)] == ["n4"]


def test_force_leave_turns_failed_into_left_and_prune_removes() -> None:
    sim = cluster(4, seed=14)
    sim.kill("n4")
    live = ["n1", "n2", "n3"]
    assert sim.run_until(lambda: all(sim.statuses(k)["n4"] == FAILED for k in live), limit=60)
    sim.act("n1", lambda c, now: c.force_leave("n4", False, now))
    assert sim.run_until(lambda: all(sim.statuses(k)["n4"] == LEFT for k in live), limit=5)
    sim.act("n2", lambda c, now: c.force_leave("n4", True, now))
    assert sim.run_until(lambda: all("n4" not in sim.statuses(k) for k in live), limit=5)
    with pytest.raises(UnknownMember, match="No node found with name 'n4'"):
        sim.core("n1").force_leave("n4", False, sim.now)


def test_same_seed_replays_exactly() -> None:
    def run() -> list[tuple[float, str]]:
        sim = cluster(5, seed=21)
        sim.kill("n2")
        sim.run_for(40)
        return [(t, repr(ev)) for k in sim.nodes for t, ev in sim.nodes[k].events]

    assert run() == run()


def test_idle_member_sleeps_until_next_probe() -> None:
    sim = cluster(3, seed=15)
    sim.run_for(30)
    core = sim.core("n1")
    core.take_outputs()
    # Nothing queued to gossip: the next wake-up is a probe or probe step, not a gossip tick.
    assert core.next_deadline() > sim.now
    assert core.next_deadline() - sim.now <= sim.config.probe_interval


def test_user_event_missed_by_gossip_arrives_by_push_pull_once() -> None:
    sim = cluster(5, seed=16)
    for other in ["n1", "n2", "n3", "n4"]:
        sim.cut("n5", other)
    ev = sim.act("n1", lambda c, now: c.broadcast_user_event("deploy", b"x", now))
    sim.run_for(0.6)  # gossip of the event is spent before the link comes back
    sim.heal()
    sim.run_for(40)
    got = [(e.name, e.id) for e in events_of(sim, "n5", UserEvent)]
    assert got == [("deploy", ev.id)]


def test_joiner_does_not_replay_old_events() -> None:
    sim = cluster(3, seed=17)
    sim.act("n1", lambda c, now: c.broadcast_user_event("old", b"", now))
    sim.run_for(5)
    sim.add_node("n4", {"dc": "dc1"})
    assert sim.join("n4", ["n2"]).joined == 1
    sim.run_for(40)
    assert events_of(sim, "n4", UserEvent) == []
    new = sim.act("n1", lambda c, now: c.broadcast_user_event("new", b"", now))
    sim.run_for(5)
    assert [e.id for e in events_of(sim, "n4", UserEvent)] == [new.id]


def test_probes_feed_vivaldi_coordinates() -> None:
    sim = Simulation(seed=18, latency=(0.004, 0.006))  # one way: RTT about 10 ms
    for i in range(1, 5):
        sim.add_node(f"n{i}", {"dc": "dc1"})
    for i in range(2, 5):
        sim.join(f"n{i}", ["n1"])
    sim.run_for(600)  # Vivaldi needs some minutes of one probe per second to settle
    for a, b in itertools.combinations(sim.nodes, 2):
        estimate = sim.core(a).coordinate().distance(sim.core(b).coordinate())
        assert 0.007 < estimate < 0.013, (a, b, estimate)
    assert set(sim.core("n1").peer_coordinates()) == {"n2", "n3", "n4"}


@pytest.mark.parametrize("how", ["crash-failed", "crash-quick", "left"])
def test_restarted_member_rejoins_with_a_higher_incarnation(how: str) -> None:
    sim = cluster(4, seed=19)
    live = ["n1", "n2", "n4"]
    if how == "left":
        sim.act("n3", lambda c, now: c.leave(now))
        assert sim.run_until(lambda: sim.core("n3").leave_complete, limit=5)
    sim.kill("n3")
    if how == "crash-failed":
        assert sim.run_until(lambda: all(sim.statuses(k)["n3"] == FAILED for k in live), 60)
    elif how == "left":
        assert sim.run_until(lambda: all(sim.statuses(k)["n3"] == LEFT for k in live), 5)
    # A fresh process on the same address starts again at incarnation 1, with new tags.
    sim.add_node("n3", {"dc": "dc1", "build": "2"}, addr="10.0.0.3:8301")
    assert sim.join("n3@10.0.0.3:8301", ["n1"]).joined == 1
    observers = [*live, "n3@10.0.0.3:8301"]
    assert sim.run_until(lambda: sim.converged(all_alive(4), observers=observers), limit=10)
    assert sim.run_until(
        lambda: all(member_of(sim, k, "n3").tags.get("build") == "2" for k in observers),
        limit=10,
    )


def test_force_leave_of_a_live_member_shows_leaving_until_it_refutes() -> None:
    sim = cluster(4, seed=16)
    leaving = int(MemberStatus.LEAVING)
    incarnation = sim.core("n1").incarnation("n4")
    sim.pause("n4")  # it cannot refute yet
    sim.act("n1", lambda c, now: c.force_leave("n4", True, now))  # prune spares a live member
    live = ["n1", "n2", "n3"]
    assert sim.statuses("n1")["n4"] == leaving
    assert sim.run_until(lambda: all(sim.statuses(k)["n4"] == leaving for k in live), limit=1)
    sim.resume("n4")
    assert sim.run_until(lambda: sim.converged(all_alive(4)), limit=10)
    assert sim.core("n1").incarnation("n4") > incarnation
    assert not events_of(sim, "n1", MemberLeave)


def test_force_leave_of_a_leaving_member_that_dies_makes_it_left() -> None:
    sim = cluster(4, seed=17)
    sim.kill("n4")
    sim.act("n1", lambda c, now: c.force_leave("n4", False, now))
    assert sim.statuses("n1")["n4"] == int(MemberStatus.LEAVING)
    live = ["n1", "n2", "n3"]
    assert sim.run_until(lambda: all(sim.statuses(k)["n4"] == LEFT for k in live), limit=60)
    assert [ev.member.name for ev in events_of(sim, "n1", MemberLeave)] == ["n4"]


def test_force_leave_of_ourselves_is_refuted_at_once() -> None:
    sim = cluster(3, seed=18)
    before = sim.core("n1").incarnation("n1")
    sim.act("n1", lambda c, now: c.force_leave("n1", False, now))
    assert sim.statuses("n1")["n1"] == ALIVE
    assert sim.run_until(lambda: sim.core("n2").incarnation("n1") > before, limit=5)
    assert sim.converged(all_alive(3))
