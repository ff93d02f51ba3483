"""CSR limits (Consul's CSRMaxPerSecond / CSRMaxConcurrent) and the leaf cache's answer to a
rate-limited renewal; time is passed in, nothing sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent.connect import csr_limit
from agent.connect.errors import CAError
from agent.mesh_ca import LeafCache


def test_bucket_allows_one_then_spaces_requests_by_the_rate() -> None:
    bucket = csr_limit.Bucket()
    assert bucket.reserve(10.0, now=100.0) == 0.0
    # the next token is 0.1 s away: within the 0.5 s a request may wait
    assert bucket.reserve(10.0, now=100.0) == pytest.approx(0.1)
    assert bucket.reserve(10.0, now=100.0) == pytest.approx(0.2)
    # tokens accrue with time, never beyond the burst of one
    assert bucket.reserve(10.0, now=110.0) == 0.0
    assert bucket.reserve(10.0, now=110.0) == pytest.approx(0.1)


def test_bucket_refuses_a_wait_beyond_the_limit_and_books_nothing() -> None:
    bucket = csr_limit.Bucket()
    assert bucket.reserve(1.0, now=0.0) == 0.0
    assert bucket.reserve(1.0, now=0.0) is None  # 1 s > LIMIT_WAIT
    assert bucket.reserve(1.0, now=0.6) == pytest.approx(0.4)  # the refusal took no token
    assert bucket.reserve(1.0, now=0.6) is None


def test_bucket_starts_over_when_the_limit_changes() -> None:
    bucket = csr_limit.Bucket()
    assert bucket.reserve(1.0, now=0.0) == 0.0
    assert bucket.reserve(1.0, now=0.0) is None
    assert bucket.reserve(50.0, now=0.0) == 0.0


def test_slots_follow_the_configured_size() -> None:
    slots = csr_limit.Slots()
    assert slots.take(2) and slots.take(2)
    assert not slots.take(2)
    assert slots.take(3)  # a larger size takes effect at once
    slots.give()
    slots.give()
    assert slots.take(2)
    assert not slots.take(2)


def test_rate_limited_message_is_consuls() -> None:
    assert csr_limit.RATE_LIMITED == "Rate limit reached, try again later"


class _Signer:
    def __init__(self) -> None:
        self.active = "root-1"
        self.refuse = False
        self.signed = 0

    async def roots(self) -> dict[str, Any]:
        return {"ActiveRootID": self.active, "TrustDomain": "11111111-2222.consul"}

    async def sign(self, csr_pem: str, service: str) -> dict[str, Any]:
        if self.refuse:
            raise CAError(csr_limit.RATE_LIMITED, 429)
        self.signed += 1
        return {
            "SerialNumber": f"{self.signed:02x}",
            "CertPEM": f"cert-{self.signed}",
            "Service": service,
            "ValidAfter": "2026-01-01T00:00:00Z",
            "ValidBefore": "2026-01-04T00:00:00Z",
            "CreateIndex": 5,
            "ModifyIndex": 5,
        }


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_request_rate_limited_fails_with_429() -> None:
    signer, clock = _Signer(), _Clock()
    signer.refuse = True
    cache = LeafCache(signer, "dc1", clock, stagger=lambda w: w / 2)
    with pytest.raises(CAError) as err:
        asyncio.run(cache.get("web"))
    assert err.value.status == 429
    assert err.value.message == "Rate limit reached, try again later"


def test_rate_limited_renewal_keeps_the_old_leaf_and_retries_in_jittered_windows() -> None:
    signer, clock = _Signer(), _Clock()
    delays = iter([10.0, 4.0])
    cache = LeafCache(signer, "dc1", clock, stagger=lambda w: next(delays))

    async def run() -> None:
        first = await cache.get("web")
        assert first["CertPEM"] == "cert-1"
        signer.active = "root-2"  # a rotation: the leaf is due at once
        signer.refuse = True
        assert (await cache.get("web"))["CertPEM"] == "cert-1"  # kept, not an error
        # first refusal at t=1000, delay 10: retry at 1000 + 1*10 + 10
        signer.refuse = False
        clock.now = 1019.0
        assert (await cache.get("web"))["CertPEM"] == "cert-1"  # not before its window
        assert signer.signed == 1
        signer.refuse = True
        clock.now = 1020.0
        assert (await cache.get("web"))["CertPEM"] == "cert-1"  # refused again
        # second refusal, delay 4: retry at 1000 + 2*4 + 4 = 1012 (already passed) -> next call
        signer.refuse = False
        renewed = await cache.get("web")
        assert renewed["CertPEM"] == "cert-2"
        assert renewed["ModifyIndex"] > first["ModifyIndex"]

    asyncio.run(run())


def test_other_errors_on_renewal_still_fail() -> None:
    signer, clock = _Signer(), _Clock()
    cache = LeafCache(signer, "dc1", clock)

    async def run() -> None:
        await cache.get("web")
        signer.active = "root-2"

        async def broken(csr_pem: str, service: str) -> dict[str, Any]:
            raise CAError("CA has not finished initializing")

        signer.sign = broken  # type: ignore[method-assign]
        with pytest.raises(CAError):
            await cache.get("web")

    asyncio.run(run())
