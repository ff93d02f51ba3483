"""Cluster-wide settings: the autopilot configuration and the Connect CA configuration.

Both are singletons that always exist, so they are never created or deleted: a spec manages
the settings it names, and `merged` lays those over the live configuration (which is what
is sent, because both endpoints replace the whole configuration). When they leave the spec
gitkv simply stops managing them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from gitkv.objects import DURATION_SUFFIXES, ApiObject
from gitkv.resources import SecretRef, canonical_duration

__all__ = [
    "AUTOPILOT",
    "AUTOPILOT_FIELDS",
    "CA",
    "CA_SECRET_KEYS",
    "SINGLETON_ID",
    "autopilot_body",
    "autopilot_from_api",
    "autopilot_object",
    "autopilot_spec",
    "ca_body",
    "ca_from_api",
    "ca_object",
    "ca_spec",
    "merged",
]

AUTOPILOT = "autopilot"
CA = "ca"
SINGLETON_ID = "config"
# spec name -> Consul's field name
AUTOPILOT_FIELDS = {
    "cleanup_dead_servers": "CleanupDeadServers",
    "last_contact_threshold": "LastContactThreshold",
    "max_trailing_logs": "MaxTrailingLogs",
    "min_quorum": "MinQuorum",
    "server_stabilization_time": "ServerStabilizationTime",
    "redundancy_zone_tag": "RedundancyZoneTag",
    "disable_upgrade_migration": "DisableUpgradeMigration",
    "upgrade_version_tag": "UpgradeVersionTag",
}
# Provider settings that hold secrets: sent from references, never compared.
CA_SECRET_KEYS = frozenset({"PrivateKey", "Token"})


def _durations(doc: Mapping[str, Any]) -> dict[str, Any]:
    # Zero values stay (false and 0 are real settings here); only durations are canonical.
    return {
        k: canonical_duration(v) if k.endswith(DURATION_SUFFIXES) and v not in (None, "") else v
        for k, v in doc.items()
    }


def autopilot_object(settings: Mapping[str, Any]) -> ApiObject:
    """The named settings (Consul's field names) as a partial autopilot value."""
    return ApiObject(AUTOPILOT, SINGLETON_ID, _durations(settings))


def autopilot_from_api(raw: Mapping[str, Any]) -> tuple[ApiObject, int]:
    doc = {k: raw.get(k) for k in AUTOPILOT_FIELDS.values() if k in raw}
    return autopilot_object(doc), int(raw.get("ModifyIndex") or 0)


def autopilot_body(obj: ApiObject) -> dict[str, Any]:
    return copy.deepcopy(dict(obj.body))


def autopilot_spec(obj: ApiObject) -> dict[str, Any]:
    """The spec value (`autopilot:`) of an autopilot value, settings by their spec names."""
    return {k: obj.body[v] for k, v in AUTOPILOT_FIELDS.items() if v in obj.body}


def ca_spec(obj: ApiObject) -> dict[str, Any]:
    """The spec value (`ca:`) of a CA value; secret settings are not in it."""
    out: dict[str, Any] = {"provider": obj.body["Provider"], "config": dict(obj.body["Config"])}
    if obj.body.get("ForceWithoutCrossSigning"):
        out["force_without_cross_signing"] = True
    return out


def ca_object(
    provider: str,
    config: Mapping[str, Any],
    force: bool = False,
    secrets: Mapping[str, SecretRef] | None = None,
    hidden_keys: Iterable[str] = (),
) -> ApiObject:
    hidden = CA_SECRET_KEYS | set(secrets or {}) | set(hidden_keys)
    body = {
        "Provider": provider,
        "Config": _durations({k: v for k, v in config.items() if k not in hidden}),
        "ForceWithoutCrossSigning": force,
    }
    return ApiObject(CA, SINGLETON_ID, body, tuple(sorted((secrets or {}).items())))


def ca_from_api(raw: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> tuple[ApiObject, int]:
    obj = ca_object(
        str(raw.get("Provider") or ""),
        raw.get("Config") or {},
        bool(raw.get("ForceWithoutCrossSigning")),
        hidden_keys=secret_keys,
    )
    return obj, int(raw.get("ModifyIndex") or 0)


def ca_body(obj: ApiObject, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(dict(obj.body))
    body["Config"] = {**body["Config"], **(secrets or {})}
    return body


def merged(live: ApiObject, want: ApiObject) -> ApiObject:
    """`want`'s settings laid over `live` (the value apply sends and plan compares with).

    For the CA, a change of provider starts from an empty config: the old provider's
    settings mean nothing to the new one.
    """
    body = {**copy.deepcopy(dict(live.body)), **copy.deepcopy(dict(want.body))}
    if want.kind == CA and live.body.get("Provider") == want.body.get("Provider"):
        body["Config"] = {**(live.body.get("Config") or {}), **want.body["Config"]}
    return ApiObject(want.kind, want.id, body, want.secrets)
