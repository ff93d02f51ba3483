"""`gitkv down SPEC [--purge]`: stop the spec's agents gracefully; keep data unless --purge."""

from __future__ import annotations

import argparse
import sys

from gitkv import cluster
from gitkv.spec.load import load_spec

__all__ = ["add_arguments", "execute"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file, or directory of *.yaml files")
    parser.add_argument("--purge", action="store_true", help="also delete data dirs and logs")


def execute(ns: argparse.Namespace) -> int:
    loaded = load_spec(ns.spec)
    launches = cluster.launch_plan(loaded)
    stopped = cluster.down_launches(
        launches, purge=ns.purge, progress=lambda m: print(f"  {m}", file=sys.stderr)
    )
    print(f"stopped {stopped} agent(s)" + (", data purged" if ns.purge else ""))
    return 0
