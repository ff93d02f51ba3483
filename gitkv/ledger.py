"""The ownership ledger: what gitkv manages in a cluster, stored in the cluster itself.

It lives in one KV key, `gitkv/state/<name>`, as JSON:

    {"format": "gitkv-ledger", "version": 1, "name": "shenzhen",
     "managed": {"kv": ["app/web/replicas", ...], "service": ["node4/web"], ...},
     "token_accessors": {"web": "<AccessorID>"},
     "object_ids": {"acl_binding_rule/<method>/<type>/<name>/<selector>": "<ID>"},
     "digest": "sha256:...", "revision": "<git commit>"}

Prune deletes only ids listed here; anything else in the cluster is "unmanaged" and never
touched. AccessorIDs are public identifiers (not secrets); SecretIDs are never stored. The key
is written through `/v1/txn` with CAS (in the same transaction as the last KV batch when it
fits), and every batch checks its ModifyIndex, so two concurrent applies cannot both win.

Large ledgers (say 100,000 managed keys) do not fit in one KV value (512 KiB in Consul). Above
`INLINE_LIMIT` the ledger is gzipped and split into parts stored under
`gitkv/state/<name>/<generation>/<n>`; the header key then holds only
`{"format": "gitkv-ledger", "version": 1, "name": ..., "parts": [...], "sha256": ...}`.
New parts are written under a fresh generation first and the header is switched with CAS
last, so readers always see a complete ledger.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "INLINE_LIMIT",
    "KINDS",
    "LEDGER_PREFIX",
    "PART_SIZE",
    "Ledger",
    "decode_ledger",
    "encode_ledger",
    "generation_of",
    "ledger_key",
    "parts_prefix",
]

# A ledger up to this size is stored as plain JSON in its header key (readable with
# `consul kv get`); above it, as gzipped parts. Each part, base64-encoded, fits in one txn.
INLINE_LIMIT = 128 * 1024
PART_SIZE = 256 * 1024

LEDGER_PREFIX = "gitkv/state/"

# Every kind of resource a plan knows, in the order apply creates them (deletes run in the
# reverse order): cluster settings first, ACL policies and roles before the auth methods,
# binding rules and tokens that name them, config entries before the services (proxies read
# their central config), prepared queries last.
KINDS = (
    "ca",
    "autopilot",
    "acl_policy",
    "acl_role",
    "acl_auth_method",
    "acl_binding_rule",
    "acl_token",
    "kv",
    "config_entry",
    "service",
    "external_node",
    "prepared_query",
)


def ledger_key(name: str) -> str:
    return LEDGER_PREFIX + name


def parts_prefix(name: str) -> str:
    """Where a chunked ledger's parts live (one sub-folder per generation)."""
    return ledger_key(name) + "/"


