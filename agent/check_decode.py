"""Health check bodies decoded as Consul's agent decodes them, and the errors of checks.

Keys fold and kinds are checked by `agent.gojson` against the check's table
(`agent.definition_types.CHECK_TYPE_FIELDS`), the one the HTTP bodies are checked against.
What is particular to checks is here: unknown keys are refused (so the legacy ``Script`` field
fails exactly as it does on Consul), ``CheckID`` and ``Args`` are older spellings of ``ID`` and
``ScriptArgs``, hyphens fold like underscores, durations are Go duration strings or bare
numbers of nanoseconds (any other kind is ignored), integers may come as whole floats (config
files), and a list of strings with anything else in it is refused whole. `agent.checks` builds
definitions from what `decode_check` returns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.definition_types import CHECK_TYPE_FIELDS
from agent.durations import parse_nanoseconds
from agent.gojson import Either, Mismatch, Struct, conform
from agent.gojson import json_kind as json_type

__all__ = [
    "BadCheckStatus",
    "CheckDecodeError",
    "CheckError",
    "InvalidCheck",
    "MissingCheckName",
    "ScriptChecksDisabled",
    "decode_check",
    "json_type",
    "normalise_key",
]


class CheckError(Exception):
    """A check definition was refused; ``status`` is the HTTP code Consul answers with."""

    status: int = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class CheckDecodeError(CheckError):
    """The body could not be decoded (unknown key, wrong type, bad duration)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Request decode failed: {reason}")
        self.reason = reason


class MissingCheckName(CheckError):
    def __init__(self) -> None:
        super().__init__("Missing check name")


class BadCheckStatus(CheckError):
    """Initial status other than passing/warning/critical (text depends on the endpoint)."""


