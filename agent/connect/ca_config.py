"""The Connect CA's configuration: defaults, a PUT's validation, and what a change implies.

A stored configuration is a plain dict, as `PUT /v1/connect/ca/configuration` sent it:

    {"Provider": "consul", "Config": {...as sent...}, "State": None,
     "ForceWithoutCrossSigning": False, "ClusterID": "<uuid>"}

`Config` is kept verbatim (GET returns what was stored, keys and value types as sent);
`ClusterID` is never rendered (`render_config` drops it). The built-in provider reads `Config`
the way Consul's mapstructure decode does (`provider_config`): field names matched exactly or
else without regard to case, unknown keys ignored, weak typing (numbers, bools and strings
convert into one another), durations as Go duration strings or as nanosecond numbers.

`validate_ca_config` runs Consul's UpdateConfiguration checks in its order, with its messages:

    400 Request decode failed: json: cannot unmarshal <kind> into Go struct field .<F> of type <T>
    400 Provider State is read-only. It must be omitted or identical to the current value
    500 could not initialize provider: unknown CA provider "<p>"
    500 error configuring provider: must provide a private key when providing a root cert
    500 error configuring provider: error decoding config: 1 error(s) decoding: ...
    500 error configuring provider: leaf cert TTL must be greater or equal than 1h0m0s
        (and the rest of CommonCAProviderConfig.Validate, listed in `_validate`)

Only the built-in "consul" provider exists here: "vault" and "aws-pca" get the unknown-provider
message (Consul would try to reach them and fail on their own settings instead).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agent.connect import weak
from agent.connect.errors import CAError
from agent.durations import NS_PER_SECOND, DurationError, format_nanoseconds, parse_nanoseconds

__all__ = [
    "DEFAULT_CONFIG",
    "ProviderConfig",
    "initial_config",
    "patched_config",
    "provider_config",
    "parse_provider_config",
    "render_config",
    "root_changes",
    "should_cross_sign",
    "validate_ca_config",
]

_HOUR = 3600 * NS_PER_SECOND
MIN_LEAF_TTL = _HOUR
MAX_LEAF_TTL = 365 * 24 * _HOUR
MIN_INTERMEDIATE_TTL = 3 * _HOUR  # three intermediate renewal checks (one an hour)

# What a server starts with before any PUT (agent/config's CA defaults). Read-only: take
# copy.deepcopy(dict(DEFAULT_CONFIG)) or initial_config() for a record to store.
DEFAULT_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "Provider": "consul",
        "Config": MappingProxyType(
            {"LeafCertTTL": "72h", "IntermediateCertTTL": "8760h", "RootCertTTL": "87600h"}
        ),
        "State": None,
        "ForceWithoutCrossSigning": False,
    }
)
# The HCL/JSON agent config spells the CA keys in snake_case; Consul translates the known ones.
_AGENT_KEYS = {
    "private_key": "PrivateKey",
    "root_cert": "RootCert",
    "intermediate_cert_ttl": "IntermediateCertTTL",
    "leaf_cert_ttl": "LeafCertTTL",
    "root_cert_ttl": "RootCertTTL",
    "csr_max_per_second": "CSRMaxPerSecond",
    "csr_max_concurrent": "CSRMaxConcurrent",
    "private_key_type": "PrivateKeyType",
    "private_key_bits": "PrivateKeyBits",
}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_STATE_READ_ONLY = (
    "Provider State is read-only. It must be omitted or identical to the current value"
)


@dataclass(frozen=True)
class ProviderConfig:
    """The built-in provider's settings, decoded and defaulted (durations in nanoseconds)."""

    leaf_cert_ttl: int = 72 * _HOUR
    intermediate_cert_ttl: int = 8760 * _HOUR
    root_cert_ttl: int = 87600 * _HOUR
    private_key_type: str = "ec"
    private_key_bits: int = 256
    private_key: str = ""
    root_cert: str = ""
    csr_max_per_second: float = 50.0
    csr_max_concurrent: int = 0
    skip_validate: bool = False
    disable_cross_signing: bool = False

    @property
    def leaf_ttl_seconds(self) -> float:
        return self.leaf_cert_ttl / NS_PER_SECOND

    @property
    def root_ttl_seconds(self) -> float:
        return self.root_cert_ttl / NS_PER_SECOND

    @property
    def key_identity(self) -> tuple[str, str, str, int]:
        """What Consul hashes into the provider's ID: equal identities share one root."""
        return (self.private_key, self.root_cert, self.private_key_type, self.private_key_bits)


