"""`gitkv watch SOURCE`: keep the cluster equal to a Git branch or a directory.

SOURCE is a Git URL (`https://...`, `file:///...`, `git@host:repo`), a local repository
(followed by commit on `--branch`, default its current/default branch) or a plain directory
(work tree mode: every saved change is applied). A repository on this machine (a path or a
`file://` URL) has its refs watched, so a commit, push, reset or force-push into it is applied
within a second; remote URLs are fetched every `--interval` (and on webhooks). A branch that
moves to a commit not descending from its previous tip is logged (`history_rewritten`) and
that commit applied as the new truth. One watcher per cluster is active; others
wait as standbys. Stops cleanly on SIGTERM/SIGINT (finishes an apply, releases the lock).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path
from types import FrameType

from gitkv.errors import GitkvError
from gitkv.watch.log import FORMATS, EventLog
from gitkv.watch.runner import Runner, WatchOptions

__all__ = ["add_arguments", "execute", "parse_interval"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_interval(text: str) -> float:
    """`30s`, `1m30s`, `500ms` or a plain number of seconds -> seconds (> 0)."""
    raw = text.strip()
    try:
        seconds = float(raw)
    except ValueError:
        pos, seconds = 0, 0.0
        for m in _INTERVAL.finditer(raw):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(raw) or pos == 0:
            raise argparse.ArgumentTypeError(
                f"invalid interval {text!r} (e.g. 30s, 1m, 500ms)"
            ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the interval must be more than 0")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="Git URL, repository path or directory")
    parser.add_argument("--branch", help="branch to follow (default: the repository's default)")
    parser.add_argument(
        "--path", default="", metavar="SUBDIR", help="the spec's folder in the repo"
    )
    parser.add_argument(
        "--interval",
        type=parse_interval,
        default=30.0,
        metavar="DURATION",
        help=(
            "how often to fetch (default 30s); webhooks, saved files and the refs of a "
            "repository on this machine act at once"
        ),
    )
    parser.add_argument("--listen", metavar="ADDR", help="serve webhooks, /metrics, /healthz")
    parser.add_argument(
        "--webhook-secret-env",
        metavar="NAME",
        help="environment variable holding the webhook HMAC secret",
    )
    parser.add_argument(
        "--no-self-heal", action="store_true", help="report drift, do not repair it"
    )
    parser.add_argument(
        "--prune", action="store_true", help="delete managed resources that left the spec"
    )
    parser.add_argument(
        "--lock-name", metavar="NAME", help="lock and status name (default: spec's)"
    )
    parser.add_argument(
        "--lock-ttl",
        type=parse_interval,
        default=15.0,
        metavar="DURATION",
        help="session TTL of the watcher lock (min 10s; a dead watcher is replaced after ~2x)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="sync the newest revision and exit (takes no lock, like `gitkv apply`)",
    )
    parser.add_argument(
        "--worktree", action="store_true", help="follow a repository's files, not its commits"
    )
    parser.add_argument("--cache-dir", metavar="DIR", help="where clones are kept")
    parser.add_argument("--log-format", choices=FORMATS, default="json", help="event log format")


def _options(ns: argparse.Namespace) -> WatchOptions:
    secret: bytes | None = None
    if ns.webhook_secret_env:
        value = os.environ.get(ns.webhook_secret_env)
        if not value:
            raise GitkvError(f"environment variable {ns.webhook_secret_env} is not set")
        secret = value.encode()
    if secret is not None and not ns.listen:
        raise GitkvError("--webhook-secret-env needs --listen")
    return WatchOptions(
        source=ns.source,
        branch=ns.branch,
        path=ns.path,
        interval=ns.interval,
        listen=ns.listen,
        webhook_secret=secret,
        self_heal=not ns.no_self_heal,
        prune=ns.prune,
        lock_name=ns.lock_name,
        lock_ttl=ns.lock_ttl,
        once=ns.once,
        worktree=ns.worktree,
        cache_dir=Path(ns.cache_dir) if ns.cache_dir else None,
    )


def execute(ns: argparse.Namespace) -> int:
    opts = _options(ns)
    log = EventLog(sys.stderr, ns.log_format)
    runner = Runner(opts, log)
    if opts.listen and opts.webhook_secret is None:
        log.warn("webhook_unsigned", reason="no --webhook-secret-env: pushes are not verified")
    reason = ["signal"]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        reason[0] = signal.Signals(signum).name
        runner.stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        runner.open()
        if opts.once:
            code = runner.run_once()
            runner.shutdown("once")
            return code
        runner.start()
        runner.wait()
        runner.shutdown(reason[0] if runner.exit_code == 0 else "error")
        return runner.exit_code
    except BaseException:
        runner.shutdown("error")
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
