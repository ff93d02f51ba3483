"""A plan as Markdown for pull-request review (`gitkv plan --markdown`).

What a reviewer needs first comes first: the totals, a warning when the plan is partial
(`--target`), and every destructive change listed in a caution box — deletions, and updates
that remove part of a resource or replace it (a node's services deregistered, a service's
checks removed, a new CA provider). Then one section per datacenter, grouped by kind in apply
order; each change is a `diff` block, and a change whose description is long (a value diff of
a big KV value or JSON document) is collapsed in `<details>` under its one-line heading.
GitHub renders `> [!CAUTION]` boxes; other renderers show a plain quote.

Secrets cannot appear: the descriptions come from `gitkv.render`, which shows `SecretRef`s as
references.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from gitkv.ledger import KINDS
from gitkv.plan import CREATE, DELETE, UPDATE, Change, Plan
from gitkv.render import _describe, _extras, summary_line  # one description for every format

__all__ = ["COLLAPSE_LINES", "destructive", "render_markdown"]

# A change described in more lines than this is collapsed under its heading line.
COLLAPSE_LINES = 8
# Changes shown per datacenter and kind; the JSON plan (`--json`, `-out`) has them all.
MAX_SHOWN = 200


def _services(node: Any) -> set[str]:
    return {s.id for s in getattr(node, "services", ())}


def destructive(change: Change) -> str | None:
    """Why `change` destroys something (None when it does not): a reviewer must see these."""
    if change.action == DELETE:
        return "destroyed"
    if change.action != UPDATE:
        return None
    before, after = change.before, change.after
    if change.kind == "external_node":
        gone = sorted(_services(before) - _services(after))
        if gone:
            return f"deregisters service{'s' if len(gone) > 1 else ''} {', '.join(gone)}"
    if change.kind == "service":
        gone = sorted({c.id for c in before.checks} - {c.id for c in after.checks})
        if gone:
            return f"removes check{'s' if len(gone) > 1 else ''} {', '.join(gone)}"
    if change.kind == "ca":
        old = (getattr(before, "body", None) or {}).get("Provider")
        new = (getattr(after, "body", None) or {}).get("Provider")
        if old != new:
            return f"replaces the CA provider ({old} -> {new}): a new root, certificates rotate"
    return None


def _code(text: str) -> str:
    # Inside fences and inline code a backtick would end the block; a quote reads the same.
    return text.replace("`", "'")


def _counts(changes: Sequence[Change]) -> str:
    n = {a: sum(1 for c in changes if c.action == a) for a in (CREATE, UPDATE, DELETE)}
    return f"{n[CREATE]} to add, {n[UPDATE]} to change, {n[DELETE]} to destroy"


def _caution(plans: Sequence[Plan]) -> list[str]:
    found = [(p.datacenter, c, why) for p in plans for c in p.changes if (why := destructive(c))]
    if not found:
        return []
    n = len(found)
    out = [
        "> [!CAUTION]",
        f"> **{n} destructive change{'s' if n > 1 else ''}** — check that each is intended:",
    ]
    for dc, c, why in found[:MAX_SHOWN]:
        out.append(f"> - `{_code(dc)}`: `{_code(c.kind)} {_code(c.id)}` — **{_code(why)}**")
    if n > MAX_SHOWN:
        out.append(f"> - ... and {n - MAX_SHOWN} more (see `gitkv plan --json`)")
    return [*out, ""]


def _partial(plans: Sequence[Plan]) -> list[str]:
    targets = sorted({t for p in plans for t in p.targets})
    if not targets:
        return []
    shown = ", ".join(f"`{_code(t)}`" for t in targets)
    return [
        "> [!WARNING]",
        f"> **Partial plan** (`--target` {shown}): changes to other resources are not shown "
        "and will not be applied. Run a full plan before relying on it.",
        "",
    ]


def _kind_section(kind: str, changes: Sequence[Change]) -> list[str]:
    out = [f"**{_code(kind)}** — {_counts(changes)}", ""]
    block: list[str] = []

    def flush() -> None:
        if block:
            out.extend(["```diff", *block, "```", ""])
            block.clear()

    for change in changes[:MAX_SHOWN]:
        lines = [_code(line) for line in _describe(change)]
        why = destructive(change)
        if why and change.action != DELETE:
            lines.insert(1, _code(f"!   {why}"))  # it names live ids, which may hold backticks
        if len(lines) <= COLLAPSE_LINES:
            block.extend(lines)
            continue
        flush()
        head = html.escape(lines[0])
        out += [f"<details><summary><code>{head}</code> ({len(lines) - 1} lines)</summary>", ""]
        out += ["```diff", *lines, "```", "", "</details>", ""]
    flush()
    if len(changes) > MAX_SHOWN:
        out += [f"... and {len(changes) - MAX_SHOWN} more (see `gitkv plan --json`)", ""]
    return out


def _datacenter(plan: Plan) -> list[str]:
    out = [f"#### Datacenter `{_code(plan.datacenter)}` — {_counts(plan.changes)}", ""]
    if not plan.changes:
        out += ["No changes.", ""]
    rank = {k: i for i, k in enumerate(KINDS)}
    kinds = sorted({c.kind for c in plan.changes}, key=lambda k: rank.get(k, len(rank)))
    for kind in kinds:
        out += _kind_section(kind, [c for c in plan.changes if c.kind == kind])
    extras = _extras(plan)
    if extras:
        out += ["<details><summary>Unmanaged, kept and drift</summary>", "", "```"]
        out += [_code(line) for line in extras]
        out += ["```", "</details>", ""]
    return out


def render_markdown(plans: Sequence[Plan]) -> str:
    """Markdown for a pull-request comment (see the module docstring for the layout)."""
    out = ["### gitkv plan", "", f"**{summary_line(plans)}**", ""]
    out += _partial(plans)
    out += _caution(plans)
    for plan in plans:
        out += _datacenter(plan)
    return "\n".join(out)
