"""Connect on a real -dev agent: the CA's CSR limits, central service config in the catalog
(and `enable_central_service_config`), hash-blocking on the merged registration, virtual IPs
and the federation-state endpoints."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.agentproc import AgentProc

pytestmark = pytest.mark.timeout(120)


def _ca_ready(client: httpx.Client) -> dict:
    deadline = time.monotonic() + 20
    while True:
        answer = client.get("/v1/connect/ca/configuration")
        if answer.status_code == 200:
            return answer.json()
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


def test_csr_rate_limit_refuses_with_429(dev_agent: AgentProc) -> None:
    client = dev_agent.client()
    current = _ca_ready(client)
    config = dict(current["Config"]) | {"CSRMaxPerSecond": 0.2}
    body = {"Provider": current["Provider"], "Config": config}
    assert client.put("/v1/connect/ca/configuration", json=body).status_code == 200
    assert client.get("/v1/agent/connect/ca/leaf/first").status_code == 200
    # The next token is 5 s away, beyond the 0.5 s a request may wait: refused at once.
    refused = client.get("/v1/agent/connect/ca/leaf/second")
    assert refused.status_code == 429, refused.text
    assert refused.text == "Rate limit reached, try again later"
    # The cached certificate is still served.
    assert client.get("/v1/agent/connect/ca/leaf/first").status_code == 200

    # No rate, one at a time: sequential requests all get their certificate.
    config |= {"CSRMaxPerSecond": 0, "CSRMaxConcurrent": 1}
    body = {"Provider": current["Provider"], "Config": config}
    assert client.put("/v1/connect/ca/configuration", json=body).status_code == 200
    for name in ("second", "third", "fourth"):
        answer = client.get(f"/v1/agent/connect/ca/leaf/{name}")
        assert answer.status_code == 200, answer.text
    shown = client.get("/v1/connect/ca/configuration").json()["Config"]
    assert shown["CSRMaxConcurrent"] == 1
