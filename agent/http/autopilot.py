"""The autopilot configuration body of `PUT /v1/operator/autopilot/configuration`, decoded as
Consul decodes it into `api.AutopilotConfiguration`, refused before anything is proposed.

Consul's struct fixes each field's type: `MaxTrailingLogs` is a uint64 and `MinQuorum` a uint,
so a negative number, a fraction, `1e30` or 2**70 is a decode error; the two durations are
`ReadableDuration`s, which take a Go duration string or a number of nanoseconds. Keys match
without regard to case and unknown keys are ignored, as `encoding/json` does; a JSON `null`
is as good as leaving the field out (the PUT then stores its zero value, `ZERO_VALUES`). Errors read like Consul's (`Error parsing autopilot config:
json: cannot unmarshal number -1 into Go struct field ... of type uint64`) and always name the
field. Beyond Consul, a negative duration is refused: a negative threshold or stabilization
time is never what an operator meant.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from agent.durations import DurationError, format_duration, parse_duration
from agent.http.app import HTTPError

# What a PUT stores for a field its body leaves out or sends as null (Go's zero values).
ZERO_VALUES: dict[str, Any] = {
    "CleanupDeadServers": False,
    "LastContactThreshold": "0s",
    "MaxTrailingLogs": 0,
    "MinQuorum": 0,
    "ServerStabilizationTime": "0s",
    "RedundancyZoneTag": "",
    "DisableUpgradeMigration": False,
    "UpgradeVersionTag": "",
}

# field -> its Go type in api.AutopilotConfiguration (named in the error messages)
FIELDS = {
    "CleanupDeadServers": "bool",
    "LastContactThreshold": "ReadableDuration",
    "MaxTrailingLogs": "uint64",
    "MinQuorum": "uint",
    "ServerStabilizationTime": "ReadableDuration",
    "RedundancyZoneTag": "string",
    "DisableUpgradeMigration": "bool",
    "UpgradeVersionTag": "string",
}
_BY_LOWER = {name.lower(): name for name in FIELDS}
_UINT64_MAX = 2**64 - 1
_DURATION_MAX_NS = 2**63 - 1  # time.Duration is an int64 of nanoseconds
_UNSIGNED = re.compile(rb"[0-9]+")
_PREFIX = "Error parsing autopilot config: "


def decode_autopilot(raw: bytes) -> dict[str, Any]:
    """The fields a body sets, typed and normalized (durations in Go's text form)."""
    if not raw.strip():
        raise HTTPError(400, _PREFIX + "EOF")
    try:
        fields = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    except msgspec.ValidationError:
        kind = _json_kind(raw.lstrip())
        raise HTTPError(
            400,
            _PREFIX + f"json: cannot unmarshal {kind} into Go value of type "
            "api.AutopilotConfiguration",
        ) from None
    except msgspec.DecodeError as exc:
        raise HTTPError(400, _PREFIX + str(exc)) from None
    except RecursionError:
        raise HTTPError(400, _PREFIX + "exceeded max depth") from None
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = _BY_LOWER.get(key.lower())
        if name is None:
            continue  # CreateIndex, ModifyIndex and unknown keys are ignored, as in Consul
        text = bytes(value).strip()
        if text == b"null":
            out.pop(name, None)
            continue
        out[name] = _field(name, text)
    return out


def _field(name: str, text: bytes) -> Any:
    go_type = FIELDS[name]
    kind = _json_kind(text)
    if go_type == "ReadableDuration":
        return _duration(name, text, kind)
    if go_type == "bool" and kind == "bool":
        return text == b"true"
    if go_type == "string" and kind == "string":
        return _string(name, text)
    if go_type in ("uint64", "uint") and _UNSIGNED.fullmatch(text):
        number = int(text)
        if number <= _UINT64_MAX:
            return number
    shown = f"number {text.decode()}" if kind == "number" else kind
    raise HTTPError(
        400,
        _PREFIX + f"json: cannot unmarshal {shown} into Go struct field "
        f"AutopilotConfiguration.{name} of type {go_type}",
    )


def _string(name: str, text: bytes) -> str:
    """A JSON string field; the outer decode checked its syntax but not its UTF-8."""
    try:
        return msgspec.json.decode(text, type=str)
    except msgspec.DecodeError as exc:
        raise HTTPError(400, _PREFIX + f"{name}: {exc}") from None


def _duration(name: str, text: bytes, kind: str) -> str:
    if kind == "string":
        spelled = _string(name, text)
        try:
            seconds = parse_duration(spelled)
        except DurationError as exc:
            raise HTTPError(400, _PREFIX + f"{name}: {exc}") from None
    elif kind == "number":
        spelled = text.decode()
        seconds = float(spelled) / 1e9  # a bare number is nanoseconds, as ReadableDuration
    else:
        raise HTTPError(
            400, _PREFIX + f'{name}: strconv.ParseFloat: parsing "{text.decode()}": invalid syntax'
        )
    if seconds < 0:
        raise HTTPError(400, _PREFIX + f'{name}: negative duration "{spelled}" is not allowed')
    if seconds * 1e9 > _DURATION_MAX_NS:
        raise HTTPError(400, _PREFIX + f'{name}: time: invalid duration "{spelled}" (too long)')
    return format_duration(seconds)


def _json_kind(text: bytes) -> str:
    """The JSON type of a value, named as Go's unmarshal errors name it."""
    first = text[:1]
    if first == b'"':
        return "string"
    if first == b"{":
        return "object"
    if first == b"[":
        return "array"
    if first in (b"t", b"f"):
        return "bool"
    if first == b"n":
        return "null"
    return "number"
