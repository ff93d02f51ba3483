"""Service registrations with Consul's field names, whatever casing they were sent in.

Consul decodes a registration into `structs.ServiceDefinition`, where `encoding/json` matches
field names without regard to case and the snake_case spellings of config files land in the
same fields. `normalize` renames the fields that table knows (`agent.definition_types`),
recursively, and keeps everything else as sent: user maps (`Meta`, `Header`) keep their keys,
and what no table describes (a `Proxy` block, an unknown key) stays untouched, so the
registration persisted to the data dir loses nothing.
"""

from __future__ import annotations

from typing import Any

from agent.definition_types import SERVICE_DEFINITION
from agent.gojson import ANY, Struct, fold

# `agent.services` also takes a service's name from a `Service` key.
_REGISTRATION = Struct(SERVICE_DEFINITION.go_type, {**SERVICE_DEFINITION.fields, "Service": ANY})


def normalize(value: Any) -> Any:
    """The registration `value` with Go's field names (see the module docstring)."""
    return fold(value, _REGISTRATION)
