"""Health check bodies decoded as Consul's agent decodes them, and the errors of checks.

JSON keys match case-insensitively, the snake_case spellings of config files are accepted too,
unknown keys are refused (so the legacy ``Script`` field fails exactly as it does on Consul),
and durations are Go duration strings or bare numbers of nanoseconds. `agent.checks` builds
definitions from what `decode_check` returns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.durations import parse_nanoseconds


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

# Normalised key (lower case, no underscores) -> dataclass field. Includes every key Consul's
# decoders know, so that only truly unknown keys are refused.
_STR_FIELDS = {
    "id": "check_id",
    "checkid": "check_id",
    "name": "name",
    "notes": "notes",
    "serviceid": "service_id",
    "status": "status",
    "token": "token",
    "shell": "shell",
    "dockercontainerid": "docker_container_id",
    "http": "http",
    "method": "method",
    "body": "body",
    "tlsservername": "tls_server_name",
    "tcp": "tcp",
    "udp": "udp",
    "grpc": "grpc",
    "h2ping": "h2ping",
    "osservice": "os_service",
    "aliasnode": "alias_node",
    "aliasservice": "alias_service",
    # Enterprise scoping: accepted and ignored by this open-source-shaped agent.
    "namespace": "",
    "partition": "",
}
_BOOL_FIELDS = {
    "disableredirects": "disable_redirects",
    "tlsskipverify": "tls_skip_verify",
    "tcpusetls": "tcp_use_tls",
    "grpcusetls": "grpc_use_tls",
    "h2pingusetls": "h2ping_use_tls",
}
_INT_FIELDS = {
    "successbeforepassing": "success_before_passing",
    "failuresbeforewarning": "failures_before_warning",
    "failuresbeforecritical": "failures_before_critical",
    "outputmaxsize": "output_max_size",
}
_DURATION_FIELDS = {
    "interval": "interval_ns",
    "timeout": "timeout_ns",
    "ttl": "ttl_ns",
    "deregistercriticalserviceafter": "deregister_critical_service_after_ns",
}
_ARGS_KEYS = ("args", "scriptargs")
_GO_NAMES = {
    "check_id": "ID",
    "service_id": "ServiceID",
    "docker_container_id": "DockerContainerID",
    "tls_server_name": "TLSServerName",
    "tls_skip_verify": "TLSSkipVerify",
    "disable_redirects": "DisableRedirects",
    "tcp_use_tls": "TCPUseTLS",
    "grpc_use_tls": "GRPCUseTLS",
    "h2ping_use_tls": "H2PingUseTLS",
    "os_service": "OSService",
    "alias_node": "AliasNode",
    "alias_service": "AliasService",
    "http": "HTTP",
    "tcp": "TCP",
    "udp": "UDP",
    "grpc": "GRPC",
    "h2ping": "H2PING",
}


def normalise_key(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _go_field(field: str) -> str:
    return _GO_NAMES.get(field, "".join(part.capitalize() for part in field.split("_")))


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def _type_error(value: Any, struct: str, field: str, go_type: str) -> CheckDecodeError:
    return CheckDecodeError(
        f"json: cannot unmarshal {json_type(value)} into Go struct field "
        f"{struct}.{field} of type {go_type}"
    )


def _go_quote(text: str) -> str:
    """A Go %q-style quoting for field names in decode errors (JSON's escapes are the same)."""
    return json.dumps(text, ensure_ascii=False)


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


def _decode_header(value: Any, struct: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, Mapping):
        raise _type_error(value, struct, "Header", "map[string][]string")
    pairs = []
    for name, values in value.items():
        if values is None:
            values = []
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            raise _type_error(values, struct, "Header", "[]string")
        pairs.append((str(name), tuple(values)))
    return tuple(pairs)


def decode_check(body: Any, *, struct: str = "CheckDefinition") -> dict[str, Any]:
    """Decode one raw JSON check body into keyword arguments for ``CheckDefinition``.

    No defaults are applied and nothing is validated beyond types; ``struct`` only names the
    Go type in error messages (``CheckDefinition`` for check/register, ``CheckType`` for checks
    nested in a service). Raises ``CheckDecodeError``.
    """
    if not isinstance(body, Mapping):
        raise CheckDecodeError(
            f"json: cannot unmarshal {json_type(body)} into Go value of type structs.{struct}"
        )
    fields: dict[str, Any] = {}
    for raw_key, value in body.items():
        key = normalise_key(str(raw_key))
        if value is None:
            continue  # JSON null leaves the Go zero value
        if key in _STR_FIELDS:
            field = _STR_FIELDS[key]
            if not isinstance(value, str):
                raise _type_error(value, struct, _go_field(field or key), "string")
            if field:
                fields[field] = value
        elif key in _BOOL_FIELDS:
            field = _BOOL_FIELDS[key]
            if not isinstance(value, bool):
                raise _type_error(value, struct, _go_field(field), "bool")
            fields[field] = value
        elif key in _INT_FIELDS:
            field = _INT_FIELDS[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _type_error(value, struct, _go_field(field), "int")
            if isinstance(value, float) and not value.is_integer():
                raise CheckDecodeError(
                    f"json: cannot unmarshal number {value} into Go struct field "
                    f"{struct}.{_go_field(field)} of type int"
                )
            fields[field] = int(value)
        elif key in _DURATION_FIELDS:
            ns = _decode_duration(value)
            if ns is not None:
                fields[_DURATION_FIELDS[key]] = ns
        elif key in _ARGS_KEYS:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise _type_error(value, struct, "ScriptArgs", "[]string")
            if value or "args" not in fields:
                fields["args"] = tuple(value)
        elif key == "header":
            fields["header"] = _decode_header(value, struct)
        else:
            # Consul decodes with DisallowUnknownFields; this is also how the long-removed
            # "Script" field is refused.
            raise CheckDecodeError(f"json: unknown field {_go_quote(str(raw_key))}")
    # H2PING checks default to TLS unless told otherwise (check_definition.go).
    if fields.get("h2ping") and "h2ping_use_tls" not in fields:
        fields["h2ping_use_tls"] = True
    return fields
