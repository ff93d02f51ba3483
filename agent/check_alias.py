"""Alias checks: a check whose health is another service instance's (or node's) health.

Consul's CheckAlias. An alias of a service on this agent (no `AliasNode`) reads the agent's own
checks and follows every change to them; one that names a node reads that node's checks from
the catalog. Either way the status is the same function of the checks seen (`alias_status`):
critical if any of them is critical, else warning if one warns, else passing; checks of other
services do not count, node-level ones do. An aliased service that has no checks is healthy
when it exists and critical when it does not.

Pure; `agent.local` feeds it the checks and keeps the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

__all__ = ["AliasedCheck", "alias_status"]


@dataclass(frozen=True)
class AliasedCheck:
    """One check as an alias sees it."""

    node: str
    service_id: str
    name: str
    status: str
    output: str = ""


def alias_status(
    node: str,
    service_id: str,
    checks: Iterable[AliasedCheck],
    service_exists: Callable[[], bool],
) -> tuple[str, str]:
    """(status, output) of an alias of `service_id` on `node` ("" for this agent's own).
    `service_exists` is asked only when no check of the service was seen."""
    status, output = "passing", "No checks found."
    found = False
    for check in checks:
        if node and check.node != node:
            continue
        matches = check.service_id == service_id
        if check.service_id and not matches:
            continue
        found = found or matches
        if check.status in ("critical", "warning"):
            status = check.status
            output = f"Aliased check {_go_quote(check.name)} failing: {check.output}"
            if status == "critical":
                break
        elif status == "passing":
            output = "All checks passing."
    if not found and not service_exists():
        return "critical", f"Service {service_id} could not be found on node {node}"
    return status, output


def _go_quote(text: str) -> str:
    return msgspec.json.encode(text).decode()
