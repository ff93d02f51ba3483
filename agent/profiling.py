"""Python profiles for `/debug/pprof/*`, in place of the Go runtime's.

Consul serves Go's net/http/pprof there: protobuf CPU and heap profiles of a Go process. This
agent is a Python process, so each profile here is the nearest Python figure, as plain text
(a pprof tool cannot read them; a person or `flamegraph.pl` can):

- `profile?seconds=N`: a sampling CPU profile. A thread wakes every `interval` seconds for N
  seconds and records every other thread's Python stack (the event loop's among them); the
  answer is one line per distinct stack, `outer;...;inner count` (the "collapsed" format
  flame graph tools read), most frequent first. Sampling from outside costs the loop nothing
  but the GIL hand-offs, unlike cProfile, which would slow every call it traces.
- `heap` / `allocs`: tracemalloc's top allocation sites when tracing is on (`PYTHONTRACEMALLOC`),
  then the garbage collector's counts and the most numerous object types it tracks.
- `trace?seconds=N`: in place of Go's execution trace, a timeline: the same sampling, but
  each thread's stack is written with its offset from the start whenever it differs from
  that thread's previous sample (a thread that stays put writes one line), so what ran when,
  and in which order, can be read off.
- `goroutine`: every asyncio task of the loop with its stack, then every thread's stack.
- `threadcreate`: the threads that exist.
- `cmdline`: the command line, NUL-separated, as Go's.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
import time
import traceback
import tracemalloc
from collections import Counter
from types import FrameType

__all__ = [
    "PROFILES",
    "cmdline",
    "collapse",
    "goroutines",
    "heap",
    "render_samples",
    "render_timeline",
    "sample_stacks",
    "sample_timeline",
    "threads",
]

# name -> what the index page says of it (Go's index lists its profiles the same way)
PROFILES = {
    "allocs": "Python allocation sites (tracemalloc) and garbage-collector counts",
    "goroutine": "Stack traces of every asyncio task and every thread",
    "heap": "Python allocation sites (tracemalloc) and garbage-collector counts",
    "threadcreate": "The threads of the process",
}
_TOP = 40


def _frame_label(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_name} ({code.co_filename}:{frame.f_lineno})"


def collapse(frame: FrameType | None) -> str:
    """One stack as `outer;...;inner`."""
    labels = []
    while frame is not None:
        labels.append(_frame_label(frame))
        frame = frame.f_back
    return ";".join(reversed(labels))


def sample_stacks(seconds: float, interval: float = 0.01) -> Counter[str]:
    """Stacks of every other thread, sampled every `interval` seconds for `seconds`; run it on
    a thread of its own (it sleeps between samples)."""
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for ident, frame in sys._current_frames().items():
            if ident != me:
                counts[f"thread {names.get(ident, ident)};{collapse(frame)}"] += 1
        time.sleep(interval)
    return counts


def sample_timeline(seconds: float, interval: float = 0.01) -> list[tuple[float, str, str]]:
    """`(offset, thread, stack)` for every other thread, sampled every `interval` seconds for
    `seconds`, kept only where a thread's stack changed since its previous sample; run it on
    a thread of its own."""
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    last: dict[int, str] = {}
    events: list[tuple[float, str, str]] = []
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            stack = collapse(frame)
            if last.get(ident) != stack:
                last[ident] = stack
                events.append((now - start, str(names.get(ident, ident)), stack))
        time.sleep(interval)
    return events


def render_timeline(events: list[tuple[float, str, str]], seconds: float, interval: float) -> str:
    out = io.StringIO()
    out.write(
        f"# Python execution timeline: {seconds:g}s, one sample every {interval * 1000:g}ms "
        f"per thread, {len(events)} stack changes (+offset thread stack)\n"
    )
    for offset, thread, stack in events:
        out.write(f"+{offset:.3f}s thread {thread} {stack}\n")
    return out.getvalue()


def render_samples(counts: Counter[str], seconds: float, interval: float) -> str:
    out = io.StringIO()
    out.write(
        f"# Python sampling CPU profile: {seconds:g}s, one sample every {interval * 1000:g}ms "
        f"per thread, {sum(counts.values())} samples (collapsed stacks: frames;... count)\n"
    )
    for stack, count in counts.most_common():
        out.write(f"{stack} {count}\n")
    return out.getvalue()


def heap(collect: bool = False) -> str:
    """Allocation sites (when tracemalloc traces) and the collector's view of the heap."""
    if collect:
        gc.collect()
    out = io.StringIO()
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        out.write(f"# tracemalloc: {current} bytes traced now, {peak} at peak\n")
        for stat in snapshot.statistics("lineno")[:_TOP]:
            out.write(f"{stat.size} bytes in {stat.count} blocks: {stat.traceback}\n")
    else:
        out.write("# tracemalloc is off (start the agent with PYTHONTRACEMALLOC=1 for sites)\n")
    out.write(f"# gc: counts {gc.get_count()}, thresholds {gc.get_threshold()}\n")
    for generation, stats in enumerate(gc.get_stats()):
        out.write(f"# gc generation {generation}: {stats}\n")
    kinds = Counter(type(o).__qualname__ for o in gc.get_objects())
    out.write(f"# {sum(kinds.values())} objects tracked by the collector, most numerous:\n")
    for name, count in kinds.most_common(_TOP):
        out.write(f"{count} {name}\n")
    return out.getvalue()


def goroutines(loop: asyncio.AbstractEventLoop | None) -> str:
    """Every asyncio task of `loop` with its stack, then every thread's stack."""
    out = io.StringIO()
    tasks = list(asyncio.all_tasks(loop)) if loop is not None else []
    out.write(f"# {len(tasks)} asyncio tasks\n")
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write("\n")
        task.print_stack(file=out)
    out.write(threads(stacks=True))
    return out.getvalue()


def threads(stacks: bool = False) -> str:
    out = io.StringIO()
    frames = sys._current_frames()
    alive = threading.enumerate()
    out.write(f"\n# {len(alive)} threads\n")
    for thread in alive:
        out.write(f"\nthread {thread.name} (id {thread.ident}, daemon {thread.daemon}):\n")
        frame = frames.get(thread.ident) if stacks and thread.ident is not None else None
        if frame is not None:
            out.write("".join(traceback.format_stack(frame)))
    return out.getvalue()


def cmdline() -> str:
    return "\x00".join(sys.orig_argv)
