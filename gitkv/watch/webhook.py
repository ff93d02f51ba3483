"""The watcher's HTTP endpoint (`--listen ADDR`): push webhooks, `/metrics`, `/healthz`.

- `POST /` (or any path but the two below): a GitHub (`X-Hub-Signature-256: sha256=<hex>`)
  or Gitea/Gogs (`X-Gitea-Signature: <hex>`) push notification. With a secret configured the
  HMAC-SHA256 of the raw body must match, else 401. A valid push for the watched branch
  triggers a fetch (202); a push for another branch or a ping is acknowledged and ignored.
  Without a secret pushes are accepted unsigned: a notification only makes the watcher fetch
  from the source it already follows, so it cannot inject content, only cause a fetch.
- `GET /metrics`: Prometheus text format.
- `GET /healthz`: `{"status": "ok", "leader": bool, "last_applied": sha}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gitkv.errors import GitkvError
from gitkv.watch.log import EventLog
from gitkv.watch.metrics import Metrics

__all__ = ["MAX_BODY", "WebhookServer", "parse_listen", "push_ref", "verify_signature"]

MAX_BODY = 10 * 1024 * 1024


def verify_signature(secret: bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether `body` carries a valid GitHub- or Gitea-style HMAC-SHA256 signature.

    `headers` must be case-insensitive (an `email.message.Message` or similar)."""
    given = headers.get("X-Hub-Signature-256")
    if given is not None:
        if not given.startswith("sha256="):
            return False
        given = given[len("sha256=") :]
    else:
        given = headers.get("X-Gitea-Signature") or headers.get("X-Gogs-Signature")
    if not given:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def push_ref(body: bytes) -> str | None:
    """The `ref` a push payload names (`refs/heads/main`), or None when there is none."""
    try:
        doc = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    ref = doc.get("ref") if isinstance(doc, dict) else None
    return ref if isinstance(ref, str) else None


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (loopback) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise GitkvError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9090")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class WebhookServer:
    """A small threaded HTTP server; `trigger()` is called for each accepted push.

    :param branch: returns the watched branch (known once the source is opened), or "".
    :param health: returns extra fields for `/healthz`.
    """

    def __init__(
        self,
        listen: str,
        *,
        secret: bytes | None,
        trigger: Callable[[], None],
        metrics: Metrics,
        log: EventLog,
        branch: Callable[[], str] = lambda: "",
        health: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        host, port = parse_listen(listen)
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self.secret = secret
        self.trigger = trigger
        self.metrics = metrics
        self.log = log
        self.branch = branch
        self.health = health
        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise GitkvError(f"cannot listen on {listen}: {exc}") from exc
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gitkv-webhook", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- request handling (called from the handler) -------------------------------------

    def handle_push(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        if self.secret is not None and not verify_signature(self.secret, body, headers):
            self.metrics.inc("watch_webhook_requests_total", result="unauthorized")
            self.log.warn("webhook", result="unauthorized", reason="bad or missing signature")
            return 401, "invalid signature\n"
        event = headers.get("X-GitHub-Event") or headers.get("X-Gitea-Event") or "push"
        if event == "ping":
            self.metrics.inc("watch_webhook_requests_total", result="ping")
            return 200, "pong\n"
        ref, branch = push_ref(body), self.branch()
        if ref and branch and ref != f"refs/heads/{branch}":
            self.metrics.inc("watch_webhook_requests_total", result="ignored")
            self.log.info("webhook", result="ignored", ref=ref)
            return 202, f"ignored: {ref} is not the watched branch\n"
        self.metrics.inc("watch_webhook_requests_total", result="accepted")
        self.log.info("webhook", result="accepted", ref=ref or "")
        self.trigger()
        return 202, "fetch scheduled\n"


class _Handler(BaseHTTPRequestHandler):
    server_owner: WebhookServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # access logs would drown the event log; webhook events are logged instead

    def _send(self, status: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        owner = self.server_owner
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, owner.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/healthz":
            doc = {"status": "ok", **owner.health()}
            self._send(200, json.dumps(doc) + "\n", "application/json")
        else:
            self._send(404, "not found\n")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        owner = self.server_owner
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(413, "body too large\n")
            return
        body = self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        if path in ("/metrics", "/healthz"):
            self._send(405, "method not allowed\n")
            return
        status, text = owner.handle_push(self.headers, body)
        self._send(status, text)
