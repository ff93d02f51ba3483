"""Consensus for a cluster of one voter: the log is committed once it is on local disk.

This is Raft's degenerate case, kept to the same seam the multi-server driver fills: callers
`await apply(command)` and get the FSM's result after the entry is durable and applied. Writes
that arrive while a sync is in flight are batched into the next one (group commit), so
throughput is bounded by sync rate times batch size, not by sync rate alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from pathlib import Path
from typing import Any

import msgspec

from agent.raft.log import FileLog, encode_record
from agent.state.fsm import FSM

log = logging.getLogger("agent.raft")

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class NotLeader(Exception):
    """This server cannot accept writes now."""


class SingleServer:
    """A one-voter Raft: durable log in `data_dir/raft`, or in memory when data_dir is None."""

    def __init__(
        self,
        fsm: FSM,
        data_dir: Path | None,
        address: str,
        snapshot_every: int = 16384,
        max_batch: int = 1024,
        bootstrap: bool = True,
        metrics: Any = None,
    ) -> None:
        self.metrics = metrics
        self.fsm = fsm
        self.data_dir = data_dir
        # A server that was not told to bootstrap waits for peers (Consul: -bootstrap-expect=N
        # with N > 1, or neither flag). Once it has led, its data dir remembers that.
        self.bootstrap = bootstrap or self._bootstrapped_before()
        self.address = address
        self.term = 1
        self.snapshot_every = snapshot_every
        self.max_batch = max_batch
        self.log = FileLog(data_dir / "raft") if data_dir is not None else None
        self._pending: list[tuple[int, dict, asyncio.Future]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raft-log")
        self._next_index = 1
        self._applied_since_snapshot = 0
        self._stopping = False
        self._last_snapshot_size = 0

    # ------------------------------------------------------------------ status

    def _bootstrapped_before(self) -> bool:
        return self.data_dir is not None and (self.data_dir / "raft" / "bootstrapped").exists()

    def _mark_bootstrapped(self) -> None:
        if self.data_dir is not None:
            marker = self.data_dir / "raft" / "bootstrapped"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()

    @property
    def is_leader(self) -> bool:
        return self.bootstrap and not self._stopping

    @property
    def leader_address(self) -> str:
        return self.address if self.is_leader else ""

    @property
    def last_index(self) -> int:
        return self._next_index - 1

    def peers(self) -> list[str]:
        return [self.address] if self.bootstrap else []

    # ------------------------------------------------------------------ lifecycle

    def restore(self) -> int:
        """Load the newest snapshot and replay the log after it; returns entries replayed."""
        store = self.fsm.store
        if self.log is None:
            return 0
        snap = self.log.latest_snapshot()
        start = 0
        if snap is not None:
            start, body = snap
            store.restore(body)
            self._last_snapshot_size = len(body)
        replayed = 0
        for record in self.log.replay(start):
            self.fsm.apply(record.index, _decode(record.payload))
            replayed += 1
        self._next_index = max(start, self.log.last_index, store.last_index) + 1
        self._applied_since_snapshot = replayed
        return replayed

    async def start(self) -> None:
        if self.bootstrap:
            self._mark_bootstrapped()
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._commit_loop(), name="raft-commit")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            if self._wakeup is not None:
                self._wakeup.set()
            await self._task
        if self.log is not None:
            self.log.close()
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ writes

    async def apply(self, command: dict) -> Any:
        if not self.is_leader or self._wakeup is None:
            raise NotLeader("No cluster leader")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((self._next_index, command, future))
        self._next_index += 1
        self._wakeup.set()
        return await future

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: len(batch)]
                began = time.perf_counter()
                if self.log is not None:
                    data = b"".join(
                        encode_record(index, self.term, _encode(cmd)) for index, cmd, _ in batch
                    )
                    try:
                        await loop.run_in_executor(
                            self._executor, self.log.append_sync, data, batch[-1][0], batch[0][0]
                        )
                    except OSError as exc:
                        # Nothing in this batch is durable: fail it and stop taking writes,
                        # since later indexes would leave a hole in the log.
                        log.error("log write failed, refusing further writes: %s", exc)
                        self._stopping = True
                        for _, _, fut in batch + self._pending:
                            if not fut.done():
                                fut.set_exception(NotLeader(f"log write failed: {exc}"))
                        self._pending.clear()
                        return
                if self.metrics is not None:
                    self.metrics.sample(
                        "consul.raft.commitTime", (time.perf_counter() - began) * 1000
                    )
                    self.metrics.incr("consul.raft.apply", len(batch))
                for index, cmd, fut in batch:
                    try:
                        result = self.fsm.apply(index, cmd)
                    except Exception as exc:  # a bug in apply must not kill the loop
                        log.exception("apply of index %d failed", index)
                        if not fut.done():
                            fut.set_exception(exc)
                        continue
                    if not fut.done():
                        fut.set_result(result)
                self._applied_since_snapshot += len(batch)
                if self.log is not None and self._snapshot_due():
                    await self._snapshot(loop)
            if self._stopping and not self._pending:
                return

    def _snapshot_due(self) -> bool:
        # Entries alone would re-snapshot a million-key store every few seconds under load;
        # also wait until the log since the last snapshot is worth half a snapshot to replay.
        if self.log.needs_rotation():
            return True
        return (
            self._applied_since_snapshot >= self.snapshot_every
            and self.log.segment_size * 2 >= self._last_snapshot_size
        )

    async def _snapshot(self, loop: asyncio.AbstractEventLoop) -> None:
        store = self.fsm.store
        index = store.last_index
        body = store.snapshot()  # on the loop: the store must not change while it is encoded
        await loop.run_in_executor(self._executor, self.log.write_snapshot, index, body)
        self._applied_since_snapshot = 0
        self._last_snapshot_size = len(body)
        log.info("snapshot at index %d (%d bytes)", index, len(body))
