"""The sync engine: each new revision is validated, planned and applied.

`SyncEngine.sync(rev_id)` is one pass: materialize the revision, load and validate its spec,
plan every datacenter against the live cluster, check the safety guards and apply. The
outcome is one of:

- `applied`  changes were made (the ledger now records the revision);
- `in_sync`  nothing to do: the cluster already matches and the ledger already records this
             revision (this is how a restarted watcher resumes without re-applying);
- `invalid`  the spec does not load or validate; nothing is touched;
- `refused`  a guard refused the plan (delete budget, emptying a prefix) or the cluster kept
             changing under the plan (CAS);
- `failed`   the cluster refused or could not be reached.

Only `applied`/`in_sync` move the "last good" state, which drift repair re-applies; the others
leave the cluster as the last good revision made it. Each outcome is logged, counted and
written (best effort) to `gitkv/status/<name>` as JSON `{commit, state, message, time, ...}`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gitkv.apply import apply_plan
from gitkv.client import ConsulClient, ConsulSettings
from gitkv.errors import ClusterError, GitkvError, GuardError, SpecError, StalePlanError
from gitkv.ledger import decode_ledger, ledger_key, parts_prefix
from gitkv.plan import Plan, check_guards, plan
from gitkv.resources import Resources
from gitkv.spec import check_spec, desired
from gitkv.state import read_live
from gitkv.watch.log import EventLog
from gitkv.watch.metrics import Metrics
from gitkv.watch.source import Source, SourceError

__all__ = [
    "APPLIED",
    "FAILED",
    "IN_SYNC",
    "INVALID",
    "REFUSED",
    "STATUS_PREFIX",
    "Outcome",
    "SyncEngine",
    "load_resources",
    "status_key",
    "status_record",
]

APPLIED, IN_SYNC, INVALID, REFUSED, FAILED = "applied", "in_sync", "invalid", "refused", "failed"
# Outcomes that are final for a revision: retrying the same commit cannot change them.
# `failed` is retried on the next poll (the cluster may be back).
FINAL = frozenset({APPLIED, IN_SYNC, INVALID, REFUSED})
STATUS_PREFIX = "gitkv/status/"
MAX_MESSAGE = 2000

ClientFactory = Callable[[str | None], ConsulClient]


def status_key(name: str) -> str:
    return STATUS_PREFIX + name


@dataclass(frozen=True)
class Outcome:
    rev_id: str
    state: str
    message: str = ""
    changes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state in (APPLIED, IN_SYNC)


def status_record(outcome: Outcome, now: float | None = None) -> dict[str, object]:
    """The JSON stored in the status key (pure; `now` is a Unix time)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return {
        "commit": outcome.rev_id,
        "state": outcome.state,
        "message": outcome.message[:MAX_MESSAGE],
        "changes": outcome.changes,
        "time": stamp.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def load_resources(spec_path: str, revision: str) -> list[Resources]:
    """Every datacenter of the spec at `spec_path`, with `revision` recorded in its ledger.

    :raises SpecError: the spec is invalid (every problem, positioned).
    :raises GitkvError: no spec files, unreadable value files.
    """
    loaded, problems = check_spec(spec_path)
    if problems or loaded is None:
        raise SpecError(problems)
    by_dc = desired(loaded.spec, loaded.base_dir, digest=loaded.digest, revision=revision)
    return list(by_dc.values())


def _default_client(address: str | None) -> ConsulClient:
    return ConsulClient(ConsulSettings.from_env(address=address))


@dataclass
class _Good:
    rev_id: str
    resources: list[Resources] = field(default_factory=list)


class SyncEngine:
    """Follows a `Source` and converges the cluster. Not thread-safe: one caller at a time.

    :param fallback: (status name, address) used for status when no spec was ever valid.
    """

    def __init__(
        self,
        source: Source,
        *,
        log: EventLog,
        metrics: Metrics,
        prune: bool = False,
        self_heal: bool = True,
        fallback: tuple[str, str | None] = ("default", None),
        client_factory: ClientFactory = _default_client,
    ) -> None:
        self.source = source
        self.log = log
        self.metrics = metrics
        self.prune = prune
        self.self_heal = self_heal
        self.fallback = fallback
        self._client = client_factory
        self.good: _Good | None = None
        self.last: Outcome | None = None
        self._handled: str | None = None
        self._head = ""  # the branch tip the last fetch saw
        self._prefixes: tuple[str, ...] = ()
        self._catalog = False
        self._drifted: list[str] = []

    # -- what the runner asks ------------------------------------------------------------

    @property
    def kv_prefixes(self) -> tuple[str, ...]:
        """The KV prefixes the last good plan read (the drift watcher follows them)."""
        return self._prefixes

    @property
    def follows_catalog(self) -> bool:
        return self._catalog

    @property
    def last_applied(self) -> str:
        return self.good.rev_id if self.good else ""

    def poll(self) -> Outcome | None:
        """Fetch; sync the newest revision if it was not handled yet (None: nothing new)."""
        try:
            head = self.source.fetch()
        except SourceError as exc:
            self.metrics.inc("watch_fetches_total", result="error")
            self.log.error("fetch_failed", source=self.source.description, error=str(exc))
            return None
        self.metrics.inc("watch_fetches_total", result="ok")
        previous, self._head = self._head, head
        if previous and head != previous and not self.source.descends(previous, head):
            # A force-push or a branch reset: the branch's new tip is the truth now, even
            # when it is an older commit; say so, as it may undo what was applied.
            self.metrics.inc("watch_history_rewrites_total")
            self.log.warn("history_rewritten", previous=previous, commit=head)
        if head == self._handled:
            return None
        return self.sync(head)

    def recorded_revision(self) -> str:
        """The revision the fallback ledger (`gitkv/state/<name>`) records ("" if none)."""
        name, address = self.fallback
        try:
            with self._client(address) as client:
                entry = client.kv_get(ledger_key(name))
                if not entry:
                    return ""
                header = base64.b64decode(entry.get("Value") or "")
                parts: dict[str, bytes] = {}
                if b'"parts"' in header:
                    parts = {
                        e["Key"]: base64.b64decode(e.get("Value") or "")
                        for e in client.kv_list(parts_prefix(name))
                    }
            return decode_ledger(header, parts).revision
        except (ClusterError, ValueError):
            return ""

    def resume(self, recorded: str) -> None:
        """Rebuild the last good state from a recorded revision without applying it (used
        when the newest revision is invalid right after a restart, so drift repair still
        has a spec to repair towards)."""
        if self.good is not None or not recorded or not self.source.has_revision(recorded):
            return
        try:
            rev = self.source.materialize(recorded)
            self.good = _Good(recorded, load_resources(str(rev.spec_path), recorded))
            self._targets(self.good.resources)
            self.log.info("resume", commit=recorded, source="ledger")
        except GitkvError as exc:
            self.log.warn("resume_failed", commit=recorded, error=str(exc))

    # -- one revision ----------------------------------------------------------------------

    def sync(self, rev_id: str) -> Outcome:
        self.metrics.inc("watch_commits_seen_total")
        self.log.info("commit", commit=rev_id, source=self.source.description)
        started = time.monotonic()
        resources: list[Resources] = []
        try:
            rev = self.source.materialize(rev_id)
            resources = load_resources(str(rev.spec_path), rev_id)
            changes = self._converge(resources, rev_id=rev_id, apply=True)
            state = APPLIED if changes else IN_SYNC
            message = f"{changes} change(s) applied" if changes else "cluster already in sync"
        except SpecError as exc:
            state, message, changes = INVALID, str(exc), 0
        except SourceError as exc:
            state, message, changes = FAILED, str(exc), 0
        except (GuardError, StalePlanError) as exc:
            state, message, changes = REFUSED, str(exc), 0
        except ClusterError as exc:
            state, message, changes = FAILED, str(exc), 0
        except GitkvError as exc:  # unreadable value files and the like: the commit's fault
            state, message, changes = INVALID, str(exc), 0
        except Exception as exc:  # a bug or an unexpected answer must not stop the watcher
            state, message, changes = FAILED, f"unexpected error: {type(exc).__name__}: {exc}", 0
        outcome = Outcome(rev_id, state, message, changes, time.monotonic() - started)
        self._record(outcome, resources)
        return outcome

    def _record(self, outcome: Outcome, resources: list[Resources]) -> None:
        self.last = outcome
        if outcome.state in FINAL:
            self._handled = outcome.rev_id
        fields = {"commit": outcome.rev_id, "seconds": round(outcome.seconds, 3)}
        if outcome.ok:
            self.good = _Good(outcome.rev_id, resources)
            self._targets(resources)
            self.metrics.inc("watch_commits_applied_total")
            self.metrics.inc("watch_changes_applied_total", outcome.changes)
            self.metrics.set("watch_last_applied_timestamp_seconds", time.time())
            self.log.info(outcome.state, changes=outcome.changes, **fields)
        else:
            self.metrics.inc("watch_failures_total", state=outcome.state)
            kept = self.good.rev_id if self.good else ""
            self.log.error(outcome.state, error=outcome.message, last_good=kept, **fields)
        self.metrics.set("watch_last_sync_duration_seconds", outcome.seconds)
        self._write_status(outcome, resources or (self.good.resources if self.good else []))

    def _targets(self, resources: Sequence[Resources]) -> None:
        prefixes: set[str] = set()
        for res in resources:
            prefixes.update(res.kv_prefixes)
        self._prefixes = tuple(sorted(prefixes))
        self._catalog = any(res.services or res.external_nodes for res in resources)

    def _write_status(self, outcome: Outcome, resources: Sequence[Resources]) -> None:
        where = [(r.ledger_name, r.address) for r in resources] or [self.fallback]
        value = json.dumps(status_record(outcome), sort_keys=True).encode()
        for name, address in where:
            try:
                with self._client(address) as client:
                    client.kv_put(status_key(name), value)
            except ClusterError as exc:
                self.log.warn("status_write_failed", key=status_key(name), error=str(exc))

    # -- plan and apply ----------------------------------------------------------------------

    def _converge(self, resources: Sequence[Resources], *, rev_id: str, apply: bool) -> int:
        """Plan every datacenter and (when `apply`) apply; the number of changes made (or,
        without apply, found)."""
        total = 0
        for res in resources:
            with self._client(res.address) as client:
                total += self._converge_one(client, res, rev_id=rev_id, apply=apply)
        return total

    def _converge_one(
        self, client: ConsulClient, res: Resources, *, rev_id: str, apply: bool
    ) -> int:
        for attempt in (1, 2):
            p = plan(res, read_live(client, res), prune=self.prune)
            if not (p.has_changes or (apply and p.ledger_changed)):
                return 0
            if not apply:
                self._drifted.extend(f"{c.kind}:{c.id}" for c in p.changes)
                return len(p.changes)
            self._log_plan(p, rev_id)
            check_guards(p)
            try:
                apply_plan(client, p)
            except StalePlanError:
                # Someone wrote between our read and our write: read again once, then give up
                # rather than fight a concurrent writer.
                if attempt == 2:
                    raise
                continue
            return len(p.changes)
        return 0

    def _log_plan(self, p: Plan, rev_id: str) -> None:
        if not p.has_changes:
            return
        counts = p.counts
        self.log.info(
            "plan",
            commit=rev_id,
            datacenter=p.datacenter,
            add=counts["create"],
            change=counts["update"],
            destroy=counts["delete"],
            ids=[f"{c.kind}:{c.id}" for c in p.changes[:20]],
        )

    # -- drift ---------------------------------------------------------------------------------

    def check_drift(self, trigger: str = "") -> int:
        """Plan against the last good revision; report (and unless `--no-self-heal`, repair)
        differences. The number of drifted resources (0: none)."""
        if self.good is None:
            return 0
        good = self.good
        self._drifted = []
        try:
            found = self._converge(good.resources, rev_id=good.rev_id, apply=False)
            if not found:
                return 0
            self.metrics.inc("watch_drift_detected_total")
            self.log.warn(
                "drift",
                commit=good.rev_id,
                resources=found,
                ids=self._drifted[:20],
                trigger=trigger,
                action="repair" if self.self_heal else "report",
            )
            if self.self_heal:
                repaired = self._converge(good.resources, rev_id=good.rev_id, apply=True)
                self.metrics.inc("watch_drift_repairs_total")
                self.log.info("drift_repaired", commit=good.rev_id, changes=repaired)
            return found
        except Exception as exc:  # reported; the next trigger tries again
            self.log.error("drift_failed", commit=good.rev_id, error=f"{type(exc).__name__}: {exc}")
            return 0
