"""Majority maths over a set of voters (pure functions)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from enum import IntEnum


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(n: int) -> int:
    """Votes needed among `n` voters."""
    return n // 2 + 1


def committed_index(voters: Collection[str], acked: Callable[[str], int]) -> int:
    """The highest index acknowledged by a majority of `voters` (0 with no voters).

    Sort the acked indexes descending; the majority-th one is held by a quorum.
    """
    if not voters:
        return 0
    idx = sorted((acked(v) for v in voters), reverse=True)
    return idx[majority(len(idx)) - 1]


def vote_result(voters: Collection[str], votes: Mapping[str, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer be reached."""
    if not voters:
        return VoteResult.WON  # etcd's convention: an empty config wins trivially
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Collection[str], ok: Callable[[str], bool]) -> bool:
    return sum(1 for v in voters if ok(v)) >= majority(len(voters)) if voters else False
