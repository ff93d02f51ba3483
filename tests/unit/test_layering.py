"""Layers run one way: the import graph of agent/ and gitkv/ has no circle, and no import runs
against the direction the layers allow (../shared/design.md: http -> (rpc | raft) -> fsm ->
state; raft and gossip know nothing above them; only agent/agent.py knows every part).

Every import counts: module level, inside functions, under TYPE_CHECKING. Each module gets the
rank of the longest prefix in RANKS; an import may go to a lower rank, or sideways within the
same component (a package such as agent.http, or one module). A failure names the import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Lower ranks sit below higher ones. Rank 0: leaves and pure helpers anything may use.
RANKS: dict[str, int] = {
    "agent": 0,  # the package itself, and every module not listed below
    "agent.state": 1,
    "agent.connect": 1,  # the mesh's pure logic: the state and the HTTP areas call into it
    "agent.queries": 1,  # prepared queries' definitions and templates: the FSM compiles them
    "agent.ports": 2,  # the seams name the state's types (commands, records)
    "agent.membership": 2,  # gossip members as catalog commands
    "agent.raft": 2,
    "agent.gossip": 2,
    "agent.acl": 2,
    "agent.render": 2,  # store records as Consul's JSON (HTTP and DNS share it)
    "agent.queries.execute": 2,  # prepared-query execution rules (reads gossip coordinates)
    "agent.proxy_config": 2,  # Connect settings of registrations, decoded into store records
    "agent.sidecars": 3,  # SidecarService expansion: reads service definitions
    "agent.rpc": 3,
    "agent.events": 3,
    "agent.local": 3,
    "agent.anti_entropy": 3,  # the local state's catalog writes
    "agent.service_manager": 3,  # central service config merged into local proxies
    "agent.federation_sync": 3,  # the leader's federation-state anti-entropy
    "agent.cluster": 3,
    "agent.wan": 3,
    "agent.sessions_reaper": 3,
    "agent.token_reaper": 3,
    "agent.dns_server": 3,
    "agent.queries.runner": 3,  # a server's query execution: store, ACLs, WAN failover
    "agent.services": 3,
    "agent.mesh_ca": 3,
    "agent.mesh_intentions": 3,
    "agent.mesh_entries": 3,  # a client agent's cache of a server's central service config
    "agent.mesh_bootstrap": 3,
    "agent.http": 4,
    "agent.agent": 5,
    "agent.cli": 6,
    "gitkv": 7,
}
# Components: an import between two modules of one component is always allowed (the
# circle check still applies).
COMPONENTS = (
    "agent.state",
    "agent.connect",
    "agent.raft",
    "agent.gossip",
    "agent.acl",
    "agent.http",
    "gitkv",
)
# gitkv speaks to clusters over HTTP; from the agent it may use only these pure modules (the
# gossip key generator among them) and agent.cli, to run `gitkv agent`.
GITKV_MAY_IMPORT = {"agent.hcl", "agent.durations", "agent.gossip.crypto", "agent.cli", "agent"}


def modules() -> dict[str, Path]:
    found = {}
    for package in ("agent", "gitkv"):
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first import}."""
    mods = modules()
    graph: dict[str, dict[str, int]] = defaultdict(dict)
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package[: len(package) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def rank(module: str) -> int:
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in RANKS:
            return RANKS[prefix]
    raise AssertionError(f"{module} is in no layer")


def component(module: str) -> str:
    return next((c for c in COMPONENTS if module == c or module.startswith(c + ".")), module)


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    bad = []
    for importer, imported in graph.items():
        for target, line in imported.items():
            where = f"{importer} (line {line}) imports {target}"
            if importer.startswith("gitkv") and target.startswith("agent"):
                if target not in GITKV_MAY_IMPORT:
                    bad.append(f"{where}: gitkv may use only {sorted(GITKV_MAY_IMPORT)}")
                continue
            if target.startswith("gitkv") and not importer.startswith("gitkv"):
                bad.append(f"{where}: the agent never imports gitkv")
                continue
            if component(importer) == component(target):
                continue
            if rank(target) > rank(importer):
                bad.append(f"{where}: rank {rank(target)} is above rank {rank(importer)}")
    return sorted(bad)


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return found


def closing_import(graph: dict[str, dict[str, int]], members: list[str]) -> str:
    """One import inside a circle, with its line, to start breaking it from."""
    inside = set(members)
    for importer in members:
        for target, line in sorted(graph.get(importer, {}).items()):
            if target in inside:
                return f"{importer} (line {line}) imports {target}"
    return ""


def test_no_import_runs_against_the_layers() -> None:
    bad = upward_imports(import_graph())
    assert not bad, "imports against the layers:\n  " + "\n  ".join(bad)


def test_the_import_graph_has_no_circle() -> None:
    graph = import_graph()
    found = circles(graph)
    assert not found, "import circles (each with one import that closes it):\n  " + "\n  ".join(
        f"{members}: {closing_import(graph, members)}" for members in found
    )


def test_the_checks_catch_an_upward_import_and_a_circle() -> None:
    graph = {"agent.state.store": {"agent.http.app": 3}, "agent.http.app": {"agent.state.store": 9}}
    assert upward_imports(graph) == [
        "agent.state.store (line 3) imports agent.http.app: rank 4 is above rank 1"
    ]
    assert circles(graph) == [["agent.http.app", "agent.state.store"]]
