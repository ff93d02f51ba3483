"""`gitkv plan` / `gitkv apply` end to end against a real `gitkv agent -dev` process.

One agent per module on a random 127.0.0.x address; every test works under its own ledger
name and KV prefix so tests do not see each other's keys.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gitkv.commands import run

NODE = "e2e-node"


@dataclass(frozen=True)
class Agent:
    ip: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def put(self, key: str, value: str) -> None:
        assert httpx.put(f"{self.url}/v1/kv/{key}", content=value.encode()).json() is True

    def get(self, key: str) -> str | None:
        r = httpx.get(f"{self.url}/v1/kv/{key}", params={"raw": ""})
        return r.text if r.status_code == 200 else None

    def keys(self, prefix: str) -> list[str]:
        r = httpx.get(f"{self.url}/v1/kv/{prefix}", params={"keys": ""})
        return r.json() if r.status_code == 200 else []


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    ip = f"127.0.0.{random.randint(100, 250)}"
    port = _free_port(ip)
    log = (tmp_path_factory.mktemp("agent") / "agent.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitkv", "agent", "-dev", f"-http-port={port}",
         f"-bind={ip}", f"-client={ip}", f"-node={NODE}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    a = Agent(ip, port)
    try:
        for _ in range(300):  # bounded wait for a leader (at most ~30 s)
            try:
                if httpx.get(f"{a.url}/v1/status/leader", timeout=1).json():
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert proc.poll() is None, "agent exited early; see agent.log"
            time.sleep(0.1)
        else:
            pytest.fail("agent did not elect itself leader")
        yield a
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CONSUL_HTTP_ADDR",
        "CONSUL_HTTP_TOKEN",
        "CONSUL_HTTP_TOKEN_FILE",
        "CONSUL_HTTP_SSL",
    ):
        monkeypatch.delenv(name, raising=False)


def gitkv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def write_spec(directory: Path, agent: Agent, name: str, kv: str, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spec.yaml").write_text(
        f"version: 1\nname: {name}\ndatacenters:\n  dc1:\n    address: {agent.url}\n"
        f"    kv_prefixes: [{name}/]\n    kv:\n{kv}{extra}"
    )
    return directory / "spec.yaml"


def test_round_trip_with_spec_directory_and_file_values(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "files").mkdir()
    (spec / "files" / "web.json").write_text('{"replicas": 3}\n')
    (spec / "10-main.yaml").write_text(
        f"version: 1\nname: rt\ndatacenters:\n  dc1:\n    address: {agent.url}\n"
        "    kv_prefixes: [rt/]\n    kv:\n"
        '      rt/web/replicas: "3"\n'
        "      rt/web/config.json: {file: files/web.json}\n"
    )
    (spec / "20-more.yaml").write_text(
        "version: 1\ndatacenters:\n  dc1:\n    kv:\n      rt/web/banner: {value: hello, flags: 42}\n"
    )
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 2
    assert "Plan: 3 to add, 0 to change, 0 to destroy." in out
    code, out, _ = gitkv(capsys, "apply", str(spec), "--auto-approve")
    assert code == 0, out
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in out
    assert agent.get("rt/web/config.json") == '{"replicas": 3}\n'
    flags = httpx.get(f"{agent.url}/v1/kv/rt/web/banner").json()[0]["Flags"]
    assert flags == 42
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 0 and "No changes." in out
    code, out, _ = gitkv(capsys, "apply", str(spec), "--auto-approve")
    assert code == 0 and "No changes." in out
    ledger = json.loads(agent.get("gitkv/state/rt") or "{}")
    assert ledger["managed"]["kv"] == ["rt/web/banner", "rt/web/config.json", "rt/web/replicas"]
    # A change in a file-backed value shows as an update.
    (spec / "files" / "web.json").write_text('{"replicas": 4}\n')
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 2 and "~ kv rt/web/config.json" in out


def test_stale_plan_file_is_refused_after_a_concurrent_write(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kv = '      st/a: "1"\n      st/b: "1"\n'
    spec = write_spec(tmp_path, agent, "st", kv)
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    write_spec(tmp_path, agent, "st", '      st/a: "2"\n      st/b: "2"\n')
    planfile = tmp_path / "plan.json"
    code, out, _ = gitkv(capsys, "plan", str(spec), "-out", str(planfile))
    assert code == 0 and planfile.exists()
    agent.put("st/b", "concurrent")
    code, _, err = gitkv(capsys, "apply", str(planfile), "--auto-approve")
    assert code == 1
    assert "cluster changed since the plan" in err and "st/b" in err
    assert agent.get("st/a") == "1"  # same batch: nothing applied
    assert agent.get("st/b") == "concurrent"
    # A fresh plan from the spec applies fine.
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    assert agent.get("st/b") == "2"


def test_prune_rules_and_guards(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, agent, "pr", '      pr/a: "1"\n      pr/b: "1"\n      pr/c: "1"\n')
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    agent.put("pr/manual", "hands off")
    write_spec(tmp_path, agent, "pr", '      pr/a: "1"\n')

    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 0  # without --prune nothing is deleted
    assert "use --prune to delete" in out and "kv pr/b" in out
    assert "Unmanaged" in out and "kv pr/manual" in out

    code, _, err = gitkv(
        capsys, "apply", str(spec), "--auto-approve", "--prune", "--max-deletes", "1"
    )
    assert code == 1 and "max-deletes 1" in err
    assert agent.get("pr/b") == "1"

    code, out, _ = gitkv(capsys, "apply", str(spec), "--auto-approve", "--prune")
    assert code == 0 and "2 destroyed" in out
    assert sorted(agent.keys("pr/")) == ["pr/a", "pr/manual"]

    # A spec that would leave the prefix empty is refused unless explicitly allowed.
    httpx.delete(f"{agent.url}/v1/kv/pr/manual")
    spec.write_text(
        f"version: 1\nname: pr\ndatacenters:\n  dc1:\n    address: {agent.url}\n"
        "    kv_prefixes: [pr/]\n"
    )
    code, _, err = gitkv(capsys, "apply", str(spec), "--auto-approve", "--prune")
    assert code == 1 and "allow-empty-prefix" in err
    assert agent.get("pr/a") == "1"
    flags = ("--auto-approve", "--prune", "--allow-empty-prefix")
    assert gitkv(capsys, "apply", str(spec), *flags)[0] == 0
    assert agent.keys("pr/") == []


def test_apply_without_terminal_or_auto_approve_refuses(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, agent, "tty", '      tty/a: "1"\n')
    code, _, err = gitkv(capsys, "apply", str(spec))
    assert code == 1
    assert "--auto-approve" in err
    assert agent.get("tty/a") is None


def test_json_and_markdown_outputs(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, agent, "fmt", '      fmt/a: "1"\n      fmt/b: two\n')
    code, out, _ = gitkv(capsys, "plan", str(spec), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["summary"] == {"create": 2, "update": 0, "delete": 0}
    assert {c["id"] for c in doc["plans"][0]["changes"]} == {"fmt/a", "fmt/b"}
    code, out, _ = gitkv(capsys, "plan", str(spec), "--markdown", "--detailed-exitcode")
    assert code == 2
    assert "**2 to add, 0 to change, 0 to destroy.**" in out
    assert '+ kv fmt/b = "two"' in out


def test_targeted_plan_and_apply_touch_only_the_targets(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path, agent, "tgt", '      tgt/a: "1"\n      tgt/b: "1"\n      tgt/c/d: "1"\n'
    )
    code, out, err = gitkv(capsys, "plan", str(spec), "--target", "kv/tgt/a", "--json")
    assert code == 0, err
    assert "Warning: partial plan (--target kv/tgt/a)" in err
    (p,) = json.loads(out)["plans"]
    assert [c["id"] for c in p["changes"]] == ["tgt/a"] and p["targets"] == ["kv/tgt/a"]
    planfile = tmp_path / "partial.json"
    code, _, err = gitkv(capsys, "plan", str(spec), "--target", "kv/tgt/a", "-out", str(planfile))
    assert code == 0, err
    code, out, err = gitkv(capsys, "apply", str(planfile), "--auto-approve")
    assert code == 0, err
    assert "the saved plan is partial (kv/tgt/a)" in err
    assert "1 added" in out
    assert agent.get("tgt/a") == "1" and agent.get("tgt/b") is None
    # apply --target on the spec: a KV folder.
    code, out, err = gitkv(capsys, "apply", str(spec), "--target", "kv/tgt/c/", "--auto-approve")
    assert code == 0, err
    assert agent.keys("tgt/") == ["tgt/a", "tgt/c/d"]
    # The ledger took only what was applied, and the rest is still to do.
    ledger = json.loads(agent.get("gitkv/state/tgt") or "{}")
    assert ledger["managed"]["kv"] == ["tgt/a", "tgt/c/d"]
    code, out, _ = gitkv(capsys, "plan", str(spec), "--json")
    assert [c["id"] for c in json.loads(out)["plans"][0]["changes"]] == ["tgt/b"]
    code, _, err = gitkv(capsys, "plan", str(spec), "--target", "nope/x")
    assert code == 1 and "unknown kind 'nope'" in err


def test_markdown_plan_flags_deletes_and_collapses_long_diffs(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = "".join(f"line {i}\n" for i in range(40))
    agent.put("mdr/big", old)
    spec = write_spec(
        tmp_path, agent, "mdr", '      mdr/big: {file: big.txt}\n      mdr/gone: "x"\n'
    )
    (tmp_path / "big.txt").write_text(old)
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    (tmp_path / "big.txt").write_text(old.replace("line 1", "LINE 1"))
    spec.write_text(spec.read_text().replace('      mdr/gone: "x"\n', ""))
    code, out, err = gitkv(capsys, "plan", str(spec), "--markdown", "--prune")
    assert code == 0, err
    assert "> [!CAUTION]" in out and "`kv mdr/gone` — **destroyed**" in out
    assert "<details><summary><code>~ kv mdr/big</code>" in out
    assert "#### Datacenter `dc1` — 0 to add, 1 to change, 1 to destroy" in out
    assert "**kv** — 0 to add, 1 to change, 1 to destroy" in out


def test_secret_reference_is_masked_and_never_saved(
    agent: Agent,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "6c1d9a4e-e2e-secret-value"
    monkeypatch.setenv("SEC_TOKEN", secret)
    extra = (
        "    acl:\n"
        '      policies: {sec-read: {rules: \'key_prefix "sec/" { policy = "read" }\'}}\n'
        "      tokens: {sec: {policies: [sec-read], secret: {env: SEC_TOKEN}}}\n"
    )
    spec = write_spec(tmp_path, agent, "sec", '      sec/a: "1"\n', extra)
    planfile = tmp_path / "plan.json"
    outputs = [
        gitkv(capsys, "plan", str(spec), "-out", str(planfile)),
        gitkv(capsys, "plan", str(spec), "--json"),
        gitkv(capsys, "plan", str(spec), "--markdown"),
        gitkv(capsys, "apply", str(planfile), "--auto-approve"),
    ]
    for code, out, err in outputs:
        assert code == 0, err
        assert secret not in out and secret not in err
    assert secret not in planfile.read_text()
    assert secret not in (agent.get("gitkv/state/sec") or "")


def test_services_on_the_agent_round_trip(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = (
        f"    agents:\n      {NODE}: {{server: true, bind: {agent.ip}, ports: {{http: {agent.port}}}}}\n"
        "    services:\n"
        f"      - {{name: e2e-web, agent: {NODE}, port: 8080, tags: [v1],\n"
        f'         checks: [{{http: "http://{agent.ip}:1/health", interval: 10s}}, {{ttl: 30s}}]}}\n'
    )
    spec = write_spec(tmp_path, agent, "svc", '      svc/a: "1"\n', extra)
    code, out, _ = gitkv(capsys, "apply", str(spec), "--auto-approve")
    assert code == 0, out
    services = httpx.get(f"{agent.url}/v1/agent/services").json()
    assert services["e2e-web"]["Port"] == 8080
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 0 and "No changes." in out
    # Changing only a check's URL is seen (through the digest gitkv stores in the meta).
    spec.write_text(spec.read_text().replace(":1/health", ":2/health"))
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 2 and f"~ service {NODE}/e2e-web" in out


def test_batched_apply_of_many_keys(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kv = "".join(f'      many/k{i:04d}: "v{i}"\n' for i in range(300))
    spec = write_spec(tmp_path, agent, "many", kv)
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    assert len(agent.keys("many/")) == 300
    code, out, _ = gitkv(capsys, "plan", str(spec), "--detailed-exitcode")
    assert code == 0, out


def test_unreachable_cluster_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip = "127.0.0.99"
    port = _free_port(ip)
    dead = Agent(ip, port)
    spec = write_spec(tmp_path, dead, "dead", '      dead/a: "1"\n')
    code, _, err = gitkv(capsys, "plan", str(spec))
    assert code == 1
    assert f"cannot reach Consul at http://{ip}:{port}" in err


def test_agent_drift_is_reported_read_only(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = f"    agents:\n      ghost: {{server: true, bind: {agent.ip}}}\n"
    spec = write_spec(tmp_path, agent, "drift", '      drift/a: "1"\n', extra)
    code, out, _ = gitkv(capsys, "plan", str(spec))
    assert code == 0  # without --detailed-exitcode, changes still exit 0
    assert "Agent drift (read-only):" in out
    assert "ghost: missing" in out and f"{NODE}: unexpected" in out
    code, out, _ = gitkv(capsys, "plan", str(spec), "--json")
    drift = json.loads(out)["plans"][0]["drift"]
    assert {"agent": "ghost", "problem": "missing"} in drift


def test_external_services_in_the_catalog(
    agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def extra(port: int) -> str:
        return (
            "    external_services:\n"
            f"      - {{node: e2e-legacy, address: 127.0.0.50, services: [{{name: db, port: {port}}}]}}\n"
        )

    spec = write_spec(tmp_path, agent, "ext", '      ext/a: "1"\n', extra(5432))
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    node = httpx.get(f"{agent.url}/v1/catalog/node/e2e-legacy").json()
    assert node["Services"]["db"]["Port"] == 5432
    assert gitkv(capsys, "plan", str(spec), "--detailed-exitcode")[0] == 0
    write_spec(tmp_path, agent, "ext", '      ext/a: "1"\n', extra(5433))
    code, out, _ = gitkv(capsys, "apply", str(spec), "--auto-approve")
    assert code == 0 and "1 changed" in out
    assert (
        httpx.get(f"{agent.url}/v1/catalog/node/e2e-legacy").json()["Services"]["db"]["Port"]
        == 5433
    )
    # Dropped from the spec: kept without --prune, deregistered with it.
    write_spec(tmp_path, agent, "ext", '      ext/a: "1"\n')
    assert gitkv(capsys, "apply", str(spec), "--auto-approve")[0] == 0
    assert httpx.get(f"{agent.url}/v1/catalog/node/e2e-legacy").json() is not None
    assert gitkv(capsys, "apply", str(spec), "--auto-approve", "--prune")[0] == 0
    assert httpx.get(f"{agent.url}/v1/catalog/node/e2e-legacy").json() is None
