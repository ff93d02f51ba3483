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
    assert dcs[0]["Coordinates"][0]["Node"] == node  # Consul strips the WAN name's ".dc1"
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


def test_update_of_a_catalog_node_as_the_go_client_does(dev_agent: AgentProc) -> None:
    """api/coordinate_test.go TestAPI_CoordinateUpdate: a node registered through the catalog
    gets the coordinate it is sent, read back equal; a coordinate of another dimensionality is
    refused as Consul's server refuses it (500 "incompatible coordinate") and not written."""
    with dev_agent.client() as http:
        assert http.put("/v1/catalog/register", json={"Node": "foo", "Address": "1.1.1.1"}).json()
        origin = {"Vec": [0.0] * 8, "Error": 1.5, "Adjustment": 0.0, "Height": 0.5}
        entry = {"Node": "foo", "Segment": "", "Coord": origin}
        assert http.put("/v1/coordinate/update", json=entry).status_code == 200
        assert http.get("/v1/coordinate/node/foo").json() == [entry]
        short = {**entry, "Coord": {**origin, "Vec": [0.0, 0.5, 0.0], "Height": 0.75}}
        answer = http.put("/v1/coordinate/update", json=short)
        assert (answer.status_code, answer.text) == (500, "incompatible coordinate")
        assert http.get("/v1/coordinate/node/foo").json() == [entry]
        assert "foo" in [n["Node"] for n in http.get("/v1/coordinate/nodes").json()]
