"""Watch sources against real Git repositories made in a temp dir (no network)."""

from __future__ import annotations

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
