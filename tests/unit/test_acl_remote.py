"""A client agent's token cache (agent/acl/remote.py): what a server's bundle grants, how long
it is kept, what one fetch serves, and what `acl.down_policy` answers when no server does."""

from __future__ import annotations

import asyncio

import pytest

from agent.acl.remote import CACHE_LIMIT, NOT_FOUND_TTL, RemoteTokens
from agent.acl.resolve import ACLNotFound, Compiler, token_bundle
from agent.state.acl import ANONYMOUS_SECRET, ACLTables

SECRET = "5ec2e7aa-0000-4000-8000-000000000001"


def tables(rules: str) -> ACLTables:
    acl = ACLTables()
    acl.policies["p1"] = {"ID": "p1", "Name": "kv", "Rules": rules, "ModifyIndex": len(rules)}
    acl.roles["r1"] = {"ID": "r1", "Name": "reader", "Policies": [{"ID": "p1"}]}
    token = {"AccessorID": "acc-1", "SecretID": SECRET, "Policies": [], "Roles": [{"ID": "r1"}]}
    acl.tokens["acc-1"] = token
    acl.by_secret[SECRET] = "acc-1"
    return acl


class Servers:
    """The servers' side: token_bundle over tables the test changes; can be made to fail."""

    def __init__(self, acl: ACLTables) -> None:
        self.acl = acl
        self.calls = 0
        self.down = False

    async def fetch(self, secret: str) -> dict | None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.down:
            raise ConnectionError("no servers")
        return token_bundle(self.acl, secret)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cache(servers: Servers, clock: Clock, down_policy: str = "extend-cache") -> RemoteTokens:
    return RemoteTokens(servers.fetch, Compiler("deny"), 30.0, down_policy, clock)


def test_a_bundle_grants_what_its_role_policy_says_and_is_kept_for_the_ttl() -> None:
    servers, clock = Servers(tables('key_prefix "app/" { policy = "read" }')), Clock()
    remote = cache(servers, clock)

    async def scenario() -> None:
        await remote.prefetch(SECRET)
        ident = remote.resolve(SECRET)
        assert ident.accessor == "acc-1"
        assert ident.authz.allowed("key", "app/x", "read")
        assert not ident.authz.allowed("key", "app/x", "write")
        # Within the TTL: no second fetch, even though the policy changed meanwhile.
        servers.acl = tables('key_prefix "app/" { policy = "write" }')
        clock.now += 29
        await remote.prefetch(SECRET)
        assert servers.calls == 1
        assert not remote.resolve(SECRET).authz.allowed("key", "app/x", "write")
        # After it: fetched again, the new policy applies.
        clock.now += 2
        await remote.prefetch(SECRET)
        assert servers.calls == 2
        assert remote.resolve(SECRET).authz.allowed("key", "app/x", "write")

    asyncio.run(scenario())


def test_concurrent_requests_with_one_token_share_one_fetch() -> None:
    servers, clock = Servers(tables('key "a" { policy = "read" }')), Clock()
    remote = cache(servers, clock)

    async def scenario() -> None:
        await asyncio.gather(*(remote.prefetch(SECRET) for _ in range(20)))

    asyncio.run(scenario())
    assert servers.calls == 1
    assert remote.resolve(SECRET).authz.allowed("key", "a", "read")


def test_an_unknown_secret_is_not_found_and_asked_about_again_soon() -> None:
    servers, clock = Servers(tables("")), Clock()
    remote = cache(servers, clock)
    asyncio.run(remote.prefetch("nobody"))
    with pytest.raises(ACLNotFound):
        remote.resolve("nobody")
    with pytest.raises(ACLNotFound):
        remote.resolve("never-fetched")
    asyncio.run(remote.prefetch("nobody"))
    assert servers.calls == 1
    clock.now += NOT_FOUND_TTL
    asyncio.run(remote.prefetch("nobody"))
    assert servers.calls == 2


def test_anonymous_before_the_servers_wrote_it_follows_the_default_policy() -> None:
    servers, clock = Servers(ACLTables()), Clock()
    remote = cache(servers, clock)
    asyncio.run(remote.prefetch(ANONYMOUS_SECRET))
    ident = remote.resolve(ANONYMOUS_SECRET)
    assert ident.anonymous and not ident.authz.allowed("key", "x", "read")


def test_an_expired_token_is_not_found_even_while_cached() -> None:
    acl = tables('key "a" { policy = "read" }')
    acl.tokens["acc-1"]["ExpirationTime"] = "2020-01-01T00:00:00Z"
    servers, clock = Servers(acl), Clock()
    remote = cache(servers, clock)
    asyncio.run(remote.prefetch(SECRET))
    with pytest.raises(ACLNotFound):
        remote.resolve(SECRET)


@pytest.mark.parametrize(
    ("policy", "known_reads", "unknown_reads"),
    [
        ("extend-cache", True, False),  # what was fetched before, however old; else nothing
        ("async-cache", True, False),
        ("deny", False, False),
        ("allow", True, True),
    ],
)
def test_with_no_server_the_down_policy_decides(
    policy: str, known_reads: bool, unknown_reads: bool
) -> None:
    servers, clock = Servers(tables('key "a" { policy = "read" }')), Clock()
    remote = cache(servers, clock, policy)
    asyncio.run(remote.prefetch(SECRET))
    servers.down = True
    clock.now += 3600
    asyncio.run(remote.prefetch(SECRET))
    asyncio.run(remote.prefetch("other-secret"))
    assert remote.resolve(SECRET).authz.allowed("key", "a", "read") is known_reads
    assert remote.resolve("other-secret").authz.allowed("key", "a", "read") is unknown_reads
    # The servers are back: the next request fetches and the token's own rules apply again.
    servers.down = False
    asyncio.run(remote.prefetch(SECRET))
    assert remote.resolve(SECRET).authz.allowed("key", "a", "read")
    assert not remote.resolve(SECRET).authz.allowed("key", "b", "read")


def test_secrets_seen_while_no_server_answers_are_bounded() -> None:
    servers, clock = Servers(tables("")), Clock()
    remote = cache(servers, clock, "deny")
    servers.down = True

    async def flood() -> None:
        for i in range(CACHE_LIMIT + 10):
            await remote.prefetch(f"garbage-{i}")

    asyncio.run(flood())
    assert len(remote._down) <= CACHE_LIMIT
    # The latest one still gets the down policy's answer.
    last = remote.resolve(f"garbage-{CACHE_LIMIT + 9}")
    assert not last.authz.allowed("key", "a", "read")


def test_an_outage_is_logged_once_per_interval_not_per_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    servers, clock = Servers(tables('key "a" { policy = "read" }')), Clock()
    servers.down = True
    remote = cache(servers, clock)
    with caplog.at_level("WARNING", logger="gitkv.acl"):
        for _ in range(50):
            asyncio.run(remote.prefetch(SECRET))
        clock.now += 10
        asyncio.run(remote.prefetch(SECRET))
    assert servers.calls == 51
    assert len([r for r in caplog.records if "down_policy" in r.getMessage()]) == 2
