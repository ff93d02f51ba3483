"""Size limits on what the agent accepts, checked before anything is stored or proposed. Pure.

Every function returns the message to answer with (400, plain text) or None when the value is
within bounds, so a handler can refuse before it builds a command and the same check can run
again as a last guard (``agent.local``) without raising from deep inside.

Two kinds of bound live here:

* Consul's own (``agent/structs/structs.go``): metadata holds at most 64 pairs, keys match
  ``[a-zA-Z0-9_-]+`` and are at most 128 bytes, values at most 512 bytes, and the ``consul-``
  key prefix is reserved (mesh gateways may set ``consul-wan-federation``); DNS weights are
  1..65535 passing and 0..65535 warning. The messages are Consul's, word for word.
* Ours, where Consul has none. Consul refuses no service ID, service name, check ID, check
  name, node name or KV key for its length (a 70 KB service name registers; DNS just cannot
  answer for it), so neither do we up to a generous bound that keeps one registration inside a
  single Raft entry of ordinary size: ``MAX_IDENTIFIER_BYTES`` for each identifier (an ID and a
  name together stay within the 512 KiB Raft's ``SuggestedMaxDataSize``, the size Consul warns
  about), and ``MAX_KV_KEY_BYTES`` for a key (Go's 1 MiB request-header limit caps a key in a
  URL on Consul; half of it still dwarfs any real key).

Lengths are UTF-8 bytes, as Go's ``len`` counts them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_IDENTIFIER_BYTES",
    "MAX_KV_KEY_BYTES",
    "META_KEY_MAX_LENGTH",
    "META_MAX_KEY_PAIRS",
    "META_VALUE_MAX_LENGTH",
    "check_limits_error",
    "identifier_error",
    "kv_key_error",
    "meta_error",
    "node_limits_error",
    "service_limits_error",
    "service_meta_error",
    "weights_error",
]

META_MAX_KEY_PAIRS = 64
META_KEY_MAX_LENGTH = 128
META_VALUE_MAX_LENGTH = 512
META_RESERVED_PREFIX = "consul-"
# The one reserved key a mesh gateway may carry (it marks the gateway usable for WAN federation).
_MESH_GATEWAY_CONSUL_KEYS = frozenset({"consul-wan-federation"})
_META_KEY = re.compile(r"[a-zA-Z0-9_-]+")

MAX_IDENTIFIER_BYTES = 256 * 1024
MAX_KV_KEY_BYTES = 512 * 1024

DNS_WEIGHT_MAX = 65535


def _size(value: str) -> int:
    # surrogatepass: a lone surrogate from a lenient decoder is measured, not an exception.
    return len(value.encode("utf-8", "surrogatepass"))


def identifier_error(what: str, value: Any, limit: int = MAX_IDENTIFIER_BYTES) -> str | None:
    """`what` (e.g. "Service ID") longer than `limit` bytes; non-strings are the decoder's."""
    if not isinstance(value, str) or len(value) * 4 <= limit:
        return None  # a UTF-8 character is at most 4 bytes: most values need no encoding
    size = _size(value)
    if size > limit:
        return f"{what} is too long ({size} bytes, limit: {limit} bytes)"
    return None


def _meta_pair_error(
    key: str, value: str, allow_consul_prefix: bool, allowed: frozenset
) -> str | None:
    if key == "":
        return "Key cannot be blank"
    if not _META_KEY.fullmatch(key):
        return "Key contains invalid characters"
    if len(key) > META_KEY_MAX_LENGTH:  # ASCII by the pattern above, so chars are bytes
        return f"Key is too long (limit: {META_KEY_MAX_LENGTH} characters)"
    if key.startswith(META_RESERVED_PREFIX) and not allow_consul_prefix and key not in allowed:
        return f"Key prefix '{META_RESERVED_PREFIX}' is reserved for internal use"
    if _size(value) > META_VALUE_MAX_LENGTH:
        return f"Value is too long (limit: {META_VALUE_MAX_LENGTH} characters)"
    return None


def meta_error(
    meta: Mapping[str, str] | None,
    *,
    allow_consul_prefix: bool = False,
    allowed_consul_keys: frozenset[str] = frozenset(),
) -> str | None:
    """Consul's `validateMetadata` for node or service metadata (its message says "Node" for
    both). Non-string keys or values are left to the decoder, which names their type."""
    if not meta:
        return None
    if len(meta) > META_MAX_KEY_PAIRS:
        return f"Node metadata cannot contain more than {META_MAX_KEY_PAIRS} key/value pairs"
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        why = _meta_pair_error(key, value, allow_consul_prefix, allowed_consul_keys)
        if why is not None:
            return f"Couldn't load metadata pair ('{key}', '{value}'): {why}"
    return None


def service_meta_error(
    kind: str, meta: Mapping[str, str] | None, allow_consul_prefix: bool = False
) -> str | None:
    """Consul's `ValidateServiceMetadata`: a mesh gateway may set `consul-wan-federation`."""
    allowed = _MESH_GATEWAY_CONSUL_KEYS if kind == "mesh-gateway" else frozenset()
    return meta_error(meta, allow_consul_prefix=allow_consul_prefix, allowed_consul_keys=allowed)


def weights_error(passing: int, warning: int) -> str | None:
    """Consul's `ValidateWeights` (a registration without Weights is not checked)."""
    if passing < 1:
        return "Passing must be greater than 0"
    if warning < 0:
        return "Warning must be greater or equal than 0"
    if passing > DNS_WEIGHT_MAX or warning > DNS_WEIGHT_MAX:
        return f"DNS Weight must be between 0 and {DNS_WEIGHT_MAX}"
    return None


def service_limits_error(
    service_id: Any, name: Any, meta: Mapping[str, str] | None = None, kind: str = ""
) -> str | None:
    """An agent service registration: its ID and name within our bound, its Meta within
    Consul's (prefixed as `/v1/agent/service/register` words it)."""
    why = identifier_error("Service ID", service_id) or identifier_error("Service name", name)
    if why is not None:
        return why
    why = service_meta_error(kind, meta)
    return f"Invalid Service Meta: {why}" if why is not None else None


def check_limits_error(check_id: Any, name: Any) -> str | None:
    """A check registration (on its own or inside a service): its ID and name within bound."""
    return identifier_error("CheckID", check_id) or identifier_error("Check name", name)


def node_limits_error(node: Any, meta: Mapping[str, str] | None = None) -> str | None:
    """A node name within bound, and `meta` within Consul's rules when given. Pass `meta` only
    where Consul checks it (the agent's own config): its catalog endpoint stores any meta."""
    return identifier_error("Node name", node) or meta_error(meta)


def kv_key_error(key: Any) -> str | None:
    """A KV key, from a URL path or a txn op."""
    return identifier_error("Key", key, MAX_KV_KEY_BYTES)
