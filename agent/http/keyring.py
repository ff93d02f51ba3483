"""`/v1/operator/keyring`: list, install, use and remove gossip encryption keys.

GET answers Consul's shape, one entry per gossip pool:
`[{"WAN": false, "Datacenter", "Segment": "", "Keys": {"<b64>": n}, "PrimaryKeys": {...},
"NumNodes": n}]`. POST installs, PUT makes primary, DELETE removes the key in `{"Key": "<b64>"}`.

Scope: this agent's keyring only. Consul relays the change to every member with a serf query;
this agent has no such query yet, so a rotation is done agent by agent (install everywhere, then
use, then remove) and the counts say how many agents answered: this one. The keyring is saved to
`<data_dir>/serf/local.keyring` after each change, so it survives a restart.
ACL rules (`keyring:read` / `keyring:write`) are applied by agent/http/guards.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.gossip.crypto import (
    KEYRING_FILE,
    GossipCipher,
    KeyringError,
    decode_key,
    save_keyring_file,
)
from agent.http.app import HTTPError, Request, Response, Router, json_response

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps

NOT_ENABLED = "Gossip encryption is not enabled on this agent"


def _cipher(req: Request) -> GossipCipher:
    cipher = getattr(req.agent.cluster, "cipher", None)
    if cipher is None:
        raise HTTPError(500, NOT_ENABLED)
    return cipher


def listing(cipher: GossipCipher, datacenter: str) -> list[dict[str, Any]]:
    """The GET body for one agent's keyring (pure, for tests)."""
    keys = cipher.keyring.keys_b64()
    return [
        {
            "WAN": False,
            "Datacenter": datacenter,
            "Segment": "",
            "Keys": dict.fromkeys(keys, 1),
            "PrimaryKeys": {keys[0]: 1},
            "NumNodes": 1,
        }
    ]


async def keyring_list(req: Request, _: str) -> Response:
    return json_response(req, listing(_cipher(req), req.agent.datacenter))


async def _key_from_body(req: Request) -> bytes:
    body = await req.json()
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: expected a JSON object with a Key")
    text = next((v for k, v in body.items() if k.lower() == "key"), None)
    if not isinstance(text, str) or not text:
        raise HTTPError(400, "Request decode failed: missing Key")
    try:
        return decode_key(text)
    except KeyringError as exc:
        raise HTTPError(400, str(exc)) from None


def _change(name: str):
    async def handler(req: Request, _: str) -> Response:
        cipher = _cipher(req)
        key = await _key_from_body(req)
        try:
            getattr(cipher.keyring, name)(key)
        except KeyringError as exc:
            raise HTTPError(500, str(exc)) from None
        data_dir = req.agent.data_dir
        if data_dir is not None:
            save_keyring_file(data_dir / KEYRING_FILE, cipher.keyring)
        return Response(b"", 200)

    return handler


def register(router: Router, deps: HTTPDeps) -> None:
    router.add(
        "/v1/operator/keyring",
        {
            "GET": keyring_list,
            "POST": _change("install"),
            "PUT": _change("use"),
            "DELETE": _change("remove"),
        },
    )
