"""The `gitkv` command line: argument parsing and output only.

`gitkv agent ...` hands its arguments untouched to the bundled agent, and `gitkv connect ...`
to the built-in Connect proxy, because Consul's single-dash flags (`-server`,
`-bootstrap-expect=3`, `-sidecar-for web`) are not argparse-shaped.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "agent":
        from agent.cli import main as agent_main

        return agent_main(args[1:])
    if args and args[0] == "connect":
        from gitkv.connect.cli import main as connect_main

        return connect_main(args[1:])
    from gitkv.commands import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
