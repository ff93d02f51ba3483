"""Check definitions: decoding, Consul's validation messages, defaults and API rendering."""

from __future__ import annotations

from typing import Any

import pytest

from agent.checks import (
    CheckDefinition,
    CheckError,
    effective_reap_after,
    parse_check_registration,
    parse_service_checks,
    reap_due,
)

S = 1_000_000_000
SCRIPTS_LOCAL = (
    "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or "
    "'enable_local_script_checks' to true"
)
SCRIPTS_REMOTE = (
    "Scripts are disabled on this agent from remote calls; to enable, configure "
    "'enable_script_checks' to true"
)
INTERVAL_REQUIRED = (
    "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
)

# ---------------------------------------------------------------------------------------------
# PUT /v1/agent/check/register


# A body is any JSON value: one case sends an array where an object belongs.
REGISTER_ERRORS: list[tuple[str, object, int, str]] = [
    ("no name", {"TTL": "10s"}, 400, "Missing check name"),
    ("empty name", {"Name": "", "TTL": "10s"}, 400, "Missing check name"),
    ("bad status", {"Name": "c", "TTL": "10s", "Status": "ok"}, 400, "Bad check status"),
    ("name before status", {"Status": "ok"}, 400, "Missing check name"),
    ("no type", {"Name": "c"}, 400, "Invalid check: TTL must be > 0 for TTL checks"),
    ("zero ttl", {"Name": "c", "TTL": "0s"}, 400, "Invalid check: TTL must be > 0 for TTL checks"),
    ("http no interval", {"Name": "c", "HTTP": "http://x/"}, 400, INTERVAL_REQUIRED),
    ("tcp no interval", {"Name": "c", "TCP": "x:1"}, 400, INTERVAL_REQUIRED),
    ("udp no interval", {"Name": "c", "UDP": "x:1"}, 400, INTERVAL_REQUIRED),
    ("args no interval", {"Name": "c", "Args": ["true"]}, 400, INTERVAL_REQUIRED),
    ("grpc no interval", {"Name": "c", "GRPC": "x:1"}, 400, INTERVAL_REQUIRED),
    ("h2ping no interval", {"Name": "c", "H2PING": "x:1"}, 400, INTERVAL_REQUIRED),
    (
        "ttl and interval",
        {"Name": "c", "TTL": "10s", "Interval": "10s"},
        400,
        "Invalid check: Interval and TTL cannot both be specified",
    ),
    (
        "alias with http",
        {"Name": "c", "AliasService": "web", "HTTP": "http://x/", "Interval": "10s"},
        400,
        "Invalid check: Interval cannot be set for Alias checks",
    ),
    (
        "alias with ttl",
        {"Name": "c", "AliasNode": "n1", "TTL": "10s"},
        400,
        "Invalid check: TTL must be not be set for Alias checks",
    ),
    (
        "negative output size",
        {"Name": "c", "TTL": "10s", "OutputMaxSize": -1},
        400,
        "Invalid check: MaxOutputMaxSize must be positive",
    ),
    (
        "warning above critical",
        {"Name": "c", "TTL": "10s", "FailuresBeforeWarning": 3, "FailuresBeforeCritical": 1},
        400,
        "Invalid check: FailuresBeforeWarning can't be higher than FailuresBeforeCritical",
    ),
    (
        "legacy script",
        {"Name": "c", "Script": "/bin/true", "Interval": "10s"},
        400,
        'Request decode failed: json: unknown field "Script"',
    ),
    (
        "unknown key",
        {"Name": "c", "TTL": "10s", "Bogus": 1},
        400,
        'Request decode failed: json: unknown field "Bogus"',
    ),
    (
        "decode before name",
        {"Script": "x"},
        400,
        'Request decode failed: json: unknown field "Script"',
    ),
    (
        "duration without unit",
        {"Name": "c", "TTL": "10"},
        400,
        'Request decode failed: time: missing unit in duration "10"',
    ),
    (
        "bad duration",
        {"Name": "c", "HTTP": "http://x/", "Interval": "soon"},
        400,
        'Request decode failed: time: invalid duration "soon"',
    ),
    (
        "http not a string",
        {"Name": "c", "HTTP": 5, "Interval": "1s"},
        400,
        "Request decode failed: json: cannot unmarshal number into Go struct field "
        "CheckDefinition.HTTP of type string",
    ),
    (
        "header not lists",
        {"Name": "c", "HTTP": "http://x/", "Interval": "1s", "Header": {"A": "b"}},
        400,
        "Request decode failed: json: cannot unmarshal string into Go struct field "
        "CheckDefinition.Header of type []string",
    ),
    (
        "args not strings",
        {"Name": "c", "Args": [1], "Interval": "1s"},
        400,
        "Request decode failed: json: cannot unmarshal array into Go struct field "
        "CheckDefinition.ScriptArgs of type []string",
    ),
    (
        "body not an object",
        ["Name"],
        400,
        "Request decode failed: json: cannot unmarshal array into Go value of type "
        "structs.CheckDefinition",
    ),
    ("script disabled", {"Name": "c", "Args": ["true"], "Interval": "10s"}, 500, SCRIPTS_LOCAL),
]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [case[1:] for case in REGISTER_ERRORS],
    ids=[case[0] for case in REGISTER_ERRORS],
)
def test_register_errors(body: object, status: int, message: str) -> None:
    with pytest.raises(CheckError) as caught:
        parse_check_registration(body)
    assert caught.value.status == status
    assert str(caught.value) == message


