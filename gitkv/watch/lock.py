"""One active watcher per cluster: a Consul session lock on `gitkv/lock/<name>`.

The watcher creates a TTL session (`Behavior: release`), keeps it alive from a thread, and
takes the lock with `PUT /v1/kv/gitkv/lock/<name>?acquire=<session>`. A second watcher finds
the key held and waits as a standby with a blocking query on the key; when the holder releases
it (clean exit) or its session expires (the holder died: Consul invalidates a session after
about twice its TTL without renewal), the key loses its `Session` and the standby acquires.

Consul's lock-delay makes a lock taken from an invalidated session unavailable for a while;
the standby simply retries. The session asks for a short lock-delay (1s): the watcher's
writes are CAS-guarded anyway, so a long grace period would buy nothing but a slower takeover.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import quote

from gitkv.client import ConsulClient, ConsulSettings
from gitkv.errors import ClusterError
from gitkv.watch.log import EventLog

__all__ = ["LOCK_PREFIX", "ClusterLock", "lock_key"]

LOCK_PREFIX = "gitkv/lock/"
STANDBY_WAIT = "60s"  # one blocking query on the lock key at most this long


def lock_key(name: str) -> str:
    return LOCK_PREFIX + name


def holder_info() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": int(time.time())}


class ClusterLock:
    """The leader lock. `acquire` blocks (standby) until the lock is ours or `stop` is set;
    `lost` is set when the session is gone while we hold it; `release` is idempotent and
    safe from any thread.

    :param on_lost: called (from the renewal thread) when the session was lost.
    """

    def __init__(
        self,
        settings: ConsulSettings,
        name: str,
        *,
        ttl: float = 15.0,
        log: EventLog | None = None,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.key = lock_key(name)
        self.ttl = max(10.0, ttl)  # Consul's minimum session TTL
        self.log = log or EventLog()
        self.on_lost = on_lost
        self.session: str | None = None
        self.held = False
        self.lost = threading.Event()
        self._closed = threading.Event()
        self._mutex = threading.Lock()
        self._client = ConsulClient(settings)
        # Blocking queries need a longer read timeout than ordinary calls.
        self._waiter = ConsulClient(replace(settings, timeout=90.0))
        self._renewer: threading.Thread | None = None

    # -- session ---------------------------------------------------------------------------

    def _new_session(self) -> str:
        body = {
            "Name": f"gitkv-watch:{self.name}",
            "TTL": f"{int(self.ttl)}s",
            "Behavior": "release",
            "LockDelay": "1s",
        }
        resp = self._client.request("PUT", "/v1/session/create", json=body)
        session = str(resp.json()["ID"])
        self.lost.clear()
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(session,), name="gitkv-lock-renew", daemon=True
        )
        self._renewer.start()
        return session

    def _renew_loop(self, session: str) -> None:
        last_ok = time.monotonic()
        while not self._closed.wait(self.ttl / 3):
            if self.session != session:
                return
            try:
                resp = self._client.request("PUT", f"/v1/session/renew/{session}", ok=(200, 404))
                if resp.status_code == 200:
                    last_ok = time.monotonic()
                    continue
            except ClusterError:
                # Unreachable: the session may still be alive; give up only when its TTL
                # has surely run out.
                if time.monotonic() - last_ok < self.ttl:
                    continue
            self._session_gone(session)
            return

    def _session_gone(self, session: str) -> None:
        with self._mutex:
            if self.session != session:
                return
            was_held = self.held
            self.session = None
            self.held = False
        self.lost.set()
        if was_held:
            self.log.warn("lock_lost", lock=self.key, reason="session expired or destroyed")
            self.on_lost()

    # -- lock ------------------------------------------------------------------------------

    def _try_acquire(self) -> bool:
        with self._mutex:
            if self._closed.is_set():
                return False
            if self.session is None:
                self.session = self._new_session()
            session = self.session
        body = json.dumps(holder_info()).encode()
        resp = self._client.request(
            "PUT", "/v1/kv/" + quote(self.key), params={"acquire": session}, content=body
        )
        ok = resp.json() is True
        with self._mutex:
            if ok and self.session == session:
                self.held = True
        return ok and self.held

    def _holder(self, index: int) -> tuple[int, str | None]:
        """Wait (blocking query) for the lock key to change past `index`; the new index and
        the session holding the key (None: free)."""
        params = {"index": str(index), "wait": STANDBY_WAIT} if index else {}
        resp = self._waiter.request(
            "GET", "/v1/kv/" + quote(self.key), params=params, ok=(200, 404)
        )
        new_index = int(resp.headers.get("X-Consul-Index", "0") or 0)
        if new_index < index:
            new_index = 0  # the index went backwards (restore, new leader): start over
        holder = None
        if resp.status_code == 200 and resp.content:
            holder = (resp.json() or [{}])[0].get("Session") or None
        return new_index, holder

    def acquire(self, stop: threading.Event) -> bool:
        """Block until the lock is ours (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set() and not self._closed.is_set():
            try:
                if self._try_acquire():
                    self.log.info("lock_acquired", lock=self.key, session=self.session)
                    return True
                if not announced:
                    self.log.info("standby", lock=self.key, reason="another watcher holds it")
                    announced = True
                index, holder = self._holder(0)
                if holder is None:
                    # Free, yet refused: Consul's lock-delay after the holder's session was
                    # invalidated. It is short; try again shortly.
                    stop.wait(0.5)
                    continue
                while holder and not stop.is_set():
                    index, holder = self._holder(index)
            except ClusterError as exc:
                self.log.warn("lock_error", lock=self.key, error=str(exc))
                stop.wait(2.0)
        return False

    def release(self) -> None:
        """Give the lock back and destroy the session (so a standby takes over at once)."""
        self._closed.set()
        with self._mutex:
            session, held = self.session, self.held
            self.session, self.held = None, False
        if session is None:
            return
        try:
            if held:
                self._client.request(
                    "PUT", "/v1/kv/" + quote(self.key), params={"release": session}
                )
            self._client.request("PUT", f"/v1/session/destroy/{session}")
        except ClusterError as exc:
            self.log.warn("lock_error", lock=self.key, error=str(exc))
        if held:
            self.log.info("lock_released", lock=self.key)

    def close(self) -> None:
        self.release()
        self._client.close()
        self._waiter.close()
