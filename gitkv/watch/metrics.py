"""The watcher's counters and gauges, rendered in the Prometheus text exposition format.

Names are fixed here (one table) so `/metrics`, the README and tests agree. Label values are
only ever our own words (`invalid`, `failed`, ...), never user input.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

__all__ = ["METRICS", "Metrics"]

# name -> (type, help)
METRICS: dict[str, tuple[str, str]] = {
    "watch_commits_seen_total": ("counter", "New revisions seen on the source."),
    "watch_commits_applied_total": ("counter", "Revisions applied (or found already in sync)."),
    "watch_failures_total": (
        "counter",
        "Revisions not applied, by state (invalid/failed/refused).",
    ),
    "watch_last_applied_timestamp_seconds": ("gauge", "Unix time of the last successful sync."),
    "watch_last_sync_duration_seconds": ("gauge", "Seconds the last validate+plan+apply took."),
    "watch_changes_applied_total": ("counter", "Resource changes made by the watcher."),
    "watch_drift_detected_total": ("counter", "Times a managed resource differed from the spec."),
    "watch_drift_repairs_total": ("counter", "Drift repaired by re-applying the spec."),
    "watch_fetches_total": ("counter", "Fetches from the source, by result (ok/error)."),
    "watch_history_rewrites_total": (
        "counter",
        "Times the followed branch moved to a commit not descending from its previous tip.",
    ),
    "watch_webhook_requests_total": ("counter", "Webhook requests, by result."),
    "watch_is_leader": ("gauge", "1 when this watcher holds the cluster lock, else 0."),
}

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Thread-safe values keyed by (name, labels)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, Labels], float] = {}
        self._lock = threading.Lock()
        for name, (kind, _) in METRICS.items():
            if kind == "gauge" or name in (
                "watch_commits_seen_total",
                "watch_commits_applied_total",
                "watch_drift_repairs_total",
            ):
                self._values[(name, ())] = 0.0

    @staticmethod
    def _key(name: str, labels: Mapping[str, str] | None) -> tuple[str, Labels]:
        if name not in METRICS:
            raise KeyError(f"unknown metric {name}")
        return name, tuple(sorted((labels or {}).items()))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            self._values[key] = float(value)

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(name, labels), 0.0)

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        with self._lock:
            values = dict(self._values)
        lines: list[str] = []
        for name, (kind, help_text) in METRICS.items():
            series = sorted((lb, v) for (n, lb), v in values.items() if n == name)
            if not series:
                continue
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in series:
                label_text = ",".join(f'{k}="{v}"' for k, v in labels)
                shown = int(value) if value.is_integer() else repr(value)
                lines.append(f"{name}{{{label_text}}} {shown}" if labels else f"{name} {shown}")
        return "\n".join(lines) + "\n"
