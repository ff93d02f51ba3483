"""The watcher's HTTP endpoint on 127.0.0.1 (ephemeral port): pushes, metrics, health."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Iterator

import httpx
import pytest

from gitkv.watch.log import EventLog
from gitkv.watch.metrics import Metrics
from gitkv.watch.webhook import WebhookServer


@pytest.fixture
def server() -> Iterator[tuple[WebhookServer, list[str]]]:
    fired: list[str] = []
    srv = WebhookServer(
        "127.0.0.1:0",
        secret=b"s3cret",
        trigger=lambda: fired.append("fetch"),
        metrics=Metrics(),
        log=EventLog(io.StringIO()),
        branch=lambda: "main",
        health=lambda: {"leader": True, "last_applied": "abc"},
    )
    srv.start()
    try:
        yield srv, fired
    finally:
        srv.close()


def _sign(body: bytes, secret: bytes = b"s3cret") -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_signed_push_triggers_a_fetch(server: tuple[WebhookServer, list[str]]) -> None:
    srv, fired = server
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    resp = httpx.post(
        srv.address + "/", content=body, headers={"X-Hub-Signature-256": "sha256=" + _sign(body)}
    )
    assert resp.status_code == 202 and fired == ["fetch"]
    resp = httpx.post(
        srv.address + "/hook", content=body, headers={"X-Gitea-Signature": _sign(body)}
    )
    assert resp.status_code == 202 and fired == ["fetch", "fetch"]


def test_bad_signatures_are_401(server: tuple[WebhookServer, list[str]]) -> None:
    srv, fired = server
    body = b'{"ref":"refs/heads/main"}'
    for headers in (
        {},
        {"X-Hub-Signature-256": "sha256=" + _sign(body, b"wrong")},
        {"X-Gitea-Signature": "zz"},
    ):
        assert httpx.post(srv.address + "/", content=body, headers=headers).status_code == 401
    assert fired == []
    assert (
        'watch_webhook_requests_total{result="unauthorized"} 3'
        in httpx.get(srv.address + "/metrics").text
    )


def test_other_branches_and_pings_are_ignored(server: tuple[WebhookServer, list[str]]) -> None:
    srv, fired = server
    body = b'{"ref":"refs/heads/feature"}'
    sig = {"X-Hub-Signature-256": "sha256=" + _sign(body)}
    assert httpx.post(srv.address + "/", content=body, headers=sig).status_code == 202
    ping = {**sig, "X-GitHub-Event": "ping"}
    assert httpx.post(srv.address + "/", content=body, headers=ping).status_code == 200
    assert fired == []


def test_metrics_and_healthz(server: tuple[WebhookServer, list[str]]) -> None:
    srv, _ = server
    metrics = httpx.get(srv.address + "/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE watch_is_leader gauge" in metrics.text
    health = httpx.get(srv.address + "/healthz").json()
    assert health == {"status": "ok", "leader": True, "last_applied": "abc"}
    assert httpx.get(srv.address + "/nope").status_code == 404
    assert httpx.post(srv.address + "/metrics", content=b"").status_code == 405
