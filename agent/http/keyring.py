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

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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


class GossipKeys(Protocol):
    """Where the gossip keyring lives: the cluster manager's cipher (None: plaintext gossip)."""

    @property
    def cipher(self) -> GossipCipher | None: ...


@dataclass(frozen=True)
class KeyringPorts:
    """What `/v1/operator/keyring` uses: the gossip pools' cipher (`cluster`, None in twins),
    and, fixed for the life of the process, the datacenter and the data directory the
    keyring file is saved under (None: not saved)."""

    cluster: GossipKeys | None
    datacenter: str
    data_dir: Path | None


def _cipher(cluster: GossipKeys | None) -> GossipCipher:
    cipher = cluster.cipher if cluster is not None else None
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


async def keyring_list(ports: KeyringPorts, req: Request, _: str) -> Response:
    return json_response(req, listing(_cipher(ports.cluster), ports.datacenter))


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


async def keyring_change(ports: KeyringPorts, name: str, req: Request, _: str) -> Response:
    """POST (`name` "install"), PUT ("use") or DELETE ("remove") the body's key; the keyring
    file is saved after the change."""
    cipher = _cipher(ports.cluster)
    key = await _key_from_body(req)
    try:
        getattr(cipher.keyring, name)(key)
    except KeyringError as exc:
        raise HTTPError(500, str(exc)) from None
    if ports.data_dir is not None:
        save_keyring_file(ports.data_dir / KEYRING_FILE, cipher.keyring)
    return Response(b"", 200)


def register(router: Router, deps: HTTPDeps) -> None:
    identity = deps.identity
    ports = KeyringPorts(deps.cluster, identity.datacenter, identity.data_dir)
    router.add(
        "/v1/operator/keyring",
        {
            "GET": partial(keyring_list, ports),
            "POST": partial(keyring_change, ports, "install"),
            "PUT": partial(keyring_change, ports, "use"),
            "DELETE": partial(keyring_change, ports, "remove"),
        },
    )
