"""What applying a command can answer besides plain data: a refusal, or a txn's outcome.

These sit below the FSM modules so every part of the apply side (and the leader's
lock-delay check, which answers before proposing) builds the same values.
"""

from __future__ import annotations

import msgspec

from agent.errors import RefusalKind


class Refusal(msgspec.Struct):
    """An apply that changed nothing, and why. `kind` is what it means to the caller (see
    `agent.errors.CommandRefused`, which the writer raises from it); never an HTTP status."""

    message: str
    kind: RefusalKind = "failed"


class TxnResult(msgspec.Struct):
    results: list[dict] | None
    errors: list[dict] | None
