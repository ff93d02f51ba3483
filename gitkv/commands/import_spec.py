"""`gitkv import --out DIR [--only KIND,...] [--kv-prefix P ...] [--address URL]`.

Writes `DIR/gitkv.yaml` (plus value files under `DIR/kv/`) describing the cluster as it is,
so that `gitkv plan DIR` shows no changes against it. Read-only: nothing is written to the
cluster, not even the ownership ledger (the first apply records it). What a spec cannot
express is listed as skipped, with the reason, and left out; ACL tokens are written by
reference (description, links; the AccessorID as a comment), never with their SecretID.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from gitkv.commands.plan import client_for
from gitkv.errors import GitkvError
from gitkv.importer.emit import DEFAULT_INLINE_MAX
from gitkv.importer.run import (
    IMPORT_KINDS,
    ImportOptions,
    ensure_empty,
    parse_kinds,
    read_cluster,
    verify,
    write,
)

__all__ = ["add_arguments", "execute"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    parser.add_argument(
        "--only",
        metavar="KIND,...",
        help=f"import only these kinds ({', '.join(IMPORT_KINDS)}; acl = every ACL kind)",
    )
    parser.add_argument(
        "--kv-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="import the keys under PREFIX (repeatable; default: every key but gitkv's own)",
    )
    parser.add_argument(
        "--address", metavar="URL", help="the cluster (default: CONSUL_HTTP_ADDR or :8500)"
    )
    parser.add_argument("--datacenter", "-dc", metavar="NAME", help="its name in the spec")
    parser.add_argument("--name", help="the spec's ledger name (default: the datacenter's)")
    parser.add_argument(
        "--inline-max",
        type=int,
        default=DEFAULT_INLINE_MAX,
        metavar="BYTES",
        help=f"KV values longer than this go to files (default {DEFAULT_INLINE_MAX})",
    )
    parser.add_argument("--force", action="store_true", help="write into a non-empty DIR")


def execute(ns: argparse.Namespace) -> int:
    if ns.inline_max < 0:
        raise GitkvError("--inline-max must be 0 or more")
    if any(p.startswith("/") for p in ns.kv_prefix):
        raise GitkvError("--kv-prefix: KV keys never start with '/'")
    if ns.datacenter is not None and not re.match(r"^[a-z0-9][a-z0-9_.\-]*$", ns.datacenter):
        raise GitkvError(f"--datacenter {ns.datacenter!r}: lower case letters, digits, _ . -")
    if ns.name is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", ns.name):
        raise GitkvError(f"--name {ns.name!r}: letters, digits, _ . - (a ledger name)")
    if "" in ns.kv_prefix:
        raise GitkvError(
            "--kv-prefix: an empty prefix would claim the whole KV store; name a folder"
        )
    opts = ImportOptions(
        kinds=parse_kinds(ns.only),
        kv_prefixes=tuple(ns.kv_prefix),
        datacenter=ns.datacenter,
        name=ns.name,
        inline_max=ns.inline_max,
    )
    out_dir = Path(ns.out)
    ensure_empty(out_dir, ns.force)
    with client_for(ns.address) as client:
        imp = read_cluster(client, opts)
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    header = (
        f"Written by `gitkv import` from {imp.address} (datacenter {imp.datacenter}) at {stamp}.\n"
        "ACL tokens are referenced by description; their secrets stay in the cluster."
    )
    written = write(imp, out_dir, inline_max=ns.inline_max, header=header)
    verify(imp, out_dir)
    acl = imp.acl
    counts = [
        (len(imp.kv), "KV key", "KV keys"),
        (len(imp.services), "service", "services"),
        (len(imp.external_nodes), "external node", "external nodes"),
        (len(acl.policies) if acl else 0, "ACL policy", "ACL policies"),
        (len(acl.roles) if acl else 0, "ACL role", "ACL roles"),
        (len(acl.tokens) if acl else 0, "ACL token", "ACL tokens"),
    ]
    if objs := imp.objects:
        counts += [
            (sum(len(v) for v in objs.entries.values()), "config entry", "config entries"),
            (len(objs.queries), "prepared query", "prepared queries"),
            (len(objs.auth_methods), "auth method", "auth methods"),
            (len(objs.binding_rules), "binding rule", "binding rules"),
            (int(objs.autopilot is not None), "autopilot configuration", ""),
            (int(objs.ca is not None), "CA configuration", ""),
        ]
    shown = ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts if n)
    print(f"Imported {shown or 'nothing'} into {written[0]} ({len(written) - 1} value files).")
    for note in imp.notes:
        print(f"Note: {note}", file=sys.stderr)
    for s in imp.skipped:
        print(f"Skipped {s.kind} {s.id}: {s.reason}", file=sys.stderr)
    if imp.skipped:
        print(
            f"{len(imp.skipped)} object(s) skipped: the spec cannot express them exactly, so "
            "they are left out (and never touched by gitkv).",
            file=sys.stderr,
        )
    return 0
