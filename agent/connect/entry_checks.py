"""Checks several config-entry kinds share, with Consul's wording.

Meta limits (`validateConfigEntryMeta`), DNS names as miekg/dns's `IsDomainName` accepts them,
IPs as Go's `net.ParseIP`, TLS versions and cipher suites (`types/tls.go`), Envoy extensions
(`ValidateExtensions`), HTTP methods, header modifiers, and Go's case mapping. Each helper
returns the problem (or a list of them) and leaves raising to the caller, because Consul
sometimes collects problems into one go-multierror text and sometimes stops at the first.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agent.connect.errors import EntryError
from agent.connect.intention_names import go_quote, multierror
from agent.limits import META_KEY_MAX_LENGTH, META_MAX_KEY_PAIRS, META_VALUE_MAX_LENGTH

__all__ = [
    "HTTP_LIKE",
    "HTTP_METHODS",
    "META_VALUE_MAX_LENGTH",
    "WILDCARD",
    "byte_len",
    "extension_problems",
    "fail",
    "go_lower",
    "go_quote",
    "go_upper",
    "headers_set",
    "is_domain_name",
    "is_ip",
    "meta_problems",
    "multierror",
    "raise_all",
    "raise_meta",
    "tls_problem",
]

WILDCARD = "*"
HTTP_LIKE = frozenset({"http", "http2", "grpc"})
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}
)


def fail(message: str) -> EntryError:
    return EntryError(message, 500)


def raise_all(problems: Sequence[str]) -> None:
    """Raise go-multierror's text of `problems` (which may be empty: then nothing)."""
    text = multierror(problems)
    if text is not None:
        raise fail(text)


def byte_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def go_lower(text: str) -> str:
    # Go maps rune by rune; Python's full mapping can grow a character ("İ" -> "i̇").
    return "".join(low if len(low := char.lower()) == 1 else char for char in text)


def go_upper(text: str) -> str:
    return "".join(up if len(up := char.upper()) == 1 else char for char in text)


def meta_problems(meta: Mapping[str, str] | None, prefix: str = "") -> list[str]:
    """validateConfigEntryMeta's findings (Go walks the map in random order; we in order).

    Legacy intention sources check their LegacyMeta the same way, each message led by the
    source's path (`prefix`, e.g. "Sources[0].")."""
    meta = meta or {}
    problems = []
    if len(meta) > META_MAX_KEY_PAIRS:
        problems.append(f"{prefix}Meta exceeds maximum element count {META_MAX_KEY_PAIRS}")
    for key, value in meta.items():
        if byte_len(key) > META_KEY_MAX_LENGTH:
            problems.append(
                f"{prefix}Meta key {go_quote(key)} exceeds maximum length {META_KEY_MAX_LENGTH}"
            )
        if byte_len(value) > META_VALUE_MAX_LENGTH:
            problems.append(
                f"{prefix}Meta value for key {go_quote(key)} exceeds maximum length "
                f"{META_VALUE_MAX_LENGTH}"
            )
    return problems


def raise_meta(entry: Mapping[str, Any]) -> None:
    """`if err := validateConfigEntryMeta(e.Meta); err != nil { return err }`."""
    raise_all(meta_problems(entry.get("Meta")))


def _ddd(text: str) -> bool:
    return len(text) >= 3 and all(c in "0123456789" for c in text[:3])


def is_domain_name(name: str) -> bool:
    """miekg/dns's IsDomainName: only label and name lengths, and dots, are checked."""
    if not name:
        return False
    raw = name.encode("utf-8", "surrogatepass")
    text = raw if raw.endswith(b".") and not _escaped_end(raw) else raw + b"."
    offset, begin, was_dot, i = 0, 0, False, 0
    while i < len(text):
        char = text[i : i + 1]
        if char == b"\\":
            if offset + 1 > 256:
                return False
            rest = text[i + 1 :].decode("latin-1")
            if _ddd(rest):
                i += 3
                begin += 3
            else:
                i += 1
                begin += 1
            was_dot = False
        elif char == b".":
            if i == 0 and len(text) > 1:
                return False
            if was_dot:
                return False
            was_dot = True
            label = i - begin
            if label >= 1 << 6:
                return False
            offset += 1 + label
            if offset > 256:
                return False
            begin = i + 1
        else:
            was_dot = False
        i += 1
    return True


