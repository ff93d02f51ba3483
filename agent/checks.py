"""Health check definitions: defaults, validation and API rendering (decoding of the bodies:
``agent.check_decode``).

Pure module: no I/O, no clock. The asyncio runners live in ``agent.check_runners``.

A check arrives either on its own (``PUT /v1/agent/check/register``, a ``check`` block in a
config file) or nested in a service registration (``Check`` / ``Checks``). Both are decoded the
way Consul decodes them: JSON keys match case-insensitively, the snake_case spellings of config
files are accepted too, unknown keys are refused (so the legacy ``Script`` field fails exactly as
it does on Consul), and durations are Go duration strings or bare numbers of nanoseconds.

Errors (all carry the HTTP status and the body Consul would answer with)::

    CheckError                     base; ``status`` and ``str(err)`` are the HTTP answer
    ├── CheckDecodeError           400 "Request decode failed: <why>"
    ├── MissingCheckName           400 "Missing check name"
    ├── BadCheckStatus             400 "Bad check status" / "Status for checks must ..."
    ├── InvalidCheck               400 "Invalid check: <why>"
    └── ScriptChecksDisabled       500 "Scripts are disabled on this agent; ..."

Durations are kept as integer nanoseconds (``*_ns`` fields), as Go keeps them, so that they
render back exactly (``"1m30s"``); the ``*_seconds`` properties give floats for timers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agent.check_decode import (
    BadCheckStatus,
    CheckDecodeError,
    CheckError,
    InvalidCheck,
    MissingCheckName,
    ScriptChecksDisabled,
    decode_check,
    json_type,
    normalise_key,
)
from agent.durations import NS_PER_SECOND, format_nanoseconds

__all__ = [
    "CHECK_STATUSES",
    "DEFAULT_OUTPUT_MAX_SIZE",
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_SCRIPT_TIMEOUT",
    "MIN_INTERVAL",
    "MIN_REAP_AFTER",
    "REAP_INTERVAL",
    "BadCheckStatus",
    "CheckDecodeError",
    "CheckDefinition",
    "CheckError",
    "InvalidCheck",
    "MissingCheckName",
    "ScriptChecksDisabled",
    "decode_check",
    "effective_reap_after",
    "parse_check_registration",
    "parse_service_checks",
    "reap_due",
    "require_scripts_allowed",
]

CHECK_STATUSES = ("passing", "warning", "critical")

# Consul refuses to run interval checks more often than this (fork-bomb protection).
MIN_INTERVAL = 1.0
# Default per-run timeouts: HTTP/TCP/UDP/gRPC/H2PING use 10 s, scripts 30 s (agent/checks).
DEFAULT_PROBE_TIMEOUT = 10.0
DEFAULT_SCRIPT_TIMEOUT = 30.0
# Captured output is capped at 4 KiB unless the agent or the check asks for less.
DEFAULT_OUTPUT_MAX_SIZE = 4096
# DeregisterCriticalServiceAfter is raised to at least this; the reaper runs this often.
MIN_REAP_AFTER = 60.0
REAP_INTERVAL = 30.0

_SCRIPTS_DISABLED_LOCAL = (
    "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or "
    "'enable_local_script_checks' to true"
)
_SCRIPTS_DISABLED_REMOTE = (
    "Scripts are disabled on this agent from remote calls; to enable, configure "
    "'enable_script_checks' to true"
)
_SERVICE_STATUS_MESSAGE = "Status for checks must 'passing', 'warning', 'critical'"


# ---------------------------------------------------------------------------------------------
# The definition (decoding and the errors live in agent/check_decode.py)


@dataclass(frozen=True)
class CheckDefinition:
    """One health check as the agent runs and reports it (Consul's CheckDefinition/CheckType).

    ``check_id``, ``name`` and ``status`` are already defaulted. ``status`` is the initial status.
    """

    check_id: str
    name: str
    notes: str = ""
    service_id: str = ""
    status: str = "critical"
    token: str = ""
    # Script
    args: tuple[str, ...] = ()
    shell: str = ""
    docker_container_id: str = ""
    # HTTP
    http: str = ""
    method: str = ""
    header: tuple[tuple[str, tuple[str, ...]], ...] = ()
    body: str = ""
    disable_redirects: bool = False
    tls_server_name: str = ""
    tls_skip_verify: bool = False
    # Other probes
    tcp: str = ""
    tcp_use_tls: bool = False
    udp: str = ""
    grpc: str = ""
    grpc_use_tls: bool = False
    h2ping: str = ""
    h2ping_use_tls: bool = False
    os_service: str = ""
    alias_node: str = ""
    alias_service: str = ""
    # Timing and thresholds
    interval_ns: int = 0
    timeout_ns: int = 0
    ttl_ns: int = 0
    deregister_critical_service_after_ns: int = 0
    success_before_passing: int = 0
    failures_before_warning: int = 0
    failures_before_critical: int = 0
    output_max_size: int = 0
    # Service checks render zero durations as "" rather than "0s" (as Consul does).
    from_service: bool = False

    # -- classification (Consul's CheckType.Is*/Type) --------------------------------------

    @property
    def is_script(self) -> bool:
        return bool(self.args)

    @property
    def is_alias(self) -> bool:
        return bool(self.alias_node or self.alias_service)

    @property
    def is_ttl(self) -> bool:
        return self.ttl_ns > 0

    @property
    def kind(self) -> str:
        """The ``Type`` Consul reports: http, tcp, udp, ttl, script, docker, grpc, ..., or ""."""
        timed = self.interval_ns > 0
        if self.grpc and timed:
            return "grpc"
        if self.http and timed:
            return "http"
        if self.is_ttl:
            return "ttl"
        if self.tcp and timed:
            return "tcp"
        if self.udp and timed:
            return "udp"
        if self.is_alias:
            return "alias"
        if self.is_script and self.docker_container_id and timed:
            return "docker"
        if self.is_script and timed:
            return "script"
        if self.h2ping and timed:
            return "h2ping"
        if self.os_service and timed:
            return "os_service"
        return ""

    # -- effective values for the runners -------------------------------------------------

    @property
    def interval_seconds(self) -> float:
        """Time between runs, raised to ``MIN_INTERVAL`` as Consul does."""
        return max(self.interval_ns / NS_PER_SECOND, MIN_INTERVAL)

    @property
    def timeout_seconds(self) -> float:
        if self.timeout_ns > 0:
            return self.timeout_ns / NS_PER_SECOND
        if self.kind in ("script", "docker", "os_service"):
            return DEFAULT_SCRIPT_TIMEOUT
        return DEFAULT_PROBE_TIMEOUT

    @property
    def ttl_seconds(self) -> float:
        return self.ttl_ns / NS_PER_SECOND

    @property
    def deregister_critical_service_after_seconds(self) -> float:
        """Seconds a service may stay critical before the reaper removes it; 0 = never.

        Already raised to ``MIN_REAP_AFTER``; pass it to ``reap_due``.
        """
        return effective_reap_after(self.deregister_critical_service_after_ns / NS_PER_SECOND)

    def effective_output_max_size(self, agent_max: int = DEFAULT_OUTPUT_MAX_SIZE) -> int:
        """A check may lower the agent's output cap, never raise it."""
        limit = agent_max if agent_max > 0 else DEFAULT_OUTPUT_MAX_SIZE
        if 0 < self.output_max_size < limit:
            return self.output_max_size
        return limit

    @property
    def effective_failures_before_warning(self) -> int:
        # Unset means "same as FailuresBeforeCritical" (agent.go).
        return self.failures_before_warning or self.failures_before_critical

    def header_map(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in self.header}

    # -- rendering ------------------------------------------------------------------------

    def definition_json(self) -> dict[str, Any]:
        """The ``Definition`` object of a HealthCheck (Go omitempty: zero fields left out)."""
        out: dict[str, Any] = {}

        def put(key: str, value: Any) -> None:
            if value:
                out[key] = value

        put("HTTP", self.http)
        put("TLSServerName", self.tls_server_name)
        put("TLSSkipVerify", self.tls_skip_verify)
        put("Header", self.header_map())
        put("Method", self.method)
        put("Body", self.body)
        put("DisableRedirects", self.disable_redirects)
        put("TCP", self.tcp)
        put("TCPUseTLS", self.tcp_use_tls)
        put("UDP", self.udp)
        put("H2PING", self.h2ping)
        put("OSService", self.os_service)
        put("H2PingUseTLS", self.h2ping_use_tls)
        if self.interval_ns:
            out["Interval"] = format_nanoseconds(self.interval_ns)
        put("OutputMaxSize", self.output_max_size)
        if self.timeout_ns:
            out["Timeout"] = format_nanoseconds(self.timeout_ns)
        if self.deregister_critical_service_after_ns:
            out["DeregisterCriticalServiceAfter"] = format_nanoseconds(
                self.deregister_critical_service_after_ns
            )
        put("ScriptArgs", list(self.args))
        put("DockerContainerID", self.docker_container_id)
        put("Shell", self.shell)
        put("GRPC", self.grpc)
        put("GRPCUseTLS", self.grpc_use_tls)
        put("AliasNode", self.alias_node)
        put("AliasService", self.alias_service)
        # Go has no string form for this one: it goes out as integer nanoseconds.
        put("TTL", self.ttl_ns)
        return out

    def to_health_check(
        self,
        node: str,
        *,
        status: str | None = None,
        output: str = "",
        service_name: str = "",
        service_tags: Sequence[str] = (),
        create_index: int = 0,
        modify_index: int = 0,
    ) -> dict[str, Any]:
        """The ``/v1/agent/checks`` entry for this check (HealthCheck JSON shape)."""

        def duration_text(ns: int) -> str:
            if ns == 0 and self.from_service:
                return ""
            return format_nanoseconds(ns)

        return {
            "Node": node,
            "CheckID": self.check_id,
            "Name": self.name,
            "Status": status if status is not None else self.status,
            "Notes": self.notes,
            "Output": output,
            "ServiceID": self.service_id,
            "ServiceName": service_name if self.service_id else "",
            "ServiceTags": list(service_tags) if self.service_id else [],
            "Type": self.kind,
            "Interval": duration_text(self.interval_ns),
            "Timeout": duration_text(self.timeout_ns),
            "ExposedPort": 0,
            "Definition": self.definition_json(),
            "CreateIndex": create_index,
            "ModifyIndex": modify_index,
        }


# ---------------------------------------------------------------------------------------------
# Validation


def _validate(defn: CheckDefinition) -> None:
    """Consul's ``CheckType.Validate``, same order and wording."""
    interval_check = bool(
        defn.is_script or defn.http or defn.tcp or defn.udp or defn.grpc or defn.h2ping
    ) or bool(defn.os_service)
    if defn.interval_ns > 0 and defn.ttl_ns > 0:
        raise InvalidCheck("Interval and TTL cannot both be specified")
    if interval_check and defn.interval_ns <= 0:
        raise InvalidCheck(
            "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        )
    if interval_check and defn.is_alias:
        raise InvalidCheck("Interval cannot be set for Alias checks")
    if defn.is_alias and defn.ttl_ns > 0:
        raise InvalidCheck("TTL must be not be set for Alias checks")
    if not interval_check and not defn.is_alias and defn.ttl_ns <= 0:
        raise InvalidCheck("TTL must be > 0 for TTL checks")
    if defn.output_max_size < 0:
        raise InvalidCheck("MaxOutputMaxSize must be positive")
    if defn.failures_before_warning > defn.failures_before_critical:
        raise InvalidCheck("FailuresBeforeWarning can't be higher than FailuresBeforeCritical")


def require_scripts_allowed(
    defn: CheckDefinition, enable_script_checks: bool, *, remote: bool = False
) -> None:
    """Refuse a script check unless the agent allows scripts from this source.

    The agent decides ``enable_script_checks``: for API registrations (``remote=True``) that is
    its ``enable_script_checks`` setting; for config files it is ``enable_script_checks or
    enable_local_script_checks``.
    """
    if defn.is_script and not enable_script_checks:
        raise ScriptChecksDisabled(_SCRIPTS_DISABLED_REMOTE if remote else _SCRIPTS_DISABLED_LOCAL)


def parse_check_registration(
    body: Any,
    *,
    enable_script_checks: bool = False,
    remote: bool = False,
) -> CheckDefinition:
    """Decode and validate a ``PUT /v1/agent/check/register`` body (or a config ``check``).

    Checks happen in Consul's order: decode, name, status, type, scripts. The ID defaults to
    the name. Whether ``ServiceID`` exists is the agent's business (404), as is ACL vetting.
    """
    fields = decode_check(body, struct="CheckDefinition")
    name = fields.get("name", "")
    if not name:
        raise MissingCheckName()
    status = fields.get("status", "")
    if status and status not in CHECK_STATUSES:
        raise BadCheckStatus("Bad check status")
    fields["check_id"] = fields.get("check_id") or name
    fields["status"] = status or "critical"
    defn = CheckDefinition(**fields)
    _validate(defn)
    require_scripts_allowed(defn, enable_script_checks, remote=remote)
    return defn


def _service_check_bodies(service: Mapping[str, Any]) -> list[Any]:
    """The raw ``Check`` (first) and ``Checks`` entries of a service registration."""
    single: Any = None
    many: Any = None
    for key, value in service.items():
        norm = normalise_key(str(key))
        if norm == "check":
            single = value
        elif norm == "checks":
            many = value
    bodies: list[Any] = []
    if single is not None:
        if not isinstance(single, Mapping):
            raise CheckDecodeError(
                f"json: cannot unmarshal {json_type(single)} into Go struct field "
                "ServiceDefinition.Check of type structs.CheckType"
            )
        bodies.append(("single", single))
    if many is not None:
        if not isinstance(many, list | tuple):
            raise CheckDecodeError(
                f"json: cannot unmarshal {json_type(many)} into Go struct field "
                "ServiceDefinition.Checks of type structs.CheckTypes"
            )
        bodies.extend(("many", item) for item in many if item is not None)
    return bodies


def parse_service_checks(
    service: Mapping[str, Any],
    *,
    service_id: str,
    service_name: str,
    enable_script_checks: bool = False,
    remote: bool = False,
) -> tuple[CheckDefinition, ...]:
    """Decode, default and validate the ``Check``/``Checks`` of a service registration.

    ``service`` is the whole registration body (keys matched case-insensitively). Check IDs
    default to ``service:<id>`` (``service:<id>:<n>``, 1-based, when there are several) and
    names to ``Service '<name>' check``; an empty ``Check`` object is dropped as Consul does.
    Every check is type-validated before any status is looked at, as in Consul.
    """
    decoded: list[dict[str, Any]] = []
    for origin, body in _service_check_bodies(service):
        fields = decode_check(body, struct="CheckType")
        fields.pop("service_id", None)  # a nested check always belongs to its service
        if origin == "single" and not fields:
            continue
        decoded.append(fields)

    drafts: list[CheckDefinition] = []
    for index, fields in enumerate(decoded, start=1):
        if not fields.get("check_id"):
            fields["check_id"] = f"service:{service_id}"
            if len(decoded) > 1:
                fields["check_id"] += f":{index}"
        fields["name"] = fields.get("name") or f"Service '{service_name}' check"
        draft = CheckDefinition(**fields, service_id=service_id, from_service=True)
        _validate(draft)
        drafts.append(draft)

    for draft in drafts:
        if draft.status and draft.status not in CHECK_STATUSES:
            raise BadCheckStatus(_SERVICE_STATUS_MESSAGE)
    checks = tuple(replace(draft, status=draft.status or "critical") for draft in drafts)
    for defn in checks:
        require_scripts_allowed(defn, enable_script_checks, remote=remote)
    return checks


# ---------------------------------------------------------------------------------------------
# DeregisterCriticalServiceAfter


def effective_reap_after(after: float, minimum: float = MIN_REAP_AFTER) -> float:
    """Consul raises a positive DeregisterCriticalServiceAfter to the agent minimum (1 min)."""
    if after <= 0:
        return 0.0
    return max(after, minimum)


def reap_due(critical_since: float, now: float, after: float) -> bool:
    """Whether a service whose check has been critical since ``critical_since`` must go.

    The agent's anti-entropy reaper calls this every ``REAP_INTERVAL`` seconds for each
    critical check that belongs to a service, with ``after`` from
    ``CheckDefinition.deregister_critical_service_after_seconds``; when it returns True the
    agent deregisters the service (once, even if several of its checks are due). Like Consul
    it is strictly "critical for longer than", and ``after <= 0`` means never.
    """
    return after > 0 and now - critical_since > after
