"""Wake-ups for blocking queries.

A blocking query registers one waiter on the topics its answer depends on, re-runs when any of
them fires, and returns once the answer's index passes the one the client sent. Topics are
fine-grained for KV (an exact key, or a prefix) so a write to one key does not wake the
thousands of watchers parked on other keys; catalog topics are per table and per service name.

The registry is loop-agnostic: a waiter is anything with `done()` and `set_result()`, in
practice an `asyncio.Future`, and firing happens on the thread that applies commands.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Protocol


class Waiter(Protocol):
    def done(self) -> bool: ...
    def set_result(self, result: object) -> None: ...


class WatchRegistry:
    def __init__(self) -> None:
        self._topics: dict[Hashable, set[Waiter]] = {}
        # While held, fired topics are collected and woken together on release(): the
        # writers of a batch are answered before thousands of watchers take the loop.
        self._held: set[Hashable] | None = None
        # Prefixes with at least one watcher, so a KV write checks len(key)+1 prefixes at most.
        self._kv_prefixes: dict[str, int] = {}

    def add(self, topics: Iterable[Hashable], waiter: Waiter) -> None:
        for topic in topics:
            self._topics.setdefault(topic, set()).add(waiter)
            if topic[0] == "kvp":
                self._kv_prefixes[topic[1]] = self._kv_prefixes.get(topic[1], 0) + 1

    def remove(self, topics: Iterable[Hashable], waiter: Waiter) -> None:
        for topic in topics:
            waiters = self._topics.get(topic)
            if waiters is None or waiter not in waiters:
                continue
            waiters.discard(waiter)
            if not waiters:
                del self._topics[topic]
            if topic[0] == "kvp":
                left = self._kv_prefixes[topic[1]] - 1
                if left:
                    self._kv_prefixes[topic[1]] = left
                else:
                    del self._kv_prefixes[topic[1]]

    def hold(self) -> None:
        if self._held is None:
            self._held = set()

    def release(self) -> None:
        held, self._held = self._held, None
        for topic in held or ():
            self.fire(topic)

    def fire(self, topic: Hashable) -> None:
        waiters = self._topics.get(topic)
        if not waiters:
            return
        if self._held is not None:
            self._held.add(topic)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def fire_key(self, key: str) -> None:
        """A KV key changed: wake watchers of the key and of every prefix that holds it."""
        self.fire(("kv", key))
        if not self._kv_prefixes:
            return
        if len(self._kv_prefixes) < len(key) + 1:
            for prefix in list(self._kv_prefixes):
                if key.startswith(prefix):
                    self.fire(("kvp", prefix))
        else:
            for i in range(len(key) + 1):
                if key[:i] in self._kv_prefixes:
                    self.fire(("kvp", key[:i]))

    def fire_all(self) -> None:
        """Everything may have changed (snapshot restore)."""
        if self._held is not None:
            self._held.update(self._topics)
            return
        for waiters in list(self._topics.values()):
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def __len__(self) -> int:
        return sum(len(w) for w in self._topics.values())
