"""`gitkv apply SPEC|PLANFILE [--auto-approve] [--prune] [--max-deletes N] [--allow-empty-prefix]
[--target KIND/NAME ...]`.

With a spec, apply plans first; with a plan file (`gitkv plan -out FILE`) it applies exactly
that plan, and the ModifyIndexes inside it make apply refuse if the cluster moved since.
Without `--auto-approve` the plan is shown and confirmed on a terminal; with no terminal,
apply refuses rather than guess.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gitkv.apply import ApplyResult, apply_plan
from gitkv.commands.plan import (
    add_common_arguments,
    build_plans,
    client_for,
    partial_warning,
    use_color,
)
from gitkv.errors import GitkvError, GuardError
from gitkv.plan import Plan, check_guards, plans_from_json, summary
from gitkv.render import render_human
from gitkv.targets import parse_targets, target_plan

__all__ = ["add_arguments", "execute"]

# Below this many changes a progress bar is just noise.
PROGRESS_THRESHOLD = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "spec", metavar="SPEC|PLANFILE", help="spec file/directory, or a saved plan (JSON)"
    )
    parser.add_argument("--auto-approve", action="store_true", help="apply without asking (for CI)")
    parser.add_argument(
        "--max-deletes",
        type=int,
        metavar="N",
        help="refuse to apply a plan that deletes more than N resources",
    )
    parser.add_argument(
        "--allow-empty-prefix",
        action="store_true",
        help="allow a plan that deletes every key under a managed prefix",
    )
    add_common_arguments(parser)


def _is_plan_file(target: str) -> bool:
    path = Path(target)
    if not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"{") and b"gitkv-plan" in head


def _load_plans(ns: argparse.Namespace) -> list[Plan]:
    targets = parse_targets(ns.target)
    partial_warning(targets)
    if _is_plan_file(ns.spec):
        if ns.prune:
            print("Note: --prune has no effect on a saved plan", file=sys.stderr)
        plans = list(plans_from_json(Path(ns.spec).read_text()))
        if ns.datacenter:
            plans = [p for p in plans if p.datacenter == ns.datacenter]
        for p in plans:
            if p.targets:  # a partial plan file applies only what it holds
                print(
                    f"Warning: the saved plan is partial ({', '.join(p.targets)})", file=sys.stderr
                )
        return [target_plan(p, targets) for p in plans]
    return build_plans(ns.spec, prune=ns.prune, datacenter=ns.datacenter, targets=targets)


def _confirm(plans: list[Plan], ns: argparse.Namespace) -> None:
    if ns.auto_approve:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise GuardError(
            "refusing to apply without confirmation: not running on a terminal. "
            "Review `gitkv plan` and pass --auto-approve (e.g. in CI)."
        )
    sys.stdout.write(render_human(plans, color=use_color(ns)))
    answer = input("Apply these changes? Only 'yes' is accepted: ").strip()
    if answer != "yes":
        raise GuardError("apply cancelled")


def _apply_all(plans: list[Plan]) -> list[ApplyResult]:
    total = sum(len(p.changes) for p in plans)
    show = sys.stderr.isatty() and total >= PROGRESS_THRESHOLD
    results = []
    progress = Progress(
        TextColumn("[bold]applying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show,
        transient=True,
    )
    with progress:
        task = progress.add_task("apply", total=total)
        for p in plans:
            with client_for(p.address) as client:
                results.append(apply_plan(client, p, progress=lambda n: progress.advance(task, n)))
    return results


def execute(ns: argparse.Namespace) -> int:
    if ns.max_deletes is not None and ns.max_deletes < 0:
        raise GitkvError("--max-deletes must be 0 or more")
    plans = _load_plans(ns)
    for p in plans:
        check_guards(p, max_deletes=ns.max_deletes, allow_empty_prefix=ns.allow_empty_prefix)
    if not any(p.has_changes or p.ledger_changed for p in plans):
        print("No changes. The cluster matches the spec.")
        return 0
    if any(p.has_changes for p in plans):
        _confirm(plans, ns)
    _apply_all(plans)
    s = summary(plans)
    print(
        f"Apply complete! Resources: {s['create']} added, {s['update']} changed, "
        f"{s['delete']} destroyed."
    )
    return 0
