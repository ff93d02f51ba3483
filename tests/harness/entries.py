"""Log entries written by hand: a command as the map a log holds, encoded as Raft stores it.

Tests that feed the FSM maps (including malformed ones no handler could build) go through
the same bytes-to-typed-command decoding as a server replaying its log."""

from __future__ import annotations

from typing import Any

import msgspec

from agent.state import commands
from agent.state.fsm import FSM


def entry(command: dict[str, Any]) -> bytes:
    return msgspec.msgpack.encode(command)


def apply_entry(fsm: FSM, index: int, command: dict[str, Any]) -> Any:
    return fsm.apply(index, entry(command))


def typed_command(command: dict[str, Any]) -> commands.Command:
    """The typed command a handler would have built for this map."""
    return commands.from_map(command)
