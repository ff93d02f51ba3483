"""JWKS fetches (agent/acl/jwks.py) against a local HTTP server: what is kept of an answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.acl.jwks import MAX_DOCUMENT, JWKSError, fetch

CHUNK = 65536
CHUNKS = 256  # 16 MiB in all, far past MAX_DOCUMENT


class _Huge(BaseHTTPRequestHandler):
    """Answers 200 with a 16 MiB body (a misbehaving identity provider); records how many
    chunks it got out before the client hung up."""

    protocol_version = "HTTP/1.1"
    sent: list[int] = []
    done = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        count = 0
        try:
            for _ in range(CHUNKS):
                self.wfile.write(b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK))
                count += 1
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.sent.append(count)
            self.done.set()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def huge() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Huge)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/keys"
    finally:
        server.shutdown()
        server.server_close()


def test_an_oversized_key_set_is_refused_without_reading_all_of_it(huge: str) -> None:
    # Before, the whole answer was read into memory and only then measured; the timeout
    # bounds each read, not the body, so an endless answer held the login forever.
    with pytest.raises(JWKSError, match=f"larger than {MAX_DOCUMENT} bytes"):
        asyncio.run(asyncio.wait_for(fetch(huge), 60))
    assert _Huge.done.wait(30)
    assert _Huge.sent[0] < CHUNKS  # the client hung up once past the limit
