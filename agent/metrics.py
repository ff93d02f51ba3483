"""In-process metrics in the shape go-metrics (Consul's library) reports them.

Counters and samples aggregate over the current interval (Consul's in-memory sink keeps 10 s
intervals); gauges keep their last value. `/v1/agent/metrics` renders the JSON form and the
Prometheus text exposition. Names follow Consul's (`consul.http.GET.v1.kv._`,
`consul.kvs.apply`, `consul.raft.commitTime`), with labels as a plain dict.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

INTERVAL = 10.0


@dataclass
class _Agg:
    count: int = 0
    total: float = 0.0
    sq: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    labels: dict[str, str] = field(default_factory=dict)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.sq += value * value
        self.lo = min(self.lo, value)
        self.hi = max(self.hi, value)

    def render(self, name: str) -> dict:
        mean = self.total / self.count if self.count else 0.0
        var = max(self.sq / self.count - mean * mean, 0.0) if self.count > 1 else 0.0
        return {
            "Name": name,
            "Count": self.count,
            "Rate": self.total / INTERVAL,
            "Sum": self.total,
            "Min": self.lo if self.count else 0.0,
            "Max": self.hi if self.count else 0.0,
            "Mean": mean,
            "Stddev": math.sqrt(var),
            "Labels": self.labels,
        }


def _key(name: str, labels: dict[str, str] | None) -> tuple:
    return (name, tuple(sorted((labels or {}).items())))


class Metrics:
    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self.gauges: dict[tuple, tuple[float, dict]] = {}
        self.counters: dict[tuple, _Agg] = {}
        self.samples: dict[tuple, _Agg] = {}
        # Totals since start, for Prometheus counters that must never go down.
        self.counter_totals: dict[tuple, float] = {}
        self.sample_totals: dict[tuple, tuple[int, float]] = {}
        self._interval_start = clock()

    def _roll(self) -> None:
        now = self._clock()
        if now - self._interval_start >= INTERVAL:
            # New dicts rather than clear(): a stream holding the last interval keeps it whole.
            self.counters = {}
            self.samples = {}
            self._interval_start = now - (now - self._interval_start) % INTERVAL

    def set_gauge(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.gauges[_key(name, labels)] = (value, dict(labels or {}))

    def incr(self, name: str, value: float = 1.0, labels: dict[str, str] | None = None) -> None:
        self._roll()
        key = _key(name, labels)
        agg = self.counters.get(key)
        if agg is None:
            agg = self.counters[key] = _Agg(labels=dict(labels or {}))
        agg.add(value)
        self.counter_totals[key] = self.counter_totals.get(key, 0.0) + value

    def sample(self, name: str, ms: float, labels: dict[str, str] | None = None) -> None:
        self._roll()
        key = _key(name, labels)
        agg = self.samples.get(key)
        if agg is None:
            agg = self.samples[key] = _Agg(labels=dict(labels or {}))
        agg.add(ms)
        count, total = self.sample_totals.get(key, (0, 0.0))
        self.sample_totals[key] = (count + 1, total + ms)

    def render_json(self) -> dict:
        self._roll()
        return self.render_interval(self.current_interval())

    def current_interval(self) -> tuple[float, dict, dict]:
        """The interval being collected now (its start, counters, samples), as a value that
        stays whole after the interval rolls over (`/v1/agent/metrics/stream` holds one)."""
        self._roll()
        return self._interval_start, self.counters, self.samples

    def render_interval(self, interval: tuple[float, dict, dict]) -> dict:
        start, counters, samples = interval
        stamp = time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(start))
        return {
            "Timestamp": stamp,
            "Gauges": [
                {"Name": k[0], "Value": v, "Labels": labels}
                for k, (v, labels) in sorted(self.gauges.items())
            ],
            "Points": [],
            "Counters": [agg.render(k[0]) for k, agg in sorted(counters.items())],
            "Samples": [agg.render(k[0]) for k, agg in sorted(samples.items())],
        }

    def render_prometheus(self) -> str:
        lines: list[str] = []
        typed: set[str] = set()

        def metric_name(name: str) -> str:
            return "".join(c if c.isalnum() else "_" for c in name)

        def label_text(labels: tuple) -> str:
            if not labels:
                return ""
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            return "{" + inner + "}"

        for (name, labels), (value, _) in sorted(self.gauges.items()):
            mname = metric_name(name)
            if mname not in typed:
                lines.append(f"# HELP {mname} {name}")
                lines.append(f"# TYPE {mname} gauge")
                typed.add(mname)
            lines.append(f"{mname}{label_text(labels)} {float(value)!r}")
        for (name, labels), total in sorted(self.counter_totals.items()):
            mname = metric_name(name)
            if mname not in typed:
                lines.append(f"# HELP {mname} {name}")
                lines.append(f"# TYPE {mname} counter")
                typed.add(mname)
            lines.append(f"{mname}{label_text(labels)} {float(total)!r}")
        for (name, labels), (count, total) in sorted(self.sample_totals.items()):
            mname = metric_name(name)
            if mname not in typed:
                lines.append(f"# HELP {mname} {name} (milliseconds)")
                lines.append(f"# TYPE {mname} summary")
                typed.add(mname)
            lines.append(f"{mname}_sum{label_text(labels)} {float(total)!r}")
            lines.append(f"{mname}_count{label_text(labels)} {count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
