"""The sync engine against the in-memory Consul double and an in-memory source."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gitkv.errors import ClusterError
from gitkv.watch.log import EventLog
from gitkv.watch.loop import SyncEngine
from gitkv.watch.metrics import Metrics
from gitkv.watch.source import Revision, SourceError
from tests.unit.test_plan_fake_consul import ADDRESS, FakeConsul


class DictSource:
    """Revisions are spec texts; `head` is the newest."""

    description = "memory"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.revs: dict[str, str] = {}
        self.parents: dict[str, str] = {}
        self.head = ""

    def commit(self, rev_id: str, text: str) -> str:
        self.revs[rev_id] = text
        self.parents[rev_id] = self.head
        self.head = rev_id
        return rev_id

    def reset(self, rev_id: str) -> None:
        """Move the branch to `rev_id` (`git reset --hard`, or a force-push)."""
        self.head = rev_id

    def descends(self, old: str, new: str) -> bool:
        while new:
            if new == old:
                return True
            new = self.parents.get(new, "")
        return False

    def fetch(self) -> str:
        return self.head

    def has_revision(self, rev_id: str) -> bool:
        return rev_id in self.revs

    def history(self, rev_id: str, limit: int = 20) -> list[str]:
        return [rev_id]

    def materialize(self, rev_id: str) -> Revision:
        if rev_id not in self.revs:
            raise SourceError(f"no revision {rev_id}")
        path = self.root / rev_id
        path.mkdir(exist_ok=True)
        (path / "gitkv.yaml").write_text(self.revs[rev_id])
        return Revision(rev_id, path)

    def close(self) -> None:
        pass


def spec(kv: dict[str, str], prune: bool = False) -> str:
    lines = ["version: 1", "name: t", f"prune: {str(prune).lower()}", "datacenters:", "  dc1:"]
    lines += [f"    address: {ADDRESS}", "    kv_prefixes: [app/]", "    kv:"]
    lines += [f"      {k}: {json.dumps(v)}" for k, v in kv.items()] or ["      {}"]
    return "\n".join(lines).replace("    kv:\n      {}", "    kv: {}") + "\n"


@pytest.fixture
def env(tmp_path: Path) -> tuple[FakeConsul, DictSource, io.StringIO]:
    return FakeConsul(), DictSource(tmp_path), io.StringIO()


def engine(fake: FakeConsul, source: DictSource, out: io.StringIO, **kw) -> SyncEngine:
    return SyncEngine(
        source,
        log=EventLog(out),
        metrics=Metrics(),
        client_factory=lambda address: fake.client(address or ADDRESS),
        **kw,
    )


def status(fake: FakeConsul) -> dict:
    return json.loads(fake.value("gitkv/status/t") or b"{}")


def ledger(fake: FakeConsul) -> dict:
    return json.loads(fake.value("gitkv/state/t") or b"{}")


def test_new_commit_is_applied_and_recorded(env) -> None:
    fake, source, out = env
    eng = engine(fake, source, out)
    source.commit("c1", spec({"app/a": "1"}))
    outcome = eng.poll()
    assert outcome is not None and outcome.state == "applied" and outcome.changes == 1
    assert fake.value("app/a") == b"1"
    assert ledger(fake)["revision"] == "c1"
    assert status(fake)["commit"] == "c1" and status(fake)["state"] == "applied"
    assert eng.poll() is None  # nothing new
    assert eng.metrics.get("watch_commits_applied_total") == 1


def test_a_reset_branch_is_logged_and_its_tip_applied_as_the_truth(env) -> None:
    fake, source, out = env
    eng = engine(fake, source, out)
    source.commit("c1", spec({"app/a": "1"}))
    eng.poll()
    source.commit("c2", spec({"app/a": "2"}))
    eng.poll()
    assert "history_rewritten" not in out.getvalue()  # c2 follows c1: a plain new commit
    assert fake.value("app/a") == b"2"
    source.reset("c1")  # back to an older commit: it is applied again
    outcome = eng.poll()
    assert outcome is not None and outcome.state == "applied"
    assert fake.value("app/a") == b"1" and ledger(fake)["revision"] == "c1"
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    rewritten = [e for e in events if e["event"] == "history_rewritten"]
    assert len(rewritten) == 1
    assert rewritten[0]["previous"] == "c2" and rewritten[0]["commit"] == "c1"
    assert eng.metrics.get("watch_history_rewrites_total") == 1
    # A force-push of an unrelated commit: logged once more and applied.
    source.parents["x9"] = ""
    source.revs["x9"] = spec({"app/a": "9"})
    source.reset("x9")
    assert eng.poll() is not None and fake.value("app/a") == b"9"
    assert eng.metrics.get("watch_history_rewrites_total") == 2
    assert eng.poll() is None and eng.metrics.get("watch_history_rewrites_total") == 2


def test_restart_on_the_recorded_commit_writes_nothing(env) -> None:
    fake, source, out = env
    source.commit("c1", spec({"app/a": "1"}))
    engine(fake, source, out).poll()
    fake.calls.clear()
    outcome = engine(fake, source, out).poll()
    assert outcome is not None and outcome.state == "in_sync"
    assert ("PUT", "/v1/txn") not in fake.calls


def test_invalid_commit_keeps_the_last_good_state(env) -> None:
    fake, source, out = env
    eng = engine(fake, source, out)
    source.commit("c1", spec({"app/a": "1"}))
    eng.poll()
    source.commit("c2", spec({"app/a": "2"}) + "bogus: 1\n")
    outcome = eng.poll()
    assert outcome is not None and outcome.state == "invalid"
    assert "bogus" in status(fake)["message"] and status(fake)["state"] == "invalid"
    assert fake.value("app/a") == b"1" and ledger(fake)["revision"] == "c1"
    assert eng.last_applied == "c1"
    assert eng.metrics.get("watch_failures_total", state="invalid") == 1
    assert eng.poll() is None  # an invalid commit is not retried
    source.commit("c3", spec({"app/a": "3"}))
    assert eng.poll().state == "applied" and fake.value("app/a") == b"3"


def test_guard_refusal_is_reported(env) -> None:
    fake, source, out = env
    eng = engine(fake, source, out)
    source.commit("c1", spec({"app/a": "1", "app/b": "2"}))
    eng.poll()
    source.commit("c2", spec({}, prune=True))
    outcome = eng.poll()
    assert outcome is not None and outcome.state == "refused"
    assert "allow-empty-prefix" in outcome.message
    assert fake.value("app/a") == b"1"


def test_drift_is_repaired_or_only_reported(env) -> None:
    fake, source, out = env
    eng = engine(fake, source, out)
    source.commit("c1", spec({"app/a": "1"}))
    eng.poll()
    assert eng.check_drift("test") == 0
    fake.put("app/a", b"hand")
    assert eng.check_drift("test") == 1
    assert fake.value("app/a") == b"1"
    assert eng.metrics.get("watch_drift_repairs_total") == 1

    reporter = engine(fake, source, out, self_heal=False)
    reporter.poll()
    fake.put("app/a", b"hand")
    assert reporter.check_drift("test") == 1
    assert fake.value("app/a") == b"hand"
    drift = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["action"] for d in drift if d["event"] == "drift"] == ["repair", "report"]


def test_unreachable_cluster_fails_and_is_retried(env) -> None:
    fake, source, out = env

    def broken(address):
        raise ClusterError("cannot reach Consul")

    eng = SyncEngine(source, log=EventLog(out), metrics=Metrics(), client_factory=broken)
    source.commit("c1", spec({"app/a": "1"}))
    assert eng.poll().state == "failed"
    assert eng.poll().state == "failed"  # `failed` is not final: the next poll retries
    assert eng.kv_prefixes == ()
