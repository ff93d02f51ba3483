"""Shared fixtures for end-to-end tests: real `gitkv agent` processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.agentproc import AgentProc, free_port


def dev_agent_args(ip: str = "127.0.0.1") -> list[str]:
    """A -dev agent with every listener on a free port (DNS and WAN gossip off)."""
    return [
        "-dev",
        f"-bind={ip}",
        f"-client={ip}",
        f"-server-port={free_port(ip)}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port(ip)}",
        "-serf-wan-port=-1",
    ]


def _start_dev_agent() -> AgentProc:
    return AgentProc(*dev_agent_args(), http_port=free_port()).start()


@pytest.fixture
def dev_agent() -> Iterator[AgentProc]:
    agent = _start_dev_agent()
    try:
        yield agent
    finally:
        agent.cleanup()


@pytest.fixture(scope="module")
def dev_agent_module() -> Iterator[AgentProc]:
    agent = _start_dev_agent()
    try:
        yield agent
    finally:
        agent.cleanup()
