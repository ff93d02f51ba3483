"""Watch sources against real Git repositories made in a temp dir (no network)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import git
import pytest

from gitkv.watch.source import GitSource, SourceError, TreeSource, open_source, tree_digest


def _repo(path: Path) -> git.Repo:
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "t")
        cfg.set_value("user", "email", "t@example.invalid")
    return repo


def _commit(repo: git.Repo, files: dict[str, str]) -> str:
    for rel, text in files.items():
        p = Path(repo.working_tree_dir) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    repo.index.add(list(files))
    return repo.index.commit("c").hexsha


def test_git_source_clones_once_fetches_and_exports(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    sha1 = _commit(repo, {"specs/gitkv.yaml": "one", "README": "x"})
    src = open_source(str(tmp_path / "r"), subdir="specs", cache_root=tmp_path / "cache")
    assert isinstance(src, GitSource)
    try:
        assert src.fetch() == sha1 and src.branch == "main"
        rev = src.materialize(sha1)
        assert (rev.spec_path / "gitkv.yaml").read_text() == "one"
        assert not (rev.spec_path / "README").exists()
        sha2 = _commit(repo, {"specs/gitkv.yaml": "two"})
        assert src.fetch() == sha2
        assert (src.materialize(sha2).spec_path / "gitkv.yaml").read_text() == "two"
        # The previous export is removed; the older commit can still be exported.
        assert not rev.spec_path.exists()
        assert src.has_revision(sha1) and not src.has_revision("0" * 40)
        assert src.history(sha2) == [sha2, sha1]
    finally:
        src.close()
    # A second source on the same cache reuses the clone.
    again = GitSource(str((tmp_path / "r").resolve()), cache_root=tmp_path / "cache")
    try:
        assert again.fetch() == sha2
    finally:
        again.close()


def test_git_source_file_url_and_missing_branch(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    _commit(repo, {"gitkv.yaml": "x"})
    bare = tmp_path / "bare.git"
    repo.clone(bare, bare=True)
    src = open_source(bare.as_uri(), branch="nope", cache_root=tmp_path / "c")
    try:
        with pytest.raises(SourceError, match="nope"):
            src.fetch()
    finally:
        src.close()


def test_plain_directory_is_a_tree_source(tmp_path: Path) -> None:
    (tmp_path / "gitkv.yaml").write_text("a")
    (tmp_path / ".gitkv").mkdir()
    src = open_source(str(tmp_path))
    assert isinstance(src, TreeSource)
    first = src.fetch()
    assert first.startswith("tree:") and src.materialize(first).spec_path == tmp_path
    (tmp_path / ".gitkv" / "agent.log").write_text("noise")  # ignored
    assert tree_digest(tmp_path) == first
    (tmp_path / "gitkv.yaml").write_text("b")
    assert src.fetch() != first
    with pytest.raises(SourceError):
        open_source(str(tmp_path), branch="main")


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        open_source(str(tmp_path / "nothing-here"))


def _until_watching(git_dir: Path, seen: threading.Event) -> None:
    """Touch a reflog file until the watcher reports it (it starts in a thread), then reset."""
    probe = git_dir / "logs" / "refs" / "heads" / "zz-probe"
    probe.parent.mkdir(parents=True, exist_ok=True)
    for i in range(100):
        probe.write_text(str(i))
        if seen.wait(0.1):
            break
    probe.unlink()
    assert seen.wait(5), "the ref watcher never started"
    time.sleep(0.2)  # the unlink's own event
    seen.clear()


def test_a_local_repository_has_its_refs_watched_and_resets_are_seen(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    sha1 = _commit(repo, {"gitkv.yaml": "one"})
    src = open_source(str(tmp_path / "r"), cache_root=tmp_path / "cache")
    assert isinstance(src, GitSource)
    moved = threading.Event()
    try:
        assert src.fetch() == sha1
        assert src.local_git_dir() == (tmp_path / "r" / ".git").resolve()
        assert src.watch_changes(moved.set) == (tmp_path / "r" / ".git").resolve()
        _until_watching(tmp_path / "r" / ".git", moved)
        sha2 = _commit(repo, {"gitkv.yaml": "two"})  # a commit moves refs/heads/main
        assert moved.wait(10), "the commit's ref change was not noticed"
        assert src.fetch() == sha2 and src.descends(sha1, sha2)
        moved.clear()
        repo.git.reset("--hard", sha1)  # a branch reset: the new tip is older
        assert moved.wait(10), "the reset was not noticed"
        assert src.fetch() == sha1
        assert not src.descends(sha2, sha1)
        assert not src.descends("0" * 40, sha1)  # an unknown commit never "descends"
    finally:
        src.close()


def test_a_file_url_is_local_and_remote_urls_are_only_polled(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    _commit(repo, {"gitkv.yaml": "x"})
    bare = tmp_path / "bare.git"
    repo.clone(bare, bare=True)
    local = GitSource(bare.as_uri(), cache_root=tmp_path / "c")
    remote = GitSource("https://git.example.invalid/specs.git", cache_root=tmp_path / "c")
    scp = GitSource("git@git.example.invalid:specs.git", cache_root=tmp_path / "c")
    try:
        assert local.local_git_dir() == bare.resolve()
        assert remote.local_git_dir() is None and scp.local_git_dir() is None
        assert remote.watch_changes(lambda: None) is None
    finally:
        for s in (local, remote, scp):
            s.close()
