"""ACL policy rules, in HCL or the equivalent JSON, parsed to values.

The HCL text is read by `agent.hcl` (the HCL1 reader config files use too, and whose
docstring says why it is our own); this module gives the tree its meaning: which resources
exist, which need a label, which levels each allows. Errors keep the reader's position, as
`At <line>:<col>: <what>`, the way Consul reports a rule it cannot parse.

    rules = parse_rules('key_prefix "" { policy = "read" }')
    rules.named[("key", "", True)] == "read"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent import hcl

__all__ = [
    "LEVELS",
    "NAMED",
    "SINGLE",
    "ParsedRules",
    "RuleError",
    "parse_rules",
]

NAMED = ("agent", "event", "identity", "key", "node", "query", "service", "session")
SINGLE = ("acl", "keyring", "operator", "mesh", "peering")
LEVELS = ("deny", "read", "list", "write")
# Attributes a block may carry besides `policy`: a service's rules for its intentions.
_EXTRA_BLOCK_KEYS = {"service": ("intentions",), "identity": ("intentions",)}


class RuleError(ValueError):
    """Rules that cannot be parsed or name unknown things; `line`/`col` are 1-based (0: none)."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        self.line, self.col, self.detail = line, col, message
        super().__init__(f"At {line}:{col}: {message}" if line else message)


@dataclass(frozen=True)
class ParsedRules:
    """`named[(resource, name, is_prefix)] = level`; `single[resource] = level`."""

    named: dict[tuple[str, str, bool], str] = field(default_factory=dict)
    single: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------ HCL form


def _text(value: Any) -> Any:
    """A scalar as HCL1's decoder hands it to a string field: numbers and bools as written."""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return value


def _level(resource: str, item: hcl.Item) -> str:
    text = _text(item.value)
    # An object has no single position of its own worth naming: point at its key.
    line, col = (
        (item.line, item.col)
        if isinstance(item.value, hcl.Object)
        else (item.value_line, item.value_col)
    )
    if not isinstance(text, str):
        raise RuleError(f"{resource}: policy must be a string", line, col)
    allowed = LEVELS if resource == "key" else ("deny", "read", "write")
    if text not in allowed:
        raise RuleError(f'Invalid {resource} policy: "{text}"', line, col)
    return text


def _from_hcl(doc: hcl.Object) -> ParsedRules:
    out = ParsedRules()
    for item in doc.items:
        name = item.key
        if name in SINGLE:
            if item.labels or isinstance(item.value, hcl.Object):
                raise RuleError(f"{name} must be assigned a string", item.line, item.col)
            out.single[name] = _level(name, item)
            continue
        base = name.removesuffix("_prefix")
        if base not in NAMED:
            raise RuleError(f"unknown ACL resource {name!r}", item.line, item.col)
        prefix = name.endswith("_prefix")
        if not isinstance(item.value, hcl.Object) or len(item.labels) > 1:
            raise RuleError(f"{name} needs one label and a block", item.line, item.col)
        # HCL1 also allows `key = { "a/" = { policy = "read" } }`: one entry per inner key.
        entries = [item] if item.labels else list(item.value.items)
        for entry in entries:
            label = entry.labels[0] if entry is item else entry.key
            if not isinstance(entry.value, hcl.Object) or (entry is not item and entry.labels):
                raise RuleError(f"{name} {label!r} must be a block", entry.line, entry.col)
            level = intentions = None
            for attr in entry.value.items:
                if attr.key == "policy" and not attr.labels:
                    level = _level(base, attr)
                elif attr.key in _EXTRA_BLOCK_KEYS.get(base, ()):
                    intentions = _level(base, attr)
                else:
                    raise RuleError(
                        f"unknown attribute {attr.key!r} in {name}", attr.line, attr.col
                    )
            if level is None and intentions is None:
                raise RuleError(f"{name} {label!r} has no policy", entry.line, entry.col)
            _put(out, base, label, prefix, level, intentions)
    return out


def _put(
    out: ParsedRules,
    base: str,
    label: str,
    prefix: bool,
    level: str | None,
    intentions: str | None,
) -> None:
    """One block's rules. A service block also governs the intentions naming that service
    as destination: its `intentions` attribute, else read with a read or write policy (as
    Consul derives it)."""
    if level is not None:
        out.named[(base, label, prefix)] = level
    if base != "service":
        return
    if intentions is None and level in ("read", "write"):
        intentions = "read"
    if intentions is not None:
        out.named[("intention", label, prefix)] = intentions


# ------------------------------------------------------------------------------ JSON form


def _from_json(doc: Any) -> ParsedRules:
    if not isinstance(doc, dict):
        raise RuleError("JSON rules must be an object")
    out = ParsedRules()
    for name, value in doc.items():
        if name in SINGLE:
            if not isinstance(value, str):
                raise RuleError(f"{name} must be a string")
            out.single[name] = _json_level(name, value)
            continue
        base = name.removesuffix("_prefix")
        if base not in NAMED:
            raise RuleError(f"unknown ACL resource {name!r}")
        # HCL-to-JSON of repeated blocks yields a list of one-key objects: accept both.
        blocks = value if isinstance(value, list) else [value]
        for block in blocks:
            if not isinstance(block, dict):
                raise RuleError(f"{name} must be an object of name -> {{policy}}")
            for label, attrs in block.items():
                extra = _EXTRA_BLOCK_KEYS.get(base, ())
                if not isinstance(attrs, dict) or not (
                    "policy" in attrs or any(k in attrs for k in extra)
                ):
                    raise RuleError(f"{name} {label!r} has no policy")
                for attr in attrs:
                    if attr != "policy" and attr not in extra:
                        raise RuleError(f"unknown attribute {attr!r} in {name}")
                level = _json_level(base, attrs["policy"]) if "policy" in attrs else None
                intentions = next((_json_level(base, attrs[k]) for k in extra if k in attrs), None)
                _put(out, base, label, name.endswith("_prefix"), level, intentions)
    return out


def _json_level(resource: str, value: Any) -> str:
    allowed = LEVELS if resource == "key" else ("deny", "read", "write")
    if value not in allowed:
        raise RuleError(f'Invalid {resource} policy: "{value}"')
    return str(value)


def parse_rules(text: str) -> ParsedRules:
    """Rules text (HCL, or JSON when it starts with `{`) -> ParsedRules; RuleError if invalid."""
    if not text.strip():
        return ParsedRules()
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuleError(exc.msg, exc.lineno, exc.colno) from None
        except RecursionError:
            raise RuleError("JSON rules nested too deeply") from None
        return _from_json(doc)
    try:
        doc = hcl.parse(text)
    except hcl.HCLError as exc:
        raise RuleError(exc.detail, exc.line, exc.col) from None
    return _from_hcl(doc)