def test_register_script_disabled_for_remote_calls() -> None:
    with pytest.raises(CheckError) as caught:
        parse_check_registration({"Name": "c", "Args": ["true"], "Interval": "10s"}, remote=True)
    assert (caught.value.status, str(caught.value)) == (500, SCRIPTS_REMOTE)


def test_register_script_allowed_when_enabled() -> None:
    defn = parse_check_registration(
        {"Name": "mem", "Args": ["/bin/check_mem", "-w", "90"], "Interval": "10s"},
        enable_script_checks=True,
    )
    assert defn.args == ("/bin/check_mem", "-w", "90")
    assert defn.kind == "script"
    assert defn.timeout_seconds == 30.0


def test_register_defaults() -> None:
    defn = parse_check_registration({"Name": "disk", "TTL": "15s"})
    assert defn.check_id == "disk"  # ID defaults to Name
    assert defn.status == "critical"
    assert defn.service_id == ""
    assert defn.ttl_ns == 15 * S
    assert defn.kind == "ttl"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "c", "ttl": "15s", "status": "passing", "id": "c1", "notes": "n"},
        {"NAME": "c", "TTL": "15s", "Status": "passing", "ID": "c1", "Notes": "n"},
        {"Name": "c", "Ttl": "15s", "status": "passing", "CheckID": "c1", "notes": "n"},
        {"name": "c", "ttl": 15 * S, "status": "passing", "check_id": "c1", "notes": "n"},
        {"name": "c", "ttl": 15e9, "status": "passing", "check_id": "c1", "notes": "n"},
    ],
)
def test_register_keys_are_case_insensitive(body: dict[str, Any]) -> None:
    defn = parse_check_registration(body)
    assert (defn.check_id, defn.name, defn.status, defn.notes) == ("c1", "c", "passing", "n")
    assert defn.ttl_ns == 15 * S


def test_register_snake_case_config_keys() -> None:
    defn = parse_check_registration(
        {
            "name": "web",
            "check_id": "web-http",
            "service_id": "web1",
            "http": "https://127.0.0.1:8443/health",
            "method": "POST",
            "header": {"X-A": ["1", "2"], "Host": ["web.local"]},
            "body": "{}",
            "interval": "1m30s",
            "timeout": "2s",
            "tls_skip_verify": True,
            "tls_server_name": "web.local",
            "deregister_critical_service_after": "90m",
            "success_before_passing": 2,
            "failures_before_warning": 1,
            "failures_before_critical": 3,
            "output_max_size": 100,
            "namespace": "default",
        }
    )
    assert defn.check_id == "web-http"
    assert defn.service_id == "web1"
    assert defn.method == "POST"
    assert defn.header_map() == {"X-A": ["1", "2"], "Host": ["web.local"]}
    assert defn.tls_skip_verify and defn.tls_server_name == "web.local"
    assert (defn.interval_ns, defn.timeout_ns) == (90 * S, 2 * S)
    assert defn.deregister_critical_service_after_ns == 90 * 60 * S
    assert defn.deregister_critical_service_after_seconds == 5400.0
    assert (defn.success_before_passing, defn.failures_before_warning) == (2, 1)
    assert defn.failures_before_critical == 3
    assert defn.effective_output_max_size() == 100
    assert defn.kind == "http"


@pytest.mark.parametrize("key", ["Args", "args", "ScriptArgs", "script_args"])
def test_register_script_arg_spellings(key: str) -> None:
    defn = parse_check_registration(
        {"Name": "c", key: ["true"], "Interval": "5s"}, enable_script_checks=True
    )
    assert defn.args == ("true",)


def test_register_null_values_are_zero() -> None:
    defn = parse_check_registration({"Name": "c", "TTL": "5s", "Notes": None, "Header": None})
    assert defn.notes == "" and defn.header == ()


