"""agent/http/keyring.py: an agent without gossip encryption refuses (through `register` on the
twins), and with a cipher the keyring is listed, changed and saved to the data directory."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import load_config
from agent.gossip.crypto import KEYRING_FILE, GossipCipher, Keyring, load_keyring_file
from agent.http import keyring
from agent.http.app import HTTPError, Request, Response, Router
from agent.http.keyring import KeyringPorts, keyring_change, keyring_list
from tests.harness.twins import http_deps

K1, K2 = (bytes([n]) * 32 for n in (1, 2))
B1, B2 = (
    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
    "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
)


@dataclass
class Pools:
    """The cluster manager as the keyring sees it: where the cipher lives."""

    cipher: GossipCipher | None


def request(method: str, body: bytes = b"") -> Request:
    scope = {"method": method, "path": "/v1/operator/keyring", "query_string": b"", "headers": []}

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)  # the keyring reads no tables: no `reads`


def test_without_gossip_encryption_every_method_refuses() -> None:
    deps = http_deps(load_config(["-dev"], environ={}))
    router = Router()
    keyring.register(router, deps)
    methods, rest, _ = router.match("/v1/operator/keyring")
    assert methods is not None and sorted(methods) == ["DELETE", "GET", "POST", "PUT"]
    for method in methods:
        with pytest.raises(HTTPError) as refused:
            asyncio.run(methods[method](request(method, json.dumps({"Key": B2}).encode()), rest))
        assert (refused.value.status, refused.value.message) == (500, keyring.NOT_ENABLED)


def run(ports: KeyringPorts, method: str, body: bytes = b"") -> Response:
    if method == "GET":
        return asyncio.run(keyring_list(ports, request(method), ""))
    name = {"POST": "install", "PUT": "use", "DELETE": "remove"}[method]
    return asyncio.run(keyring_change(ports, name, request(method, body), ""))


def test_install_use_and_list_save_the_keyring(tmp_path: Path) -> None:
    cipher = GossipCipher(Keyring([K1]))
    ports = KeyringPorts(Pools(cipher), "dc1", tmp_path)
    assert run(ports, "POST", json.dumps({"Key": B2}).encode()).status == 200
    assert run(ports, "PUT", json.dumps({"key": B2}).encode()).status == 200
    listed = json.loads(run(ports, "GET").body)
    assert [(e["Datacenter"], e["Keys"], e["PrimaryKeys"]) for e in listed] == [
        ("dc1", {B2: 1, B1: 1}, {B2: 1})
    ]
    saved = load_keyring_file(tmp_path / KEYRING_FILE)
    assert saved is not None and saved.keys_b64() == [B2, B1]


def test_removing_the_primary_key_is_refused() -> None:
    ports = KeyringPorts(Pools(GossipCipher(Keyring([K1]))), "dc1", None)
    with pytest.raises(HTTPError) as refused:
        run(ports, "DELETE", json.dumps({"Key": B1}).encode())
    assert refused.value.status == 500
