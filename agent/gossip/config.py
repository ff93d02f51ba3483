"""Gossip timing parameters: HashiCorp memberlist's LAN/WAN defaults plus serf's reaping knobs.

All durations are seconds (floats), because the core takes `now` as a float from the driver's
monotonic clock (`loop.time()`) or from a test's fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GossipConfig:
    # memberlist (DefaultLANConfig)
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    gossip_to_the_dead_time: float = 30.0
    retransmit_mult: int = 4
    push_pull_interval: float = 30.0
    tcp_timeout: float = 10.0
    awareness_max_multiplier: int = 8
    # memberlist's default is 0 (never); Consul sets 30s so a node may come back on a new address
    dead_node_reclaim_time: float = 30.0
    udp_buffer_size: int = 1400
    # serf
    reap_interval: float = 15.0
    reconnect_interval: float = 30.0
    reconnect_timeout: float = 72 * 3600.0  # failed members are reaped after this (Consul: 72h)
    tombstone_timeout: float = 24 * 3600.0  # left members are reaped after this
    user_event_size_limit: int = 512
    event_buffer_size: int = 512
    # Consul's LAN pool refuses members of another datacenter; the WAN pool must not.
    check_datacenter: bool = True


def lan_config() -> GossipConfig:
    return GossipConfig()


def wan_config() -> GossipConfig:
    """memberlist's DefaultWANConfig: slower probes and gossip, more tolerance for latency."""
    return GossipConfig(
        tcp_timeout=30.0,
        suspicion_mult=6,
        push_pull_interval=60.0,
        probe_timeout=3.0,
        probe_interval=5.0,
        gossip_nodes=4,
        gossip_interval=0.5,
        gossip_to_the_dead_time=60.0,
        check_datacenter=False,
    )


def local_config() -> GossipConfig:
    """memberlist's DefaultLocalConfig: a loopback-only cluster (used by fast e2e tests)."""
    return GossipConfig(
        tcp_timeout=1.0,
        indirect_checks=1,
        retransmit_mult=2,
        suspicion_mult=3,
        push_pull_interval=15.0,
        probe_timeout=0.2,
        probe_interval=1.0,
        gossip_interval=0.1,
        gossip_to_the_dead_time=15.0,
    )
