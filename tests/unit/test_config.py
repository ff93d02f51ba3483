"""agent.config: consul-agent flags and config files -> AgentConfig."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from agent import config_keys
from agent.config import (
    AgentConfig,
    ConfigError,
    HelpRequested,
    load_config,
)
from agent.config_flags import FLAGS

KEY = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="  # 32 random bytes, base64
KEY16 = "aGVsbG8gd29ybGQgMTIzNA=="  # "hello world 1234"
UUID = "8a9bd3e1-3c5e-4f5a-9c71-0e1b2c3d4e5f"


def load(*argv: str) -> AgentConfig:
    return load_config(list(argv), environ={})


def error(*argv: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(*argv)
    message = str(info.value)
    assert "\n" not in message
    return message


def write(path: Path, data: dict[str, Any] | str) -> str:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


# --------------------------------------------------------------------------
# defaults


def test_defaults_for_a_client_agent() -> None:
    cfg = load()
    assert cfg.node_name == socket.gethostname()
    assert cfg.node_id is None
    assert cfg.datacenter == "dc1" and cfg.primary_datacenter == "dc1"
    assert cfg.data_dir is None and not cfg.dev and not cfg.server
    assert not cfg.bootstrap and cfg.bootstrap_expect == 0
    assert cfg.bind_addr == "0.0.0.0" and cfg.advertise_addr is None
    assert cfg.client_addrs == ("127.0.0.1",)
    p = cfg.ports
    assert (p.http, p.https, p.grpc, p.grpc_tls, p.dns) == (8500, -1, -1, -1, 8600)
    assert (p.server, p.serf_lan, p.serf_wan) == (8300, 8301, 8302)
    assert cfg.addresses.http is None and cfg.addresses.dns is None
    assert not cfg.ui_enabled and cfg.ui_content_path == "/ui/"
    assert cfg.log_level == "info" and not cfg.log_json
    assert cfg.retry_interval == 30.0 and cfg.retry_max == 0
    assert cfg.encrypt is None
    assert cfg.acl.enabled is False
    assert (cfg.acl.default_policy, cfg.acl.down_policy) == ("allow", "extend-cache")
    assert cfg.raft_multiplier == 5 and cfg.raft_protocol == 3
    assert cfg.kv_max_value_size == 524288 and cfg.txn_max_req_len == 524288
    assert cfg.domain == "consul." and cfg.alt_domain is None
    assert cfg.dns_config["udp_answer_limit"] == 3 and cfg.dns_config["allow_stale"] is True
    assert cfg.default_query_time == 300.0 and cfg.max_query_time == 600.0
    assert cfg.leave_on_terminate and not cfg.skip_leave_on_interrupt
    assert cfg.services == () and cfg.checks == ()
    assert cfg.ignored_keys == () and cfg.config_sources == () and cfg.warnings == ()


def test_server_defaults(tmp_path: Path) -> None:
    cfg = load("-server", f"-data-dir={tmp_path}")
    assert cfg.server and cfg.data_dir == str(tmp_path)
    assert cfg.ports.grpc_tls == 8503  # Consul 1.14+: on for servers by default
    assert not cfg.leave_on_terminate and cfg.skip_leave_on_interrupt


def test_dev_mode() -> None:
    cfg = load("-dev")
    assert cfg.dev and cfg.server and cfg.bootstrap
    assert cfg.data_dir is None
    assert cfg.bind_addr == "127.0.0.1" and cfg.client_addrs == ("127.0.0.1",)
    assert cfg.ui_enabled and cfg.log_level == "debug"
    assert cfg.node_name == socket.gethostname()
    assert cfg.ports.grpc == 8502 and cfg.raft_multiplier == 1
    assert cfg.ignored_keys == ()  # dev defaults are not the user's doing


def test_dev_defaults_yield_to_flags_and_files(tmp_path: Path) -> None:
    f = write(tmp_path / "a.json", {"log_level": "warn", "ui_config": {"enabled": False}})
    cfg = load("-dev", f"-config-file={f}", "-bind=127.0.0.5", "-client=0.0.0.0")
    assert (cfg.log_level, cfg.ui_enabled) == ("warn", False)
    assert (cfg.bind_addr, cfg.client_addrs) == ("127.0.0.5", ("0.0.0.0",))


# --------------------------------------------------------------------------
# flags

FLAG_CASES: list[tuple[list[str], str, Any]] = [
    (["-node=n1"], "node_name", "n1"),
    (["-node", "n1"], "node_name", "n1"),
    (["--node=n1"], "node_name", "n1"),
    (["--node", "n1"], "node_name", "n1"),
    ([f"-node-id={UUID.upper()}"], "node_id", UUID),
    (["-datacenter=ShenZhen"], "datacenter", "shenzhen"),
    (["-bind=127.0.0.11"], "bind_addr", "127.0.0.11"),
    (["-bind=0.0.0.0"], "bind_addr", "0.0.0.0"),
    (["-bind=::1"], "bind_addr", "::1"),
    (["-advertise=10.0.0.1"], "advertise_addr", "10.0.0.1"),
    (["-advertise-wan=1.2.3.4"], "advertise_addr_wan", "1.2.3.4"),
    (["-client=0.0.0.0"], "client_addrs", ("0.0.0.0",)),
    (["-client", "127.0.0.1 10.0.0.1"], "client_addrs", ("127.0.0.1", "10.0.0.1")),
    (["-serf-lan-bind=127.0.0.2"], "serf_lan_bind", "127.0.0.2"),
    (["-serf-wan-bind=127.0.0.3"], "serf_wan_bind", "127.0.0.3"),
    (["-domain=example"], "domain", "example."),
    (["-domain=example."], "domain", "example."),
    (["-alt-domain=alt.test"], "alt_domain", "alt.test."),
    (["-ui"], "ui_enabled", True),
    (["-ui=false"], "ui_enabled", False),
    (["-ui-dir=/srv/ui"], "ui_dir", "/srv/ui"),
    (["-ui-content-path=/consul/"], "ui_content_path", "/consul/"),
    (["-ui-content-path=consul"], "ui_content_path", "/consul/"),
    (["-log-level=DEBUG"], "log_level", "debug"),
    (["-log-level=Trace"], "log_level", "trace"),
    (["-log-level=warn"], "log_level", "warn"),
    (["-log-level=ERR"], "log_level", "error"),
    (["-log-json"], "log_json", True),
    (["-log-file=/tmp/c.log"], "log_file", "/tmp/c.log"),
    (["-enable-script-checks"], "enable_script_checks", True),
    (["-enable-local-script-checks"], "enable_local_script_checks", True),
    (["-join=10.0.0.1", "-join", "10.0.0.2"], "start_join", ("10.0.0.1", "10.0.0.2")),
    (["-retry-join=a", "-retry-join=b:8301"], "retry_join", ("a", "b:8301")),
    (["-retry-interval=1m30s"], "retry_interval", 90.0),
    (["-retry-interval", "500ms"], "retry_interval", 0.5),
    (["-retry-max=7"], "retry_max", 7),
    (["-join-wan=w1", "-join-wan=w2"], "start_join_wan", ("w1", "w2")),
    (["-retry-join-wan=w1"], "retry_join_wan", ("w1",)),
    (["-retry-interval-wan=2s"], "retry_interval_wan", 2.0),
    (["-retry-max-wan=3"], "retry_max_wan", 3),
    ([f"-encrypt={KEY}"], "encrypt", KEY),
    ([f"-encrypt={KEY16}"], "encrypt", KEY16),
    (["-node-meta=rack:r1", "-node-meta=zone:a:b"], "node_meta", {"rack": "r1", "zone": "a:b"}),
    (["-pid-file=/run/c.pid"], "pid_file", "/run/c.pid"),
    (["-recursor=8.8.8.8", "-recursor=1.1.1.1"], "recursors", ("8.8.8.8", "1.1.1.1")),
    (["-disable-host-node-id=false"], "disable_host_node_id", False),
    (["-raft-protocol=3"], "raft_protocol", 3),
    (["-protocol=2"], "protocol", 2),
    (["-rejoin"], "rejoin_after_leave", True),
    (["-default-query-time=10s"], "default_query_time", 10.0),
    (["-max-query-time=1m"], "max_query_time", 60.0),
    (["-check_output_max_size=100"], "check_output_max_size", 100),
    (["-allow-write-http-from=10.0.0.0/8"], "http_allow_write_from", ("10.0.0.0/8",)),
]

PORT_FLAGS = [
    ("-http-port", "http"),
    ("-https-port", "https"),
    ("-grpc-port", "grpc"),
    ("-grpc-tls-port", "grpc_tls"),
    ("-dns-port", "dns"),
    ("-server-port", "server"),
    ("-serf-lan-port", "serf_lan"),
    ("-serf-wan-port", "serf_wan"),
]


@pytest.mark.parametrize(("argv", "attr", "expected"), FLAG_CASES)
def test_flag_sets_field(argv: list[str], attr: str, expected: Any) -> None:
    assert getattr(load(*argv), attr) == expected


@pytest.mark.parametrize(("flag", "port"), PORT_FLAGS)
def test_port_flags(flag: str, port: str) -> None:
    assert getattr(load(f"{flag}=18000").ports, port) == 18000
    assert getattr(load(flag, "18001").ports, port) == 18001


@pytest.mark.parametrize(
    ("flag", "port"), [p for p in PORT_FLAGS if p[1] not in ("server", "serf_lan")]
)
def test_port_minus_one_disables(flag: str, port: str) -> None:
    assert getattr(load(f"{flag}=-1").ports, port) == -1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-server"], True),
        (["--server"], True),
        (["-server=true"], True),
        (["-server=1"], True),
        (["-server=T"], True),
        (["-server=false"], False),
        (["-server=0"], False),
        (["-server=F"], False),
        (["-server", "-server=false"], False),
    ],
)
def test_boolean_flag_syntax(tmp_path: Path, argv: list[str], expected: bool) -> None:
    assert load(*argv, f"-data-dir={tmp_path}").server is expected


def test_bootstrap_and_expect_flags(tmp_path: Path) -> None:
    assert load("-server", "-bootstrap", f"-data-dir={tmp_path}").bootstrap
    cfg = load("-server", "-bootstrap-expect=3", f"-data-dir={tmp_path}")
    assert cfg.bootstrap_expect == 3 and not cfg.bootstrap


@pytest.mark.parametrize(
    "argv",
    [
        ["-syslog"],
        ["-hcl", "telemetry { disable_hostname = true }"],
        ["-disable-keyring-file"],
        ["-auto-reload-config"],
        ["-segment=alpha"],
        ["-primary-gateway=1.2.3.4:443"],
        ["-serf-lan-allowed-cidrs=10.0.0.0/8"],
        ["-serf-wan-allowed-cidrs=10.0.0.0/8"],
        ["-log-rotate-bytes=100", "-log-rotate-duration=24h", "-log-rotate-max-files=3"],
        ["-read-replica"],
        ["-non-voting-server"],
    ],
)
def test_accepted_flags_for_unimplemented_features_are_reported(argv: list[str]) -> None:
    assert load(*argv).ignored_keys


def test_ignored_flag_names_their_config_key() -> None:
    cfg = load("-syslog", "-non-voting-server", "-grpc-port=8502")
    assert cfg.ignored_keys == ("enable_syslog", "read_replica", "ports.grpc")
    assert cfg.ports.grpc == 8502


def test_double_dash_ends_flags() -> None:
    assert load("-node=a", "--").node_name == "a"


FLAG_ERRORS = [
    (["-foo"], "flag provided but not defined: -foo"),
    (["--foo=1"], "flag provided but not defined: -foo"),
    (["-bind"], "flag needs an argument: -bind"),
    (["-node"], "flag needs an argument: -node"),
    (["-retry-join"], "flag needs an argument: -retry-join"),
    (["-http-port=abc"], 'invalid value "abc" for flag -http-port: parse error'),
    (["-bootstrap-expect", "x"], 'invalid value "x" for flag -bootstrap-expect: parse error'),
    (["-server=maybe"], 'invalid boolean value "maybe" for -server: parse error'),
    (
        ["-retry-interval=10"],
        'invalid value "10" for flag -retry-interval: time: missing unit in duration "10"',
    ),
    (
        ["-retry-interval=5x"],
        'invalid value "5x" for flag -retry-interval: time: unknown unit "x" in duration "5x"',
    ),
    (
        ["-retry-interval=soon"],
        'invalid value "soon" for flag -retry-interval: time: invalid duration "soon"',
    ),
    (["-node-meta=abc"], 'invalid value "abc" for flag -node-meta: missing \':\' in "abc"'),
    (["---x"], "bad flag syntax: ---x"),
    (["-=x"], "bad flag syntax: -=x"),
    (["agent"], "unexpected argument: agent"),
    (["-config-format=yaml"], "-config-format: must be either 'hcl' or 'json'"),
]


@pytest.mark.parametrize(("argv", "message"), FLAG_ERRORS)
def test_flag_errors(argv: list[str], message: str) -> None:
    assert error(*argv) == message


def test_help_flag() -> None:
    with pytest.raises(HelpRequested):
        load("-h")
    with pytest.raises(HelpRequested):
        load("-help")


# --------------------------------------------------------------------------
# validation: every message is one line naming the flag or file: key

VALIDATION_ERRORS = [
    (["-bind=x"], "-bind: invalid ip address: x"),
    (["-bind=10.0.0.300"], "-bind: invalid ip address: 10.0.0.300"),
    (["-advertise=host.example"], "-advertise: invalid ip address: host.example"),
    (["-advertise=0.0.0.0"], "-advertise: Advertise address cannot be 0.0.0.0, :: or [::]"),
    (["-advertise=::"], "-advertise: Advertise address cannot be 0.0.0.0, :: or [::]"),
    (
        ["-advertise-wan=0.0.0.0"],
        "-advertise-wan: Advertise WAN address cannot be 0.0.0.0, :: or [::]",
    ),
    (["-client=127.0.0.1 nope"], "-client: invalid ip address: nope"),
    (["-client=unix:///tmp/api.sock"], "DNS address cannot be a unix socket"),
    (["-hcl", 'addresses { dns = "unix:///tmp/dns.sock" }'], "DNS address cannot be a unix socket"),
    (["-serf-lan-bind=x"], "-serf-lan-bind: invalid ip address: x"),
    (["-server"], "data_dir cannot be empty"),
    (["-bootstrap"], "-bootstrap: 'bootstrap = true' requires 'server = true'"),
    (["-bootstrap-expect=3"], "-bootstrap-expect: 'bootstrap_expect > 0' requires 'server = true'"),
    (
        ["-bootstrap-expect=-1"],
        "-bootstrap-expect: cannot be -1. Must be greater than or equal to zero",
    ),
    (
        ["-dev", "-bootstrap-expect=3"],
        "-bootstrap-expect: 'bootstrap_expect > 0' not allowed in dev mode",
    ),
    (["-http-port=70000"], "-http-port: invalid port 70000: must be 1-65535, or -1 to disable"),
    (["-dns-port=-2"], "-dns-port: invalid port -2: must be 1-65535, or -1 to disable"),
    (["-server-port=-1"], "-server-port: port must be greater than zero"),
    (["-serf-lan-port=0"], "-serf-lan-port: port must be greater than zero"),
    (
        ["-log-level=loud"],
        '-log-level: invalid log level "loud" (valid: trace, debug, info, warn, error)',
    ),
    (["-encrypt=abc"], "-encrypt: invalid key: not valid base64"),
    (["-encrypt=YWJj"], "-encrypt: invalid key: key is 3 bytes, must be 16, 24 or 32"),
    (["-datacenter=a.b"], '-datacenter: cannot be "a.b". Please use only [a-z0-9-_].'),
    (["-node-id=xyz"], '-node-id: invalid node ID "xyz": must be a UUID'),
    (["-raft-protocol=2"], "-raft-protocol: raft_protocol version 2 is not supported, only 3"),
    (["-retry-max=-1"], "-retry-max: cannot be -1. Must be greater than or equal to zero"),
    (
        ["-node-meta=consul-x:1"],
        "-node-meta: invalid: key 'consul-x' uses the reserved prefix 'consul-'",
    ),
    (["-recursor=0.0.0.0"], "-recursor: DNS recursor address cannot be 0.0.0.0, :: or [::]"),
    (
        ["-hcl", "performance { raft_multiplier = 11 }"],
        "-hcl: performance.raft_multiplier: cannot be 11. Must be between 1 and 10",
    ),
    (
        ["-hcl", "performance { raft_multiplier = 0 }"],
        "-hcl: performance.raft_multiplier: cannot be 0. Must be between 1 and 10",
    ),
    (
        ["-hcl", 'retry_interval = "5x"'],
        '-hcl: retry_interval: time: unknown unit "x" in duration "5x"',
    ),
    (["-hcl", "foo = 1"], "-hcl: invalid config key foo"),
    (["-hcl", 'ports { http = "x" }'], "-hcl: ports.http: expected int, got string"),
    (["-hcl", "ports { http ="], "-hcl: invalid HCL: At 1:15: expected a value, got end of input"),
]


@pytest.mark.parametrize(("argv", "message"), VALIDATION_ERRORS)
def test_validation_errors(argv: list[str], message: str) -> None:
    assert error(*argv) == message


def test_bootstrap_with_bootstrap_expect(tmp_path: Path) -> None:
    assert error("-server", "-bootstrap", "-bootstrap-expect=3", f"-data-dir={tmp_path}") == (
        "-bootstrap-expect: 'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive"
    )


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert error("-server", f"-data-dir={f}") == f'-data-dir: "{f}" is not a directory'


def test_data_dir_may_not_exist_yet(tmp_path: Path) -> None:
    assert load("-server", f"-data-dir={tmp_path / 'new'}").data_dir == str(tmp_path / "new")


FILE_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"bind_addr": "x"}, "bind_addr: invalid ip address: x"),
    (
        {"advertise_addr": "0.0.0.0"},
        "advertise_addr: Advertise address cannot be 0.0.0.0, :: or [::]",
    ),
    ({"client_addr": "1.2.3.4 y"}, "client_addr: invalid ip address: y"),
    ({"addresses": {"http": "nope"}}, "addresses.http: invalid ip address: nope"),
    ({"server": "true"}, "server: expected bool, got string"),
    (
        {"ports": {"http": 80000}},
        "ports.http: invalid port 80000: must be 1-65535, or -1 to disable",
    ),
    ({"ports": "8500"}, "ports: expected object, got string"),
    ({"retry_join": "10.0.0.1"}, "retry_join: expected list of strings, got string"),
    ({"node_meta": {"a": 1}}, "node_meta: expected map of strings, got object"),
    ({"retry_interval": "1x"}, 'retry_interval: time: unknown unit "x" in duration "1x"'),
    ({"retry_interval": 30}, "retry_interval: expected duration, got number"),
    (
        {"telemetry": {"prometheus_retention_time": "forever"}},
        'telemetry.prometheus_retention_time: time: invalid duration "forever"',
    ),
    (
        {"log_level": "verbose"},
        'log_level: invalid log level "verbose" (valid: trace, debug, info, warn, error)',
    ),
    ({"encrypt": "!!"}, "encrypt: invalid key: not valid base64"),
    (
        {"performance": {"raft_multiplier": 20}},
        "performance.raft_multiplier: cannot be 20. Must be between 1 and 10",
    ),
    (
        {"acl": {"default_policy": "maybe"}},
        'acl.default_policy: invalid policy "maybe": must be allow or deny',
    ),
    (
        {"acl": {"down_policy": "x"}},
        'acl.down_policy: invalid policy "x": must be allow, deny, extend-cache or async-cache',
    ),
    ({"bootstrap_expect": 3}, "bootstrap_expect: 'bootstrap_expect > 0' requires 'server = true'"),
    ({"datacenter": "dc 1"}, 'datacenter: cannot be "dc 1". Please use only [a-z0-9-_].'),
    (
        {"dns_config": {"udp_answer_limit": -1}},
        "dns_config.udp_answer_limit: cannot be -1. Must be greater than or equal to zero",
    ),
    (
        {"limits": {"kv_max_value_size": -5}},
        "limits.kv_max_value_size: cannot be -5. Must be greater than or equal to zero",
    ),
    ({"services": ["web"]}, "services: expected an object or a list of objects"),
]


@pytest.mark.parametrize(("data", "message"), FILE_ERRORS)
def test_file_value_errors_name_file_and_key(
    tmp_path: Path, data: dict[str, Any], message: str
) -> None:
    f = write(tmp_path / "agent.json", data)
    assert error(f"-config-file={f}") == f"{f}: {message}"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"foo": 1}, "foo"),
        ({"ports": {"htp": 1}}, "ports.htp"),
        ({"acl": {"tokens": {"bogus": "x"}}}, "acl.tokens.bogus"),
        ({"telemetry": {"prometheus": "1s"}}, "telemetry.prometheus"),
        ({"segments": [{"name": "a", "nope": 1}]}, "segments[0].nope"),
        ({"audit": {"sink": {"s1": {"typo": "x"}}}}, "audit.sink.s1.typo"),
        (
            {"node_name": "n", "ui_config": {"metrics_proxy": {"bad": 1}}},
            "ui_config.metrics_proxy.bad",
        ),
    ],
)
def test_unknown_key_is_an_error(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    f = write(tmp_path / "x.json", data)
    assert error(f"-config-file={f}") == f"{f}: invalid config key {key}"


def test_unknown_key_in_hcl_file(tmp_path: Path) -> None:
    f = write(tmp_path / "x.hcl", 'datacenter = "a"\nports {\n  htp = 1\n}\n')
    assert error(f"-config-file={f}") == f"{f}: invalid config key ports.htp"


def test_top_level_keys_match_case_insensitively(tmp_path: Path) -> None:
    f = write(tmp_path / "x.json", {"Datacenter": "DC7", "Ports": {"HTTP": 9500}})
    cfg = load(f"-config-file={f}")
    assert (cfg.datacenter, cfg.ports.http) == ("dc7", 9500)


def test_json_null_is_ignored(tmp_path: Path) -> None:
    f = write(tmp_path / "x.json", {"node_name": None, "ports": {"http": None}})
    assert load(f"-config-file={f}").ports.http == 8500


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (
            "{",
            ".json",
            "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        ("[1]", ".json", "config must be an object at the top level"),
        ('server = "yes', ".hcl", "invalid HCL: At 1:10: literal not terminated"),
        ("ports {\n http = 1\n", ".hcl", "invalid HCL: At 3:1: expected '}', got end of input"),
    ],
)
def test_unparsable_files(tmp_path: Path, content: str, suffix: str, message: str) -> None:
    f = write(tmp_path / f"bad{suffix}", content)
    assert error(f"-config-file={f}") == f"{f}: {message}"


def test_missing_config_file_and_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert error(f"-config-file={missing}") == (
        f"-config-file: cannot read {missing}: no such file or directory"
    )
    assert error(f"-config-dir={tmp_path / 'd'}") == (
        f"-config-dir: cannot read {tmp_path / 'd'}: no such file or directory"
    )


def test_config_file_with_unknown_extension(tmp_path: Path) -> None:
    f = write(tmp_path / "agent.conf", {"node_name": "n"})
    assert error(f"-config-file={f}") == (
        f"file {f} has unknown extension; must be .hcl or .json, or config format must be set"
    )
    assert load(f"-config-file={f}", "-config-format=json").node_name == "n"


# --------------------------------------------------------------------------
# files: discovery, merge order, precedence


def test_config_dir_reads_json_and_hcl_in_lexical_order(tmp_path: Path) -> None:
    write(tmp_path / "10-b.json", {"node_name": "from-b", "retry_join": ["b"]})
    write(tmp_path / "02-a.hcl", 'node_name = "from-a"\nretry_join = ["a"]\n')
    write(tmp_path / "99-c.txt", "not config at all")
    write(tmp_path / "50-empty.json", "")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "z.json", {"node_name": "from-subdir"})
    cfg = load(f"-config-dir={tmp_path}")
    assert cfg.node_name == "from-b"
    assert cfg.retry_join == ("a", "b")
    assert cfg.config_sources == (str(tmp_path / "02-a.hcl"), str(tmp_path / "10-b.json"))


def test_config_format_reads_every_file_in_dir(tmp_path: Path) -> None:
    write(tmp_path / "a.conf", 'node_name = "hcl-node"')
    assert load(f"-config-dir={tmp_path}", "-config-format=hcl").node_name == "hcl-node"


def test_files_and_dirs_are_read_in_flag_order(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    write(d / "a.json", {"node_name": "dir", "datacenter": "d1"})
    f = write(tmp_path / "f.json", {"node_name": "file"})
    assert load(f"-config-file={f}", f"-config-dir={d}").node_name == "dir"
    cfg = load(f"-config-dir={d}", f"-config-file={f}")
    assert (cfg.node_name, cfg.datacenter) == ("file", "d1")


def test_merge_rules_maps_merge_lists_append_scalars_override(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.json",
        {
            "node_meta": {"rack": "r1", "zone": "z1"},
            "retry_join": ["s1"],
            "ports": {"http": 8501, "dns": 8601},
            "acl": {"enabled": True, "tokens": {"agent": "t-agent"}},
            "services": [{"name": "a"}],
            "http_config": {"response_headers": {"X-A": "1"}},
            "log_level": "warn",
        },
    )
    b = write(
        tmp_path / "b.json",
        {
            "node_meta": {"zone": "z2"},
            "retry_join": ["s2"],
            "ports": {"http": 8502},
            "acl": {"tokens": {"default": "t-default"}},
            "service": {"name": "b"},
            "http_config": {"response_headers": {"X-B": "2"}},
        },
    )
    cfg = load(f"-config-file={a}", f"-config-file={b}")
    assert cfg.node_meta == {"rack": "r1", "zone": "z2"}
    assert cfg.retry_join == ("s1", "s2")
    assert (cfg.ports.http, cfg.ports.dns) == (8502, 8601)
    assert cfg.acl.enabled
    assert (cfg.acl.tokens.agent, cfg.acl.tokens.default) == ("t-agent", "t-default")
    assert [s["name"] for s in cfg.services] == ["a", "b"]
    assert cfg.http_response_headers == {"X-A": "1", "X-B": "2"}
    assert cfg.log_level == "warn"


def test_flags_override_files(tmp_path: Path) -> None:
    f = write(
        tmp_path / "a.json",
        {
            "node_name": "file",
            "ports": {"http": 1111},
            "bind_addr": "10.0.0.1",
            "node_meta": {"k": "file"},
        },
    )
    cfg = load("-node=flag", f"-config-file={f}", "-http-port=2222", "-node-meta=k:flag")
    assert (cfg.node_name, cfg.ports.http, cfg.bind_addr) == ("flag", 2222, "10.0.0.1")
    assert cfg.node_meta == {"k": "flag"}


def test_list_flags_come_before_file_lists(tmp_path: Path) -> None:
    f = write(
        tmp_path / "a.json",
        {"retry_join": ["file"], "start_join": ["sf"], "recursors": ["9.9.9.9"]},
    )
    cfg = load(f"-config-file={f}", "-retry-join=flag", "-join=jf", "-recursor=8.8.8.8")
    assert cfg.retry_join == ("flag", "file")
    assert cfg.start_join == ("jf", "sf")
    assert cfg.recursors == ("8.8.8.8", "9.9.9.9")


def test_hcl_flag_overrides_other_flags(tmp_path: Path) -> None:
    f = write(tmp_path / "a.json", {"node_name": "file"})
    cfg = load(f"-config-file={f}", "-node=flag", "-hcl", 'node_name = "hcl"')
    assert cfg.node_name == "hcl"


def test_file_error_names_the_file_that_set_the_value(tmp_path: Path) -> None:
    good = write(tmp_path / "a.json", {"bind_addr": "10.0.0.1"})
    bad = write(tmp_path / "b.json", {"bind_addr": "bogus"})
    assert error(f"-config-file={good}", f"-config-file={bad}") == (
        f"{bad}: bind_addr: invalid ip address: bogus"
    )
    # a later flag fixes it: the flag wins and no error remains
    assert load(f"-config-file={bad}", "-bind=10.0.0.9").bind_addr == "10.0.0.9"


# --------------------------------------------------------------------------
# deprecated spellings and ignored keys


@pytest.mark.parametrize(
    ("data", "getter", "expected"),
    [
        ({"acl_master_token": "m"}, lambda c: c.acl.tokens.initial_management, "m"),
        ({"acl": {"tokens": {"master": "m"}}}, lambda c: c.acl.tokens.initial_management, "m"),
        ({"acl_agent_master_token": "r"}, lambda c: c.acl.tokens.agent_recovery, "r"),
        ({"acl": {"tokens": {"agent_master": "r"}}}, lambda c: c.acl.tokens.agent_recovery, "r"),
        ({"acl_agent_token": "a"}, lambda c: c.acl.tokens.agent, "a"),
        ({"acl_token": "d"}, lambda c: c.acl.tokens.default, "d"),
        (
            {"acl_replication_token": "x"},
            lambda c: (c.acl.tokens.replication, c.acl.enable_token_replication),
            ("x", True),
        ),
        ({"acl_default_policy": "deny"}, lambda c: c.acl.default_policy, "deny"),
        ({"acl_down_policy": "deny"}, lambda c: c.acl.down_policy, "deny"),
        ({"acl_ttl": "1m"}, lambda c: c.acl.token_ttl, 60.0),
        ({"acl_enable_key_list_policy": True}, lambda c: c.acl.enable_key_list_policy, True),
        (
            {"acl_datacenter": "Main"},
            lambda c: (c.primary_datacenter, c.acl.enabled),
            ("main", True),
        ),
        ({"ui": True}, lambda c: c.ui_enabled, True),
        ({"ui_dir": "/u"}, lambda c: c.ui_dir, "/u"),
        ({"ui_content_path": "/x/"}, lambda c: c.ui_content_path, "/x/"),
        (
            {"acl": {"tokens": {"master": "old", "initial_management": "new"}}},
            lambda c: c.acl.tokens.initial_management,
            "new",
        ),
    ],
)
def test_deprecated_keys(tmp_path: Path, data: dict[str, Any], getter: Any, expected: Any) -> None:
    f = write(tmp_path / "old.json", data)
    cfg = load(f"-config-file={f}")
    assert getter(cfg) == expected
    assert any("deprecated" in w for w in cfg.warnings)


def test_deprecated_tls_keys_are_folded_into_tls(tmp_path: Path) -> None:
    f = write(
        tmp_path / "tls.json",
        {"ca_file": "/ca.pem", "verify_incoming": True, "acl_enforce_version_8": False},
    )
    cfg = load(f"-config-file={f}")
    assert cfg.ignored_keys == ()
    assert cfg.tls.https.ca_file == "/ca.pem"
    assert len(cfg.warnings) == 3


def test_ignored_keys_are_recorded_once_in_order(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.json",
        {"connect": {"enabled": True}, "telemetry": {"disable_hostname": True}},
    )
    b = write(
        tmp_path / "b.json",
        {
            "connect": {"enabled": True, "enable_mesh_gateway_wan_federation": True},
            "watches": [{"type": "key"}],
            "telemetry": {"disable_hostname": False},
        },
    )
    cfg = load(f"-config-file={a}", f"-config-file={b}")
    assert cfg.ignored_keys == (
        "telemetry.disable_hostname",
        "connect.enable_mesh_gateway_wan_federation",
        "watches",
    )


# --------------------------------------------------------------------------
# services and checks


def test_service_and_check_definitions(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.json",
        {
            "service": {
                "Name": "web",
                "Port": 80,
                "Check": {"HTTP": "http://x/", "Interval": "10s"},
            },
            "services": [{"name": "db", "checks": [{"tcp": "localhost:5432", "interval": "5s"}]}],
            "check": {"id": "mem", "args": ["free"], "interval": "30s"},
            "checks": [{"name": "ttl", "ttl": "30s"}],
        },
    )
    b = write(
        tmp_path / "b.hcl",
        """
        service {
          name = "cache"
          tags = ["primary"]
          check {
            tcp      = "localhost:6379"
            interval = "5s"
          }
          checks = [{ ttl = "10s" }]
        }
        check {
          id = "disk"
          args = ["df"]
          interval = "1m"
        }
        """,
    )
    cfg = load(f"-config-file={a}", f"-config-file={b}")
    assert [s.get("name", s.get("Name")) for s in cfg.services] == ["db", "web", "cache"]
    assert cfg.services[1]["Check"] == {"HTTP": "http://x/", "Interval": "10s"}
    cache = cfg.services[2]
    assert cache["check"] == {"tcp": "localhost:6379", "interval": "5s"}
    assert cache["checks"] == [{"ttl": "10s"}]
    assert [c.get("id", c.get("name")) for c in cfg.checks] == ["ttl", "mem", "disk"]
    assert cfg.ignored_keys == ()


# --------------------------------------------------------------------------
# realistic sample configurations

SERVER_JSON: dict[str, Any] = {
    "datacenter": "shenzhen",
    "primary_datacenter": "shenzhen",
    "node_name": "consul-server-1",
    "data_dir": "REPLACED",
    "server": True,
    "bootstrap_expect": 3,
    "bind_addr": "127.0.0.11",
    "advertise_addr": "127.0.0.11",
    "client_addr": "0.0.0.0",
    "retry_join": ["127.0.0.12", "127.0.0.13"],
    "encrypt": KEY,
    "log_level": "INFO",
    "enable_local_script_checks": True,
    "ports": {"http": 8500, "https": -1, "grpc": 8502, "grpc_tls": 8503, "dns": 8600},
    "addresses": {"http": "0.0.0.0", "dns": "127.0.0.11"},
    "ui_config": {"enabled": True, "metrics_provider": "prometheus"},
    "connect": {"enabled": True},
    "telemetry": {"prometheus_retention_time": "24h", "disable_hostname": True},
    "performance": {"raft_multiplier": 1, "leave_drain_time": "5s"},
    "autopilot": {"cleanup_dead_servers": True, "last_contact_threshold": "200ms"},
    "limits": {"http_max_conns_per_client": 400, "kv_max_value_size": 1048576},
    "acl": {
        "enabled": True,
        "default_policy": "deny",
        "down_policy": "extend-cache",
        "enable_token_persistence": True,
        "tokens": {
            "initial_management": UUID,
            "agent": "agent-secret",
            "agent_recovery": "recovery-secret",
        },
    },
    "dns_config": {"only_passing": True, "service_ttl": {"*": "5s"}},
    "http_config": {"response_headers": {"Access-Control-Allow-Origin": "*"}},
    "node_meta": {"rack": "r1"},
    "services": [
        {
            "name": "web",
            "port": 80,
            "tags": ["v1"],
            "check": {"http": "http://localhost/health", "interval": "10s", "timeout": "1s"},
        }
    ],
}

CLIENT_HCL = """
# a typical client agent
datacenter = "shenzhen"
data_dir   = "REPLACED"
node_name  = "consul-client-1"
bind_addr  = "127.0.0.14"
client_addr = "127.0.0.14 127.0.0.1"
retry_join = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
retry_interval = "5s"
encrypt = "KEY_HERE"