@dataclass(frozen=True)
class Ledger:
    """The managed ids per kind (sorted tuples), token AccessorIDs by token name, the server
    IDs of objects gitkv keys otherwise (`<kind>/<id>` -> ID: binding rules), and what was
    last applied (spec digest, revision)."""

    name: str
    managed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    token_accessors: Mapping[str, str] = field(default_factory=dict)
    digest: str = ""
    revision: str = ""
    object_ids: Mapping[str, str] = field(default_factory=dict)

    def ids(self, kind: str) -> tuple[str, ...]:
        return self.managed.get(kind, ())

    def manages(self, kind: str, ident: str) -> bool:
        return ident in self.managed.get(kind, ())

    @classmethod
    def build(
        cls,
        name: str,
        managed: Mapping[str, Iterable[str]],
        token_accessors: Mapping[str, str] | None = None,
        digest: str = "",
        revision: str = "",
        object_ids: Mapping[str, str] | None = None,
    ) -> Ledger:
        """A ledger with canonical (sorted, de-duplicated, empty kinds dropped) contents."""
        clean = {k: tuple(sorted(set(v))) for k, v in managed.items()}
        return cls(
            name=name,
            managed={k: v for k, v in sorted(clean.items()) if v},
            token_accessors=dict(sorted((token_accessors or {}).items())),
            digest=digest,
            revision=revision,
            object_ids=dict(sorted((object_ids or {}).items())),
        )

    def union(self, other: Ledger) -> Ledger:
        """Everything either ledger manages (written while a multi-batch apply is under way,
        so an interrupted apply never forgets a resource it may already have created)."""
        kinds = set(self.managed) | set(other.managed)
        merged = {k: set(self.ids(k)) | set(other.ids(k)) for k in kinds}
        accessors = {**self.token_accessors, **other.token_accessors}
        ids = {**self.object_ids, **other.object_ids}
        return Ledger.build(other.name, merged, accessors, other.digest, other.revision, ids)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": "gitkv-ledger",
            "version": 1,
            "name": self.name,
            "managed": {k: list(v) for k, v in self.managed.items()},
            "token_accessors": dict(self.token_accessors),
            "digest": self.digest,
            "revision": self.revision,
        }
        if self.object_ids:  # absent when empty: older ledgers keep their exact bytes
            out["object_ids"] = dict(self.object_ids)
        return out

    def to_bytes(self) -> bytes:
        # Stable bytes: equal ledgers give equal values, so "nothing changed" is a byte compare.
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        if data.get("format") != "gitkv-ledger":
            raise ValueError("not a gitkv ownership ledger")
        return cls.build(
            str(data.get("name", "")),
            {str(k): [str(i) for i in v] for k, v in (data.get("managed") or {}).items()},
            {str(k): str(v) for k, v in (data.get("token_accessors") or {}).items()},
            str(data.get("digest", "")),
            str(data.get("revision", "")),
            {str(k): str(v) for k, v in (data.get("object_ids") or {}).items()},
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Ledger:
        """Parse a stored ledger.

        :raises ValueError: when the key holds something else (gitkv then refuses to guess).
        """
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"ownership ledger is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("ownership ledger is not a JSON object")
        return cls.from_dict(data)


def encode_ledger(ledger: Ledger, generation: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The header value and the `(key, bytes)` parts that store `ledger` (no parts when it
    is small enough to live in the header)."""
    raw = ledger.to_bytes()
    if len(raw) <= INLINE_LIMIT:
        return raw, []
    blob = gzip.compress(raw, mtime=0)
    base = f"{parts_prefix(ledger.name)}{generation}/"
    parts = [
        (f"{base}{i:05d}", blob[off : off + PART_SIZE])
        for i, off in enumerate(range(0, len(blob), PART_SIZE))
    ]
    header = {
        "format": "gitkv-ledger",
        "version": 1,
        "name": ledger.name,
        "encoding": "gzip",
        "parts": [k for k, _ in parts],
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    return json.dumps(header, sort_keys=True).encode(), parts


def decode_ledger(header: bytes, parts: Mapping[str, bytes]) -> Ledger:
    """Rebuild a ledger from its header value and the part values it names.

    :raises ValueError: not a ledger, a part is missing, or the parts do not match the digest.
    """
    try:
        doc = json.loads(header or b"{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"ownership ledger is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("ownership ledger is not a JSON object")
    if "parts" not in doc:
        return Ledger.from_dict(doc)
    missing = [k for k in doc["parts"] if k not in parts]
    if missing:
        raise ValueError(f"ownership ledger part {missing[0]} is missing")
    blob = b"".join(parts[k] for k in doc["parts"])
    if hashlib.sha256(blob).hexdigest() != doc.get("sha256"):
        raise ValueError("ownership ledger parts do not match their digest")
    return Ledger.from_bytes(gzip.decompress(blob))


def generation_of(part_key: str, name: str) -> str:
    """`gitkv/state/<name>/<generation>/<n>` -> `<generation>` ("" for other keys)."""
    rest = part_key.removeprefix(parts_prefix(name))
    return rest.split("/", 1)[0] if rest != part_key and "/" in rest else ""
