"""`gitkv validate` as a user runs it: a real process, exact output and exit codes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gitkv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitkv", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(base: Path, name: str, text: str) -> None:
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


BAD = """
    version: 1
    datacenters:
      shenzhen:
        agents:
          node4: {bind: 127.0.0.14}
        kv:
          app/web/replicas: 3
          app/web/config.json: {file: files/web.json}
        services:
          - name: web
            agent: node5
            checks: [{http: "http://127.0.0.14:8080/health", interval: 10}]
        acl:
          policies:
            web-read: {rules: 'key_prefix "app/web/" { policy = "reed" }'}
          tokens:
            web: {policies: [web-read, admin], secret: {env: WEB_TOKEN}}
"""

BAD_TEXT = [
    'spec.yaml:7:25: a KV value must be a string (quote numbers and booleans, e.g. "3"), '
    "or one of {value: ...}, {file: ...}, {json: ...}",
    "spec.yaml:8:35: file 'files/web.json' not found (looked for files/web.json)",
    "spec.yaml:11:16: unknown agent 'node5' (agents of 'shenzhen': node4)",
    "spec.yaml:12:68: interval: expected a duration such as 10s or 1m30s, got 10",
    "spec.yaml:15:61: ACL rules: invalid policy 'reed' for key_prefix (one of read, write, deny, list)",
    "spec.yaml:17:36: unknown policy 'admin' (defined: web-read)",
]


def test_errors_with_exact_positions(tmp_path: Path) -> None:
    write(tmp_path, "spec.yaml", BAD)
    result = gitkv("validate", "spec.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == BAD_TEXT
    assert result.stderr == "spec.yaml: 6 errors\n"


def test_github_annotations(tmp_path: Path) -> None:
    write(tmp_path, "spec.yaml", BAD)
    result = gitkv("validate", "--format", "github", "spec.yaml", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert lines[2] == (
        "::error file=spec.yaml,line=11,col=16::unknown agent 'node5' (agents of 'shenzhen': node4)"
    )
    assert all(line.startswith("::error file=spec.yaml,line=") for line in lines)


def test_fixing_the_spec_makes_it_pass(tmp_path: Path) -> None:
    fixed = (
        BAD.replace("replicas: 3", 'replicas: "3"')
        .replace("node5", "node4")
        .replace("interval: 10}", "interval: 10s}")
        .replace('"reed"', '"read"')
        .replace("web-read, admin", "web-read, global-management")
    )
    write(tmp_path, "spec.yaml", fixed)
    write(tmp_path, "files/web.json", "{}")
    result = gitkv("validate", "spec.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (
        "OK: spec.yaml: 1 datacenter, 1 agent, 2 KV keys, 1 service, 1 ACL policy, 1 ACL token\n"
    )
    assert result.stderr == ""


def test_directory_spec_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, "spec/a.yaml", "version: 1\ndatacenters:\n  dc1:\n    kv: {app/x: '1'}\n")
    write(tmp_path, "spec/b.yaml", "version: 1\ndatacenters:\n  dc1:\n    kv:\n      app/x: '2'\n")
    result = gitkv("validate", "spec", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stdout
        == "spec/b.yaml:5:7: duplicate kv key 'app/x' (first defined at spec/a.yaml:4:10)\n"
    )


def test_yaml_duplicate_key_and_syntax_error(tmp_path: Path) -> None:
    write(tmp_path, "dup.yaml", "version: 1\ndatacenters:\n  dc1: {}\nversion: 1\n")
    result = gitkv("validate", "dup.yaml", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (
        1,
        "dup.yaml:4:1: duplicate key 'version' in the same mapping (mapping starts at line 1)\n",
    )
    write(tmp_path, "broken.yaml", "version: 1\ndatacenters: [\n")
    result = gitkv("validate", "broken.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("broken.yaml:3:1: ")


def test_missing_spec_and_usage_errors(tmp_path: Path) -> None:
    result = gitkv("validate", "nope.yaml", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Error: spec nope.yaml not found\n"
    assert gitkv("validate", cwd=tmp_path).returncode == 2
    assert gitkv("validate", "x", "--format", "xml", cwd=tmp_path).returncode == 2


def test_examples_are_valid() -> None:
    for name in ("quickstart", "shenzhen", "mesh"):
        result = gitkv("validate", f"examples/{name}", cwd=ROOT)
        assert result.returncode == 0, result.stdout
        assert result.stdout.startswith(f"OK: examples/{name}: 1 datacenter, ")
