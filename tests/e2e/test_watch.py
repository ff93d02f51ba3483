"""`gitkv watch` end to end: a real Git repository, a real cluster from `gitkv up`.

Each test uses its own spec `name:` (ledger `gitkv/state/<name>`, lock `gitkv/lock/<name>`,
status `gitkv/status/<name>`) and KV prefix, so they share one cluster without interfering.
No test asserts on time; the commit-to-applied latency is printed (`pytest -s`) for the notes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import git
import httpx
import pytest

from tests.e2e.agentproc import free_port, port_busy
from tests.e2e.watchkit import (
    SpecRepo,
    UpCluster,
    WatchProc,
    clean_env,
    eventually,
    github_push,
    gitkv,
    pid_alive,
    spec_text,
)

SECRET = "push-secret-for-tests"
# The seed's topology on addresses of its own (the seed's 127.0.0.11-14 are used by the
# agent's cluster tests, which may run at the same time on a shared box).
SEED_IPS = ("127.0.0.171", "127.0.0.172", "127.0.0.173", "127.0.0.174")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    c = UpCluster(tmp_path_factory.mktemp("watch-cluster")).up()
    try:
        yield c
    finally:
        pids = c.down()
        assert pids and not any(pid_alive(p) for p in pids)


@pytest.fixture
def watchers() -> Iterator[list[WatchProc]]:
    procs: list[WatchProc] = []
    yield procs
    for w in procs:
        w.kill()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(cluster: UpCluster, name: str) -> dict:
    return cluster.json_key(f"gitkv/status/{name}") or {}


def _status_is(cluster: UpCluster, name: str, commit: str, state: str):
    def check():
        st = _status(cluster, name)
        return st if st.get("commit") == commit and st.get("state") == state else None

    return check


def test_commits_are_applied_drift_repaired_invalid_commit_kept_out(
    cluster: UpCluster, tmp_path: Path, watchers: list[WatchProc]
) -> None:
    name = "wmain"
    repo = SpecRepo(tmp_path / "repo")
    good1 = {f"{name}/a": "1", f"{name}/b": "x"}
    sha1 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, good1)}, "first")
    port = free_port()
    w = WatchProc(
        tmp_path / "watch.log",
        repo.url,
        "--branch", "main",
        "--interval", "60s",  # only the webhook triggers fetches after the first
        "--listen", f"127.0.0.1:{port}",
        "--webhook-secret-env", "GITKV_TEST_SECRET",
        "--cache-dir", str(tmp_path / "cache"),
        env=clean_env(GITKV_TEST_SECRET=SECRET),
    )  # fmt: skip
    watchers.append(w)
    hook = f"http://127.0.0.1:{port}/"
    eventually(_status_is(cluster, name, sha1, "applied"), what="first commit applied")
    assert cluster.kv(f"{name}/a") == "1"
    ledger = cluster.json_key(f"gitkv/state/{name}")
    assert ledger and ledger["revision"] == sha1

    # A new commit, announced by a signed push webhook, is applied.
    sha2 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {**good1, f"{name}/a": "2"})})
    started = time.monotonic()
    assert github_push(hook, SECRET).status_code == 202
    eventually(lambda: cluster.kv(f"{name}/a") == "2", what="second commit applied")
    latency = time.monotonic() - started
    print(f"\nwatch: push webhook -> applied in {latency * 1000:.0f} ms")
    eventually(_status_is(cluster, name, sha2, "applied"), what="status of the second commit")

    # Bad or missing signatures are refused and trigger nothing.
    assert github_push(hook, "wrong-secret").status_code == 401
    assert github_push(hook, SECRET, sign=False).status_code == 401

    # A hand edit of a managed key is reverted (blocking query -> plan -> apply).
    cluster.put(f"{name}/b", "edited by hand")
    eventually(lambda: cluster.kv(f"{name}/b") == "x", what="hand edit reverted")
    w.wait_event(lambda e: e["event"] == "drift" and f"kv:{name}/b" in e["ids"], what="drift")

    # An invalid commit changes nothing; the status key says why.
    bad = spec_text(name, cluster.url, {f"{name}/a": "3"}) + "surprise: true\n"
    sha3 = repo.commit({"gitkv.yaml": bad}, "broken")
    assert github_push(hook, SECRET).status_code == 202
    status = eventually(_status_is(cluster, name, sha3, "invalid"), what="invalid status")
    assert "gitkv.yaml:" in status["message"] and "surprise" in status["message"]
    assert cluster.kv(f"{name}/a") == "2"
    assert cluster.json_key(f"gitkv/state/{name}")["revision"] == sha2
    # Drift is still repaired towards the last good commit meanwhile.
    cluster.put(f"{name}/a", "edited again")
    eventually(lambda: cluster.kv(f"{name}/a") == "2", what="repair towards the last good")

    # The next good commit goes on.
    sha4 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {**good1, f"{name}/a": "4"})})
    assert github_push(hook, SECRET).status_code == 202
    eventually(_status_is(cluster, name, sha4, "applied"), what="fourth commit applied")
    assert cluster.kv(f"{name}/a") == "4"

    metrics = httpx.get(f"{hook}metrics").text
    for line in (
        "watch_commits_applied_total 3",
        'watch_failures_total{state="invalid"} 1',
        "watch_is_leader 1",
        'watch_webhook_requests_total{result="unauthorized"} 2',
    ):
        assert line in metrics, metrics
    assert "watch_last_applied_timestamp_seconds " in metrics
    repairs = [ln for ln in metrics.splitlines() if ln.startswith("watch_drift_repairs_total ")]
    assert repairs and int(repairs[0].split()[1]) >= 2
    health = httpx.get(f"{hook}healthz").json()
    assert health["leader"] is True and health["last_applied"] == sha4

    # SIGTERM: clean exit, lock released (no session holds it).
    assert w.stop(signal.SIGTERM) == 0
    lock = cluster.kv_entry(f"gitkv/lock/{name}")
    assert lock is None or not lock.get("Session")
    events = [e["event"] for e in w.events()]
    assert events[-2:] == ["lock_released", "stop"]


def test_restart_resumes_from_the_recorded_commit(
    cluster: UpCluster, tmp_path: Path, watchers: list[WatchProc]
) -> None:
    name = "wresume"
    repo = SpecRepo(tmp_path / "repo")
    kv = {f"{name}/k": "v1"}
    sha1 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, kv)}, push=False)
    cache = str(tmp_path / "cache")
    # A local repository path (not a URL) works as a source too; --once syncs and exits.
    once = gitkv("watch", str(repo.work_path), "--once", "--cache-dir", cache, env=clean_env())
    assert once.returncode == 0, once.stderr
    entry = cluster.kv_entry(f"gitkv/state/{name}")
    assert entry is not None and cluster.json_key(f"gitkv/state/{name}")["revision"] == sha1

    # A restarted watcher finds the commit recorded and applies nothing.
    w = WatchProc(tmp_path / "w1.log", str(repo.work_path), "--cache-dir", cache)
    watchers.append(w)
    w.wait_event(lambda e: e["event"] == "in_sync" and e["commit"] == sha1, what="in_sync")
    assert cluster.kv_entry(f"gitkv/state/{name}")["ModifyIndex"] == entry["ModifyIndex"]
    assert not any(e["event"] in ("applied", "plan") for e in w.events())
    assert w.stop() == 0

    # Restarted on an invalid newest commit: the recorded commit is still the one drift
    # repair works towards.
    repo.commit({"gitkv.yaml": "version: 1\ndatacenters: [oops]\n"}, "broken", push=False)
    w2 = WatchProc(
        tmp_path / "w2.log", str(repo.work_path), "--cache-dir", cache, "--lock-name", name
    )
    watchers.append(w2)
    w2.wait_event(lambda e: e["event"] == "resume" and e["commit"] == sha1, what="resume")
    w2.wait_event(lambda e: e["event"] == "invalid", what="invalid newest commit")
    cluster.put(f"{name}/k", "hand")
    eventually(lambda: cluster.kv(f"{name}/k") == "v1", what="repaired towards the ledger's")
    assert w2.stop() == 0


def test_no_self_heal_only_reports(
    cluster: UpCluster, tmp_path: Path, watchers: list[WatchProc]
) -> None:
    name = "wreport"
    repo = SpecRepo(tmp_path / "repo")
    sha = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {f"{name}/k": "v"})})
    w = WatchProc(
        tmp_path / "w.log", repo.url, "--no-self-heal", "--cache-dir", str(tmp_path / "c")
    )
    watchers.append(w)
    eventually(_status_is(cluster, name, sha, "applied"), what="applied")
    # Idle, the watcher sits in blocking reads: (almost) no CPU. A busy loop would burn
    # about one CPU second per second here.
    before = _cpu_seconds(w.proc.pid)
    time.sleep(3)
    assert _cpu_seconds(w.proc.pid) - before < 1.0
    cluster.put(f"{name}/k", "hand")
    ev = w.wait_event(lambda e: e["event"] == "drift", what="drift reported")
    assert ev["action"] == "report"
    assert cluster.kv(f"{name}/k") == "hand"
    assert w.stop() == 0


def test_work_tree_mode_applies_saved_files(
    cluster: UpCluster, tmp_path: Path, watchers: list[WatchProc]
) -> None:
    name = "wtree"
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    spec = spec_dir / "gitkv.yaml"
    spec.write_text(spec_text(name, cluster.url, {f"{name}/k": "one"}))
    w = WatchProc(tmp_path / "w.log", str(spec_dir), "--interval", "60s")
    watchers.append(w)
    eventually(lambda: cluster.kv(f"{name}/k") == "one", what="first version applied")
    spec.write_text(spec_text(name, cluster.url, {f"{name}/k": "two"}))
    eventually(lambda: cluster.kv(f"{name}/k") == "two", what="saved edit applied")
    assert _status(cluster, name)["commit"].startswith("tree:")
    assert w.stop() == 0


def _local(name: str) -> tuple[str, ...]:
    return (
        "--interval", "300s",  # far beyond every wait below: only the ref watch can act
        "--lock-name", name,
    )  # fmt: skip


def test_a_commit_in_a_watched_local_repository_is_applied_at_once(
    cluster: UpCluster, tmp_path: Path, watchers: list[WatchProc]
) -> None:
    """`gitkv watch REPO` of a work tree: commits, and a `git reset` to an older commit, are
    applied without waiting for the poll (the ref files are watched)."""
    name = "wlocal"
    repo = SpecRepo(tmp_path / "repo")
    sha1 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {f"{name}/k": "1"})},
                       push=False)  # fmt: skip
    w = WatchProc(tmp_path / "w.log", str(repo.work_path), *_local(name),
                  "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    watchers.append(w)
    start = w.wait_event(lambda e: e["event"] == "start", what="start")
    assert start["watching"] == str((repo.work_path / ".git").resolve())
    eventually(_status_is(cluster, name, sha1, "applied"), what="first commit applied")
    latencies = []
    for value in ("2", "3"):
        sha = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {f"{name}/k": value})},
                          push=False)  # fmt: skip
        committed = time.monotonic()
        # The issue asks for under 2 s; the poll (300 s) cannot be what applies it.
        eventually(_status_is(cluster, name, sha, "applied"), timeout=2, what="commit applied")
        latencies.append(time.monotonic() - committed)
        assert cluster.kv(f"{name}/k") == value
    print(
        f"\nwatch: local commit -> applied in {', '.join(f'{t * 1000:.0f}' for t in latencies)} ms"
    )
    # A branch reset to the first commit: logged, and that commit is the truth again.
    repo.repo.git.reset("--hard", sha1)
    eventually(_status_is(cluster, name, sha1, "applied"), timeout=10, what="reset applied")
    assert cluster.kv(f"{name}/k") == "1"
    ev = w.wait_event(lambda e: e["event"] == "history_rewritten", what="rewrite logged")
    assert ev["commit"] == sha1 and ev["level"] == "warn"
    assert w.stop() == 0


def test_a_force_push_into_a_local_origin_is_applied_as_the_new_truth(
    cluster: UpCluster, tmp_path: Path, watchers: list[WatchProc]
) -> None:
    name = "wforce"
    repo = SpecRepo(tmp_path / "repo")
    sha1 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {f"{name}/k": "1"})})
    w = WatchProc(tmp_path / "w.log", repo.url, *_local(name),
                  "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    watchers.append(w)
    eventually(_status_is(cluster, name, sha1, "applied"), what="first commit applied")
    sha2 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {f"{name}/k": "2"})})
    eventually(_status_is(cluster, name, sha2, "applied"), timeout=10, what="push applied")
    # Rewrite the pushed commit and force-push it over the old one.
    (repo.work_path / "gitkv.yaml").write_text(spec_text(name, cluster.url, {f"{name}/k": "2b"}))
    repo.repo.git.commit("-a", "--amend", "-m", "rewritten")
    sha3 = repo.repo.head.commit.hexsha
    repo.repo.git.push("--force", "origin", "main:main")
    eventually(_status_is(cluster, name, sha3, "applied"), timeout=10, what="force-push applied")
    assert cluster.kv(f"{name}/k") == "2b"
    ev = w.wait_event(lambda e: e["event"] == "history_rewritten", what="rewrite logged")
    assert ev["previous"] == sha2 and ev["commit"] == sha3
    assert w.stop() == 0


def test_standby_takes_over_when_the_active_watcher_is_killed(
    cluster: UpCluster, tmp_path: Path, watchers: list[WatchProc]
) -> None:
    name = "wlock"
    repo = SpecRepo(tmp_path / "repo")
    sha1 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {f"{name}/k": "1"})})
    # Both share one clone cache (as two watchers on one host would).
    args = (repo.url, "--interval", "1s", "--lock-ttl", "10s", "--cache-dir", str(tmp_path / "c"))
    first = WatchProc(tmp_path / "a.log", *args)
    watchers.append(first)
    first.wait_event(lambda e: e["event"] == "lock_acquired", what="first is active")
    eventually(_status_is(cluster, name, sha1, "applied"), what="applied by the first")
    second = WatchProc(tmp_path / "b.log", *args)
    watchers.append(second)
    second.wait_event(lambda e: e["event"] == "standby", what="second on standby")

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    killed = time.monotonic()
    # Consul invalidates the dead watcher's session after about 2 x TTL.
    second.wait_event(lambda e: e["event"] == "lock_acquired", timeout=60, what="takeover")
    print(f"\nwatch: standby took over {time.monotonic() - killed:.1f} s after SIGKILL")
    sha2 = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {f"{name}/k": "2"})})
    eventually(_status_is(cluster, name, sha2, "applied"), what="applied by the second")
    assert cluster.kv(f"{name}/k") == "2"
    assert second.stop() == 0


def test_polling_picks_up_a_push_and_down_leaves_no_process(tmp_path: Path) -> None:
    own = UpCluster(tmp_path / "cluster").up()
    w: WatchProc | None = None
    try:
        name = "wpoll"
        repo = SpecRepo(tmp_path / "repo")
        repo.commit({"gitkv.yaml": spec_text(name, own.url, {f"{name}/k": "1"})})
        w = WatchProc(tmp_path / "w.log", repo.url, "--interval", "0.5s", "--cache-dir",
                      str(tmp_path / "c"))  # fmt: skip
        eventually(lambda: own.kv(f"{name}/k") == "1", what="first applied")
        repo.commit({"gitkv.yaml": spec_text(name, own.url, {f"{name}/k": "2"})})
        pushed = time.monotonic()
        eventually(lambda: own.kv(f"{name}/k") == "2", what="polled commit applied")
        print(f"\nwatch: push -> applied by polling (0.5 s interval) in "
              f"{(time.monotonic() - pushed) * 1000:.0f} ms")  # fmt: skip
        assert w.stop() == 0
    finally:
        if w is not None:
            w.kill()
        pids = own.down()
    assert pids and not any(pid_alive(p) for p in pids)
    assert not list((tmp_path / "cluster").glob(".gitkv/*/*/agent.pid"))


@pytest.mark.cluster
def test_seed_cluster_from_gitkv_up_is_kept_in_sync(tmp_path: Path) -> None:
    """The seed's 3 servers + 1 client (examples/shenzhen, moved to 127.0.0.171-174) via `gitkv up`, watched from Git:
    KV, agent services and an external node are applied; a service removed by hand on the
    client agent comes back (catalog drift); `gitkv down` leaves no agent behind."""
    work = tmp_path / "shenzhen"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "shenzhen", work)
    for f in work.glob("*.yaml"):
        f.write_text(re.sub(r"127\.0\.0\.1([1-4])\b", r"127.0.0.17\1", f.read_text()))
    # `gitkv up` refuses ports that do not bind; right after an earlier run they may still
    # be in TIME_WAIT for up to a minute.
    deadline = time.monotonic() + 75
    while (busy := [ip for ip in SEED_IPS for p in (8500, 8300) if port_busy(ip, p)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(1)
    if busy:
        pytest.skip(f"the seed's addresses are in use ({', '.join(busy)}): another cluster runs")
    repo = git.Repo.init(work, initial_branch="main")  # the spec directory is the repository
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "gitkv tests")
        cfg.set_value("user", "email", "tests@example.invalid")
    (work / ".gitignore").write_text(".gitkv/\n")
    repo.git.add(A=True)
    sha = repo.index.commit("the seed's cluster").hexsha

    up = gitkv("up", str(work), "--timeout", "90")
    assert up.returncode == 0, up.stderr
    pids = [int(p.read_text()) for p in work.glob(".gitkv/*/*/agent.pid")]
    w: WatchProc | None = None
    try:
        assert len(pids) == 4
        w = WatchProc(tmp_path / "w.log", str(work), "--cache-dir", str(tmp_path / "c"))
        node1, node4 = f"http://{SEED_IPS[0]}:8500", f"http://{SEED_IPS[3]}:8500"

        def state() -> str:
            r = httpx.get(f"{node1}/v1/kv/gitkv/status/shenzhen", params={"raw": ""})
            return r.json().get("state", "") if r.status_code == 200 else ""

        eventually(lambda: state() in ("applied", "in_sync"), timeout=60, what="applied")
        assert httpx.get(f"{node1}/v1/kv/app/web/replicas", params={"raw": ""}).text == "3"
        assert "web" in httpx.get(f"{node4}/v1/agent/services").json()
        assert httpx.get(f"{node1}/v1/catalog/node/legacy-db").json()["Services"]
        w.wait_event(lambda e: e.get("commit") == sha and e["event"] in ("applied", "in_sync"))

        httpx.put(f"{node4}/v1/agent/service/deregister/web")
        eventually(
            lambda: "web" in httpx.get(f"{node4}/v1/agent/services").json(),
            timeout=60,
            what="service re-registered",
        )
        w.wait_event(lambda e: e["event"] == "drift_repaired", what="drift repaired")
        assert w.stop() == 0
    finally:
        if w is not None:
            w.kill()
        down = gitkv("down", str(work), "--purge")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(p) for p in pids)


def test_a_watcher_whose_session_is_destroyed_steps_down_and_reacquires(
    cluster: UpCluster, tmp_path: Path, watchers: list[WatchProc]
) -> None:
    name = "wlost"
    repo = SpecRepo(tmp_path / "repo")
    sha = repo.commit({"gitkv.yaml": spec_text(name, cluster.url, {f"{name}/k": "1"})})
    w = WatchProc(tmp_path / "w.log", repo.url, "--lock-ttl", "10s", "--cache-dir",
                  str(tmp_path / "c"))  # fmt: skip
    watchers.append(w)
    first = w.wait_event(lambda e: e["event"] == "lock_acquired", what="lock")
    eventually(_status_is(cluster, name, sha, "applied"), what="applied")
    with cluster.http() as h:  # an operator (or a partition) kills the session
        assert h.put(f"/v1/session/destroy/{first['session']}").status_code == 200
    w.wait_event(lambda e: e["event"] == "lock_lost", what="lock lost")
    again = w.wait_event(
        lambda e: e["event"] == "lock_acquired" and e["session"] != first["session"],
        what="lock acquired again",
    )
    assert again["session"] != first["session"]
    cluster.put(f"{name}/k", "hand")
    eventually(lambda: cluster.kv(f"{name}/k") == "1", what="still repairing after re-election")
    assert w.stop() == 0
