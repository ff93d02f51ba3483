"""Plans as text: a colored human diff and JSON (Markdown: `gitkv.render_markdown`).

Every function returns a string; printing happens in the commands. Secrets cannot appear:
plans hold `SecretRef`s, which render as "from env:NAME (hidden)".
"""

from __future__ import annotations

import difflib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape

from gitkv.ledger import ledger_key
from gitkv.objects import ApiObject, flatten
from gitkv.plan import CREATE, DELETE, UPDATE, Change, Plan, plans_to_json, summary
from gitkv.resources import CheckDef, KVPair, SecretRef

__all__ = [
    "format_value",
    "render_human",
    "render_json",
    "summary_line",
]

MAX_VALUE_CHARS = 200
MAX_LISTED = 20
_SIGN = {CREATE: "+", UPDATE: "~", DELETE: "-"}
_STYLE = {CREATE: "green", UPDATE: "yellow", DELETE: "red"}


def summary_line(plans: Iterable[Plan]) -> str:
    """`"N to add, M to change, K to destroy."` (Terraform's wording)."""
    s = summary(plans)
    return f"{s[CREATE]} to add, {s[UPDATE]} to change, {s[DELETE]} to destroy."


# -- values ---------------------------------------------------------------------------------


def _show_bytes(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(value)} bytes, binary>"
    if any(ord(ch) < 32 and ch not in "\n\t\r" for ch in text):
        return f"<{len(value)} bytes, binary>"
    shown = json.dumps(text, ensure_ascii=False)
    if len(shown) > MAX_VALUE_CHARS:
        return shown[: MAX_VALUE_CHARS - 4] + '..." ' + f"({len(value)} bytes)"
    return shown


def _show_check(c: CheckDef) -> str:
    parts = [c.kind, c.target or c.ttl]
    if c.interval:
        parts.append(f"every {c.interval}")
    return " ".join(p for p in parts if p) + f" ({c.id})"


def format_value(value: Any) -> str:
    """A short, secret-free one-line form of a resource field value."""
    if isinstance(value, SecretRef):
        return f"from {value.describe()} (hidden)"
    if isinstance(value, bytes):
        return _show_bytes(value)
    if isinstance(value, CheckDef):
        return _show_check(value)
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return "{" + ", ".join(f"{k}={v}" for k, v in value) + "}"
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if is_dataclass(value) and not isinstance(value, type):
        return "{" + ", ".join(_field_pairs(value)) + "}"
    if isinstance(value, str):
        return json.dumps(value) if value == "" or " " in value else value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# Fields already spelt out by the change's id line, and bookkeeping never worth showing.
_HIDDEN = {"name", "agent", "node", "checks_digest"}


def _field_pairs(obj: Any, hidden: frozenset[str] | set[str] = frozenset()) -> list[str]:
    out = []
    for f in fields(obj):
        v = getattr(obj, f.name)
        if f.name in hidden or v in ("", (), None, 0, False):
            continue
        out.append(f"{f.name}={format_value(v)}")
    return out


def _describe(change: Change) -> list[str]:
    """The lines describing one change (first line: sign, kind, id; then details)."""
    sign = _SIGN[change.action]
    head = f"{sign} {change.kind} {change.id}"
    if change.kind == "kv":
        return _describe_kv(change, head)
    if change.action == DELETE:
        return [head]
    if isinstance(change.after, ApiObject):
        return [head, *_describe_object(change.before, change.after)]
    hidden = _HIDDEN | ({"id"} if change.kind == "service" else set())
    if change.action == CREATE:
        return [head] + [f"    {p}" for p in _field_pairs(change.after, hidden)]
    lines = [head]
    for f in fields(change.after):
        b, a = getattr(change.before, f.name), getattr(change.after, f.name)
        if f.name in ("secret", "checks_digest") or b == a:
            continue
        lines.append(f"    {f.name}: {format_value(b)} -> {format_value(a)}")
    return lines


