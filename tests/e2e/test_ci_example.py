"""The example pipeline users copy (examples/ci/gitkv-plan.yml), run for real.

The workflow is parsed with ruamel and each job's `run:` steps are executed with bash (as
GitHub's `shell: bash` does: `-eo pipefail`) in a checkout-like temp dir, with the workflow's
env (secrets substituted) and a `$GITHUB_STEP_SUMMARY` file, against an agent started with
`gitkv up`. Steps that need the network (`uses:` actions, the `pip install` step) are skipped:
gitkv is already installed here.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.e2e.watchkit import UpCluster, clean_env

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "ci" / "gitkv-plan.yml"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")

SPEC = """\
version: 1
datacenters:
  dc1:
    kv_prefixes: [ci/]
    kv:
      ci/app/replicas: "3"
      ci/app/banner: {value: hello, flags: 7}
      ci/app/mode: blue
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    c = UpCluster(tmp_path_factory.mktemp("ci-cluster")).up()
    try:
        yield c
    finally:
        c.down()


def load_workflow() -> dict[str, Any]:
    return YAML(typ="safe").load(WORKFLOW.read_text())


def substitute(value: str, secrets: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        assert expr.startswith("secrets."), f"unexpected expression in env: {expr}"
        return secrets[expr.removeprefix("secrets.")]

    return EXPR.sub(one, str(value))


class Runner:
    """Runs one job's `run:` steps like a GitHub runner would (minus the network)."""

    def __init__(self, workspace: Path, secrets: dict[str, str]) -> None:
        self.workflow = load_workflow()
        self.workspace = workspace
        self.secrets = secrets
        self.summary = workspace.parent / "step-summary.md"

    def env(self, job: dict[str, Any], step: dict[str, Any], event: str) -> dict[str, str]:
        env = clean_env(
            GITHUB_ACTIONS="true",
            GITHUB_WORKSPACE=str(self.workspace),
            GITHUB_EVENT_NAME=event,
            GITHUB_STEP_SUMMARY=str(self.summary),
            NO_COLOR="1",
        )
        for scope in (self.workflow.get("env"), job.get("env"), step.get("env")):
            env.update({k: substitute(v, self.secrets) for k, v in (scope or {}).items()})
        return env

    def run_job(self, name: str, event: str) -> list[subprocess.CompletedProcess[str]]:
        """Run the job's steps in order; stop at the first failing one (as Actions does)."""
        job = self.workflow["jobs"][name]
        shell = (self.workflow.get("defaults") or {}).get("run", {}).get("shell")
        assert shell == "bash"
        results = []
        for step in job["steps"]:
            if "run" not in step or step.get("id") == "install":
                continue
            assert "${{" not in step["run"], "run commands take values from env, not expressions"
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=self.workspace,
                env=self.env(job, step, event),
                capture_output=True,
                text=True,
                timeout=120,
            )
            results.append(done)
            if done.returncode != 0:
                break
        return results


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "checkout"
    (ws / "gitkv").mkdir(parents=True)
    (ws / "gitkv" / "gitkv.yaml").write_text(SPEC)
    return ws


def test_workflow_shape() -> None:
    wf = load_workflow()
    assert set(wf["on"]) == {"pull_request", "push"}
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["jobs"]["plan"]["if"] == "github.event_name == 'pull_request'"
    assert "refs/heads/main" in wf["jobs"]["apply"]["if"]
    assert set(wf["env"]) >= {"CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "GITKV_SPEC"}
    plan_steps = wf["jobs"]["plan"]["steps"]
    comment = next(s for s in plan_steps if "github-script" in s.get("uses", ""))
    assert "gitkv-plan.md" in comment["with"]["script"]
    runs = " ".join(s.get("run", "") for s in plan_steps)
    assert "validate --format github" in runs and "plan --markdown" in runs
    assert "--auto-approve" in " ".join(s.get("run", "") for s in wf["jobs"]["apply"]["steps"])


def test_pull_request_then_merge_against_a_real_agent(cluster: UpCluster, workspace: Path) -> None:
    runner = Runner(workspace, {"CONSUL_HTTP_ADDR": cluster.url, "CONSUL_HTTP_TOKEN": ""})

    # Pull request: validate + plan; the Markdown plan lands in the step summary.
    results = runner.run_job("plan", "pull_request")
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    summary = runner.summary.read_text()
    assert "3 to add, 0 to change, 0 to destroy" in summary
    assert "ci/app/replicas" in summary
    assert (workspace / "gitkv-plan.md").read_text() in summary
    assert cluster.kv("ci/app/replicas") is None  # planning changes nothing

    # Merge: validate + apply.
    results = runner.run_job("apply", "push")
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert "Apply complete! Resources: 3 added" in results[-1].stdout
    assert "Apply complete!" in runner.summary.read_text()
    assert cluster.kv("ci/app/replicas") == "3" and cluster.kv("ci/app/mode") == "blue"

    # The next pull request changes one key: the plan says exactly that.
    spec = workspace / "gitkv" / "gitkv.yaml"
    spec.write_text(SPEC.replace("mode: blue", "mode: green"))
    runner.summary.write_text("")
    results = runner.run_job("plan", "pull_request")
    assert [r.returncode for r in results] == [0, 0]
    assert "0 to add, 1 to change, 0 to destroy" in runner.summary.read_text()


def test_an_invalid_spec_fails_the_pipeline_with_annotations(
    cluster: UpCluster, workspace: Path
) -> None:
    (workspace / "gitkv" / "gitkv.yaml").write_text(SPEC + "    bogus: 1\n")
    runner = Runner(workspace, {"CONSUL_HTTP_ADDR": cluster.url, "CONSUL_HTTP_TOKEN": ""})
    results = runner.run_job("plan", "pull_request")
    assert len(results) == 1 and results[0].returncode == 1  # stops at validate
    assert "::error file=gitkv/gitkv.yaml,line=9,col=5::unknown field" in results[0].stdout
    assert not os.path.exists(workspace / "gitkv-plan.md")