def test_h2ping_uses_tls_by_default() -> None:
    defn = parse_check_registration({"Name": "c", "H2PING": "x:1", "Interval": "5s"})
    assert defn.h2ping_use_tls
    defn = parse_check_registration(
        {"Name": "c", "H2PING": "x:1", "Interval": "5s", "h2ping_use_tls": False}
    )
    assert not defn.h2ping_use_tls


# ---------------------------------------------------------------------------------------------
# Checks nested in a service registration


def service_checks(body: dict[str, Any], **kwargs: Any) -> tuple[CheckDefinition, ...]:
    return parse_service_checks(body, service_id="web1", service_name="web", **kwargs)


def test_service_single_check_defaults() -> None:
    (check,) = service_checks({"Name": "web", "Check": {"TTL": "10s"}})
    assert check.check_id == "service:web1"
    assert check.name == "Service 'web' check"
    assert check.service_id == "web1"
    assert check.status == "critical"


def test_service_several_checks_are_numbered_from_one() -> None:
    checks = service_checks(
        {
            "check": {"http": "http://127.0.0.1/", "interval": "10s"},
            "checks": [
                {"TTL": "10s", "CheckID": "own"},
                {"TCP": "127.0.0.1:80", "Interval": "5s", "Name": "tcp", "Status": "passing"},
            ],
        }
    )
    assert [c.check_id for c in checks] == ["service:web1:1", "own", "service:web1:3"]
    assert [c.name for c in checks] == ["Service 'web' check", "Service 'web' check", "tcp"]
    assert [c.kind for c in checks] == ["http", "ttl", "tcp"]
    assert [c.status for c in checks] == ["critical", "critical", "passing"]


def test_service_empty_check_object_is_dropped() -> None:
    checks = service_checks({"Check": {}, "Checks": [{"TTL": "10s"}]})
    assert [c.check_id for c in checks] == ["service:web1"]
    assert service_checks({"Name": "web"}) == ()
    assert service_checks({"Check": None, "Checks": None}) == ()


def test_service_nested_service_id_is_ignored() -> None:
    (check,) = service_checks({"Check": {"TTL": "10s", "ServiceID": "other"}})
    assert check.service_id == "web1"


SERVICE_ERRORS: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "bad status",
        {"Check": {"TTL": "10s", "Status": "up"}},
        400,
        "Status for checks must 'passing', 'warning', 'critical'",
    ),
    (
        "type errors come before status errors",
        {"Checks": [{"TTL": "10s", "Status": "up"}, {"HTTP": "http://x/"}]},
        400,
        INTERVAL_REQUIRED,
    ),
    (
        "empty entry in Checks is not dropped",
        {"Checks": [{}]},
        400,
        "Invalid check: TTL must be > 0 for TTL checks",
    ),
    (
        "legacy script",
        {"Check": {"Script": "true", "Interval": "10s"}},
        400,
        'Request decode failed: json: unknown field "Script"',
    ),
    (
        "check not an object",
        {"Check": "ttl"},
        400,
        "Request decode failed: json: cannot unmarshal string into Go struct field "
        "ServiceDefinition.Check of type structs.CheckType",
    ),
    (
        "scripts disabled",
        {"Check": {"Args": ["true"], "Interval": "10s"}},
        500,
        SCRIPTS_LOCAL,
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [case[1:] for case in SERVICE_ERRORS],
    ids=[case[0] for case in SERVICE_ERRORS],
)
def test_service_check_errors(body: dict[str, Any], status: int, message: str) -> None:
    with pytest.raises(CheckError) as caught:
        service_checks(body)
    assert caught.value.status == status
    assert str(caught.value) == message


# ---------------------------------------------------------------------------------------------
# Classification, effective values, rendering


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"HTTP": "http://x/", "Interval": "1s"}, "http"),
        ({"TCP": "x:1", "Interval": "1s"}, "tcp"),
        ({"UDP": "x:1", "Interval": "1s"}, "udp"),
        ({"TTL": "1s"}, "ttl"),
        ({"Args": ["true"], "Interval": "1s"}, "script"),
        ({"Args": ["true"], "Interval": "1s", "DockerContainerID": "abc"}, "docker"),
        ({"GRPC": "x:1", "Interval": "1s"}, "grpc"),
        ({"H2PING": "x:1", "Interval": "1s"}, "h2ping"),
        ({"OSService": "sshd", "Interval": "1s"}, "os_service"),
        ({"AliasService": "db"}, "alias"),
        ({"AliasNode": "n2"}, "alias"),
    ],
)
def test_kind(fields: dict[str, Any], kind: str) -> None:
    defn = parse_check_registration({"Name": "c", **fields}, enable_script_checks=True)
    assert defn.kind == kind


