"""Where configuration comes from: a `Source` per layer, and the files that make layers.

A layer is the defaults, one flag, one config file or one `-hcl` fragment; it keeps its label
so that an error can name it (`-bind: ...`, `/etc/consul.d/a.json: bind_addr: ...`). Files are
JSON or HCL (read by `agent.hcl`), chosen by extension or `-config-format`; `-config-dir`
reads its `*.json` and `*.hcl` files in lexical order and does not recurse, as Consul does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agent import hcl
from agent.config_errors import ConfigError

__all__ = [
    "Source",
    "config_paths",
    "parse_text",
    "read_source",
    "where",
]


@dataclass
class Source:
    """One layer of configuration. ``label`` is what an error message names."""

    label: str
    data: dict[str, Any]
    is_flag: bool = False  # a single flag: errors name the flag, not the key
    user: bool = True  # given by the user (counts for ignored_keys)


def where(src: Source, dotted: str) -> str:
    if src.is_flag:
        return src.label
    if not src.user:
        return dotted
    return f"{src.label}: {dotted}"


def config_paths(paths: Sequence[tuple[str, str]], fmt: str | None) -> Iterator[str]:
    """Expand -config-file/-config-dir arguments into the files to read, in order."""
    for flag, path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"-{flag}: cannot read {path}: no such file or directory")
        if not os.path.isdir(path):
            if fmt is None and _format_of(path) is None:
                raise ConfigError(
                    f"file {path} has unknown extension; must be .hcl or .json, "
                    "or config format must be set"
                )
            yield path
            continue
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isdir(full):
                continue  # Consul does not recurse
            if fmt is None and _format_of(name) is None:
                continue
            yield full


def _format_of(path: str) -> str | None:
    if path.endswith(".json"):
        return "json"
    if path.endswith(".hcl"):
        return "hcl"
    return None


def read_source(path: str, fmt: str | None) -> Source | None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not text.strip():
        return None  # Consul skips empty files
    data = parse_text(text, fmt or _format_of(path) or "json", path)
    return Source(path, data)


def parse_text(text: str, fmt: str, label: str) -> dict[str, Any]:
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{label}: invalid JSON: {exc}") from None
    else:
        try:
            data = hcl.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{label}: invalid HCL: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: config must be an object at the top level")
    return data
