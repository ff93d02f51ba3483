"""/v1/coordinate/*: agents report their Vivaldi coordinates; clients read them back."""

from __future__ import annotations

import time

import consul

from tests.e2e.agentproc import AgentProc


def test_coordinates_round_trip_with_py_consul(dev_agent: AgentProc) -> None:
    c = consul.Consul(host=dev_agent.ip, port=dev_agent.http_port)
    node = c.agent.self()["Config"]["NodeName"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not c.coordinate.nodes()[1]:
        time.sleep(0.2)
    dcs = c.coordinate.datacenters()
    assert set(dcs[0]) == {"Datacenter", "AreaID", "Coordinates"}
    assert dcs[0]["Coordinates"][0]["Node"] == f"{node}.dc1"
    _, nodes = c.coordinate.nodes()
    assert [n["Node"] for n in nodes] == [node]
    assert set(nodes[0]["Coord"]) == {"Vec", "Error", "Adjustment", "Height"}
    coord = {"Vec": [0.0] * 7 + [0.25], "Error": 1.5, "Adjustment": 0.0, "Height": 0.0}
    assert c.coordinate.update(node, coord) is not False
    with dev_agent.client() as http:
        entry = http.get(f"/v1/coordinate/node/{node}").json()
        assert entry[0]["Coord"]["Vec"][-1] == 0.25
        assert http.get("/v1/coordinate/node/nobody").status_code == 404
        bad = http.put("/v1/coordinate/update", json={"Node": node, "Coord": {"Vec": "x"}})
        assert bad.status_code == 400
        assert http.get(f"/v1/coordinate/node/{node}").json() == entry
