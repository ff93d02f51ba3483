"""Loading a spec: YAML files -> one merged document with positions -> a validated `Spec`.

A spec is one YAML file, or a directory whose `*.yaml`/`*.yml` files (not sub-directories:
those hold `kv_dir` trees and value files) are merged in name order. Every problem found on
the way — YAML syntax, duplicates, schema, cross references, missing files — is collected as a
positioned `Diagnostic`; `load_spec` raises them together as one `SpecError`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from gitkv.errors import Diagnostic, GitkvError, SpecError
from gitkv.spec.checks import semantic_problems
from gitkv.spec.messages import pydantic_diagnostics
from gitkv.spec.model import Spec
from gitkv.spec.source import Position, Source

__all__ = ["SPEC_SUFFIXES", "LoadedSpec", "check_spec", "load_spec", "spec_files"]

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedSpec:
    """A valid spec and where it came from.

    `base_dir` is what relative file references (KV files, `kv_dir`, secret files) resolve
    against. `kv_dir` trees are already expanded into each datacenter's `kv` as `{file: ...}`
    entries. `digest` is a SHA-256 over the spec files' names and bytes.
    """

    spec: Spec
    base_dir: Path
    files: tuple[Path, ...]
    digest: str


def spec_files(path: Path) -> list[Path]:
    """The YAML files making up the spec at `path` (a file, or a directory's top level)."""
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.suffix in SPEC_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise GitkvError(f"no *.yaml or *.yml files in spec directory {path}")
        return files
    if not path.exists():
        raise GitkvError(f"spec {path} not found")
    return [path]


def load_spec(path: str | os.PathLike[str]) -> LoadedSpec:
    """Load, merge and validate the spec at `path`.

    :raises SpecError: with every problem found, each at its `file:line:col`.
    :raises GitkvError: when `path` does not exist or holds no spec files.
    """
    loaded, problems = check_spec(path)
    if problems or loaded is None:
        raise SpecError(problems)
    return loaded


def check_spec(path: str | os.PathLike[str]) -> tuple[LoadedSpec | None, list[Diagnostic]]:
    """Like `load_spec`, but returns the problems instead of raising them."""
    root_path = Path(path)
    files = spec_files(root_path)
    base_dir = root_path if root_path.is_dir() else root_path.parent
    sources = [(_display(path, f, root_path), f.read_bytes()) for f in files]
    digest = hashlib.sha256()
    for file, (_, raw) in zip(files, sources, strict=True):
        digest.update(file.name.encode() + b"\0" + raw + b"\0")
    # Positions cost: ruamel's round-trip loader is several times slower than its C loader,
    # which matters for specs with 100,000 keys. A valid spec needs no positions, so try
    # without them first and load again with them only to report problems.
    spec, problems = _check(sources, base_dir, precise=False)
    if spec is None or problems:
        spec, problems = _check(sources, base_dir, precise=True)
    if spec is None or problems:
        return None, problems
    return LoadedSpec(spec, base_dir, tuple(files), digest.hexdigest()), []


def _check(
    sources: list[tuple[str, bytes]], base_dir: Path, *, precise: bool
) -> tuple[Spec | None, list[Diagnostic]]:
    problems: list[Diagnostic] = []
    doc: dict[Any, Any] = {}
    root = Source(None, Position(sources[0][0], 1, 1), {})
    for display, raw in sources:
        parsed = _parse(raw, display, problems) if precise else _parse_fast(raw, display)
        if parsed is None:
            # A file that does not parse leaves holes that would only show up as confusing
            # follow-on errors ("missing field"); report the syntax problems alone.
            return None, sorted(set(problems))
        _merge(doc, root, parsed[0], parsed[1], (), problems)
    _expand_kv_dirs(doc, root, base_dir, problems)
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(doc)
    except ValidationError as exc:
        problems.extend(pydantic_diagnostics(exc, root))
    problems.extend(semantic_problems(doc, root, base_dir))
    return spec, sorted(set(problems))


def _display(given: str | os.PathLike[str], file: Path, root_path: Path) -> str:
    # Name files the way the user named the spec, so editors and CI annotations find them.
    return os.path.join(os.fspath(given), file.name) if root_path.is_dir() else os.fspath(given)


# --- parsing --------------------------------------------------------------------------------

_DUPLICATE = re.compile(r'found duplicate key "(.*)" with value')


def _parse(
    raw: bytes, display: str, problems: list[Diagnostic]
) -> tuple[dict[Any, Any], Source] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Diagnostic(display, 1, 1, f"not UTF-8 text: {exc.reason}"))
        return None
    try:
        node = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        problems.append(_yaml_problem(exc, display))
        return None
    except YAMLError as exc:
        problems.append(Diagnostic(display, 1, 1, f"invalid YAML: {exc}"))
        return None
    if node is None:
        return {}, Source(None, Position(display, 1, 1), {})
    if not isinstance(node, CommentedMap):
        problems.append(
            Diagnostic(display, 1, 1, "a spec file must be a mapping (version, datacenters, ...)")
        )
        return None
    lines = text.splitlines()
    value, source = _convert(node, display, None, Position(display, 1, 1), lines)
    return value, source


