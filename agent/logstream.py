"""Fan-out of the agent's log records to `/v1/agent/monitor` streams.

Each subscriber gets a bounded queue: a slow reader loses lines (and is told how many) rather
than slowing the agent down or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

QUEUE_SIZE = 512


class LogBroadcaster(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self._subscribers: set[tuple[asyncio.Queue, int, bool]] = set()
        self.base_level = logging.INFO

    def subscribe(self, level: int, as_json: bool) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add((queue, level, as_json))
        self._set_root_level()
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers = {s for s in self._subscribers if s[0] is not queue}
        self._set_root_level()

    def _set_root_level(self) -> None:
        wanted = min([self.base_level] + [level for _, level, _ in self._subscribers])
        logging.getLogger().setLevel(wanted)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._subscribers:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        for queue, level, as_json in list(self._subscribers):
            if record.levelno < level:
                continue
            if as_json:
                line = json.dumps(
                    {
                        "@level": record.levelname.lower(),
                        "@message": message,
                        "@module": record.name,
                        "@timestamp": stamp,
                    }
                )
            else:
                line = f"{stamp} [{record.levelname}] {record.name}: {message}"
            try:
                queue.put_nowait(line + "\n")
            except asyncio.QueueFull:
                pass


broadcaster = LogBroadcaster()
