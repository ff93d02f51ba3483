"""Where the watcher's specs come from.

Two kinds of source, one small interface (`Source`):

- `GitSource`: a Git URL or a local repository path plus a branch. The repository is cloned
  once (bare) into a cache directory and fetched afterwards; each revision is exported with
  `git archive` into a private directory, so the user's own work tree is never touched and two
  watchers sharing a cache (a standby on the same host) never step on each other's checkout.
  Fetches take an exclusive `flock` on the cache. When the repository is on this machine (a
  path or a `file://` URL), its ref files are watched too (`watch_changes`): a commit, a
  push into it, a reset or a force-push rewrites `refs/heads/<branch>`, `packed-refs` or the
  reflog, and is noticed at once instead of at the next `--interval` poll.
- `TreeSource`: a plain directory (work tree mode). Its revision id is a digest of the files
  under it; changes are noticed with watchfiles (debounced) and reported through a callback.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import git

from gitkv.errors import GitkvError

__all__ = [
    "GitSource",
    "Revision",
    "Source",
    "SourceError",
    "TreeSource",
    "default_cache_root",
    "open_source",
]

# Directories that never belong to a spec: VCS data and `gitkv up`'s process state.
IGNORED_DIRS = frozenset({".git", ".gitkv"})
# How long a burst of ref writes is gathered before one fetch (git writes a lock file, renames
# it and appends to the reflog for one commit); short, as a fetch of a local repo is cheap.
REF_DEBOUNCE_MS = 50


class SourceError(GitkvError):
    """The source could not be read (clone/fetch failed, branch missing, path gone)."""


@dataclass(frozen=True)
class Revision:
    """One version of the spec: `id` (a commit SHA, or `tree:<digest>`) and where it is."""

    id: str
    spec_path: Path

    @property
    def short(self) -> str:
        return self.id[:12] if not self.id.startswith("tree:") else self.id[:17]


class Source(Protocol):
    description: str

    def fetch(self) -> str:
        """Bring the source up to date; the id of its newest revision."""
        ...

    def materialize(self, rev_id: str) -> Revision:
        """The spec of revision `rev_id` on disk. :raises SourceError: unknown revision."""
        ...

    def has_revision(self, rev_id: str) -> bool: ...

    def history(self, rev_id: str, limit: int = 20) -> list[str]:
        """`rev_id` and the revisions before it, newest first."""
        ...

    def descends(self, old: str, new: str) -> bool:
        """Whether `new` is `old` or has it in its history (False after a force-push or a
        reset to an older or unrelated commit)."""
        ...

    def close(self) -> None: ...


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gitkv" / "watch"


def _is_repository(path: Path) -> bool:
    try:
        git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False
    return True


def open_source(
    source: str,
    *,
    branch: str | None = None,
    subdir: str = "",
    cache_root: Path | None = None,
    worktree: bool = False,
) -> Source:
    """A Git source for URLs and repository paths, a tree source for plain directories
    (or any directory when `worktree` is set)."""
    path = Path(source)
    if "://" not in source and path.is_dir():
        if worktree or not _is_repository(path):
            if branch:
                raise SourceError(f"{source} is followed as a plain directory; --branch needs Git")
            return TreeSource(path / subdir if subdir else path)
        source = str(path.resolve())
    elif "://" not in source and not path.exists() and ":" not in source:
        raise SourceError(f"source {source} does not exist (give a Git URL, repo or directory)")
    return GitSource(source, branch=branch, subdir=subdir, cache_root=cache_root)


# -- Git -------------------------------------------------------------------------------------


class GitSource:
    """A branch of a Git repository, cloned once (bare) into the cache, then fetched."""

    def __init__(
        self,
        url: str,
        *,
        branch: str | None = None,
        subdir: str = "",
        cache_root: Path | None = None,
    ) -> None:
        self.url = url
        self.subdir = subdir.strip("/")
        root = cache_root or default_cache_root()
        self.cache = root / hashlib.sha256(url.encode()).hexdigest()[:16]
        self.branch = branch or ""
        self.description = f"{url}" + (f"#{branch}" if branch else "")
        self._exports = Path(tempfile.mkdtemp(prefix="gitkv-watch-"))
        self._current: Path | None = None
        self._repo: git.Repo | None = None
        self._stop = threading.Event()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        with open(str(self.cache) + ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _open(self) -> git.Repo:
        if self._repo is not None:
            return self._repo
        repo: git.Repo | None = None
        if self.cache.exists():
            try:
                repo = git.Repo(self.cache)
                if repo.remotes.origin.url != self.url:
                    repo = None  # a hash collision or a reused directory: start afresh
            except (git.InvalidGitRepositoryError, git.NoSuchPathError, AttributeError):
                repo = None
            if repo is None:
                shutil.rmtree(self.cache, ignore_errors=True)
        if repo is None:
            try:
                repo = git.Repo.clone_from(self.url, self.cache, bare=True)
            except git.GitCommandError as exc:
                shutil.rmtree(self.cache, ignore_errors=True)
                raise SourceError(f"cannot clone {self.url}: {_git_message(exc)}") from exc
        if not self.branch:
            # The remote's default branch, as the clone recorded it in HEAD.
            try:
                self.branch = repo.head.reference.name
            except TypeError:
                self.branch = "main"
            self.description = f"{self.url}#{self.branch}"
        self._repo = repo
        return repo

    def fetch(self) -> str:
        with self._locked():
            repo = self._open()
            ref = f"refs/heads/{self.branch}"
            try:
                repo.git.fetch("--prune", "origin", f"+{ref}:{ref}")
            except git.GitCommandError as exc:
                raise SourceError(
                    f"cannot fetch {self.branch!r} from {self.url}: {_git_message(exc)}"
                ) from exc
            return repo.git.rev_parse(ref)

    def has_revision(self, rev_id: str) -> bool:
        if not rev_id or rev_id.startswith("tree:"):
            return False
        try:
            self._open().git.cat_file("-e", f"{rev_id}^{{commit}}")
        except (git.GitCommandError, ValueError):
            return False
        return True

    def history(self, rev_id: str, limit: int = 20) -> list[str]:
        """`rev_id` and its first-parent ancestors, newest first (at most `limit`)."""
        try:
            out = self._open().git.rev_list("--first-parent", f"--max-count={limit}", rev_id)
        except git.GitCommandError:
            return [rev_id]
        return out.split() or [rev_id]

    def descends(self, old: str, new: str) -> bool:
        if old == new:
            return True
        try:
            self._open().git.merge_base("--is-ancestor", old, new)
        except git.GitCommandError:  # exit 1: not an ancestor; 128: `old` is gone
            return False
        return True

    def local_git_dir(self) -> Path | None:
        """The Git directory (the common one, where refs live) of the followed repository
        when it is on this machine: a path or a `file://` URL. None for remote URLs."""
        parts = urlsplit(self.url)
        if parts.scheme == "file":
            path = Path(unquote(parts.path))
        elif "://" in self.url or not Path(self.url).is_absolute():
            return None  # https://, ssh://, git@host:repo (open_source makes paths absolute)
        else:
            path = Path(self.url)
        try:
            with git.Repo(path) as repo:
                return Path(repo.common_dir).resolve()
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            return None

    def watch_changes(self, on_change: Callable[[], None]) -> Path | None:
        """For a repository on this machine, call `on_change` (from a thread) whenever one of
        its refs moves; the Git directory watched, or None (a remote: only polls notice)."""
        git_dir = self.local_git_dir()
        if git_dir is None:
            return None
        import watchfiles

        def is_ref(_change: watchfiles.Change, path: str) -> bool:
            try:
                rel = Path(path).relative_to(git_dir).as_posix()
            except ValueError:
                return False
            return rel in ("packed-refs", "HEAD") or rel.startswith(
                ("refs/heads/", "logs/refs/heads/")
            )

        def run() -> None:
            for _ in watchfiles.watch(
                git_dir,
                watch_filter=is_ref,
                debounce=REF_DEBOUNCE_MS,
                step=REF_DEBOUNCE_MS,
                stop_event=self._stop,
                raise_interrupt=False,
            ):
                on_change()

        threading.Thread(target=run, name="gitkv-watch-refs", daemon=True).start()
        return git_dir

    def materialize(self, rev_id: str) -> Revision:
        repo = self._open()
        target = Path(tempfile.mkdtemp(prefix=rev_id[:12] + "-", dir=self._exports))
        try:
            buf = io.BytesIO()
            paths = {"path": [self.subdir]} if self.subdir else {}
            repo.archive(buf, treeish=rev_id, format="tar", **paths)
        except git.GitCommandError as exc:
            shutil.rmtree(target, ignore_errors=True)
            where = f" (path {self.subdir!r})" if self.subdir else ""
            raise SourceError(
                f"cannot read commit {rev_id[:12]}{where}: {_git_message(exc)}"
            ) from exc
        buf.seek(0)
        with tarfile.open(fileobj=buf) as tar:
            tar.extractall(target, filter="data")
        # Keep only the newest export on disk.
        if self._current is not None:
            shutil.rmtree(self._current, ignore_errors=True)
        self._current = target
        return Revision(rev_id, target / self.subdir if self.subdir else target)

    def close(self) -> None:
        self._stop.set()
        shutil.rmtree(self._exports, ignore_errors=True)
        if self._repo is not None:
            self._repo.close()


def _git_message(exc: git.GitCommandError) -> str:
    text = (exc.stderr or str(exc)).strip()
    return text.removeprefix("stderr:").strip().strip("'").strip() or str(exc)


# -- work tree -------------------------------------------------------------------------------


def tree_digest(root: Path) -> str:
    """A digest of every file's relative path and bytes under `root` (ignoring VCS/state)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            try:
                data = path.read_bytes()
            except OSError:
                continue  # vanished between listing and reading: the next event catches up
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return "tree:" + digest.hexdigest()[:32]