# field -> (attribute, Go type); the Go type picks the weak conversion.
_FIELDS = {
    "LeafCertTTL": ("leaf_cert_ttl", "time.Duration"),
    "RootCertTTL": ("root_cert_ttl", "time.Duration"),
    "IntermediateCertTTL": ("intermediate_cert_ttl", "time.Duration"),
    "SkipValidate": ("skip_validate", "bool"),
    "CSRMaxPerSecond": ("csr_max_per_second", "float32"),
    "CSRMaxConcurrent": ("csr_max_concurrent", "int"),
    "PrivateKeyType": ("private_key_type", "string"),
    "PrivateKeyBits": ("private_key_bits", "int"),
    "PrivateKey": ("private_key", "string"),
    "RootCert": ("root_cert", "string"),
    "DisableCrossSigning": ("disable_cross_signing", "bool"),
}


def _weak(name: str, go_type: str, value: Any) -> Any:
    """One field's value under mapstructure's WeaklyTypedInput rules (CAError if none fits)."""
    if go_type == "time.Duration" and isinstance(value, str):
        try:
            return parse_nanoseconds(value)
        except DurationError as exc:
            raise CAError(f"error decoding '{name}': {exc}") from None
    try:
        if go_type in ("time.Duration", "int"):
            return weak.to_int(value, 64)
        if go_type == "float32":
            # Kept unnarrowed, and "" read as 0, as this decode always has.
            return weak.to_float("0" if value == "" else value, 64)
        if go_type == "bool":
            return weak.to_bool(value)
        return weak.to_string(value)
    except weak.Mismatch:
        raise CAError(weak.mismatch_text(name, go_type, value)) from None
    except ValueError as exc:
        what = "float" if go_type == "float32" else "int" if go_type != "bool" else "bool"
        raise CAError(weak.parse_failure_text(name, what, exc)) from None


