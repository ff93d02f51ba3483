"""Wires source, engine, lock, drift watcher and webhook into the `gitkv watch` process.

Threads: the runner thread owns the engine (one sync at a time, under `busy`); drift
watchers, the lock renewal, the webhook server and the file watcher only put events on the
runner's queue. The main thread waits for a signal; on SIGTERM/SIGINT it sets `stop`, waits
for a sync in progress to finish (`busy`) and releases the lock, so a standby takes over at
once. Idle, every thread is blocked (queue wait, socket read): no CPU is spent.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gitkv.client import ConsulSettings
from gitkv.errors import GitkvError
from gitkv.watch.drift import DriftWatcher, targets_for
from gitkv.watch.lock import ClusterLock
from gitkv.watch.log import EventLog
from gitkv.watch.loop import INVALID, SyncEngine, load_resources
from gitkv.watch.metrics import Metrics
from gitkv.watch.source import GitSource, Source, TreeSource, open_source
from gitkv.watch.webhook import WebhookServer

__all__ = ["Runner", "WatchOptions"]

# How long a stopping watcher waits for an apply in progress before releasing the lock.
STOP_GRACE = 60.0
# Drift triggers arriving within this window are handled as one.
COALESCE = 0.2


@dataclass(frozen=True)
class WatchOptions:
    source: str
    branch: str | None = None
    path: str = ""
    interval: float = 30.0
    listen: str | None = None
    webhook_secret: bytes | None = None
    self_heal: bool = True
    prune: bool = False
    lock_name: str | None = None
    lock_ttl: float = 15.0
    once: bool = False
    worktree: bool = False
    cache_dir: Path | None = None


class Runner:
    def __init__(self, opts: WatchOptions, log: EventLog, metrics: Metrics | None = None) -> None:
        self.opts = opts
        self.log = log
        self.metrics = metrics or Metrics()
        self.stop = threading.Event()
        self.busy = threading.Lock()
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.source: Source | None = None
        self.engine: SyncEngine | None = None
        self.lock: ClusterLock | None = None
        self.drift: DriftWatcher | None = None
        self.webhook: WebhookServer | None = None
        self.exit_code = 0
        self._settings = ConsulSettings.from_env()
        self._thread: threading.Thread | None = None

    # -- events ------------------------------------------------------------------------

    def trigger(self, kind: str, detail: str = "") -> None:
        self.events.put((kind, detail))

    def _health(self) -> dict[str, object]:
        engine = self.engine
        return {
            "leader": bool(self.lock and self.lock.held),
            "last_applied": engine.last_applied if engine else "",
            "last_state": engine.last.state if engine and engine.last else "",
        }

    # -- start-up ----------------------------------------------------------------------

    def _identity(self, head: str) -> tuple[str, str | None]:
        """The lock/status name and cluster address: from the newest valid spec among the
        last commits (an invalid newest commit must not hide which cluster we serve), else
        `--lock-name` and `CONSUL_HTTP_ADDR`."""
        assert self.source is not None
        for rev_id in self.source.history(head):
            try:
                rev = self.source.materialize(rev_id)
                first = load_resources(str(rev.spec_path), rev_id)[0]
            except (GitkvError, IndexError):
                continue
            return self.opts.lock_name or first.ledger_name, first.address
        return self.opts.lock_name or "default", None

    def open(self) -> None:
        o = self.opts
        self.source = open_source(
            o.source, branch=o.branch, subdir=o.path, cache_root=o.cache_dir, worktree=o.worktree
        )
        if o.listen:
            source = self.source
            self.webhook = WebhookServer(
                o.listen,
                secret=o.webhook_secret,
                trigger=lambda: self.trigger("fetch", "webhook"),
                metrics=self.metrics,
                log=self.log,
                branch=lambda: source.branch if isinstance(source, GitSource) else "",
                health=self._health,
            )
            self.webhook.start()
        self.engine = SyncEngine(
            self.source, log=self.log, metrics=self.metrics, prune=o.prune, self_heal=o.self_heal
        )
        head = self.source.fetch()
        name, address = self._identity(head)
        self.engine.fallback = (name, address)
        settings = self._settings = ConsulSettings.from_env(address=address)
        self.lock = ClusterLock(
            settings, name, ttl=o.lock_ttl, log=self.log, on_lost=lambda: self.trigger("lost")
        )
        self.drift = DriftWatcher(settings, lambda t: self.trigger("drift", t), self.log)
        watching = ""
        if o.once:
            pass  # one sync and out: nothing to follow
        elif isinstance(self.source, TreeSource):
            self.source.watch_changes(lambda: self.trigger("fetch", "files"))
            watching = str(self.source.path)
        elif isinstance(self.source, GitSource):
            # A repository on this machine: its refs moving triggers a fetch at once.
            git_dir = self.source.watch_changes(lambda: self.trigger("fetch", "ref"))
            watching = str(git_dir) if git_dir else ""
        self.log.info(
            "start",
            source=self.source.description,
            lock=self.lock.key,
            cluster=settings.address,
            interval=o.interval,
            self_heal=o.self_heal,
            listen=self.webhook.address if self.webhook else "",
            watching=watching,
            pid=os.getpid(),
        )

    # -- the runner thread ---------------------------------------------------------------

    def run_once(self) -> int:
        assert self.engine is not None and self.source is not None
        # A fetch failure must fail `--once` (poll would only log it).
        return 0 if self.engine.sync(self.source.fetch()).ok else 1

    def _lead(self) -> None:
        """Leader duty until stop or lock loss."""
        engine, drift = self.engine, self.drift
        assert engine is not None and drift is not None
        self.metrics.set("watch_is_leader", 1)
        with self.busy:
            if not self.stop.is_set():
                outcome = engine.poll()
                if outcome is not None and outcome.state == INVALID and engine.good is None:
                    engine.resume(engine.recorded_revision())
                elif outcome is None:
                    # Leader again with nothing new: catch up with edits made meanwhile.
                    engine.check_drift("lock_acquired")
                self._follow_drift()
        next_poll = time.monotonic() + self.opts.interval
        while not self.stop.is_set():
            try:
                kind, detail = self.events.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                kind, detail = "fetch", "interval"
            if kind == "stop" or (kind == "lost" and not (self.lock and self.lock.held)):
                break
            if kind == "lost":
                continue  # a stale notice from an earlier session
            drift_trigger = detail if kind == "drift" else ""
            fetch = kind == "fetch"
            # Coalesce a burst of drift triggers (our own apply moves several indexes at
            # once); a fetch request is served at once.
            deadline = time.monotonic() + (COALESCE if kind == "drift" else 0.0)
            while (left := deadline - time.monotonic()) > 0:
                try:
                    k, d = self.events.get(timeout=left)
                except queue.Empty:
                    break
                if k in ("stop", "lost"):
                    self.events.put((k, d))
                    break
                fetch = fetch or k == "fetch"
                drift_trigger = drift_trigger or (d if k == "drift" else "")
            with self.busy:
                if self.stop.is_set():
                    break
                if fetch:
                    engine.poll()
                    next_poll = time.monotonic() + self.opts.interval
                if drift_trigger:
                    engine.check_drift(drift_trigger)
                self._follow_drift()
        drift.stop()
        self.metrics.set("watch_is_leader", 0)

    def _follow_drift(self) -> None:
        assert self.engine is not None and self.drift is not None
        engine = self.engine
        self.drift.follow(targets_for(engine.kv_prefixes, engine.follows_catalog))

    def _run(self) -> None:
        assert self.lock is not None
        try:
            while not self.stop.is_set():
                if not self.lock.acquire(self.stop):
                    break
                self._lead()
                if self.stop.is_set():
                    break
                # Lost the lock: back to standby with a fresh session.
                self.lock.close()
                self.lock = ClusterLock(
                    self._settings,
                    self.lock.name,
                    ttl=self.opts.lock_ttl,
                    log=self.log,
                    on_lost=lambda: self.trigger("lost"),
                )
        except Exception as exc:  # a bug must not leave a zombie leader holding the lock
            self.log.error("crashed", error=f"{type(exc).__name__}: {exc}")
            self.exit_code = 1
            self.stop.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gitkv-watch", daemon=True)
        self._thread.start()

    def wait(self, poll: float = 1.0) -> None:
        """Block the calling (main) thread until stop is set; signals interrupt the wait."""
        while not self.stop.wait(poll):
            if self._thread is not None and not self._thread.is_alive():
                break

    def shutdown(self, reason: str = "signal") -> None:
        """Stop: let a sync in progress finish, release the lock, close everything."""
        self.stop.set()
        self.trigger("stop")
        got = self.busy.acquire(timeout=STOP_GRACE)
        try:
            if self.drift:
                self.drift.stop()
            if self.lock:
                self.lock.close()
            if self.webhook:
                self.webhook.close()
            if self.source:
                self.source.close()
        finally:
            if got:
                self.busy.release()
        self.metrics.set("watch_is_leader", 0)
        self.log.info("stop", reason=reason)
