"""Why go-memdb's UUID index refuses a string as a lookup key (`UUIDFieldIndex`).

Consul keeps ACL policies, roles, tokens (by accessor), intentions and other records in
tables indexed by UUID; looking one up by a string that is no UUID is an error of the index,
not "not found", and Consul's answers carry the index's words (e.g. `failed acl policy
lookup: UUID must be 36 characters`).
"""

from __future__ import annotations

__all__ = ["invalid_hex", "uuid_index_problem"]

_HEX = frozenset(b"0123456789abcdefABCDEF")


def _go_rune_u(byte: int) -> str:
    # Go's %#U of rune(byte): the code point, and the character when it is printable.
    char = chr(byte)
    return f"U+{byte:04X} '{char}'" if char.isprintable() else f"U+{byte:04X}"


def uuid_index_problem(value: str) -> str | None:
    """The index's error for `value` (a full-length lookup), or None if it takes it."""
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) != 36:
        return "UUID must be 36 characters"
    hyphens = raw.count(b"-")
    if hyphens > 4:
        return f'UUID should have maximum of 4 "-"; got {hyphens}'
    digits = raw.replace(b"-", b"")
    if len(digits) % 2:
        return "Input (without hyphens) must be even length"
    bad_hex = invalid_hex(digits)
    return None if bad_hex is None else f"Invalid UUID: {bad_hex}"


def invalid_hex(digits: bytes) -> str | None:
    """encoding/hex's error for the first byte of `digits` that is no hex digit, or None."""
    for byte in digits:
        if byte not in _HEX:
            return f"encoding/hex: invalid byte: {_go_rune_u(byte)}"
    return None
