"""gitkv's subcommands (everything but `agent` and `connect`, which `gitkv.cli` hands on).

Each command is a module `gitkv.commands.<name>` exposing `add_arguments(parser)` and
`execute(namespace) -> int`, listed in `COMMANDS` with its one-line help. A module is imported
only when its command runs, so a missing or broken command cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from gitkv.errors import GitkvError

__all__ = ["COMMANDS", "run"]

# name -> (module, one-line help). Add a line here to add a command.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("gitkv.commands.validate", "check a spec: schema, references, files, ACL rules"),
    "plan": ("gitkv.commands.plan", "show what apply would change in the cluster"),
    "apply": ("gitkv.commands.apply", "make the cluster match the spec (or a saved plan)"),
    "up": ("gitkv.commands.up", "start the spec's agents as local processes"),
    "down": ("gitkv.commands.down", "stop the agents started by `gitkv up`"),
    "status": ("gitkv.commands.status", "show the spec's agents, leader and members"),
    "watch": ("gitkv.commands.watch", "follow a Git branch or directory: apply, repair drift"),
    "import": ("gitkv.commands.import_spec", "write a spec from a live cluster (read-only)"),
    "keygen": ("gitkv.commands.keygen", "print a new gossip encryption key"),
    "tls": ("gitkv.commands.tls", "create a CA and agent certificates (tls ca|cert create)"),
}


def _module(name: str) -> ModuleType | None:
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:  # not built yet; a missing dependency should still show
            return None
        raise


def _parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gitkv", description="GitOps for Consul-style clusters.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("agent", help="run the bundled Consul-compatible agent (Consul's flags)")
    sub.add_parser("connect", help="run the built-in Connect proxy (Consul's flags)")
    for name, (_, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = _module(name)
            if module is None:
                parser.error(f"the {name!r} command is not available in this build")
            module.add_arguments(cmd)
            cmd.set_defaults(_execute=module.execute)
    return parser


def run(args: list[str]) -> int:
    """Parse `args` (without the program name), run the command, return the exit code."""
    chosen = next((a for a in args if not a.startswith("-")), None)
    try:
        parser = _parser(chosen if chosen in COMMANDS else None)
        ns = parser.parse_args(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    execute = getattr(ns, "_execute", None)
    if execute is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(execute(ns))
    except GitkvError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 130
