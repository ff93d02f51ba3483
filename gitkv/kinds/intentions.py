"""The intentions shorthand: `"web -> db": allow` as service-intentions config entries.

Intentions are stored by Consul as one `service-intentions` entry per destination, holding a
`Sources` list; the shorthand is folded into those entries, so plan, apply, ownership and
prune treat both spellings alike. Sources are kept sorted by name (their order means
nothing to Consul: precedence decides), which is also how live entries are compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["intention_entries", "intention_shorthand", "parse_key"]

_KEY = re.compile(r"^\s*([^\s>]+)\s*->\s*([^\s>]+)\s*$")


def parse_key(key: str) -> tuple[str, str]:
    """`"web -> db"` -> `("web", "db")`.

    :raises ValueError: when the key is not `<source> -> <destination>`.
    """
    m = _KEY.match(key)
    if not m:
        raise ValueError(f"intention {key!r} must be written '<source> -> <destination>'")
    return m.group(1), m.group(2)


def intention_entries(rules: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Shorthand rules -> `{destination: service-intentions body}` (Consul's field names).

    A rule's value is `allow`/`deny`, or a mapping with `action` and `description`.
    """
    by_dest: dict[str, list[dict[str, Any]]] = {}
    for key, rule in rules.items():
        source, dest = parse_key(key)
        action = rule if isinstance(rule, str) else rule["action"]
        src: dict[str, Any] = {"Name": source, "Action": action}
        if not isinstance(rule, str) and rule.get("description"):
            src["Description"] = rule["description"]
        by_dest.setdefault(dest, []).append(src)
    return {
        dest: {"Sources": sorted(sources, key=lambda s: s["Name"])}
        for dest, sources in sorted(by_dest.items())
    }


_PLAIN = frozenset({"Name", "Action", "Description"})


def intention_shorthand(dest: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A canonical service-intentions body as shorthand rules, or None when it holds more
    than names and actions (L7 permissions, peers, JWT, meta): then it stays an entry."""
    if set(body) != {"Sources"}:
        return None
    out: dict[str, Any] = {}
    for src in body["Sources"]:
        if not set(src) <= _PLAIN or src.get("Action") not in ("allow", "deny"):
            return None
        key = f"{src['Name']} -> {dest}"
        desc = src.get("Description")
        out[key] = {"action": src["Action"], "description": desc} if desc else src["Action"]
    return out