def _describe_object(before: ApiObject | None, after: ApiObject) -> list[str]:
    """Field-level lines: every field of a new object, the changed leaves of an update."""
    new = dict(flatten(after.body))
    secrets = [f"    {name} = {format_value(ref)}" for name, ref in after.secrets]
    if before is None:
        return [f"    {path} = {_leaf(v)}" for path, v in new.items() if path] + secrets
    old = dict(flatten(before.body))
    lines = []
    for path in sorted(set(old) | set(new), key=lambda p: (p not in old, p)):
        a, b = old.get(path, _UNSET), new.get(path, _UNSET)
        if a != b:
            lines.append(f"    {path or '(body)'}: {_leaf(a)} -> {_leaf(b)}")
    return lines


_UNSET = object()


def _leaf(value: Any) -> str:
    """A leaf of a Consul JSON body: strings as `format_value` shows them, other scalars as
    JSON (`true`, `null`, `50`)."""
    if value is _UNSET:
        return "(unset)"
    if isinstance(value, str):
        return format_value(value)
    return json.dumps(value, separators=(",", ":"))


def _describe_kv(change: Change, head: str) -> list[str]:
    before: KVPair | None = change.before
    after: KVPair | None = change.after
    if change.action == CREATE:
        flags = f" (flags {after.flags})" if after.flags else ""
        return [f"{head} = {_show_bytes(after.value)}{flags}"]
    if change.action == DELETE:
        return [f"{head} (was {_show_bytes(before.value)})"]
    lines = [head]
    if before.value != after.value:
        lines.extend(_value_diff(before.value, after.value))
    if before.flags != after.flags:
        lines.append(f"    flags: {before.flags} -> {after.flags}")
    return lines


def _value_diff(old: bytes, new: bytes) -> list[str]:
    try:
        a, b = old.decode(), new.decode()
    except UnicodeDecodeError:
        return [f"    value: {_show_bytes(old)} -> {_show_bytes(new)}"]
    if "\n" not in a.strip() and "\n" not in b.strip():
        return [f"    value: {_show_bytes(old)} -> {_show_bytes(new)}"]
    diff = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=1)
    body = [line for line in diff if not line.startswith(("---", "+++"))]
    return ["    " + line for line in body[:40]] + (["    ..."] if len(body) > 40 else [])


def _listed(title: str, items: Sequence[tuple[str, str]]) -> list[str]:
    if not items:
        return []
    lines = [f"{title} ({len(items)}):"]
    lines += [f"  {kind} {ident}" for kind, ident in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(f"  ... and {len(items) - MAX_LISTED} more")
    return lines


def _extras(plan: Plan) -> list[str]:
    lines: list[str] = []
    lines += _listed("Unmanaged (not in the spec, never touched)", plan.unmanaged)
    lines += _listed("Left the spec, kept (managed; use --prune to delete)", plan.orphans)
    if plan.drift:
        lines.append("Agent drift (read-only):")
        lines += [f"  {d.agent}: {d.problem}" for d in plan.drift]
    lines += [
        f"Warning: {n.removeprefix('warning: ')}" if n.startswith("warning: ") else f"Note: {n}"
        for n in plan.notes
    ]
    if plan.ledger_changed and not plan.changes and plan.ledger_after is not None:
        key = ledger_key(plan.ledger_after.name)
        lines.append(f"Note: apply will only update gitkv's ownership record {key}")
    return lines


# -- renderers ------------------------------------------------------------------------------


def render_human(plans: Sequence[Plan], *, color: bool = False, width: int = 100) -> str:
    """A Terraform-like diff; colored with ANSI codes when `color` is true."""
    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=width,
        highlight=False,
        soft_wrap=True,
    )
    for plan in plans:
        console.print(f"[bold]Datacenter {escape(plan.datacenter)}[/bold] ({escape(plan.address)})")
        for change in plan.changes:
            style = _STYLE[change.action]
            for i, line in enumerate(_describe(change)):
                console.print(f"[{style}]{escape(line)}[/{style}]" if i == 0 else escape(line))
        for line in _extras(plan):
            console.print(escape(line))
        if not plan.changes:
            console.print("No changes. The cluster matches the spec.")
        console.print()
    console.print(f"[bold]Plan:[/bold] {summary_line(plans)}")
    return buf.getvalue()


def render_json(plans: Sequence[Plan]) -> str:
    """The plan as JSON: the same document `-out FILE` saves."""
    return plans_to_json(plans)
