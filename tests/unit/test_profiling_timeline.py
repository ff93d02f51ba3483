"""The /debug/pprof/trace timeline: a thread's stack is written when it changes, once if not."""

from __future__ import annotations

import threading

from agent import profiling


def _parked(event: threading.Event) -> None:
    event.wait(5)


def test_a_thread_that_stays_put_is_written_once_and_its_change_is_seen() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=_parked, args=(stop,), name="parked", daemon=True)
    worker.start()
    try:
        events = profiling.sample_timeline(0.1, 0.01)
    finally:
        stop.set()
        worker.join()
    mine = [e for e in events if e[1] == "parked"]
    assert len(mine) == 1, mine  # many samples, one unchanged stack
    offset, _, stack = mine[0]
    assert offset >= 0 and any(f.startswith("_parked ") for f in stack.split(";"))
    text = profiling.render_timeline(events, 0.1, 0.01)
    lines = text.splitlines()
    assert lines[0] == (
        f"# Python execution timeline: 0.1s, one sample every 10ms per thread, "
        f"{len(events)} stack changes (+offset thread stack)"
    )
    assert any(line.startswith("+") and " thread parked " in line for line in lines[1:])
