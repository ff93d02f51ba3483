"""agent/http/coordinate.py on in-memory twins: an update proposed through the writer and
read back, this agent's datacenter, and the refusals that write nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.http import coordinate
from agent.http.app import HTTPError
from agent.http.catalog import build_register
from tests.harness.areas import call, dev_deps
from tests.harness.twins import MemoryWriter

_COORD = {"Vec": [0.5] * 8, "Error": 0.2, "Adjustment": 0.0, "Height": 1e-05}


def test_update_is_proposed_and_read_back() -> None:
    deps = dev_deps()
    asyncio.run(
        deps.writer.write(build_register({"Node": "web1", "Address": "10.0.0.1"}, "dc1", []))
    )
    body = json.dumps({"Node": "web1", "Coord": _COORD}).encode()
    assert call(coordinate.register, deps, "PUT", "/v1/coordinate/update", body=body).status == 200
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.types() == ["register", "coordinate"]
    [entry] = json.loads(call(coordinate.register, deps, "GET", "/v1/coordinate/node/web1").body)
    assert (entry["Node"], entry["Coord"]["Vec"]) == ("web1", [0.5] * 8)
    listed = json.loads(call(coordinate.register, deps, "GET", "/v1/coordinate/nodes").body)
    assert [c["Node"] for c in listed] == ["web1"]
    assert call(coordinate.register, deps, "GET", "/v1/coordinate/node/web2").status == 404


def test_datacenters_names_this_one() -> None:
    deps = dev_deps()
    [area] = json.loads(call(coordinate.register, deps, "GET", "/v1/coordinate/datacenters").body)
    assert (area["Datacenter"], area["AreaID"], area["Coordinates"]) == ("dc1", "wan", [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Coord": _COORD}, "Missing node name"),
        (
            {"Node": "web1", "Coord": {"Vec": ["x"]}},
            "Request decode failed: json: cannot unmarshal string into Go struct field"
            " Coordinate.Coord.Vec of type float64",
        ),
    ],
)
def test_refused_update_never_reaches_the_writer(body: dict, message: str) -> None:
    deps = dev_deps()
    with pytest.raises(HTTPError) as refused:
        call(
            coordinate.register,
            deps,
            "PUT",
            "/v1/coordinate/update",
            body=json.dumps(body).encode(),
        )
    assert (refused.value.status, refused.value.message) == (400, message)
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.commands == []
