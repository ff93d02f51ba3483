"""Merge delegates: checks run on a peer's member list before it is merged (join or push-pull).

A delegate returns an error message to refuse the whole merge, or None to accept it. The
standard one refuses (a) a member whose name a live local member already holds at another address
and (b) a member of another datacenter (tag `dc`). The agent may chain its own checks after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from agent.gossip.events import Member, MemberStatus

MergeDelegate = Callable[[Sequence[Member]], "str | None"]

_LIVE = (MemberStatus.ALIVE, MemberStatus.LEAVING)


class MemberView(Protocol):
    def members(self) -> list[Member]: ...

    def local_member(self) -> Member: ...


class StandardMergeDelegate:
    """Name-conflict and datacenter checks against the current local view."""

    def __init__(self, view: MemberView, check_datacenter: bool = True) -> None:
        self._view = view
        self._check_dc = check_datacenter

    def __call__(self, peers: Sequence[Member]) -> str | None:
        local = self._view.local_member()
        mine = {m.name: m for m in self._view.members() if m.status in _LIVE}
        for peer in peers:
            if self._check_dc:
                dc = peer.tags.get("dc")
                local_dc = local.tags.get("dc")
                if dc is not None and local_dc is not None and dc != local_dc:
                    return f"Member '{peer.name}' part of wrong datacenter '{dc}'"
            if peer.status not in _LIVE:
                continue
            existing = mine.get(peer.name)
            if existing is not None and existing.address != peer.address:
                return (
                    f"Member '{peer.name}' has conflicting name with member at "
                    f"{existing.address}: Conflicting address for {peer.name}. "
                    f"Mine: {existing.address} Theirs: {peer.address}"
                )
        return None


def chain_merge_delegates(*delegates: MergeDelegate) -> MergeDelegate:
    """Run delegates in order; the first refusal wins."""

    def chained(peers: Sequence[Member]) -> str | None:
        for delegate in delegates:
            error = delegate(peers)
            if error is not None:
                return error
        return None

    return chained