class TreeSource:
    """A directory on disk; changes are reported through `watch_changes`."""

    def __init__(self, path: Path, debounce_ms: int = 300) -> None:
        if not path.is_dir():
            raise SourceError(f"{path} is not a directory")
        self.path = path
        self.description = str(path)
        self.debounce_ms = debounce_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fetch(self) -> str:
        return tree_digest(self.path)

    def has_revision(self, rev_id: str) -> bool:
        return rev_id == self.fetch()

    def history(self, rev_id: str, limit: int = 20) -> list[str]:
        return [rev_id]  # a directory has no past

    def descends(self, old: str, new: str) -> bool:
        return True  # every saved state simply follows the one before

    def materialize(self, rev_id: str) -> Revision:
        return Revision(rev_id, self.path)

    def watch_changes(self, on_change: Callable[[], None]) -> None:
        """Call `on_change` (from a thread) after each debounced burst of file changes."""
        import watchfiles

        def keep(_change: watchfiles.Change, path: str) -> bool:
            return not (set(Path(path).parts) & IGNORED_DIRS)

        def run() -> None:
            for _ in watchfiles.watch(
                self.path,
                watch_filter=keep,
                debounce=self.debounce_ms,
                stop_event=self._stop,
                raise_interrupt=False,
            ):
                on_change()

        self._thread = threading.Thread(target=run, name="gitkv-watch-files", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
