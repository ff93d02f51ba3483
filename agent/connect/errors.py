"""What the mesh's pure logic refuses, with the HTTP status Consul answers it with.

Consul answers most config-entry, intention and CA refusals as plain-text 500s (they are RPC
errors); only body decoding and a few argument checks are 400s. The status travels with the
error so the HTTP layer needs no table per message."""

from __future__ import annotations


class MeshError(Exception):
    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class EntryError(MeshError):
    """A config entry (or a write of one) that Consul would refuse."""


class CAError(MeshError):
    """A CA configuration, certificate request or certificate that Consul would refuse."""


class IntentionError(MeshError):
    """An intention, or an intention query, that Consul would refuse."""
