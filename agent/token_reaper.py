"""The leader's reaping of expired ACL tokens (Consul's "acl token reaping" leader routine).

An expired token already resolves as "ACL not found" and is left out of reads the moment its
`ExpirationTime` passes (agent/acl/resolve.py); this routine removes it from the store
afterwards, so expired login tokens do not pile up. Time never enters the FSM: the leader
looks at the clock, picks the expired tokens and proposes one batch delete. As in Consul, at
most `BATCH` tokens go per proposal and a pass runs about once a second (its rate limit).

`expired_tokens` is the pure part; `TokenReaper` drives it on the agent's event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from agent.acl.resolve import token_expired
from agent.aio import Background
from agent.state.commands import ACLTokenBatchDelete

if TYPE_CHECKING:
    from agent.ports import Writer
    from agent.state.store import Store

log = logging.getLogger("agent.acl")

EVERY = 1.0  # seconds between passes
BATCH = 128  # tokens per delete (Consul's aclBatchDeleteSize is 4096; smaller entries here)


def expired_tokens(tokens: Iterable[dict], now: dt.datetime, limit: int = BATCH) -> list[str]:
    """Accessor IDs of up to `limit` tokens expired at `now`, soonest-expired first."""
    expired = [t for t in tokens if t.get("ExpirationTime") and token_expired(t, now)]
    expired.sort(key=lambda t: str(t["ExpirationTime"]))
    return [t["AccessorID"] for t in expired[:limit]]


class TokenReaper:
    """Runs while the agent is up; reaps only while it leads."""

    def __init__(
        self,
        store: Store,
        writer: Writer,
        is_leader: Callable[[], bool],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store = store
        self.writer = writer
        self._is_leader = is_leader
        self.clock = clock
        self._loop = Background("acl-token-reaper", self._run)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(EVERY)
            try:
                await self.reap_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost leadership, no quorum: the next pass tries again
                log.warning("could not reap expired ACL tokens: %s", exc)

    async def reap_once(self) -> int:
        """One pass: propose the deletion of the expired tokens; how many were proposed."""
        if not self._is_leader():
            return 0
        accessors = expired_tokens(self.store.acl.tokens.values(), self.clock())
        if not accessors:
            return 0
        await self.writer.write(ACLTokenBatchDelete(AccessorIDs=accessors))
        log.info("reaped %d expired ACL tokens", len(accessors))
        return len(accessors)
