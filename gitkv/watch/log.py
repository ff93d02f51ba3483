"""Structured event logs: one line per event, JSON (default) or logfmt.

Every line carries `time` (RFC 3339, UTC), `level` and `event` first, then the event's fields
in the order given. Events used by the watcher: `start`, `commit`, `plan`, `applied`,
`in_sync`, `invalid`, `refused`, `failed`, `drift`, `lock_acquired`, `lock_lost`, `standby`,
`webhook`, `stop`. Secrets never reach these lines: callers pass ids and counts, not values.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["FORMATS", "EventLog", "format_json", "format_logfmt"]

FORMATS = ("json", "logfmt")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_json(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)


def _logfmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        value = json.dumps(value, separators=(",", ":"), default=str)
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\\n\t'):
        return json.dumps(text)  # a quoted, escaped string is what logfmt readers expect
    return text


def format_logfmt(record: dict[str, Any]) -> str:
    return " ".join(f"{k}={_logfmt_value(v)}" for k, v in record.items())


class EventLog:
    """Writes events to `stream` (default: stderr); safe to call from several threads."""

    def __init__(self, stream: TextIO | None = None, fmt: str = "json") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown log format {fmt!r} (choose from {', '.join(FORMATS)})")
        self._stream = stream
        self._format = format_json if fmt == "json" else format_logfmt
        self._lock = threading.Lock()

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        record: dict[str, Any] = {"time": _now(), "level": level, "event": event}
        record.update(fields)
        line = self._format(record)
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def info(self, event: str, **fields: Any) -> None:
        self.emit(event, "info", **fields)

    def warn(self, event: str, **fields: Any) -> None:
        self.emit(event, "warn", **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.emit(event, "error", **fields)
