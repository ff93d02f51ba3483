"""Hypothesis strategies of bad and borderline requests for the agent's write endpoints.

Each strategy draws a `(method, target, body)` tuple: the request target is sent verbatim
(percent-encoding and dot segments as drawn), the body is raw bytes. Nothing here does I/O, so
the e2e fuzz test and `bench/fuzz.py` draw the same traffic from the same seed.

Most bodies start from a well-formed Consul body and then break a few of its fields: a value
of the wrong type (numbers past 64 bits, floats, lists where strings go, nested arrays,
objects), a dropped field, a respelled one (lower/UPPER/snake_case, or two spellings that
disagree). Others are broken whole: deep nesting, malformed JSON, non-UTF-8 bytes, a wrong
top-level kind, nothing at all.

What the traffic never touches, so that a test can check it survived: KV keys outside `fz/`,
the service `known-svc`, any node not named `fz-*`, and addresses outside 127.0.0.97-99 (join
targets and check URLs; nobody listens there). So a KV op's `Key` is never dropped, null or a
non-`fz/` string: Consul reads those as "" and `delete-tree ""` would rightly empty the store.

Speed matters (the bench draws tens of thousands): a Hypothesis draw costs tens of
microseconds, so values come mostly from prebuilt pools (one draw each) and large values are
built by `.map` from a small drawn size, never stored in a strategy (Hypothesis reprs them).

Modules: `values` (leaf values and pools), `breaking` (breaking a body field by field, encoding,
paths and queries), `shapes` (Consul's body shapes), `endpoints` (one strategy per write
endpoint, `requests()` over all of them), `endpoints_c2` (issue 14's: prepared queries and
their execution, templated policies, peering, operator usage, the UI's internal reads).
"""

from tests.harness.badinput.endpoints import ENDPOINTS, endpoint_of, requests
from tests.harness.badinput.values import KNOWN_KV_PREFIX, KNOWN_SERVICE, Request

__all__ = ["ENDPOINTS", "KNOWN_KV_PREFIX", "KNOWN_SERVICE", "Request", "endpoint_of", "requests"]
