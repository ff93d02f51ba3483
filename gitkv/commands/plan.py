"""`gitkv plan SPEC [--json|--markdown] [--detailed-exitcode] [-out FILE] [--prune]
[--target KIND/NAME ...]`.

`--target` (repeatable) plans only those resources and what they need, as
`terraform plan -target`; the plan says it is partial, and applying it (or `apply --target`)
changes only them.

Exit codes (Terraform's): 0 success, no changes; 1 error; 2 changes present (only with
`--detailed-exitcode`; plain `plan` exits 0 whether or not there are changes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gitkv.client import ConsulClient, ConsulSettings
from gitkv.errors import GitkvError, GuardError
from gitkv.plan import Plan, check_guards, plan, plans_to_json
from gitkv.render import render_human, render_json
from gitkv.render_markdown import render_markdown
from gitkv.resources import Resources
from gitkv.state import read_live
from gitkv.targets import Target, parse_targets, partial_note, target_plan

__all__ = ["add_arguments", "build_plans", "execute", "partial_warning", "use_color"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file, or directory of *.yaml files")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the plan as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print Markdown (PR comments)")
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes, 0 when there are none, 1 on error",
    )
    parser.add_argument(
        "-out", "--out", metavar="FILE", help="save the plan for `gitkv apply FILE`"
    )
    add_common_arguments(parser)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prune",
        action="store_true",
        help="delete managed resources that left the spec (unmanaged ones are never touched)",
    )
    parser.add_argument(
        "--datacenter", "-dc", metavar="NAME", help="only this datacenter of the spec"
    )
    parser.add_argument("--no-color", action="store_true", help="never color the output")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="KIND/NAME",
        help="only this resource (repeatable), e.g. kv/app/web/replicas, kv/app/ (a folder), "
        "acl_policy/web-read, service/node1/web: a partial plan",
    )


def use_color(ns: argparse.Namespace) -> bool:
    if getattr(ns, "no_color", False) or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _revision(base_dir: Path) -> str:
    """The Git commit the spec is at (recorded in the ownership ledger), or "" outside Git."""
    try:
        import git

        repo = git.Repo(base_dir, search_parent_directories=True)
        return repo.head.commit.hexsha
    except Exception:  # not a repository, no commits yet, git missing: just unknown
        return ""


def load_desired(spec_path: str, datacenter: str | None = None) -> list[Resources]:
    """The spec's datacenters as `Resources` (one, when `datacenter` is given)."""
    from gitkv.spec import desired, load_spec

    loaded = load_spec(spec_path)
    by_dc = desired(
        loaded.spec, loaded.base_dir, digest=loaded.digest, revision=_revision(loaded.base_dir)
    )
    if datacenter is not None:
        if datacenter not in by_dc:
            raise GitkvError(f"datacenter {datacenter!r} is not in the spec ({', '.join(by_dc)})")
        return [by_dc[datacenter]]
    return list(by_dc.values())


def client_for(address: str | None) -> ConsulClient:
    """A client for a datacenter's address (None: `CONSUL_HTTP_ADDR` or the default)."""
    return ConsulClient(ConsulSettings.from_env(address=address))


def build_plans(
    spec_path: str,
    *,
    prune: bool = False,
    datacenter: str | None = None,
    targets: tuple[Target, ...] = (),
) -> list[Plan]:
    """Load the spec, read each datacenter's cluster and plan it (only `targets`, if any)."""
    plans = []
    for res in load_desired(spec_path, datacenter):
        with client_for(res.address) as client:
            plans.append(target_plan(plan(res, read_live(client, res), prune=prune), targets))
    return plans


def partial_warning(targets: tuple[Target, ...]) -> None:
    if targets:
        print(f"Warning: {partial_note(targets)}.", file=sys.stderr)


def guard_warnings(plans: list[Plan]) -> list[str]:
    out = []
    for p in plans:
        try:
            check_guards(p)
        except GuardError as exc:
            out.append(f"Warning: apply will refuse this plan unless told otherwise: {exc}")
    return out


def execute(ns: argparse.Namespace) -> int:
    targets = parse_targets(ns.target)
    plans = build_plans(ns.spec, prune=ns.prune, datacenter=ns.datacenter, targets=targets)
    if ns.out:
        Path(ns.out).write_text(plans_to_json(plans) + "\n")
    if ns.json:
        sys.stdout.write(render_json(plans) + "\n")
    elif ns.markdown:
        sys.stdout.write(render_markdown(plans))
    else:
        sys.stdout.write(render_human(plans, color=use_color(ns)))
        if ns.out:
            print(f"Saved the plan to {ns.out}; apply it with: gitkv apply {ns.out}")
    for warning in guard_warnings(plans):
        print(warning, file=sys.stderr)
    partial_warning(targets)
    changed = any(p.has_changes for p in plans)
    return 2 if ns.detailed_exitcode and changed else 0
