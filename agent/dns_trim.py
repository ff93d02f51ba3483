"""Cutting an answer to what its transport carries, as Consul's trimUDPResponse and
trimTCPResponse do: at most `min(8, udp_answer_limit)` records for a plain 512-byte UDP client,
the datagram size for EDNS ones, the 64 KiB message limit over TCP; additional records follow
the SRV answers that remain.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.dns_records import CNAME, SRV, Answer, Record

__all__ = ["MAX_TCP_SIZE", "MAX_UDP_ANSWERS", "message_len", "trim"]

MAX_UDP_ANSWERS = 8  # Consul's hard cap under udp_answer_limit for non-EDNS clients
PLAIN_UDP_SIZE = 512
MAX_UDP_DATAGRAM = 65535 - 68
MAX_TCP_SIZE = 65523


def _sync_additional(answer: Answer, index: dict[str, Record]) -> None:
    """Keep only the additional records that SRV answers still point at (one per target)."""
    extra: list[Record] = []
    resolved: set[str] = set()
    for rec in answer.answer:
        if rec.rdtype != SRV:
            continue
        target = rec.rdata.target.to_text().lower()
        while target not in resolved:
            resolved.add(target)
            found = index.get(target)
            if found is None:
                break
            extra.append(found)
            if found.rdtype != CNAME:
                break
            target = found.rdata.target.to_text().lower()
    answer.additional = extra


def message_len(answer: Answer, question_len: int, edns: bool) -> int:
    """Uncompressed message size: header, question, records, OPT."""
    size = 12 + question_len + (11 if edns else 0)
    for section in (answer.answer, answer.authority, answer.additional):
        size += sum(r.wire_len() for r in section)
    return size


def trim(
    answer: Answer,
    *,
    tcp: bool,
    payload: int | None,
    question_len: int,
    udp_answer_limit: int,
    measure: Callable[[Answer], int],
) -> bool:
    """Cut the answer to what fits the transport; True when records were dropped.

    `measure` gives the encoded (compressed) size of an answer. As in Consul, a plain UDP
    answer cut to `udp_answer_limit` is then sized uncompressed, so it still fits 512 bytes
    should a middlebox expand it; otherwise the compressed size counts.
    """
    original = len(answer.answer)
    index: dict[str, Record] = {}
    for rec in answer.additional:
        index.setdefault(rec.name.lower(), rec)
    size = measure
    if tcp:
        max_size = MAX_TCP_SIZE
        cap = 1024 if any(r.rdtype == SRV for r in answer.answer) else 4096
        if len(answer.answer) > cap:
            answer.answer = answer.answer[:cap]
    else:
        max_size = PLAIN_UDP_SIZE
        if payload is not None and payload > max_size:
            max_size = payload
        max_size = min(max_size, MAX_UDP_DATAGRAM) - 8
        limit = min(MAX_UDP_ANSWERS, udp_answer_limit)
        if max_size == PLAIN_UDP_SIZE - 8 and len(answer.answer) > limit:
            answer.answer = answer.answer[:limit]
            if index:
                _sync_additional(answer, index)
            edns = payload is not None
            size = lambda a: message_len(a, question_len, edns)  # noqa: E731
    while len(answer.answer) > 1 and size(answer) > max_size:
        answer.authority = []
        _cut_to_fit(answer, max_size, size, index)
    return len(answer.answer) < original


def _cut_to_fit(
    answer: Answer, max_size: int, size: Callable[[Answer], int], index: dict[str, Record]
) -> None:
    """Drop answers from the end: the largest prefix that fits (by bisection), at least one."""
    records = answer.answer

    def fits(count: int) -> bool:
        answer.answer = records[:count]
        if index:
            _sync_additional(answer, index)
        return size(answer) <= max_size

    low, high = 1, len(records) - 1  # `records` as a whole does not fit
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    fits(low)
