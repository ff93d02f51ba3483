"""A session created through a client or follower belongs to that agent's node."""

from __future__ import annotations

import json

import agent.http.app  # noqa: F401 - app imports forward last; load it first
from agent.http.forward import session_body_with_node


def test_fills_node_when_absent_or_empty() -> None:
    assert json.loads(session_body_with_node(b"", "node4")) == {"Node": "node4"}
    body = session_body_with_node(b'{"Name": "x", "node": ""}', "node4")
    assert json.loads(body) == {"Name": "x", "Node": "node4"}


def test_keeps_an_explicit_node_and_bad_bodies() -> None:
    body = b'{"Node": "other"}'
    assert session_body_with_node(body, "node4") == body
    assert session_body_with_node(b"{nope", "node4") == b"{nope"
    assert session_body_with_node(b"[1]", "node4") == b"[1]"
