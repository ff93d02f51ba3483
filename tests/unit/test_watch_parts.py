"""Pure parts of `gitkv watch`: log lines, metrics text, signatures, intervals, indexes."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
from email.message import Message

import pytest

from gitkv.commands.watch import parse_interval
from gitkv.watch.drift import next_index, targets_for
from gitkv.watch.log import EventLog, format_logfmt
from gitkv.watch.loop import Outcome, status_record
from gitkv.watch.metrics import Metrics
from gitkv.watch.webhook import parse_listen, push_ref, verify_signature


def _headers(**items: str) -> Message:
    msg = Message()  # case-insensitive, like http.server's headers
    for k, v in items.items():
        msg[k.replace("_", "-")] = v
    return msg


def test_json_log_lines_start_with_time_level_event() -> None:
    out = io.StringIO()
    EventLog(out).info("applied", commit="abc", changes=2)
    record = json.loads(out.getvalue())
    assert list(record)[:3] == ["time", "level", "event"]
    assert record["event"] == "applied" and record["commit"] == "abc" and record["changes"] == 2
    assert record["time"].endswith("Z")


def test_logfmt_quotes_only_what_needs_it() -> None:
    line = format_logfmt({"event": "invalid", "error": 'a "b"\nc', "n": 3, "ok": True, "x": ""})
    assert line == 'event=invalid error="a \\"b\\"\\nc" n=3 ok=true x=""'


def test_event_log_rejects_unknown_format() -> None:
    with pytest.raises(ValueError):
        EventLog(io.StringIO(), "xml")


def test_metrics_render_prometheus_text() -> None:
    m = Metrics()
    m.inc("watch_commits_applied_total")
    m.inc("watch_failures_total", state="invalid")
    m.set("watch_is_leader", 1)
    text = m.render()
    assert "# TYPE watch_commits_applied_total counter" in text
    assert "watch_commits_applied_total 1\n" in text
    assert 'watch_failures_total{state="invalid"} 1\n' in text
    assert "watch_is_leader 1\n" in text
    # Counters that never moved still show as 0 so dashboards have a series.
    assert "watch_drift_repairs_total 0\n" in text
    with pytest.raises(KeyError):
        m.inc("no_such_metric")


def test_github_and_gitea_signatures() -> None:
    secret, body = b"s3cret", b'{"ref":"refs/heads/main"}'
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert verify_signature(secret, body, _headers(X_Hub_Signature_256=f"sha256={digest}"))
    assert verify_signature(secret, body, _headers(X_Gitea_Signature=digest))
    assert not verify_signature(secret, body, _headers(X_Hub_Signature_256=digest))  # no prefix
    assert not verify_signature(secret, body + b" ", _headers(X_Gitea_Signature=digest))
    assert not verify_signature(b"other", body, _headers(X_Gitea_Signature=digest))
    assert not verify_signature(secret, body, _headers())


def test_push_ref_and_listen_parsing() -> None:
    assert push_ref(b'{"ref": "refs/heads/dev"}') == "refs/heads/dev"
    assert push_ref(b"not json") is None and push_ref(b"[1]") is None
    assert parse_listen("127.0.0.1:9090") == ("127.0.0.1", 9090)
    assert parse_listen(":9090") == ("127.0.0.1", 9090)
    assert parse_listen("[::1]:80") == ("::1", 80)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2", 2), ("1h", 3600)]
)
def test_intervals(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1", "10x", "s", "1m 2s"])
def test_bad_intervals(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_interval(text)


def test_next_index_follows_consul_rules() -> None:
    assert next_index(0, "7") == (7, False)  # first read: no change yet
    assert next_index(7, "7") == (7, False)  # wait timed out
    assert next_index(7, "9") == (9, True)
    assert next_index(9, "3") == (0, True)  # went backwards: start over
    assert next_index(5, None) == (0, True)


def test_targets_cover_prefixes_and_catalog() -> None:
    labels = {t.label for t in targets_for(["app/", "web/"], catalog=True)}
    assert labels == {"kv:app/", "kv:web/", "catalog:services", "catalog:nodes"}
    assert {t.label for t in targets_for(["app/"], catalog=False)} == {"kv:app/"}


def test_status_record_shape() -> None:
    rec = status_record(Outcome("abc123", "invalid", "bad spec", 0), now=0)
    assert rec == {
        "commit": "abc123",
        "state": "invalid",
        "message": "bad spec",
        "changes": 0,
        "time": "1970-01-01T00:00:00Z",
    }
