"""The read side every HTTP area shares, set on each request by the App."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.ports import Leadership
    from agent.state.watch import WatchRegistry


class Reads:
    """What every read needs beyond its own tables, set on each request by the App: the
    store's watches (to long-poll on) and leadership (for the headers and `?consistent`)."""

    __slots__ = ("watches", "leadership")

    def __init__(self, watches: WatchRegistry, leadership: Leadership) -> None:
        self.watches = watches
        self.leadership = leadership