@pytest.mark.parametrize(
    ("fields", "interval", "timeout"),
    [
        ({"HTTP": "http://x/", "Interval": "100ms"}, 1.0, 10.0),  # raised to MinInterval
        ({"HTTP": "http://x/", "Interval": "15s", "Timeout": "1s"}, 15.0, 1.0),
        ({"TCP": "x:1", "Interval": "2s"}, 2.0, 10.0),
        ({"Args": ["true"], "Interval": "2s"}, 2.0, 30.0),
    ],
)
def test_effective_timing(fields: dict[str, Any], interval: float, timeout: float) -> None:
    defn = parse_check_registration({"Name": "c", **fields}, enable_script_checks=True)
    assert defn.interval_seconds == interval
    assert defn.timeout_seconds == timeout


@pytest.mark.parametrize(
    ("check_size", "agent_size", "effective"),
    [(0, 4096, 4096), (100, 4096, 100), (9000, 4096, 4096), (0, 0, 4096), (50, 10, 10)],
)
def test_output_max_size(check_size: int, agent_size: int, effective: int) -> None:
    defn = CheckDefinition(check_id="c", name="c", ttl_ns=S, output_max_size=check_size)
    assert defn.effective_output_max_size(agent_size) == effective


def test_failures_before_warning_defaults_to_critical_threshold() -> None:
    defn = CheckDefinition(check_id="c", name="c", ttl_ns=S, failures_before_critical=3)
    assert defn.effective_failures_before_warning == 3


HEALTH_CHECK_KEYS = [
    "Node",
    "CheckID",
    "Name",
    "Status",
    "Notes",
    "Output",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "Type",
    "Interval",
    "Timeout",
    "ExposedPort",
    "Definition",
    "CreateIndex",
    "ModifyIndex",
]


def test_to_health_check_for_http_service_check() -> None:
    (check,) = service_checks(
        {
            "Check": {
                "HTTP": "http://127.0.0.1:8080/health",
                "Interval": "10s",
                "Timeout": "1s",
                "Header": {"X-Token": ["t"]},
                "TLSSkipVerify": True,
                "DeregisterCriticalServiceAfter": "90m",
            }
        }
    )
    entry = check.to_health_check(
        "node1",
        output="HTTP GET ...",
        service_name="web",
        service_tags=["v1"],
        create_index=5,
        modify_index=7,
    )
    assert list(entry) == HEALTH_CHECK_KEYS
    assert entry == {
        "Node": "node1",
        "CheckID": "service:web1",
        "Name": "Service 'web' check",
        "Status": "critical",
        "Notes": "",
        "Output": "HTTP GET ...",
        "ServiceID": "web1",
        "ServiceName": "web",
        "ServiceTags": ["v1"],
        "Type": "http",
        "Interval": "10s",
        "Timeout": "1s",
        "ExposedPort": 0,
        "Definition": {
            "HTTP": "http://127.0.0.1:8080/health",
            "TLSSkipVerify": True,
            "Header": {"X-Token": ["t"]},
            "Interval": "10s",
            "Timeout": "1s",
            "DeregisterCriticalServiceAfter": "1h30m0s",
        },
        "CreateIndex": 5,
        "ModifyIndex": 7,
    }


def test_to_health_check_zero_durations() -> None:
    node_check = parse_check_registration({"Name": "disk", "TTL": "30s"})
    entry = node_check.to_health_check("node1", status="passing", service_name="ignored")
    assert (entry["Interval"], entry["Timeout"]) == ("0s", "0s")
    assert (entry["ServiceName"], entry["ServiceTags"]) == ("", [])
    assert entry["Status"] == "passing"
    assert entry["Type"] == "ttl"
    assert entry["Definition"] == {"TTL": 30 * S}  # Go emits this one as nanoseconds

    (service_check,) = service_checks({"Check": {"TTL": "30s"}})
    entry = service_check.to_health_check("node1", service_name="web")
    assert (entry["Interval"], entry["Timeout"]) == ("", "")


# ---------------------------------------------------------------------------------------------
# DeregisterCriticalServiceAfter


@pytest.mark.parametrize(
    ("critical_since", "now", "after", "due"),
    [
        (100.0, 150.0, 60.0, False),
        (100.0, 160.0, 60.0, False),  # strictly longer than
        (100.0, 160.5, 60.0, True),
        (100.0, 10_000.0, 0.0, False),  # 0 = never
        (100.0, 10_000.0, -1.0, False),
    ],
)
def test_reap_due(critical_since: float, now: float, after: float, due: bool) -> None:
    assert reap_due(critical_since, now, after) is due


@pytest.mark.parametrize(
    ("after", "effective"), [(0.0, 0.0), (-5.0, 0.0), (30.0, 60.0), (60.0, 60.0), (600.0, 600.0)]
)
def test_effective_reap_after(after: float, effective: float) -> None:
    assert effective_reap_after(after) == effective
