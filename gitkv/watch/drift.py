"""Drift triggers: blocking queries on what the watcher manages.

One daemon thread per target (`/v1/kv/<prefix>?keys` for each managed KV prefix,
`/v1/catalog/services` and `/v1/catalog/nodes` when the spec has services or external nodes)
long-polls with `?index=` and calls `on_change(target)` whenever the target's index moves.
Each thread spends its life blocked in a socket read, so an idle watcher uses no CPU.

Whether a change is drift is not decided here: the engine plans against the last good spec,
and only a non-empty plan is drift (its own applies also move the indexes and plan empty).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from urllib.parse import quote

from gitkv.client import ConsulClient, ConsulSettings
from gitkv.errors import ClusterError
from gitkv.watch.log import EventLog

__all__ = ["BLOCK_WAIT", "DriftWatcher", "Target", "targets_for"]

BLOCK_WAIT = "5m"
_BACKOFF_MAX = 30.0


@dataclass(frozen=True, order=True)
class Target:
    """One blocking query: a label for logs and the request."""

    label: str
    path: str
    params: tuple[tuple[str, str], ...] = ()


def targets_for(kv_prefixes: Iterable[str], catalog: bool) -> frozenset[Target]:
    out = {Target(f"kv:{p}", "/v1/kv/" + quote(p), (("keys", ""),)) for p in kv_prefixes}
    if catalog:
        out.add(Target("catalog:services", "/v1/catalog/services"))
        out.add(Target("catalog:nodes", "/v1/catalog/nodes"))
    return frozenset(out)


def next_index(old: int, header: str | None) -> tuple[int, bool]:
    """The index to wait on next, and whether the target changed.

    An index that goes backwards (snapshot restore, new cluster) resets the wait to 0 as
    Consul's documentation advises, and counts as a change.
    """
    try:
        new = int(header or 0)
    except ValueError:
        return 0, old != 0
    if new < old:
        return 0, True
    return new, old != 0 and new != old


class DriftWatcher:
    """Keeps one thread per target; `follow` replaces the target set, `stop` ends all."""

    def __init__(
        self,
        settings: ConsulSettings,
        on_change: Callable[[str], None],
        log: EventLog | None = None,
    ) -> None:
        self._settings = replace(settings, timeout=400.0)
        self._on_change = on_change
        self._log = log or EventLog()
        self._threads: dict[Target, threading.Event] = {}
        self._mutex = threading.Lock()

    @property
    def targets(self) -> frozenset[Target]:
        with self._mutex:
            return frozenset(self._threads)

    def follow(self, targets: Iterable[Target]) -> None:
        wanted = frozenset(targets)
        with self._mutex:
            for target in set(self._threads) - wanted:
                self._threads.pop(target).set()
            for target in wanted - set(self._threads):
                stop = threading.Event()
                self._threads[target] = stop
                threading.Thread(
                    target=self._run,
                    args=(target, stop),
                    name=f"gitkv-drift-{target.label}",
                    daemon=True,
                ).start()

    def stop(self) -> None:
        self.follow(())

    def _run(self, target: Target, stop: threading.Event) -> None:
        index, backoff = 0, 1.0
        # The first answer also counts as a change: an edit made between the engine's last
        # check and this thread's first read would otherwise sit below the index it waits on.
        first = True
        with ConsulClient(self._settings) as client:
            while not stop.is_set():
                params = dict(target.params)
                if index:
                    params.update(index=str(index), wait=BLOCK_WAIT)
                try:
                    resp = client.request("GET", target.path, params=params, ok=(200, 404))
                except ClusterError as exc:
                    self._log.warn("drift_watch_error", target=target.label, error=str(exc))
                    index = 0
                    stop.wait(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
                    continue
                backoff = 1.0
                index, changed = next_index(index, resp.headers.get("X-Consul-Index"))
                changed, first = changed or first, False
                if changed and not stop.is_set():
                    self._on_change(target.label)
