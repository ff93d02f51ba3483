"""agent.http.edge: Go's cleanPath, the redirect target, and the guard on truncated bodies."""

from __future__ import annotations

import asyncio

import pytest

from agent.http.edge import CleanPathsAndBodies, IncompleteBody, clean_path, redirect_location


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "/"),
        ("/", "/"),
        ("a/b", "/a/b"),
        ("/v1/kv/a/../b", "/v1/kv/b"),
        ("/v1/kv/a/./b/", "/v1/kv/a/b/"),
        ("//v1//kv///x", "/v1/kv/x"),  # unlike posixpath.normpath, no "//" root survives
        ("/v1/kv/..", "/v1"),
        ("/v1/kv/../", "/v1/"),
        ("/../../x", "/x"),
        ("/a/.", "/a"),
        ("/a/./", "/a/"),
        ("/a/b/", "/a/b/"),
        ("/.../x", "/.../x"),  # only "." and ".." are special
        ("/a%2F..%2Fb", "/a%2F..%2Fb"),
    ],
)
def test_clean_path_is_gos(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


def test_redirect_location() -> None:
    assert redirect_location(b"/v1/kv/a", b"") is None
    assert redirect_location(b"/v1/kv/a.b/.c", b"") is None  # dots inside names are fine
    assert redirect_location(b"/v1/kv/a/%2E%2E/b", b"") is None  # encoded: key bytes
    assert redirect_location(b"/v1/kv/a/../b", b"dc=x&cas=0") == b"/v1/kv/b?dc=x&cas=0"
    assert redirect_location(b"/v1/kv//b/", b"") == b"/v1/kv/b/"
    assert redirect_location(b"/v1/kv/\xc3\xa9//x", b"") == b"/v1/kv/%C3%A9/x"


def run(coro):
    return asyncio.run(coro)


async def call(scope: dict, messages: list[dict]) -> tuple[list[dict], list]:
    sent: list[dict] = []
    reached: list = []
    incoming = iter(messages)

    async def app(scope, receive, send):
        reached.append(scope["path"])
        try:
            while True:
                message = await receive()
                reached.append(message["type"])
                if not message.get("more_body"):
                    break
        except IncompleteBody as exc:
            reached.append(exc.status)

    async def receive():
        return next(incoming)

    async def send(message):
        sent.append(message)

    await CleanPathsAndBodies(app)(scope, receive, send)
    return sent, reached


def scope(method: str, raw: bytes, query: bytes = b"") -> dict:
    return {
        "type": "http",
        "method": method,
        "path": raw.decode(),
        "raw_path": raw,
        "query_string": query,
    }


def test_unclean_path_answers_301_without_reaching_the_app() -> None:
    sent, reached = run(call(scope("GET", b"/v1/kv/a/../b", b"x=1&y=<"), []))
    assert reached == []
    start, body = sent
    assert start["status"] == 301
    headers = dict(start["headers"])
    assert headers[b"location"] == b"/v1/kv/b?x=1&y=<"
    assert body["body"] == b'<a href="/v1/kv/b?x=1&amp;y=&lt;">Moved Permanently</a>.\n\n'
    assert headers[b"content-length"] == str(len(body["body"])).encode()


def test_head_and_put_redirects_carry_no_body() -> None:
    sent, _ = run(call(scope("HEAD", b"/a//b"), []))
    assert dict(sent[0]["headers"])[b"content-type"] == b"text/html; charset=utf-8"
    assert sent[1]["body"] == b""
    sent, _ = run(call(scope("PUT", b"/a//b"), []))
    assert b"content-type" not in dict(sent[0]["headers"])
    assert sent[1]["body"] == b""


def test_connect_and_asterisk_are_not_cleaned() -> None:
    _, reached = run(call(scope("CONNECT", b"/a//b"), [{"type": "http.request", "body": b""}]))
    assert reached[0] == "/a//b"
    _, reached = run(call(scope("OPTIONS", b"*"), [{"type": "http.request", "body": b""}]))
    assert reached[0] == "*"


def test_disconnect_before_the_body_ends_raises() -> None:
    messages = [
        {"type": "http.request", "body": b"AB", "more_body": True},
        {"type": "http.disconnect"},
    ]
    _, reached = run(call(scope("PUT", b"/v1/kv/k"), messages))
    assert reached == ["/v1/kv/k", "http.request", 400]


def test_disconnect_after_the_body_is_a_plain_message() -> None:
    async def app(scope, receive, send):
        first = await receive()
        second = await receive()
        got.extend([first["type"], second["type"]])

    got: list[str] = []
    messages = iter([{"type": "http.request", "body": b"A"}, {"type": "http.disconnect"}])

    async def receive():
        return next(messages)

    async def send(message):
        pass

    run(CleanPathsAndBodies(app)(scope("GET", b"/v1/kv/k"), receive, send))
    assert got == ["http.request", "http.disconnect"]
