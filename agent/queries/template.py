"""Prepared query templates, and how a name or ID finds the query to execute.

    template = compile_template(query)            # QueryError(500) naming what is wrong
    rendered = template.render("geo-db", segment)  # the query to execute for that name
    query = resolve(store.queries.all(), "geo-db") # Consul's PreparedQueryResolve

A template (`Template.Type` `name_prefix_match`) answers every name its `Name` prefixes. Each
string of its `Service` (Consul walks the whole structure: Service, SamenessGroup, Failover
datacenters and targets, IgnoreCheckIDs, Near, Tags, NodeMeta and ServiceMeta values, Peer)
is HIL (`agent/queries/hil.py`) with `name.full`, `name.prefix`, `name.suffix`,
`agent.segment` and `match(N)`, the N-th submatch of `Template.Regexp` against the full name
("" when it does not match). `RemoveEmptyTags` drops tags that rendered empty.

Compiling is what Consul's state store does before it keeps a template: the type, every
string's syntax, the regexp (Go's RE2 dialect, `agent/goregexp.py`), and a test
render with the template's own name. Its errors read as Consul's (`failed compiling template: Bad Regexp:
error parsing regexp: missing closing ): ...`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from agent.goregexp import GoRegexpError, compile_go
from agent.queries import hil
from agent.queries.definition import NAME_PREFIX_MATCH, QueryError, copy_query, is_template

MISSING_ID = "Missing Query ID"
TEMPLATE_BY_ID = "prepared query templates can only be resolved up by name, not by ID"
_UUID = re.compile(r"[\da-fA-F]{8}-[\da-fA-F]{4}-[\da-fA-F]{4}-[\da-fA-F]{4}-[\da-fA-F]{12}")
_CACHE_LIMIT = 4096

Slot = tuple[str, Any, Any]  # (Go path under Service, container, key in it)


def is_uuid(text: str) -> bool:
    return len(text) == 36 and _UUID.fullmatch(text) is not None


# ---------------------------------------------------------------------- the walk


def _slots(service: dict[str, Any]) -> Iterator[Slot]:
    """Every string of a query's Service, in Go's field order, with its path as Consul's
    walk names it (`.Failover.Datacenters[0]`, `.NodeMeta[zone]`); map keys in sorted order
    (Go's are random), map keys themselves not visited."""
    yield ".Service", service, "Service"
    yield ".SamenessGroup", service, "SamenessGroup"
    failover = service["Failover"]
    for i, _ in enumerate(failover["Datacenters"] or ()):
        yield f".Failover.Datacenters[{i}]", failover["Datacenters"], i
    for i, target in enumerate(failover["Targets"] or ()):
        yield f".Failover.Targets[{i}].Peer", target, "Peer"
        yield f".Failover.Targets[{i}].Datacenter", target, "Datacenter"
    for i, _ in enumerate(service["IgnoreCheckIDs"] or ()):
        yield f".IgnoreCheckIDs[{i}]", service["IgnoreCheckIDs"], i
    yield ".Near", service, "Near"
    for i, _ in enumerate(service["Tags"] or ()):
        yield f".Tags[{i}]", service["Tags"], i
    for field in ("NodeMeta", "ServiceMeta"):
        for key in sorted(service[field] or ()):
            yield f".{field}[{key}]", service[field], key
    yield ".Peer", service, "Peer"


# ---------------------------------------------------------------------- templates


class CompiledTemplate:
    """A checked template, ready to render for any name (never changed once built)."""

    def __init__(self, query: dict[str, Any]) -> None:
        self.query = copy_query(query)
        self.trees: dict[str, list[hil.Part]] = {}
        for path, container, key in _slots(self.query["Service"]):
            text = container[key]
            try:
                self.trees[path] = hil.parse(text)
            except hil.HILError as exc:
                raise QueryError(500, f"Bad format '{text}' in Service{path}: {exc}") from None
        self.regexp: Any = None  # an RE2 pattern (agent/goregexp.py)
        if self.query["Template"]["Regexp"]:
            try:
                self.regexp = compile_go(self.query["Template"]["Regexp"])
            except GoRegexpError as exc:
                raise QueryError(500, f"Bad Regexp: {exc}") from None
        self.remove_empty_tags = bool(self.query["Template"]["RemoveEmptyTags"])

    def render(self, name: str, segment: str = "") -> dict[str, Any]:
        """The query to execute for `name` (a fresh copy); QueryError(500) when a string
        cannot be evaluated."""
        query = copy_query(self.query)
        matches: list[str] = []
        if self.regexp is not None:
            found = self.regexp.search(name)
            if found is not None:
                matches = [found.group(0)] + [g or "" for g in found.groups()]
        prefix = str(query["Name"])
        scope = {
            "name.full": name,
            "name.prefix": prefix,
            "name.suffix": name.removeprefix(prefix),
            "agent.segment": segment,
        }
        functions: hil.Functions = {"match": ((int,), _matcher(matches))}
        for path, container, key in _slots(query["Service"]):
            tree = self.trees.get(path)
            if tree is None:
                continue
            try:
                container[key] = hil.render(tree, scope, functions)
            except hil.HILError as exc:
                raise QueryError(
                    500, f"Bad evaluation for '{container[key]}' in Service{path}: {exc}"
                ) from None
        if self.remove_empty_tags:
            query["Service"]["Tags"] = [t for t in query["Service"]["Tags"] or () if t != ""]
        return query


def _matcher(matches: list[str]) -> hil.Function:
    """HIL's match(int): the N-th submatch, "" for any N the regexp did not produce."""

    def match(args: list[hil.Value]) -> hil.Value:
        i = args[0]
        return matches[i] if isinstance(i, int) and 0 <= i < len(matches) else ""

    return match


def compile_template(query: dict[str, Any]) -> CompiledTemplate:
    """Check a template as Consul's state store does before keeping it, test render
    included; QueryError(500, "failed compiling template: ...")."""
    try:
        if query["Template"]["Type"] != NAME_PREFIX_MATCH:
            raise QueryError(500, f"Bad Template.Type '{query['Template']['Type']}'")
        template = CompiledTemplate(query)
        template.render(str(query["Name"]))
    except QueryError as exc:
        raise QueryError(500, f"failed compiling template: {exc.message}") from None
    return template


# id(record) -> (the record, its compiled template). The record is kept alongside, so its
# id cannot be reused by another object while the entry lives; records are replaced, never
# changed in place, so the same object always compiles to the same template.
_compiled: dict[int, tuple[dict[str, Any], CompiledTemplate]] = {}


def _template_of(query: dict[str, Any]) -> CompiledTemplate:
    """A stored template, compiled once per record (the store keeps only templates that
    compiled, so a failure here is a render error of the caller's)."""
    cached = _compiled.get(id(query))
    if cached is not None and cached[0] is query:
        return cached[1]
    if len(_compiled) >= _CACHE_LIMIT:
        _compiled.clear()
    template = compile_template(query)
    _compiled[id(query)] = (query, template)
    return template


def resolve(queries: Iterable[dict[str, Any]], id_or_name: str, segment: str = "") -> dict | None:
    """The query `id_or_name` executes, as Consul's PreparedQueryResolve finds it: by ID
    (a template may not be run by its ID), then by exact name (any case), then by the
    template with the longest name prefix of it (an unnamed template prefixes every name).
    A template comes back rendered for `id_or_name`. None when nothing matches; QueryError
    for an empty name, a template asked for by ID, or a render failure."""
    if not id_or_name:
        raise QueryError(500, MISSING_ID)
    queries = list(queries)
    if is_uuid(id_or_name):
        wanted = id_or_name.lower()
        for query in queries:
            if str(query["ID"]).lower() == wanted:
                if is_template(query):
                    raise QueryError(500, TEMPLATE_BY_ID)
                return query
    lowered = id_or_name.lower()
    best: dict[str, Any] | None = None
    for query in queries:
        name = str(query["Name"]).lower()
        if name and name == lowered:
            best = query
            break
        longer = best is None or len(name) > len(str(best["Name"]))
        if is_template(query) and lowered.startswith(name) and longer:
            best = query
    if best is None:
        return None
    if is_template(best):
        return _template_of(best).render(id_or_name, segment)
    return best