def _parse_fast(raw: bytes, display: str) -> tuple[dict[Any, Any], Source] | None:
    """Plain values with placeholder positions, or None for anything but a clean mapping."""
    try:
        node = YAML(typ="safe", pure=False).load(raw.decode("utf-8"))
    except (UnicodeDecodeError, YAMLError):
        return None
    if node is None:
        node = {}
    if not isinstance(node, dict):
        return None
    return node, _placeholder(node, Position(display, 1, 1))


def _placeholder(value: Any, at: Position) -> Source:
    if isinstance(value, dict):
        return Source(at, at, {k: _placeholder(v, at) for k, v in value.items()})
    if isinstance(value, list):
        return Source(at, at, [_placeholder(v, at) for v in value])
    return Source(at, at)


def _yaml_problem(exc: MarkedYAMLError, display: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    dup = _DUPLICATE.search(problem)
    if dup:
        first = exc.context_mark
        where = f" (mapping starts at line {first.line + 1})" if first is not None else ""
        problem = f"duplicate key {dup.group(1)!r} in the same mapping{where}"
    return Diagnostic(display, line, col, problem)


def _convert(
    node: Any, file: str, key: Position | None, at: Position, lines: list[str]
) -> tuple[Any, Source]:
    """Plain values and their `Source` tree for a ruamel node that starts at `at`."""
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        children: dict[Any, Source] = {}
        for k, v in node.items():
            try:
                kl, kc = node.lc.key(k)
                vl, vc = node.lc.value(k)
                kpos, vpos = Position(file, kl + 1, kc + 1), Position(file, vl + 1, vc + 1)
            except (KeyError, TypeError):  # keys from a `<<:` merge have no position of their own
                kpos = vpos = key or at
            plain_key = _scalar(k)
            out[plain_key], children[plain_key] = _convert(v, file, kpos, vpos, lines)
        return out, Source(key, at, children)
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        sources: list[Source] = []
        for i, v in enumerate(node):
            try:
                il, ic = node.lc.item(i)
                ipos = Position(file, il + 1, ic + 1)
            except (KeyError, TypeError, IndexError):
                ipos = at
            value, src = _convert(v, file, None, ipos, lines)
            items.append(value)
            sources.append(src)
        return items, Source(key, at, sources)
    source = Source(key, at)
    if isinstance(node, LiteralScalarString | FoldedScalarString):
        source.block_indent = _block_indent(lines, at.line)
    elif 0 < at.line <= len(lines) and lines[at.line - 1][at.col - 1 : at.col] in ("'", '"'):
        source.quoted = True
    return _scalar(node), source


def _block_indent(lines: list[str], indicator_line: int) -> int:
    for text in lines[indicator_line:]:
        if text.strip():
            return len(text) - len(text.lstrip(" ")) + 1
    return 1


def _scalar(value: Any) -> Any:
    # ruamel's round-trip scalars are subclasses that keep formatting; pydantic's strict mode
    # and equality checks want the plain types.
    if isinstance(value, ScalarBoolean):
        return bool(value)
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    return value


# --- merging the files of a directory spec -------------------------------------------------

# How each place of the document merges when several files define it: "map" merges the two
# mappings, "unique:<what>" too but a key defined twice is an error, "list" concatenates;
# anything else must be equal in both files.
_MERGE: dict[tuple[str, ...], str] = {
    (): "map",
    ("datacenters",): "map",
    ("datacenters", "*"): "map",
    ("datacenters", "*", "acl"): "map",
    ("datacenters", "*", "agents"): "unique:agent",
    ("datacenters", "*", "kv"): "unique:kv key",
    ("datacenters", "*", "acl", "policies"): "unique:policy",
    ("datacenters", "*", "acl", "roles"): "unique:role",
    ("datacenters", "*", "acl", "tokens"): "unique:token",
    ("datacenters", "*", "acl", "auth_methods"): "unique:auth method",
    ("datacenters", "*", "acl", "binding_rules"): "list",
    ("datacenters", "*", "config_entries"): "map",
    ("datacenters", "*", "config_entries", "*"): "unique:config entry",
    ("datacenters", "*", "intentions"): "unique:intention",
    ("datacenters", "*", "prepared_queries"): "unique:prepared query",
    ("datacenters", "*", "services"): "list",
    ("datacenters", "*", "external_services"): "list",
    ("datacenters", "*", "kv_prefixes"): "list",
    ("datacenters", "*", "kv_dir"): "list",
}


def _rule(path: tuple[Any, ...]) -> str:
    pattern = tuple("*" if len(path) > 1 and i == 1 else p for i, p in enumerate(path))
    if len(pattern) > 3 and pattern[2] == "config_entries":  # any kind of entry
        pattern = (*pattern[:3], "*", *pattern[4:])
    return _MERGE.get(pattern, "value")


def _merge(
    dst: dict[Any, Any],
    dst_src: Source,
    new: dict[Any, Any],
    new_src: Source,
    path: tuple[Any, ...],
    problems: list[Diagnostic],
) -> None:
    rule = _rule(path)
    assert isinstance(dst_src.children, dict) and isinstance(new_src.children, dict)
    for k, value in new.items():
        here = new_src.children[k]
        if k not in dst:
            dst[k], dst_src.children[k] = value, here
            continue
        old, there = dst[k], dst_src.children[k]
        if rule.startswith("unique:"):
            what = rule.partition(":")[2]
            problems.append(
                here.anchor.diag(f"duplicate {what} {k!r} (first defined at {there.anchor})")
            )
            continue
        sub = _rule((*path, k))
        if sub in ("map",) or sub.startswith("unique:"):
            if isinstance(old, dict) and isinstance(value, dict):
                _merge(old, there, value, here, (*path, k), problems)
                continue
        elif sub == "list":
            joined = _as_list(old, there), _as_list(value, here)
            if joined[0] is not None and joined[1] is not None:
                dst[k] = joined[0][0] + joined[1][0]
                dst_src.children[k] = Source(there.key, there.value, joined[0][1] + joined[1][1])
                continue
        elif old == value:
            continue
        problems.append(here.anchor.diag(f"{k!r} is also set at {there.anchor}, differently"))


def _as_list(value: Any, src: Source) -> tuple[list[Any], list[Source]] | None:
    if isinstance(value, list) and isinstance(src.children, list):
        return list(value), list(src.children)
    if isinstance(value, str | dict):  # kv_dir's one-directory shorthand
        return [value], [src]
    return None


# --- kv_dir ---------------------------------------------------------------------------------


def _expand_kv_dirs(
    doc: dict[Any, Any], root: Source, base_dir: Path, problems: list[Diagnostic]
) -> None:
    datacenters, dcs_src = doc.get("datacenters"), root.child("datacenters")
    if not isinstance(datacenters, dict) or dcs_src is None:
        return
    for name, dc in datacenters.items():
        dc_src = dcs_src.child(name)
        if not isinstance(dc, dict) or dc_src is None or "kv_dir" not in dc:
            continue
        kv = dc.setdefault("kv", {})
        if not isinstance(kv, dict):
            continue
        assert isinstance(dc_src.children, dict)
        kv_src = dc_src.children.setdefault("kv", Source(dc_src.anchor, dc_src.value, {}))
        for entry, entry_src in _kv_dir_entries(dc["kv_dir"], dc_src.children["kv_dir"]):
            _expand_one(entry, entry_src, kv, kv_src, base_dir, problems)


def _kv_dir_entries(value: Any, src: Source) -> list[tuple[Any, Source]]:
    if isinstance(value, list) and isinstance(src.children, list):
        return list(zip(value, src.children, strict=True))
    return [(value, src)]


def _expand_one(
    entry: Any,
    src: Source,
    kv: dict[Any, Any],
    kv_src: Source,
    base_dir: Path,
    problems: list[Diagnostic],
) -> None:
    if isinstance(entry, str):
        rel, prefix, at = entry, "", src.value
    elif (
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and isinstance(entry.get("prefix", ""), str)
    ):
        rel, prefix = entry["path"], entry.get("prefix", "")
        at = (src.child("path") or src).value
    else:
        return  # the schema check reports the malformed entry
    directory = base_dir / rel
    if not directory.is_dir():
        problems.append(at.diag(f"kv_dir {rel!r} is not a directory (looked for {directory})"))
        return
    assert isinstance(kv_src.children, dict)
    entry_src = Source(at, at, {"file": Source(at, at)})  # shared: they all point at the entry
    rel_dir = Path(rel).as_posix()
    for inner in _walk(str(directory)):
        key = prefix + inner
        if key in kv:
            where = kv_src.children[key].anchor
            problems.append(
                where.diag(f"duplicate kv key {key!r} (also a file of kv_dir {rel!r} at {at})")
            )
            continue
        kv[key] = {"file": posixpath.join(rel_dir, inner)}
        kv_src.children[key] = entry_src


def _walk(directory: str) -> Iterator[str]:
    """Paths (with `/`) of the files under `directory`, in name order, hidden ones skipped.

    Strings rather than `Path`s: a `kv_dir` may hold 100,000 files.
    """
    for top, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(top, directory).replace(os.sep, "/")
        head = "" if rel == "." else rel + "/"
        for name in sorted(names):
            if not name.startswith("."):
                yield head + name
