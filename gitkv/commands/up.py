"""`gitkv up SPEC`: start the spec's agents and wait until the cluster has a leader."""

from __future__ import annotations

import argparse
import sys

from gitkv import cluster
from gitkv.spec.load import load_spec

__all__ = ["add_arguments", "execute"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file, or directory of *.yaml files")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a leader")


def execute(ns: argparse.Namespace) -> int:
    loaded = load_spec(ns.spec)
    launches = cluster.up(
        loaded, timeout=ns.timeout, progress=lambda m: print(f"  {m}", file=sys.stderr)
    )
    print("cluster is up:")
    for la in launches:
        role = "server" if la.server else "client"
        print(f"  {la.datacenter}/{la.name} ({role})  {la.http_address}")
    return 0