class InvalidCheck(CheckError):
    """The definition is not a runnable check (Consul's ``CheckType.Validate``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid check: {reason}")
        self.reason = reason


class ScriptChecksDisabled(CheckError):
    # Consul raises this from AddCheck, which the HTTP layer turns into a 500.
    status = 500


# ---------------------------------------------------------------------------------------------
# Decoding

# Older spellings Consul's check decoder reads into another field (folded keys).
_ALIASES = {"checkid": "ID", "args": "ScriptArgs"}
# Whole floats are integers here: config files (HCL among them) may give numbers as floats.
_INT = Either("int", ("float64",))
_FIELDS = {
    **{
        name: _INT if kind == "int" else kind
        for name, kind in CHECK_TYPE_FIELDS.items()
        if name not in ("CheckID", "Args")
    },
    "ID": "string",  # its refusals have always named it a string
    # CheckDefinition's own fields, beyond CheckType's; Namespace and Partition (enterprise
    # scoping) are accepted and ignored by this open-source-shaped agent.
    "Token": "string",
    "Namespace": "string",
    "Partition": "string",
}
_STRUCTS = {name: Struct(f"structs.{name}", _FIELDS) for name in ("CheckDefinition", "CheckType")}
_DURATIONS = {
    "Interval": "interval_ns",
    "Timeout": "timeout_ns",
    "TTL": "ttl_ns",
    "DeregisterCriticalServiceAfter": "deregister_critical_service_after_ns",
}
# Go field -> CheckDefinition attribute, for the fields not read by a rule of their own.
_ATTRIBUTES = {
    "ID": "check_id",
    "Name": "name",
    "Notes": "notes",
    "ServiceID": "service_id",
    "Status": "status",
    "Token": "token",
    "Shell": "shell",
    "DockerContainerID": "docker_container_id",
    "HTTP": "http",
    "Method": "method",
    "Body": "body",
    "TLSServerName": "tls_server_name",
    "TCP": "tcp",
    "UDP": "udp",
    "GRPC": "grpc",
    "H2PING": "h2ping",
    "OSService": "os_service",
    "AliasNode": "alias_node",
    "AliasService": "alias_service",
    "DisableRedirects": "disable_redirects",
    "TLSSkipVerify": "tls_skip_verify",
    "TCPUseTLS": "tcp_use_tls",
    "GRPCUseTLS": "grpc_use_tls",
    "H2PingUseTLS": "h2ping_use_tls",
    "SuccessBeforePassing": "success_before_passing",
    "FailuresBeforeWarning": "failures_before_warning",
    "FailuresBeforeCritical": "failures_before_critical",
    "OutputMaxSize": "output_max_size",
}


def normalise_key(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _go_quote(text: str) -> str:
    """A Go %q-style quoting for field names in decode errors (JSON's escapes are the same)."""
    return json.dumps(text, ensure_ascii=False)


def _refused(value: Any, go_type: str, struct: str, field: str) -> CheckDecodeError:
    return CheckDecodeError(str(Mismatch(value, go_type, struct, field)))


def _decode_duration(value: Any) -> int | None:
    """Go's rule: strings parse as durations, numbers are nanoseconds, anything else is ignored."""
    if isinstance(value, str):
        try:
            return parse_nanoseconds(value)
        except ValueError as err:
            raise CheckDecodeError(str(err)) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


def _strings(value: Any, struct: str, field: str) -> tuple[str, ...]:
    """A []string that is refused whole, naming the list, for any element not a string (null
    included), where encoding/json would name the element or zero it."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _refused(value, "[]string", struct, field)
    return tuple(value)


def _header(value: Any, struct: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, Mapping):
        raise _refused(value, "map[string][]string", struct, "Header")
    return tuple(
        (str(name), _strings([] if values is None else values, struct, "Header"))
        for name, values in value.items()
    )


def _scalar(value: Any, spec: Any, struct: str, field: str) -> Any:
    try:
        value = conform(value, spec, struct=struct, path=field)
    except Mismatch as exc:
        raise CheckDecodeError(str(exc)) from None
    if spec is _INT:
        # The float as Python spells it, as this refusal always has.
        if isinstance(value, float) and not value.is_integer():
            raise CheckDecodeError(
                f"json: cannot unmarshal number {value} into Go struct field "
                f"{struct}.{field} of type int"
            )
        return int(value)
    return value


def decode_check(body: Any, *, struct: str = "CheckDefinition") -> dict[str, Any]:
    """Decode one raw JSON check body into keyword arguments for ``CheckDefinition``.

    No defaults are applied and nothing is validated beyond types; ``struct`` only names the
    Go type in error messages (``CheckDefinition`` for check/register, ``CheckType`` for checks
    nested in a service). Keys are read in the order sent, the first refusal wins. Raises
    ``CheckDecodeError``.
    """
    spec = _STRUCTS.get(struct) or Struct(f"structs.{struct}", _FIELDS)
    if not isinstance(body, Mapping):
        raise CheckDecodeError(str(Mismatch(body, spec.go_type)))
    fields: dict[str, Any] = {}
    for raw_key, value in body.items():
        if value is None:
            continue  # JSON null leaves the Go zero value
        key = normalise_key(str(raw_key))
        name = spec.field_name(_ALIASES.get(key, key))
        if name is None:
            # Consul decodes with DisallowUnknownFields; this is also how the long-removed
            # "Script" field is refused.
            raise CheckDecodeError(f"json: unknown field {_go_quote(str(raw_key))}")
        if name in _DURATIONS:
            ns = _decode_duration(value)
            if ns is not None:
                fields[_DURATIONS[name]] = ns
        elif name == "ScriptArgs":
            args = _strings(value, spec.name, name)
            if args or "args" not in fields:  # an empty list does not undo the other spelling
                fields["args"] = args
        elif name == "Header":
            fields["header"] = _header(value, spec.name)
        else:
            value = _scalar(value, spec.fields[name], spec.name, name)
            if name in _ATTRIBUTES:
                fields[_ATTRIBUTES[name]] = value
    # H2PING checks default to TLS unless told otherwise (check_definition.go).
    if fields.get("h2ping") and "h2ping_use_tls" not in fields:
        fields["h2ping_use_tls"] = True
    return fields
