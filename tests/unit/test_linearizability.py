"""The register linearizability checker itself: it must catch each kind of violation."""

from tests.harness.linearizability import Op, check


def w(value: int, start: float, end: float, acked: bool = True) -> Op:
    return Op("w", "k", value, start, end, acked)


def r(value: int, start: float, end: float) -> Op:
    return Op("r", "k", value, start, end)


def test_a_clean_history_passes() -> None:
    history = [w(1, 0, 1), r(1, 1.5, 2), w(2, 2, 3), r(1, 2.1, 2.2), r(2, 3.5, 4)]
    assert check(history, {"k": 2}) == []


def test_stale_read_is_caught() -> None:
    assert "stale read" in check([w(1, 0, 1), w(2, 1, 2), r(1, 3, 4)], {"k": 2})[0]


def test_read_from_the_future_is_caught() -> None:
    assert "never written" in check([r(2, 0, 1), w(2, 2, 3)], {"k": 2})[0]


def test_reads_going_backwards_are_caught() -> None:
    history = [w(1, 0, 1), w(2, 1, 5, acked=False), r(2, 2, 3), r(1, 4, 4.5)]
    assert any("earlier read" in p for p in check(history, {"k": 2}))


def test_lost_acknowledged_write_is_caught() -> None:
    assert "lost acknowledged" in check([w(1, 0, 1), w(2, 1, 2)], {"k": 1})[0]


def test_unacknowledged_write_may_or_may_not_land() -> None:
    history = [w(1, 0, 1), w(2, 1, 9, acked=False), r(2, 3, 4)]
    assert check(history, {"k": 2}) == []
    assert check([w(1, 0, 1), w(2, 1, 9, acked=False)], {"k": 1}) == []
