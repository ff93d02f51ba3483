"""An in-memory Consul `/v1` double behind `httpx.MockTransport`, plus tests of the double.

It speaks the documented shapes (DirEntry with base64 values, txn 200/409 bodies, agent
services/checks maps, members, ACL objects, 401 when ACLs are off) so gitkv's unit tests run
the real client, state reader and applier without a process. The e2e tests cover a real agent.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from gitkv.client import ConsulClient, ConsulSettings

ADDRESS = "http://127.0.0.1:8500"


@dataclass
class FakeConsul:
    """State of the double; `calls` records `(method, path)` of every request."""

    node: str = "node1"
    acl_enabled: bool = False
    index: int = 10
    kv: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    acl: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"policy": {}, "role": {}, "token": {}}
    )
    calls: list[tuple[str, str]] = field(default_factory=list)
    max_ops: int = 64

    def client(self, address: str = ADDRESS) -> ConsulClient:
        return ConsulClient(ConsulSettings(address=address), transport=httpx.MockTransport(self))

    # -- direct manipulation (a "concurrent writer") -----------------------------------

    def put(self, key: str, value: bytes, flags: int = 0) -> int:
        self.index += 1
        old = self.kv.get(key)
        self.kv[key] = {
            "LockIndex": 0,
            "Key": key,
            "Flags": flags,
            "Value": base64.b64encode(value).decode() if value else None,
            "CreateIndex": old["CreateIndex"] if old else self.index,
            "ModifyIndex": self.index,
        }
        return self.index

    def value(self, key: str) -> bytes | None:
        e = self.kv.get(key)
        return None if e is None else base64.b64decode(e["Value"] or "")

    # -- HTTP ----------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.raw_path.decode().split("?")[0])
        self.calls.append((request.method, path))
        params = request.url.params
        body = request.content
        route = path.removeprefix("/v1/")
        if route.startswith("kv/"):
            return self._kv(request.method, route[3:], params, body)
        if route == "txn" and request.method == "PUT":
            return self._txn(json.loads(body))
        if route.startswith("agent/"):
            return self._agent(request.method, route[6:], body)
        if route.startswith("catalog/"):
            return self._catalog(request.method, route[8:], body)
        if route.startswith("health/node/"):
            node = route[len("health/node/") :]
            return _json([c for c in self.checks.values() if c["Node"] == node])
        if route.startswith("acl/"):
            return self._acl(request.method, route[4:], body)
        return httpx.Response(404, text="Invalid URL path: not a recognized HTTP API endpoint")

    def _kv(self, method: str, key: str, params: Any, body: bytes) -> httpx.Response:
        if method == "GET":
            if "recurse" in params:
                items = [self.kv[k] for k in sorted(self.kv) if k.startswith(key)]
            else:
                items = [self.kv[key]] if key in self.kv else []
            if not items:
                return httpx.Response(404)
            return _json(items, {"X-Consul-Index": str(self.index)})
        if method == "PUT":
            cas = params.get("cas")
            cur = self.kv.get(key)
            if cas is not None and int(cas) != (cur["ModifyIndex"] if cur else 0):
                return _json(False)
            self.put(key, body, int(params.get("flags", 0)))
            return _json(True)
        if method == "DELETE":
            self.kv.pop(key, None)
            self.index += 1
            return _json(True)
        return httpx.Response(405, text=f"method {method} not allowed")

    def _txn(self, ops: list[dict[str, Any]]) -> httpx.Response:
        if len(ops) > self.max_ops:
            return httpx.Response(
                413, text=f"Transaction contains too many operations ({len(ops)} > {self.max_ops})"
            )
        errors = []
        shadow = {k: v["ModifyIndex"] for k, v in self.kv.items()}
        for i, op in enumerate(ops):
            kv = op["KV"]
            key, verb, idx = kv["Key"], kv["Verb"], kv.get("Index", 0)
            cur = shadow.get(key, 0)
            if verb == "cas" and idx != cur:
                errors.append({"OpIndex": i, "What": f'failed to set key "{key}", index is stale'})
            elif verb == "delete-cas" and idx != cur:
                errors.append(
                    {"OpIndex": i, "What": f'failed to delete key "{key}", index is stale'}
                )
            elif verb == "check-not-exists" and key in shadow:
                errors.append({"OpIndex": i, "What": f'key "{key}" exists'})
            elif verb == "check-index" and idx != cur:
                errors.append({"OpIndex": i, "What": f"current modify index {cur} != {idx}"})
            if verb in ("cas", "set"):
                shadow[key] = -1
            elif verb == "delete-tree":
                shadow = {k: v for k, v in shadow.items() if not k.startswith(key)}
            elif verb.startswith("delete"):
                shadow.pop(key, None)
        if errors:
            return _json({"Results": None, "Errors": errors}, status=409)
        self.index += 1
        results = []
        for op in ops:
            kv = op["KV"]
            key, verb = kv["Key"], kv["Verb"]
            if verb in ("cas", "set"):
                old = self.kv.get(key)
                self.kv[key] = {
                    "LockIndex": 0,
                    "Key": key,
                    "Flags": kv.get("Flags", 0),
                    "Value": kv.get("Value"),
                    "CreateIndex": old["CreateIndex"] if old else self.index,
                    "ModifyIndex": self.index,
                }
                results.append({"KV": {**self.kv[key], "Value": None}})
            elif verb == "delete-tree":
                self.kv = {k: v for k, v in self.kv.items() if not k.startswith(key)}
            elif verb.startswith("delete"):
                self.kv.pop(key, None)
        return _json({"Results": results, "Errors": None})

    def _agent(self, method: str, route: str, body: bytes) -> httpx.Response:
        if route == "self":
            return _json({"Config": {"NodeName": self.node, "Datacenter": "dc1"}})
        if route == "members":
            return _json(self.members)
        if route == "services":
            return _json(self.services)
        if route == "checks":
            return _json(self.checks)
        if route == "service/register" and method == "PUT":
            reg = json.loads(body)
            sid = reg.get("ID") or reg["Name"]
            self.services[sid] = {
                "ID": sid,
                "Service": reg["Name"],
                "Tags": reg.get("Tags") or [],
                "Meta": reg.get("Meta") or {},
                "Port": reg.get("Port", 0),
                "Address": reg.get("Address", ""),
                "Weights": {"Passing": 1, "Warning": 1},
                "EnableTagOverride": False,
            }
            for cid in [c for c, v in self.checks.items() if v["ServiceID"] == sid]:
                del self.checks[cid]
            for c in reg.get("Checks") or []:
                kind = next((k for k in ("HTTP", "TCP", "GRPC", "TTL") if k in c), "")
                self.checks[c["CheckID"]] = {
                    "Node": self.node,
                    "CheckID": c["CheckID"],
                    "Name": c["Name"],
                    "Status": "critical",
                    "ServiceID": sid,
                    "ServiceName": reg["Name"],
                    "Type": kind.lower(),
                    "Interval": c.get("Interval", ""),
                    "Timeout": c.get("Timeout", ""),
                    "Notes": c.get("Notes", ""),
                    # Like Consul's agent: the target (URL, TTL, ...) is not shown back.
                    "Definition": {},
                }
            return httpx.Response(200)
        if route.startswith("service/deregister/") and method == "PUT":
            sid = route.rsplit("/", 1)[1]
            self.services.pop(sid, None)
            for cid in [c for c, v in self.checks.items() if v["ServiceID"] == sid]:
                del self.checks[cid]
            return httpx.Response(200)
        return httpx.Response(404)

    def _catalog(self, method: str, route: str, body: bytes) -> httpx.Response:
        if route == "nodes":
            return _json([{"Node": n, "Address": v["Address"]} for n, v in self.nodes.items()])
        if route.startswith("node/"):
            n = self.nodes.get(route[5:])
            if n is None:
                return _json(None)
            return _json(
                {
                    "Node": {"Node": route[5:], "Address": n["Address"], "Meta": n["Meta"]},
                    "Services": n["Services"],
                }
            )
        reg = json.loads(body)
        if route == "register":
            node = self.nodes.setdefault(reg["Node"], {"Services": {}})
            node["Address"], node["Meta"] = reg["Address"], reg.get("NodeMeta") or {}
            svc = reg.get("Service")
            if svc:
                sid = svc.get("ID") or svc["Service"]
                node["Services"][sid] = {"ID": sid, "Weights": {"Passing": 1}, **svc}
            return _json(True)
        if route == "deregister":
            if reg.get("ServiceID"):
                self.nodes[reg["Node"]]["Services"].pop(reg["ServiceID"], None)
            else:
                self.nodes.pop(reg["Node"], None)
            return _json(True)
        return httpx.Response(404)

    def _acl(self, method: str, route: str, body: bytes) -> httpx.Response:
        if not self.acl_enabled:
            return httpx.Response(401, text="ACL support disabled")
        plural = {"policies": "policy", "roles": "role", "tokens": "token"}
        if route in plural and method == "GET":
            items = list(self.acl[plural[route]].values())
            if route == "policies":
                items = [{k: v for k, v in p.items() if k != "Rules"} for p in items]
            return _json(items)
        what, _, ident = route.partition("/")
        table = self.acl[what]
        idf = "AccessorID" if what == "token" else "ID"
        if method == "GET":
            return (
                _json(table[ident]) if ident in table else httpx.Response(403, text="ACL not found")
            )
        if method == "DELETE":
            table.pop(ident, None)
            return _json(True)
        obj = json.loads(body)
        ident = ident or str(uuid.uuid4())
        obj[idf] = ident
        obj["Policies"] = [{"ID": "x", "Name": p["Name"]} for p in obj.get("Policies") or []]
        obj["Roles"] = [{"ID": "x", "Name": p["Name"]} for p in obj.get("Roles") or []]
        if what == "token":
            obj.setdefault("SecretID", str(uuid.uuid4()))
        table[ident] = obj
        return _json(obj)


def _json(data: Any, headers: dict[str, str] | None = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=data, headers=headers)


# -- tests of the double itself -----------------------------------------------------------


def test_fake_txn_is_all_or_nothing() -> None:
    fake = FakeConsul()
    idx = fake.put("a", b"1")
    with fake.client() as c:
        res = c.txn(
            [
                {"KV": {"Verb": "cas", "Key": "b", "Value": "Mg==", "Index": 0}},
                {"KV": {"Verb": "cas", "Key": "a", "Value": "Mg==", "Index": idx + 5}},
            ]
        )
    assert not res.ok
    assert res.errors[0]["OpIndex"] == 1
    assert "b" not in fake.kv


def test_fake_acl_disabled_answers_401() -> None:
    with FakeConsul().client() as c:
        assert c.acl_list("policies") is None
