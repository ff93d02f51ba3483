"""Syntax and vocabulary check of ACL policy rules, in HCL or JSON.

Consul parses rules when a policy is written; checking them here turns a failed apply into a
validate error with a position. The text is read by the agent's own HCL1 reader (`agent.hcl`),
so what validate accepts is what the agent will accept; JSON rules are turned into the same
tree. Both spellings of HCL1 are known: `key "app/" { policy = "read" }` and
`key = { "app/" = { policy = "read" } }`.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from agent import hcl

__all__ = ["RuleProblem", "check_rules"]

_NAMED = ("agent", "event", "identity", "key", "node", "query", "service", "session")
NAMED_RESOURCES = frozenset(_NAMED + tuple(f"{r}_prefix" for r in _NAMED))
SINGLE_RESOURCES = frozenset({"acl", "keyring", "operator", "mesh", "peering"})
ENTERPRISE = frozenset({"namespace", "namespace_prefix", "partition", "partition_prefix"})
LEVELS = ("read", "write", "deny")


@dataclass(frozen=True)
class RuleProblem:
    """A problem at a 1-based line/col of the rules text."""

    line: int
    col: int
    message: str


# --- JSON form, turned into the same tree as HCL (positions are the rules' start) ---------


def _json_object(doc: dict[str, Any]) -> hcl.Object:
    return hcl.Object(
        tuple(hcl.Item(k, (), _json_value(v), 1, 1, 1, 1) for k, v in doc.items()), 1, 1
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _json_object(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


# --- vocabulary -----------------------------------------------------------------------------


def _check_item(item: hcl.Item, out: list[RuleProblem]) -> None:
    name = item.key
    if name in ENTERPRISE:
        out.append(RuleProblem(item.line, item.col, f"{name!r} rules need Consul Enterprise"))
    elif name in SINGLE_RESOURCES:
        if item.labels or isinstance(item.value, hcl.Object | list):
            out.append(RuleProblem(item.line, item.col, f'{name} takes a level: {name} = "read"'))
        else:
            _check_level(name, "policy", item.value, item.value_line, item.value_col, out)
    elif name in NAMED_RESOURCES:
        for label, body, line, col in _named_rules(item, out):
            _check_body(name, label, body, line, col, out)
    else:
        known = sorted(NAMED_RESOURCES | SINGLE_RESOURCES)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        out.append(RuleProblem(item.line, item.col, f"unknown ACL resource {name!r}{hint}"))


def _named_rules(item: hcl.Item, out: list[RuleProblem]) -> list[tuple[str, hcl.Object, int, int]]:
    """The `(label, body)` pairs of a named resource, in block or object form."""
    body = item.value
    if len(item.labels) == 1 and isinstance(body, hcl.Object):
        return [(item.labels[0], body, item.line, item.col)]
    objects = isinstance(body, hcl.Object) and all(
        not v.labels and isinstance(v.value, hcl.Object) for v in body.items
    )
    if not item.labels and objects:
        # HCL1/JSON object form: key_prefix = { "app/" = { policy = "read" } }
        return [(inner.key, inner.value, inner.line, inner.col) for inner in body.items]
    out.append(
        RuleProblem(item.line, item.col, f'expected {item.key} "<name>" {{ policy = "read" }}')
    )
    return []


def _check_body(
    resource: str, label: str, body: hcl.Object, line: int, col: int, out: list[RuleProblem]
) -> None:
    allowed = {"policy"} | ({"intentions"} if resource.startswith("service") else set())
    seen: set[str] = set()
    for attr in body.items:
        if attr.key not in allowed or attr.labels:
            out.append(
                RuleProblem(
                    attr.line, attr.col, f"unknown attribute {attr.key!r} in {resource} rule"
                )
            )
            continue
        seen.add(attr.key)
        _check_level(resource, attr.key, attr.value, attr.value_line, attr.value_col, out)
    if "policy" not in seen and "intentions" not in seen:
        out.append(
            RuleProblem(line, col, f'{resource} "{label}" needs a policy, e.g. policy = "read"')
        )


def _check_level(
    resource: str, attr: str, value: Any, line: int, col: int, out: list[RuleProblem]
) -> None:
    levels = LEVELS + (("list",) if resource.startswith("key") and attr == "policy" else ())
    if value not in levels:
        choices = ", ".join(levels)
        out.append(
            RuleProblem(line, col, f"invalid {attr} {value!r} for {resource} (one of {choices})")
        )


def check_rules(text: str) -> list[RuleProblem]:
    """Every problem found in `text` (HCL or JSON rules); empty when the rules are valid."""
    if text.lstrip().startswith("{"):
        try:
            doc = _json_object(json.loads(text))
        except json.JSONDecodeError as exc:
            return [RuleProblem(exc.lineno, exc.colno, f"invalid JSON rules: {exc.msg}")]
        except RecursionError:
            return [RuleProblem(1, 1, "invalid JSON rules: nested too deeply")]
    else:
        try:
            doc = hcl.parse(text)
        except hcl.HCLError as exc:
            return [RuleProblem(exc.line, exc.col, exc.detail)]
    out: list[RuleProblem] = []
    for item in doc.items:
        _check_item(item, out)
    return out
