"""`gitkv validate SPEC [--format text|github]`: exit 1 and list every problem, or print OK."""

from __future__ import annotations

import argparse
import sys

from gitkv.spec.validate import FORMATS, format_diagnostics, summary, validate

__all__ = ["add_arguments", "execute"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file, or directory of *.yaml files")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text: file:line:col: message (default); github: GitHub Actions annotations",
    )


def execute(ns: argparse.Namespace) -> int:
    report = validate(ns.spec)
    if report.ok:
        print(summary(report))
        return 0
    sys.stdout.write(format_diagnostics(report.problems, ns.format))
    print(summary(report), file=sys.stderr)
    return 1
