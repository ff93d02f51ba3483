"""py-consul's leader-election recipe on the seed's 3 servers + 1 client, across a leader change.

Each contender creates a session on its own agent (LockDelay 1s) and loops on
`kv.put(key, me, acquire=session)`. Then the Raft leader is killed with SIGKILL:

* a holder on a surviving node keeps the lock (its session does not depend on the leader);
* a holder on the killed node loses it once the new leader sees the node fail (serfHealth
  critical invalidates the session), and the other contender takes over after the lock-delay.
"""

from __future__ import annotations

import consul
import pytest

from tests.e2e.seedcluster import Agent, SeedCluster, eventually

pytestmark = pytest.mark.timeout(240)

KEY = "service/web/leader"


class Contender:
    def __init__(self, agent: Agent, name: str) -> None:
        self.agent = agent
        self.name = name
        self.api = consul.Consul(host=agent.ip, port=8500, connections_timeout=10)
        self.session = self.api.session.create(name=f"leader-{name}", lock_delay=1)

    def try_acquire(self) -> bool:
        try:
            return bool(self.api.kv.put(KEY, self.name, acquire=self.session))
        except (consul.ConsulException, OSError):
            return False  # e.g. no leader during the election

    def holder(self) -> tuple[str | None, str | None]:
        """(session, value) of the lock key, read through this contender's agent."""
        _, entry = self.api.kv.get(KEY, consistency="consistent")
        if entry is None:
            return None, None
        value = entry["Value"].decode() if entry["Value"] else None
        return entry.get("Session"), value


def _wait_failed(cluster: SeedCluster, dead: Agent) -> None:
    """Until every live agent's gossip marks `dead` failed, so clients stop dialling it."""

    def failed_everywhere() -> bool:
        for agent in cluster.agents.values():
            if not agent.alive:
                continue
            members = consul.Consul(host=agent.ip, port=8500).agent.members()
            if any(m["Name"] == dead.name and m["Status"] == 1 for m in members):
                return False
        return True

    eventually(failed_everywhere, 30, f"{dead.name} seen failed")


def _leader_and_followers(cluster: SeedCluster) -> tuple[Agent, list[Agent]]:
    leader = cluster.leader_agent()
    followers = [
        cluster.agents[n] for n in ("node1", "node2", "node3") if cluster.agents[n] is not leader
    ]
    return leader, followers


def test_holder_on_a_surviving_node_keeps_the_lock_across_a_leader_change() -> None:
    with SeedCluster() as cluster:
        leader, followers = _leader_and_followers(cluster)
        holder = Contender(cluster.agents["node4"], "client-node4")
        other = Contender(followers[0], f"server-{followers[0].name}")
        assert holder.try_acquire()
        assert not other.try_acquire()

        leader.kill()
        cluster.wait_leader(timeout=30, not_on=leader.name)
        _wait_failed(cluster, leader)
        # Past the election: writes go through again, and the lock is still held by the client.
        eventually(lambda: holder.holder()[0] == holder.session, 30, "lock readable")
        for _ in range(5):
            assert not other.try_acquire()
        assert holder.holder() == (holder.session, holder.name)
        assert holder.api.session.info(holder.session)[1] is not None
        # The holder can still release and re-take it, so the lock is live, not stuck.
        assert holder.api.kv.put(KEY, holder.name, release=holder.session)
        assert holder.try_acquire()


def test_holder_on_the_killed_leader_is_replaced_after_the_lock_delay() -> None:
    with SeedCluster() as cluster:
        leader, _ = _leader_and_followers(cluster)
        holder = Contender(leader, f"server-{leader.name}")
        other = Contender(cluster.agents["node4"], "client-node4")
        assert holder.try_acquire()
        assert not other.try_acquire()
        dead_session = holder.session

        leader.kill()
        cluster.wait_leader(timeout=30, not_on=leader.name)
        _wait_failed(cluster, leader)
        # The new leader sees node failure -> serfHealth critical -> session invalidated ->
        # key released (Behavior release); after the 1s lock-delay the other contender wins.
        eventually(other.try_acquire, 60, "takeover by the other contender")
        assert other.holder() == (other.session, other.name)
        assert other.api.session.info(dead_session)[1] is None