def _lookup(raw: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    if name in raw:
        return True, raw[name]
    folded = name.lower()
    for key, value in raw.items():
        if isinstance(key, str) and key.lower() == folded:
            return True, value
    return False, None


def _validate(config: ProviderConfig) -> None:
    """CommonCAProviderConfig.Validate, message for message."""
    if config.skip_validate:
        return
    leaf, inter, root = config.leaf_cert_ttl, config.intermediate_cert_ttl, config.root_cert_ttl
    if root < inter:
        raise CAError(
            "root cert TTL is set and is not greater than intermediate cert ttl. "
            f"root cert ttl: {format_nanoseconds(root)}, "
            f"intermediate cert ttl: {format_nanoseconds(inter)}"
        )
    if leaf < MIN_LEAF_TTL:
        raise CAError(
            f"leaf cert TTL must be greater or equal than {format_nanoseconds(MIN_LEAF_TTL)}"
        )
    if leaf > MAX_LEAF_TTL:
        raise CAError(f"leaf cert TTL must be less than {format_nanoseconds(MAX_LEAF_TTL)}")
    if inter < MIN_INTERMEDIATE_TTL:
        raise CAError("Intermediate Cert TTL must be greater or equal than 3h")
    if inter < 3 * leaf:
        raise CAError(
            "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL "
            f"(>={format_nanoseconds(3 * leaf)})."
        )
    if config.private_key_type == "ec":
        if config.private_key_bits not in (224, 256, 384, 521):
            raise CAError("EC key length must be one of (224, 256, 384, 521) bits")
    elif config.private_key_type == "rsa":
        if config.private_key_bits not in (2048, 4096):
            raise CAError("RSA key length must be 2048 or 4096 bits")
    else:
        raise CAError("private key type must be either 'ec' or 'rsa'")


def _defaults() -> dict[str, Any]:
    return {**DEFAULT_CONFIG, "Config": dict(DEFAULT_CONFIG["Config"])}


def parse_provider_config(raw: Mapping[str, Any] | None) -> ProviderConfig:
    """Consul's ParseConsulCAConfig over a stored `Config` map; CAError without the
    "error configuring provider: " prefix (callers add it where Consul does)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, (attribute, go_type) in _FIELDS.items():
        found, value = _lookup(raw or {}, name)
        if not found or value is None:
            continue
        try:
            values[attribute] = _weak(name, go_type, value)
        except CAError as exc:
            problems.append(f"* {exc.message}")
    if problems:
        points = "\n".join(sorted(problems))
        raise CAError(f"error decoding config: {len(problems)} error(s) decoding:\n\n{points}")
    config = ProviderConfig(**values)
    if not config.private_key and config.root_cert:
        raise CAError("must provide a private key when providing a root cert")
    _validate(config)
    return config


def provider_config(stored: Mapping[str, Any]) -> ProviderConfig:
    """The provider settings of a stored configuration (`stored["Config"]`)."""
    return parse_provider_config(stored.get("Config"))


def initial_config(
    cluster_id: str,
    ca_config: Mapping[str, Any] | None = None,
    provider: str | None = None,
) -> dict[str, Any]:
    """The configuration a primary's leader stores when the CA starts for the first time:
    the defaults, the agent's `connect.ca_config` over them (snake_case keys translated),
    `connect.ca_provider` if set, and `cluster_id` unless ca_config names one."""
    config = dict(DEFAULT_CONFIG["Config"])
    for key, value in (ca_config or {}).items():
        config[_AGENT_KEYS.get(key, key)] = value
    if ca_config and "cluster_id" in ca_config:
        wanted = ca_config["cluster_id"]
        if not isinstance(wanted, str):
            raise CAError("cluster_id was supplied but was not a string")
        if not _UUID.match(wanted):
            raise CAError("cluster_id was supplied but was not a valid UUID")
        cluster_id = wanted
    return {
        "Provider": provider or DEFAULT_CONFIG["Provider"],
        "Config": config,
        "State": None,
        "ForceWithoutCrossSigning": False,
        "ClusterID": cluster_id,
    }


def patched_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """`stored` with IntermediateCertTTL filled in, as a leader does to configurations written
    before that setting existed (it then writes the patched copy back)."""
    result = dict(stored)
    config = dict(stored.get("Config") or {})
    if "IntermediateCertTTL" not in config:
        config["IntermediateCertTTL"] = "8760h0m0s"
        result["Config"] = config
    return result


def render_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The GET /v1/connect/ca/configuration body (ClusterID is not part of it)."""
    return {
        "Provider": stored.get("Provider", ""),
        "Config": stored.get("Config"),
        "State": stored.get("State") or None,
        "ForceWithoutCrossSigning": bool(stored.get("ForceWithoutCrossSigning", False)),
        "CreateIndex": stored.get("CreateIndex", 0),
        "ModifyIndex": stored.get("ModifyIndex", 0),
    }


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _mismatch(kind: str, field: str, go_type: str) -> CAError:
    # Consul decodes through an anonymous wrapper struct (for the snake_case alias), which is
    # why Go names the struct "" here; unsure for every Go version, plausible for 1.2x.
    return CAError(
        f"Request decode failed: json: cannot unmarshal {kind} into Go struct field "
        f".{field} of type {go_type}",
        400,
    )


_BODY_FIELDS = {
    "provider": ("Provider", "string"),
    "config": ("Config", "map[string]interface {}"),
    "state": ("State", "map[string]string"),
    "forcewithoutcrosssigning": ("ForceWithoutCrossSigning", "bool"),
    "force_without_cross_signing": ("force_without_cross_signing", "bool"),
    "createindex": ("CreateIndex", "uint64"),
    "modifyindex": ("ModifyIndex", "uint64"),
}


_JSON_KIND_OF = {
    "string": "string",
    "bool": "bool",
    "uint64": "number",
    "map[string]interface {}": "object",
    "map[string]string": "object",
}


def _decode_body(body: Any) -> dict[str, Any]:
    """The CAConfiguration Go's encoding/json makes of `body` (keys matched without regard to
    case, unknown keys ignored, null leaves the zero value); the first type mismatch wins."""
    if not isinstance(body, dict):
        raise CAError(
            f"Request decode failed: json: cannot unmarshal {_json_kind(body)} into Go value "
            "of type structs.CAConfiguration",
            400,
        )
    out: dict[str, Any] = {"Provider": "", "Config": None, "State": None}
    force = snake_force = False
    first: CAError | None = None
    for key, value in body.items():
        known = _BODY_FIELDS.get(key.lower())
        if known is None or value is None:
            continue
        field, go_type = known
        kind = _json_kind(value)
        problem: CAError | None = None
        if kind != _JSON_KIND_OF[go_type]:
            problem = _mismatch(kind, field, go_type)
        elif go_type == "uint64" and (value < 0 or value != int(value)):
            problem = _mismatch(f"number {weak.format_f(float(value))}", field, go_type)
        elif field == "State":
            bad = next((v for v in value.values() if not isinstance(v, str)), None)
            if bad is not None:
                problem = _mismatch(_json_kind(bad), field, "string")
            else:
                out["State"] = dict(value)
        elif field == "ForceWithoutCrossSigning":
            force = value
        elif field == "force_without_cross_signing":
            snake_force = value
        elif field == "Config":
            out["Config"] = dict(value)
        elif field == "Provider":
            out["Provider"] = value
        if problem is not None and first is None:
            first = problem
    if first is not None:
        raise first
    out["ForceWithoutCrossSigning"] = force or snake_force
    return out


def _same(a: Any, b: Any) -> bool:
    """reflect.DeepEqual over decoded JSON: a bool is never equal to a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) or (isinstance(a, int | float) and isinstance(b, int | float))


def _equal(a: Any, b: Any) -> bool:
    return _same(a, b) and a == b


def validate_ca_config(body: Any, current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The configuration to store for a PUT of `body` over `current` (None: the defaults).

    A no-op PUT (same provider, deep-equal Config) returns a copy of `current` unchanged:
    compare with it to skip the write. Whether the new configuration also rotates the root
    is `root_changes(current, result)`. Raises CAError (module docstring) otherwise."""
    now = copy.deepcopy(dict(current)) if current is not None else _defaults()
    wanted = _decode_body(body)
    if wanted["State"] and not _equal(wanted["State"], now.get("State") or None):
        raise CAError(_STATE_READ_ONLY, 400)
    provider = wanted["Provider"]
    if provider == now.get("Provider") and _equal(wanted["Config"], now.get("Config")):
        return now
    if provider != "consul":
        raise CAError(f'could not initialize provider: unknown CA provider "{provider}"')
    try:
        parse_provider_config(wanted["Config"])
    except CAError as exc:
        raise CAError(f"error configuring provider: {exc.message}") from None
    result: dict[str, Any] = {
        "Provider": provider,
        "Config": wanted["Config"],
        "State": now.get("State") if provider == now.get("Provider") else wanted["State"],
        "ForceWithoutCrossSigning": wanted["ForceWithoutCrossSigning"],
    }
    if "ClusterID" in now:
        result["ClusterID"] = now["ClusterID"]
    return result


def root_changes(config_old: Mapping[str, Any], config_new: Mapping[str, Any]) -> bool:
    """Whether storing `config_new` over `config_old` means a new root (a rotation).

    Consul keys the built-in provider's state (its key and root) by a hash of PrivateKey,
    RootCert, PrivateKeyType and PrivateKeyBits: a change to any of them, or of provider,
    makes a new root; TTLs and rate limits alone keep the current one."""
    if config_old.get("Provider") != config_new.get("Provider"):
        return True
    try:
        old = provider_config(config_old).key_identity
    except CAError:
        return True  # the old settings no longer decode: nothing to keep a root for
    return old != provider_config(config_new).key_identity


def should_cross_sign(config_old: Mapping[str, Any], config_new: Mapping[str, Any]) -> bool:
    """For a rotation from `config_old` to `config_new`: whether the old root must cross-sign
    the new one. False when ForceWithoutCrossSigning is set; CAError when the old provider
    cannot cross-sign (its undocumented DisableCrossSigning) and the PUT did not force."""
    force = bool(config_new.get("ForceWithoutCrossSigning"))
    try:
        can_sign = not provider_config(config_old).disable_cross_signing
    except CAError:
        can_sign = True
    if not can_sign and not force:
        raise CAError(
            "The current CA Provider does not support cross-signing. You can try again with "
            "ForceWithoutCrossSigningSet but this may cause disruption - see documentation "
            "for more."
        )
    return can_sign and not force