def _escaped_end(raw: bytes) -> bool:
    # dns.Fqdn: a trailing dot preceded by an odd number of backslashes is not final
    count = 0
    for byte in reversed(raw[:-1]):
        if byte != 0x5C:
            break
        count += 1
    return count % 2 == 1


def is_ip(text: str) -> bool:
    """net.ParseIP: dotted IPv4 (no leading zeros) or IPv6, no zone."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- TLS -----------------------------------------------------------------------------------

_TLS_VERSIONS = ("TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3")
_TLS_ORDER = {"TLSv1_0": 1, "TLSv1_1": 2, "TLSv1_2": 3, "TLSv1_3": 4}
_CIPHERS_CONFIGURABLE = frozenset({"", "TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2"})
_ENVOY_CIPHERS = frozenset(
    {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
    }
)


def _version_problem(version: str) -> str | None:
    if version in _TLS_VERSIONS:
        return None
    return (
        f"no matching TLS version found for {version}, please specify one of "
        f"[{', '.join(_TLS_VERSIONS)}]"
    )


def tls_problem(min_version: str, max_version: str, ciphers: Sequence[str]) -> str | None:
    """validateTLSConfig."""
    if min_version and (problem := _version_problem(min_version)):
        return problem
    if max_version:
        if problem := _version_problem(max_version):
            return problem
        if (
            min_version in _TLS_ORDER
            and max_version in _TLS_ORDER
            and _TLS_ORDER[max_version] < _TLS_ORDER[min_version]
        ):
            return (
                f"configuring max version {max_version} less than the configured min "
                f"version {min_version} is invalid"
            )
    if ciphers:
        if min_version not in _CIPHERS_CONFIGURABLE:
            return (
                "configuring CipherSuites is only applicable to connections negotiated with "
                f"TLS 1.2 or earlier, TLSMinVersion is set to {min_version}"
            )
        unmatched = [c for c in ciphers if c not in _ENVOY_CIPHERS]
        if unmatched:
            return f"no matching Envoy TLS cipher suite found for {','.join(unmatched)}"
    return None


# --- Envoy extensions ----------------------------------------------------------------------

# The built-in extensions' names (agent/envoyextensions/registered_extensions.go). Each
# extension's own argument checks are not reproduced: any arguments are accepted.
_BUILTIN_EXTENSIONS = frozenset(
    {
        "builtin/lua",
        "builtin/aws/lambda",
        "builtin/property-override",
        "builtin/wasm",
        "builtin/ext-authz",
        "builtin/otel-access-logging",
    }
)
_CONSTRAINT = re.compile(
    r"\s*(=|!=|>|<|>=|<=|~>)?\s*v?[0-9]+(\.[0-9]+)*"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?\s*"
)


def _constraint_problem(text: str) -> str | None:
    """hashicorp/go-version's NewConstraint."""
    for piece in text.split(","):
        if not _CONSTRAINT.fullmatch(piece):
            return f"Malformed constraint: {piece}"
    return None


def extension_problems(extensions: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """envoyextensions.ValidateExtensions."""
    problems = []
    for i, ext in enumerate(extensions or ()):
        name = ext.get("Name") or ""
        if not name:
            problems.append(f"invalid EnvoyExtensions[{i}]: Name is required")
            continue
        found = False
        for field in ("EnvoyVersion", "ConsulVersion"):
            version = ext.get(field) or ""
            if version and (problem := _constraint_problem(version)):
                problems.append(f"invalid EnvoyExtensions[{i}].{field}: {problem}")
                found = True
                break
        if found:
            continue
        if name not in _BUILTIN_EXTENSIONS:
            problems.append(
                f"invalid EnvoyExtensions[{i}][{name}]: name {go_quote(name)} is not a "
                "built-in extension"
            )
    return problems


def headers_set(modifiers: Mapping[str, Any] | None) -> bool:
    """HTTPHeaderModifiers.IsZero, negated."""
    if not modifiers:
        return False
    return bool(modifiers.get("Add") or modifiers.get("Set") or modifiers.get("Remove"))
