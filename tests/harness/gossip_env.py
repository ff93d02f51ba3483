"""Text scenarios for the gossip core: commands against `agent.gossip.sim.Simulation`.

A script is a list of commands, each followed by `----` and its expected output, then a blank
line; `#` lines are comments. Commands (one small handler each, `h_<command>` below):

    add-nodes 5 [dc=dc1]        nodes n1..n5 (numbering continues); each joins n1
    add-node NAME [dc=..] [addr=..] [join=n1]
    advance 5s [quiet]          run the clock; prints every event seen meanwhile
    kill n3 | pause n3 | resume n3
    partition n1,n2,n3 n4,n5    | cut n1 n2 | heal
    leave n2 | tags n2 role=consul | event n1 NAME [PAYLOAD] | force-leave n1 n4 [prune]
    members n1                  the member table as n1 sees it
    status                      one line per live node: name=status for each member it knows
    states                      the same with memberlist's finer state and incarnation
                                (shows `suspect`, which Consul renders as alive)
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.durations import parse_duration
from agent.gossip.errors import GossipError
from agent.gossip.events import (
    GossipEvent,
    MemberConflict,
    MemberFailed,
    MemberJoin,
    MemberLeave,
    MemberReap,
    MemberStatus,
    MemberUpdate,
    UserEvent,
)
from agent.gossip.messages import NodeState
from agent.gossip.sim import Simulation

_STATUS = {
    MemberStatus.NONE: "none",
    MemberStatus.ALIVE: "alive",
    MemberStatus.LEAVING: "leaving",
    MemberStatus.LEFT: "left",
    MemberStatus.FAILED: "failed",
}


def _state_name(state: NodeState | None) -> str:
    """memberlist's state of a member, lower case ("none" for one the table lacks)."""
    return "none" if state is None else state.name.lower()


def fmt_event(ev: GossipEvent) -> str:
    if isinstance(ev, UserEvent):
        return f"user-event {ev.name} {ev.payload.decode(errors='replace')!r} ltime={ev.ltime}"
    if isinstance(ev, MemberConflict):
        return f"conflict {ev.existing.name} mine={ev.existing.address} theirs={ev.other_addr}"
    kind = {
        MemberJoin: "join",
        MemberUpdate: "update",
        MemberLeave: "leave",
        MemberFailed: "failed",
        MemberReap: "reap",
    }[type(ev)]
    m = ev.member
    tags = " ".join(f"{k}={v}" for k, v in sorted(m.tags.items()))
    return f"{kind} {m.name} {tags}".rstrip() if kind == "update" else f"{kind} {m.name}"


class GossipEnv:
    def __init__(self, seed: int = 0) -> None:
        self.sim = Simulation(seed=seed)
        self._seen: dict[str, int] = {}
        self._count = 0

    def run(self, line: str) -> str:
        words = line.split()
        pos = [w for w in words[1:] if "=" not in w]
        kw = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        handler = getattr(self, "h_" + words[0].replace("-", "_"))
        try:
            out: list[str] = handler(pos, kw)
        except GossipError as exc:
            out = [f"error: {exc}"]
        return "\n".join(out)

    def _events(self) -> list[tuple[float, str, str]]:
        """Events since the last call, ordered by time then observer."""
        out: list[tuple[float, str, str]] = []
        for key, node in self.sim.nodes.items():
            start = self._seen.get(key, 0)
            out.extend((t, key, fmt_event(ev)) for t, ev in node.events[start:])
            self._seen[key] = len(node.events)
        return sorted(out, key=lambda e: (e[0], e[1]))

    def _add(self, name: str, kw: dict[str, str], join: str | None) -> list[str]:
        tags = {"dc": kw.get("dc", "dc1")}
        self.sim.add_node(name, tags, addr=kw.get("addr"))
        key = name if kw.get("addr") is None else f"{name}@{kw['addr']}"
        if key not in self.sim.nodes:
            key = name
        if join is None:
            return []
        result = self.sim.join(key, [join])
        if result.joined:
            return []
        return [f"{key}: join refused: {why}" for why in result.errors.values()]

    # -- handlers -----------------------------------------------------------------------------

    def h_add_nodes(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        out = []
        for _ in range(int(pos[0])):
            self._count += 1
            name = f"n{self._count}"
            out += self._add(name, kw, None if name == "n1" else "n1")
        self._events()  # joins are noisy; `status`/`members` show the outcome
        return out

    def h_add_node(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        out = self._add(pos[0], kw, kw.get("join"))
        self._events()
        return out

    def h_advance(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        self.sim.run_for(parse_duration(pos[0]))
        events = self._events()
        if "quiet" in pos:
            return []
        return [f"{t:8.3f} {who}: {what}" for t, who, what in events]

    def h_kill(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        self.sim.kill(pos[0])
        return []

    def h_pause(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        self.sim.pause(pos[0])
        return []

    def h_resume(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        self.sim.resume(pos[0])
        return []

    def h_partition(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        self.sim.partition(*[group.split(",") for group in pos])
        return []

    def h_cut(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        self.sim.cut(pos[0], pos[1])
        return []

    def h_heal(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        self.sim.heal()
        return []

    def h_leave(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        self.sim.act(pos[0], lambda c, now: c.leave(now))
        return []

    def h_tags(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        tags = {**self.sim.core(pos[0]).local_member().tags, **kw}
        self.sim.act(pos[0], lambda c, now: c.update_tags(tags, now))
        return []

    def h_event(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        payload = (pos[2] if len(pos) > 2 else "").encode()
        self.sim.act(pos[0], lambda c, now: c.broadcast_user_event(pos[1], payload, now))
        return []

    def h_force_leave(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        prune = "prune" in pos
        self.sim.act(pos[0], lambda c, now: c.force_leave(pos[1], prune, now))
        return []

    def h_members(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        return [
            f"{m.name} {m.address} {_STATUS[m.status]} "
            + " ".join(f"{k}={v}" for k, v in sorted(m.tags.items()))
            for m in self.sim.core(pos[0]).members()
        ]

    def h_status(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        out = []
        for key, node in self.sim.nodes.items():
            if node.down:
                continue
            view = " ".join(f"{m.name}={_STATUS[m.status]}" for m in node.core.members())
            out.append(f"{key}: {view}")
        return out

    def h_states(self, pos: list[str], kw: dict[str, str]) -> list[str]:
        out = []
        for key, node in self.sim.nodes.items():
            if node.down:
                continue
            core = node.core
            view = " ".join(
                f"{m.name}={_state_name(core.node_state(m.name))}/{core.incarnation(m.name)}"
                for m in core.members()
            )
            out.append(f"{key}: {view}")
        return out


@dataclass
class Case:
    command: str
    expected: str
    line: int


def parse_script(text: str) -> list[Case | str]:
    """Cases, with comment/blank lines kept as strings so a rewrite preserves them."""
    lines = text.splitlines()
    items: list[Case | str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            items.append(line)
            i += 1
            continue
        assert i + 1 < len(lines) and lines[i + 1] == "----", f"line {i + 2}: expected ----"
        j = i + 2
        body = []
        while j < len(lines) and lines[j].strip():
            body.append(lines[j])
            j += 1
        items.append(Case(line, "\n".join(body), i + 1))
        i = j
    return items


def render_script(items: list[Case | str]) -> str:
    out: list[str] = []
    for it in items:
        if isinstance(it, Case):
            out += [it.command, "----"]
            if it.expected:
                out.append(it.expected)
        else:
            out.append(it)
    return "\n".join(out) + "\n"
