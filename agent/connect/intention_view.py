"""Intentions as the API shows them: the view of a stored service-intentions entry.

Since Consul 1.9 there is no intention table: each destination's ``service-intentions`` config
entry holds one source per intention, and the intention endpoints render each source through
``ServiceIntentionsConfigEntry.ToIntention``. What that view takes from where:

* ``ID`` is the source's ``LegacyID`` (only intentions made through the deprecated UUID API
  have one), and only those get ``Hash`` (blake2b-256 of their content, kept for pre-1.9
  replication) and ``CreatedAt``/``UpdatedAt`` (the legacy times).
* ``Meta`` is the source's ``LegacyMeta`` for a legacy intention, else the entry's ``Meta``.
* ``CreateIndex``/``ModifyIndex`` are the entry's, shared by every source of the destination.
* ``Action`` is absent for an L7 intention (it has ``Permissions`` instead); ``JWT`` is the
  entry's.

Key order is the JSON Go writes for ``Intention``: its ``MarshalJSON`` wraps the struct in one
whose own ``CreatedAt``/``UpdatedAt`` pointers come first, so those two lead when present, then
the struct's fields in declaration order.

Lookups by legacy ID validate the ID the way go-memdb's UUID index does, with its messages.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import struct
from collections.abc import Iterator, Mapping
from typing import Any

from agent.connect.errors import IntentionError
from agent.connect.intention_names import DEFAULT_NAMESPACE
from agent.memdb_uuid import uuid_index_problem

__all__ = [
    "KIND",
    "Entries",
    "find_legacy",
    "intention_entries",
    "intention_of",
    "intention_order",
    "intention_string",
    "intentions_view",
    "legacy_hash",
]

KIND = "service-intentions"

Entries = Mapping[tuple[str, str], dict]


def intention_entries(entries: Entries) -> Iterator[dict]:
    """The stored service-intentions entries among all config entries."""
    for (kind, _name), entry in entries.items():
        if kind == KIND:
            yield entry


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def legacy_hash(ixn: Mapping[str, Any]) -> str:
    """``Intention.SetHash`` as the JSON shows it (base64 of the digest)."""
    digest = hashlib.blake2b(digest_size=32)
    for field in (
        "ID",
        "Description",
        "SourceNS",
        "SourceName",
        "DestinationNS",
        "DestinationName",
        "SourceType",
        "Action",
    ):
        digest.update(_utf8(ixn.get(field) or ""))
    # Go writes the precedence as a little-endian uint64.
    digest.update(struct.pack("<Q", int(ixn.get("Precedence") or 0) & 0xFFFF_FFFF_FFFF_FFFF))
    meta = ixn.get("Meta") or {}
    for key in sorted(meta):
        digest.update(_utf8(key))
        digest.update(_utf8(meta[key]))
    return base64.b64encode(digest.digest()).decode("ascii")


def intention_of(entry: Mapping[str, Any], source: Mapping[str, Any]) -> dict:
    """The Intention JSON for one source of a stored service-intentions entry."""
    legacy_id = source.get("LegacyID") or ""
    meta = source.get("LegacyMeta") if legacy_id else entry.get("Meta")
    out: dict[str, Any] = {}
    if source.get("LegacyCreateTime"):
        out["CreatedAt"] = source["LegacyCreateTime"]
    if source.get("LegacyUpdateTime"):
        out["UpdatedAt"] = source["LegacyUpdateTime"]
    if legacy_id:
        out["ID"] = legacy_id
    if source.get("Description"):
        out["Description"] = source["Description"]
    # OSS: every namespace reads as "default" and partitions are empty (so omitted).
    out["SourceNS"] = DEFAULT_NAMESPACE
    out["SourceName"] = source.get("Name", "")
    out["DestinationNS"] = DEFAULT_NAMESPACE
    out["DestinationName"] = entry.get("Name", "")
    if source.get("Peer"):
        out["SourcePeer"] = source["Peer"]
    if source.get("SamenessGroup"):
        out["SourceSamenessGroup"] = source["SamenessGroup"]
    out["SourceType"] = source.get("Type", "")
    if source.get("Action"):
        out["Action"] = source["Action"]
    if source.get("Permissions"):
        out["Permissions"] = copy.deepcopy(source["Permissions"])
    if entry.get("JWT") is not None:
        out["JWT"] = copy.deepcopy(entry["JWT"])
    if meta:
        out["Meta"] = dict(meta)
    out["Precedence"] = source.get("Precedence", 0)
    if legacy_id:
        out["Hash"] = legacy_hash(out)
    out["CreateIndex"] = entry.get("CreateIndex", 0)
    out["ModifyIndex"] = entry.get("ModifyIndex", 0)
    return out


def intentions_view(entry: Mapping[str, Any]) -> list[dict]:
    """The Intention JSON of every source of one entry, in the entry's (stored) order."""
    return [intention_of(entry, source) for source in entry.get("Sources") or ()]


def intention_order(ixn: Mapping[str, Any]) -> tuple:
    """Sort key of ``IntentionPrecedenceSorter``: precedence first (highest first), then the
    identity of both sides, so equal precedences still list in one fixed order."""
    return (
        -int(ixn.get("Precedence") or 0),
        ixn.get("SourceSamenessGroup", ""),
        ixn.get("SourcePeer", ""),
        ixn.get("SourcePartition", ""),
        ixn.get("SourceNS", ""),
        ixn.get("SourceName", ""),
        ixn.get("DestinationPartition", ""),
        ixn.get("DestinationNS", ""),
        ixn.get("DestinationName", ""),
    )


def intention_string(ixn: Mapping[str, Any]) -> str:
    """``Intention.String()``, the text the authorize endpoint puts in its reason, e.g.
    ``default/web => default/db (Precedence: 9, Action: ALLOW)``."""
    id_part = f"ID: {ixn['ID']}, " if ixn.get("ID") else ""
    cluster = ""
    if ixn.get("SourcePartition"):
        cluster = f"{ixn['SourcePartition']}/"
    if ixn.get("SourcePeer"):
        cluster = f"peer({ixn['SourcePeer']})/"
    if ixn.get("SourceSamenessGroup"):
        cluster = f"sameness-group({ixn['SourceSamenessGroup']})/"
    destination_partition = ""
    if ixn.get("DestinationPartition"):
        destination_partition = f"{ixn['DestinationPartition']}/"
    permissions = ixn.get("Permissions") or ()
    if permissions:
        detail = f"Permissions: {len(permissions)}"
    else:
        detail = "Action: " + str(ixn.get("Action") or "").upper()
    return (
        f"{cluster}{ixn.get('SourceNS', '')}/{ixn.get('SourceName', '')} => "
        f"{destination_partition}{ixn.get('DestinationNS', '')}/{ixn.get('DestinationName', '')} "
        f"({id_part}Precedence: {ixn.get('Precedence', 0)}, {detail})"
    )


def find_legacy(entries: Entries, legacy_id: str) -> tuple[dict, dict] | None:
    """The (entry, source) holding the intention with this legacy ID, or None.

    A malformed ID is the index's error, which the GET endpoint answers with 400 (its text
    contains "UUID"): ``failed config entry lookup: UUID must be 36 characters``.
    """
    problem = uuid_index_problem(legacy_id)
    if problem is not None:
        raise IntentionError(f"failed config entry lookup: {problem}", 400)
    for entry in intention_entries(entries):
        for source in entry.get("Sources") or ():
            # The index compares decoded bytes, but Consul then picks the source by exact
            # string, so an ID spelled differently (upper case) finds nothing.
            if source.get("LegacyID") == legacy_id:
                return entry, source
    return None