ports {
  dns  = 8600,
  grpc = -1
}

telemetry {
  prometheus_retention_time = "30s",
  disable_hostname = true
}

performance {
  raft_multiplier = 2
}

acl = {
  enabled = true
  default_policy = "deny"
  tokens {
    agent = "client-agent-token"
  }
}

recursors = ["1.1.1.1"]
enable_script_checks = false
leave_on_terminate = true

service {
  name = "redis"
  port = 6379
  meta {
    version = "7"
  }
}
"""


def test_realistic_server_json(tmp_path: Path) -> None:
    data = dict(SERVER_JSON, data_dir=str(tmp_path / "data"))
    f = write(tmp_path / "server.json", data)
    cfg = load(f"-config-file={f}")
    assert cfg.server and cfg.bootstrap_expect == 3 and cfg.datacenter == "shenzhen"
    assert cfg.advertise() == "127.0.0.11"
    assert cfg.client_addrs == ("0.0.0.0",)
    assert cfg.http_addrs() == [("0.0.0.0", 8500)]
    assert cfg.dns_addrs() == [("127.0.0.11", 8600)]
    assert (cfg.ports.grpc, cfg.ports.grpc_tls) == (8502, 8503)
    assert cfg.ui_enabled and cfg.raft_multiplier == 1 and cfg.leave_drain_time == 5.0
    assert cfg.kv_max_value_size == 1048576
    assert cfg.acl.enabled and cfg.acl.default_policy == "deny" and cfg.acl.enable_token_persistence
    assert cfg.acl.tokens.initial_management == UUID
    assert cfg.dns_config["only_passing"] is True
    assert cfg.http_response_headers == {"Access-Control-Allow-Origin": "*"}
    assert cfg.services[0]["name"] == "web"
    assert cfg.ignored_keys == (
        "ports.grpc",
        "ports.grpc_tls",
        "ui_config.metrics_provider",
        "telemetry.prometheus_retention_time",
        "telemetry.disable_hostname",
        "performance.leave_drain_time",
        "limits.http_max_conns_per_client",
    )


def test_realistic_client_hcl(tmp_path: Path) -> None:
    text = CLIENT_HCL.replace("REPLACED", str(tmp_path)).replace("KEY_HERE", KEY)
    f = write(tmp_path / "client.hcl", text)
    cfg = load(f"-config-file={f}")
    assert not cfg.server and cfg.node_name == "consul-client-1"
    assert cfg.client_addrs == ("127.0.0.14", "127.0.0.1")
    assert cfg.http_addrs() == [("127.0.0.14", 8500), ("127.0.0.1", 8500)]
    assert cfg.retry_join == ("127.0.0.11", "127.0.0.12", "127.0.0.13")
    assert cfg.retry_interval == 5.0 and cfg.raft_multiplier == 2
    assert cfg.acl.enabled and cfg.acl.tokens.agent == "client-agent-token"
    assert cfg.recursors == ("1.1.1.1",) and cfg.leave_on_terminate
    assert cfg.services == ({"name": "redis", "port": 6379, "meta": {"version": "7"}},)
    assert cfg.encrypt == KEY
    assert cfg.ignored_keys == (
        "ports.grpc",
        "telemetry.prometheus_retention_time",
        "telemetry.disable_hostname",
    )


def test_seed_cluster_command_lines(tmp_path: Path) -> None:
    base = ["-data-dir", str(tmp_path), "-client=0.0.0.0", "-datacenter=shenzhen", "-ui"]
    server = load("-server", "-bootstrap-expect=3", "-node=node1", "-bind=127.0.0.11", *base)
    client = load("-join=127.0.0.11", "-node=node4", "-bind=127.0.0.14", *base)
    assert server.server and server.bootstrap_expect == 3 and server.bind_addr == "127.0.0.11"
    assert not client.server and client.start_join == ("127.0.0.11",)
    assert client.advertise() == "127.0.0.14" and client.datacenter == "shenzhen"


# --------------------------------------------------------------------------
# helpers on the value


def test_listener_helpers() -> None:
    cfg = load(
        "-client=127.0.0.1 127.0.0.2", "-http-port=-1", "-hcl", 'addresses { dns = "127.0.0.9" }'
    )
    assert cfg.http_addrs() == []
    assert cfg.dns_addrs() == [("127.0.0.9", 8600)]
    assert cfg.https_addrs() == [] and cfg.grpc_addrs() == []
    assert cfg.advertise() == "0.0.0.0"  # resolution of 0.0.0.0 is the agent's job
    assert load("-bind=10.1.1.1", "-advertise=10.2.2.2").advertise() == "10.2.2.2"
    assert load("-bind=10.1.1.1").advertise_wan() == "10.1.1.1"


def test_summary_has_no_secrets(tmp_path: Path) -> None:
    f = write(
        tmp_path / "acl.json",
        {
            "acl": {
                "enabled": True,
                "tokens": {"initial_management": "SECRET-1", "agent": "SECRET-2"},
            },
            "encrypt": KEY,
        },
    )
    cfg = load(f"-config-file={f}", "-node=n1", "-datacenter=dc9")
    summary = cfg.summary()
    text = json.dumps(summary)
    assert "SECRET" not in text and KEY not in text
    assert "SECRET" not in repr(cfg) and KEY not in repr(cfg)
    assert summary["Config"] == {
        "Datacenter": "dc9",
        "PrimaryDatacenter": "dc9",
        "NodeName": "n1",
        "NodeID": "",
        "Server": False,
    }
    debug = summary["DebugConfig"]
    assert debug["ACLsEnabled"] is True and debug["EncryptionEnabled"] is True
    assert debug["HTTPAddrs"] == ["127.0.0.1:8500"] and debug["LogLevel"] == "INFO"
    assert debug["RetryJoinIntervalLAN"] == "30s"


def test_config_is_frozen() -> None:
    cfg: Any = load()  # typed loosely: the assignment below is the mistake under test
    with pytest.raises(AttributeError):
        cfg.node_name = "x"


# --------------------------------------------------------------------------
# HCL files


def test_hcl_repeated_struct_blocks_merge(tmp_path: Path) -> None:
    f = write(tmp_path / "p.hcl", "ports { http = 1234 }\nports { dns = 5353 }\n")
    cfg = load(f"-config-file={f}")
    assert (cfg.ports.http, cfg.ports.dns) == (1234, 5353)


# --------------------------------------------------------------------------
# the catalogue

DOCUMENTED_KEYS = [
    "acl.enabled",
    "acl.default_policy",
    "acl.down_policy",
    "acl.enable_key_list_policy",
    "acl.enable_token_persistence",
    "acl.enable_token_replication",
    "acl.policy_ttl",
    "acl.role_ttl",
    "acl.token_ttl",
    "acl.tokens.initial_management",
    "acl.tokens.agent",
    "acl.tokens.agent_recovery",
    "acl.tokens.default",
    "acl.tokens.replication",
    "acl.tokens.dns",
    "acl.tokens.config_file_service_registration",
    "acl.tokens.master",
    "acl.tokens.agent_master",
    "addresses.dns",
    "addresses.http",
    "addresses.https",
    "addresses.grpc",
    "addresses.grpc_tls",
    "advertise_addr",
    "advertise_addr_ipv4",
    "advertise_addr_ipv6",
    "advertise_addr_wan",
    "advertise_addr_wan_ipv4",
    "advertise_addr_wan_ipv6",
    "advertise_reconnect_timeout",
    "alt_domain",
    "audit.enabled",
    "audit.sink",
    "auto_config.enabled",
    "auto_config.intro_token",
    "auto_config.server_addresses",
    "auto_config.authorization.static.bound_issuer",
    "auto_encrypt.tls",
    "auto_encrypt.allow_tls",
    "auto_reload_config",
    "autopilot.cleanup_dead_servers",
    "autopilot.max_trailing_logs",
    "autopilot.min_quorum",
    "autopilot.server_stabilization_time",
    "autopilot.redundancy_zone_tag",
    "autopilot.upgrade_version_tag",
    "autopilot.disable_upgrade_migration",
    "bind_addr",
    "bootstrap",
    "bootstrap_expect",
    "cache.entry_fetch_max_burst",
    "cache.entry_fetch_rate",
    "check",
    "checks",
    "check_output_max_size",
    "client_addr",
    "cloud.resource_id",
    "cloud.client_id",
    "cloud.client_secret",
    "config_entries.bootstrap",
    "connect.enabled",
    "connect.ca_provider",
    "connect.ca_config",
    "connect.enable_mesh_gateway_wan_federation",
    "data_dir",
    "datacenter",
    "default_query_time",
    "disable_anonymous_signature",
    "disable_coordinates",
    "disable_host_node_id",
    "disable_http_unprintable_char_filter",
    "disable_keyring_file",
    "disable_remote_exec",
    "disable_update_check",
    "discard_check_output",
    "discovery_max_stale",
    "dns_config.allow_stale",
    "dns_config.a_record_limit",
    "dns_config.disable_compression",
    "dns_config.enable_truncate",
    "dns_config.max_stale",
    "dns_config.node_ttl",
    "dns_config.only_passing",
    "dns_config.recursor_strategy",
    "dns_config.recursor_timeout",
    "dns_config.service_ttl",
    "dns_config.udp_answer_limit",
    "dns_config.enable_additional_node_meta_txt",
    "dns_config.soa.refresh",
    "dns_config.soa.min_ttl",
    "dns_config.use_cache",
    "dns_config.cache_max_age",
    "dns_config.prefer_namespace",
    "domain",
    "enable_agent_tls_for_checks",
    "enable_central_service_config",
    "enable_debug",
    "enable_local_script_checks",
    "enable_script_checks",
    "enable_syslog",
    "encrypt",
    "encrypt_verify_incoming",
    "encrypt_verify_outgoing",
    "experiments",
    "gossip_lan.gossip_nodes",
    "gossip_lan.probe_interval",
    "gossip_wan.suspicion_mult",
    "http_config.block_endpoints",
    "http_config.allow_write_http_from",
    "http_config.response_headers",
    "http_config.use_cache",
    "http_config.max_header_bytes",
    "leave_on_terminate",
    "license_path",
    "limits.http_max_conns_per_client",
    "limits.https_handshake_timeout",
    "limits.request_limits.mode",
    "limits.request_limits.read_rate",
    "limits.rpc_handshake_timeout",
    "limits.rpc_client_timeout",
    "limits.rpc_max_burst",
    "limits.rpc_max_conns_per_client",
    "limits.rpc_rate",
    "limits.kv_max_value_size",
    "limits.txn_max_req_len",
    "locality.region",
    "locality.zone",
    "log_file",
    "log_json",
    "log_level",
    "log_rotate_bytes",
    "log_rotate_duration",
    "log_rotate_max_files",
    "max_query_time",
    "node_id",
    "node_meta",
    "node_name",
    "partition",
    "peering.enabled",
    "performance.leave_drain_time",
    "performance.raft_multiplier",
    "performance.rpc_hold_timeout",
    "pid_file",
    "ports.dns",
    "ports.http",
    "ports.https",
    "ports.grpc",
    "ports.grpc_tls",
    "ports.serf_lan",
    "ports.serf_wan",
    "ports.server",
    "ports.sidecar_min_port",
    "ports.sidecar_max_port",
    "ports.expose_min_port",
    "ports.expose_max_port",
    "primary_datacenter",
    "primary_gateways",
    "primary_gateways_interval",
    "protocol",
    "raft_boltdb.no_freelist_sync",
    "raft_logstore.backend",
    "raft_logstore.disable_log_cache",
    "raft_logstore.verification.enabled",
    "raft_logstore.verification.interval",
    "raft_logstore.boltdb.no_freelist_sync",
    "raft_logstore.wal.segment_size_mb",
    "raft_protocol",
    "raft_snapshot_interval",
    "raft_snapshot_threshold",
    "raft_trailing_logs",
    "read_replica",
    "reconnect_timeout",
    "reconnect_timeout_wan",
    "recursors",
    "rejoin_after_leave",
    "reporting.license.enabled",
    "retry_interval",
    "retry_interval_wan",
    "retry_join",
    "retry_join_wan",
    "retry_max",
    "retry_max_wan",
    "rpc.enable_streaming",
    "segment",
    "segments",
    "serf_lan",
    "serf_lan_allowed_cidrs",
    "serf_wan",
    "serf_wan_allowed_cidrs",
    "server",
    "server_rejoin_age_max",
    "service",
    "services",
    "session_ttl_min",
    "skip_leave_on_interrupt",
    "snapshot_agent",
    "start_join",
    "start_join_wan",
    "syslog_facility",
    "tagged_addresses",
    "telemetry.circonus_api_token",
    "telemetry.disable_hostname",
    "telemetry.dogstatsd_addr",
    "telemetry.dogstatsd_tags",
    "telemetry.filter_default",
    "telemetry.prefix_filter",
    "telemetry.metrics_prefix",
    "telemetry.prometheus_retention_time",
    "telemetry.statsd_address",
    "telemetry.statsite_address",
    "telemetry.retry_failed_connection",
    "tls.defaults.ca_file",
    "tls.defaults.verify_incoming",
    "tls.internal_rpc.verify_server_hostname",
    "tls.https.cert_file",
    "tls.grpc.use_auto_cert",
    "translate_wan_addrs",
    "ui_config.enabled",
    "ui_config.dir",
    "ui_config.content_path",
    "ui_config.metrics_provider",
    "ui_config.metrics_provider_files",
    "ui_config.metrics_provider_options_json",
    "ui_config.metrics_proxy.base_url",
    "ui_config.metrics_proxy.add_headers",
    "ui_config.metrics_proxy.path_allowlist",
    "ui_config.dashboard_url_templates",
    "unix_sockets.user",
    "unix_sockets.group",
    "unix_sockets.mode",
    "use_streaming_backend",
    "watches",
    "xds.update_max_per_second",
    "acl_agent_master_token",
    "acl_agent_token",
    "acl_datacenter",
    "acl_default_policy",
    "acl_down_policy",
    "acl_master_token",
    "acl_replication_token",
    "acl_token",
    "acl_ttl",
    "enable_acl_replication",
    "ca_file",
    "ca_path",
    "cert_file",
    "key_file",
    "tls_min_version",
    "tls_cipher_suites",
    "tls_prefer_server_cipher_suites",
    "verify_incoming",
    "verify_incoming_rpc",
    "verify_incoming_https",
    "verify_outgoing",
    "verify_server_hostname",
    "non_voting_server",
    "ui",
    "ui_dir",
    "ui_content_path",
]


@pytest.mark.parametrize("dotted", DOCUMENTED_KEYS)
def test_catalogue_knows_consul_keys(dotted: str) -> None:
    assert config_keys.lookup(dotted) is not None


def test_catalogue_renames_point_at_known_keys() -> None:
    for old, new in config_keys.RENAMED.items():
        assert config_keys.lookup(old) is not None, old
        assert config_keys.lookup(new) is not None, new
    for dotted in config_keys.IMPLEMENTED:
        assert config_keys.lookup(dotted) is not None, dotted


def test_every_flag_maps_to_a_known_key() -> None:
    for name, flag in FLAGS.items():
        if flag.key:
            assert config_keys.lookup(flag.key) is not None, name


def test_value_flags_take_the_next_argument_even_if_it_looks_like_a_flag() -> None:
    cfg = load("-http-port", "-1", "-node", "-odd-name")
    assert (cfg.ports.http, cfg.node_name) == (-1, "-odd-name")


def test_port_zero_means_disabled() -> None:
    assert load("-https-port=0").ports.https == -1


def test_sockaddr_templates_are_kept_for_the_agent() -> None:
    template = '{{ GetInterfaceIP "eth0" }}'
    assert load(f"-bind={template}").bind_addr == template


def test_config_file_flag_accepts_a_directory(tmp_path: Path) -> None:
    write(tmp_path / "a.json", {"node_name": "from-dir"})
    assert load(f"-config-file={tmp_path}").node_name == "from-dir"


def test_unix_socket_client_addr() -> None:
    # DNS cannot listen on a unix socket (Consul refuses the config), so it is off here.
    cfg = load("-client=unix:///tmp/consul.sock 127.0.0.1", "-dns-port=-1")
    assert cfg.http_addrs() == [("unix:///tmp/consul.sock", 8500), ("127.0.0.1", 8500)]
