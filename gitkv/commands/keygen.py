"""`gitkv keygen`: print a new gossip encryption key, as `consul keygen` does.

The key is 32 random bytes, base64 encoded: the value for `-encrypt` / `encrypt`.
"""

from __future__ import annotations

import argparse

from agent.gossip.crypto import generate_key

__all__ = ["add_arguments", "execute"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-bytes",
        "--bytes",
        dest="size",
        type=int,
        choices=(16, 24, 32),
        default=32,
        help="key length in bytes (default 32, AES-256)",
    )


def execute(ns: argparse.Namespace) -> int:
    print(generate_key(ns.size))
    return 0
