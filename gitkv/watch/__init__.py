"""`gitkv watch`: keep a cluster equal to a Git branch (or a local directory).

source.py   where specs come from: a Git URL/path (clone once, fetch) or a work tree
loop.py     the sync engine: validate -> plan -> apply per new revision, status, resume
drift.py    blocking queries on managed KV prefixes and the catalog (drift triggers)
lock.py     one active watcher per cluster: a Consul session lock, standby takeover
webhook.py  optional HTTP endpoint: signed push notifications, /metrics, /healthz
metrics.py  counters and gauges in Prometheus text format
log.py      one structured line (JSON or logfmt) per event
runner.py   wires the parts together for the `watch` command
"""

from gitkv.watch.log import EventLog
from gitkv.watch.metrics import Metrics

__all__ = ["EventLog", "Metrics"]
