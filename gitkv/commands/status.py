"""`gitkv status SPEC`: the spec's agents, the leader each sees, and cluster membership."""

from __future__ import annotations

import argparse

from gitkv import cluster
from gitkv.spec.load import load_spec

__all__ = ["add_arguments", "execute"]

_MEMBER_STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file, or directory of *.yaml files")


def execute(ns: argparse.Namespace) -> int:
    loaded = load_spec(ns.spec)
    rows = cluster.status(loaded)
    healthy = True
    for row in rows:
        state = f"pid {row['pid']}" if row["pid"] else "not running"
        leader = row["leader"] or "-"
        members = row["members"] or {}
        shown = ", ".join(f"{n}={_MEMBER_STATUS.get(s, s)}" for n, s in sorted(members.items()))
        print(f"{row['datacenter']}/{row['name']}  {row['address']}  {state}  leader={leader}")
        if shown:
            print(f"    members: {shown}")
        healthy = healthy and bool(row["pid"]) and bool(row["leader"])
    return 0 if healthy else 1
