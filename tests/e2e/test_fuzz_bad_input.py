"""Bad input never breaks the agent (issue 11): Hypothesis drives one real agent process.

The traffic comes from tests/harness/badinput/: wrong types in every field of every write
endpoint, deep nesting, malformed JSON, non-UTF-8, odd paths. Each answer is judged as it
comes (`verdict`, plus any traceback or apply failure the request left in the agent's log).
The failures are collected, one example per distinct failure (the shortest request), and
reported together at the end, so one run names every broken endpoint rather than the first
one Hypothesis would shrink. After the run, `check_after` checks that the known keys, the
known service, the catalog reads and the agent's own snapshots survived.

Profiles (env HYPOTHESIS_PROFILE): `default` is small and derandomized, for CI; `fuzz` is a
larger random run (FUZZ_EXAMPLES, default 5000; FUZZ_SEED to repeat one). `bench/fuzz.py` is
the big run (50,000 requests).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.harness.badinput import Request, requests
from tests.harness.fuzzagent import (
    Findings,
    FuzzAgent,
    check_after,
    fuzz_agent,
    log_crashes,
    verdict,
)

IP = "127.0.0.91"  # this test's own loopback address (127.0.0.91-99 are the fuzzers')
TIMEOUT = 5.0  # per request: Consul answers a bad request at once

_COMMON = dict(
    deadline=None,
    database=None,  # nothing written to the repo
    phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected instead
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
PROFILES = {
    "default": settings(max_examples=300, derandomize=True, **_COMMON),
    "fuzz": settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "5000")), **_COMMON),
}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
if PROFILE not in PROFILES:
    PROFILE = "default"


def _seeded(test):
    """FUZZ_SEED repeats one `fuzz` run; without it each run draws afresh."""
    raw = os.environ.get("FUZZ_SEED")
    return seed(int(raw))(test) if raw and PROFILE == "fuzz" else test


class Run:
    """One fuzz run: what came back, and how much of the agent's log has been read."""

    def __init__(self, fuzz: FuzzAgent) -> None:
        self.fuzz = fuzz
        self.findings = Findings()
        self.log_at = len(fuzz.log())

    def new_log(self) -> str:
        text = self.fuzz.log()
        new, self.log_at = text[self.log_at :], len(text)
        return new

    def judge(self, request: Request) -> None:
        """Send one request; record a crash (a 5xx with a Python exception's text, or a
        traceback it left in the log), a timeout, or a 5xx of unknown text."""
        method, target, body = request
        try:
            answer = self.fuzz.send(method, target, body, TIMEOUT)
        except httpx.TimeoutException:
            self.findings.add(request, "timeout", "timeout", f"no answer within {TIMEOUT:.0f}s")
            return
        except httpx.HTTPError as exc:
            self.findings.add(request, "no answer", "exception", repr(exc))
            if not self.fuzz.alive():
                raise AssertionError(f"the agent died on {method} {target[:200]}") from exc
            return
        status = str(answer.status_code)
        self.findings.add(
            request,
            status,
            verdict(answer.status_code, answer.content),
            answer.text.strip() or "(empty body)",
        )
        for header, exception in log_crashes(self.new_log()):  # what this request left in the log
            why = "log: " + exception.partition(":")[0]  # the exception's type
            self.findings.add(request, status, "exception", f"log: {header}: {exception}", why)


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzAgent]:
    with fuzz_agent(IP) as agent:
        yield agent


@pytest.mark.timeout(3600 if PROFILE == "fuzz" else 900)
def test_bad_input_never_breaks_the_agent(fuzz: FuzzAgent) -> None:
    run = Run(fuzz)
    started = time.monotonic()

    @PROFILES[PROFILE]
    @_seeded
    @given(requests())
    def send_one(request: Request) -> None:
        run.judge(request)

    send_one()
    found = run.findings
    print(
        f"\n{sum(found.statuses.values())} requests in {time.monotonic() - started:.1f}s, "
        + ", ".join(f"{s}: {n}" for s, n in sorted(found.statuses.items()))
    )
    if others := found.lines("other"):
        warnings.warn(
            "5xx answers with texts that are neither Consul's nor a crash:\n" + "\n".join(others),
            stacklevel=1,
        )
    problems = [f"[during] {line}" for line in found.lines("exception") + found.lines("timeout")]
    problems += [f"[after] {p}" for p in check_after(fuzz)]
    assert not problems, f"{len(problems)} distinct failures:\n" + "\n".join(problems)
