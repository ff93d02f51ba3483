"""The RPC layer on real loopback sockets: multiplexed requests, errors, one-way messages."""

from __future__ import annotations

import asyncio

import pytest

from agent.rpc import RPCError, RPCPool, RPCServer
from tests.e2e.agentproc import free_port


def test_requests_messages_and_errors() -> None:
    async def scenario() -> None:
        received: list = []
        server = RPCServer(lambda peer, payload: received.append(payload))
        gate = asyncio.Event()

        async def slow(args):
            await gate.wait()
            return {"slow": args}

        async def fast(args):
            return [args, b"bytes ok"]

        async def refuse(args):
            raise RPCError("No cluster leader", 503)

        server.register("slow", slow)
        server.register("fast", fast)
        server.register("refuse", refuse)
        port = free_port()
        await server.start("127.0.0.1", port)
        pool = RPCPool()
        address = f"127.0.0.1:{port}"
        try:
            slow_call = asyncio.create_task(pool.call(address, "slow", 1))
            # a later fast request is answered while the slow one is still pending
            assert await pool.call(address, "fast", "x") == ["x", b"bytes ok"]
            assert not slow_call.done()
            gate.set()
            assert await slow_call == {"slow": 1}
            with pytest.raises(RPCError) as refused:
                await pool.call(address, "refuse", None)
            assert (str(refused.value), refused.value.status) == ("No cluster leader", 503)
            with pytest.raises(RPCError, match="can't find method"):
                await pool.call(address, "nope", None)
            pool.send(address, {"raft": 1})
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.01)
            assert received == [{"raft": 1}]
        finally:
            await pool.close()
            await server.close()
        with pytest.raises(RPCError, match="failed to dial"):
            await RPCPool().call(f"127.0.0.1:{free_port()}", "fast", 1, timeout=2)

    asyncio.run(scenario())
