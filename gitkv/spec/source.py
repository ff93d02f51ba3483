"""Source positions of a loaded YAML document.

The loader turns ruamel's round-trip tree into plain Python values (what pydantic validates)
and, beside it, a tree of `Source` nodes of the same shape that remembers where every node came
from. Keeping positions out of the values means merging files, expanding `kv_dir` and
validating all work on ordinary dicts and lists, and any error can still be placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gitkv.errors import Diagnostic

__all__ = ["Position", "Source"]


@dataclass(frozen=True, order=True)
class Position:
    """A 1-based line/column in a file, the file named as the user will recognise it."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def diag(self, message: str) -> Diagnostic:
        return Diagnostic(self.file, self.line, self.col, message)


@dataclass
class Source:
    """Where one node of the document came from.

    `key` is the position of the mapping key that names the node (None for the root and for
    sequence items), `value` the position of the node itself. `children` mirrors the node:
    a dict for mappings, a list for sequences, None for scalars. For block scalars (`|`, `>`)
    `block_indent` is the column their content starts at; `quoted` marks `"..."`/`'...'`.
    """

    key: Position | None
    value: Position
    children: dict[Any, Source] | list[Source] | None = None
    block_indent: int | None = None
    quoted: bool = False

    @property
    def anchor(self) -> Position:
        """Where to point at the node as a whole: its key if it has one."""
        return self.key or self.value

    def child(self, part: Any) -> Source | None:
        if isinstance(self.children, dict):
            return self.children.get(part)
        if isinstance(self.children, list) and isinstance(part, int):
            return self.children[part] if 0 <= part < len(self.children) else None
        return None

    def find(self, loc: Sequence[Any]) -> tuple[Source, list[Any]]:
        """The deepest node along `loc`, and the parts of `loc` that matched.

        Parts that name no child are skipped: pydantic adds union tags and `[key]` markers to
        its locations, and a missing field names a child that does not exist.
        """
        node, matched = self, []
        for part in loc:
            nxt = node.child(part)
            if nxt is not None:
                node = nxt
                matched.append(part)
        return node, matched

    def text_position(self, line: int, col: int) -> Position:
        """The file position of `line`/`col` (1-based) inside this string scalar's text."""
        start = self.value
        if self.block_indent is not None:
            return Position(start.file, start.line + line, self.block_indent + col - 1)
        if line == 1:
            return Position(start.file, start.line, start.col + col - 1 + int(self.quoted))
        return start
