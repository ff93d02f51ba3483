"""`PUT /v1/internal/service-virtual-ip`: a service's manual virtual IPs (Consul's
Internal.AssignManualServiceVIPs, used by consul-k8s to pin a Kubernetes ClusterIP).

The body is `{"Service", "ManualVIPs"}` (Go's decoder: field names in any case); the token
needs `mesh:write` (checked by the guard table before the body is read: consul-k8s gives its
injector that right for this call); every address must be IPv4. The answer is `{"Found", "UnassignedFrom"}`: whether the
service has a virtual IP record (it gets one when a proxy or Connect-native instance of it
registers), and the services an address was taken from. The addresses and the assignment live
in the store (`agent/state/vips.py`), written through Raft.
"""

from __future__ import annotations

import ipaddress
from functools import partial
from typing import TYPE_CHECKING

from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.blocking import read_headers
from agent.http.gojson import STRINGS, Struct, conform, parse
from agent.state.commands import ServiceVirtualIPSet

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import Writer

_DECODE = "Request decode failed: "
ASSIGN_REQUEST = Struct(
    "structs.AssignServiceManualVIPsRequest",
    {"Service": "string", "ManualVIPs": STRINGS, "Datacenter": "string"},
)


def _ipv4_problem(ip: str) -> str | None:
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        # Go prints the nil net.IP of a failed parse as "<nil>"
        return '"<nil>" is not a valid IPv4 address'
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return f'"{parsed.compressed}" is not a valid IPv4 address'
    return None


async def assign(writer: Writer, req: Request, _: str) -> Response:
    body = conform(parse(await req.body(), _DECODE, empty={}), ASSIGN_REQUEST, _DECODE) or {}
    service = str(body.get("Service") or "")
    ips = [str(ip) for ip in body.get("ManualVIPs") or ()]
    for ip in ips:
        if (why := _ipv4_problem(ip)) is not None:
            raise HTTPError(500, why)
    result = await writer.write(ServiceVirtualIPSet(Service=service, ManualIPs=ips))
    unassigned = [{"ServiceName": {"Name": name}, "Peer": ""} for name in result["UnassignedFrom"]]
    # The Go client's AssignServiceVirtualIP fails on a reply whose query meta does not parse
    # (X-Consul-LastContact above all), so the read meta goes with it; the reply carries no
    # index of its own, which Consul's setIndex writes as 1.
    return json_response(
        req,
        {"Found": bool(result["Found"]), "UnassignedFrom": unassigned or None},
        read_headers(req, 0),
    )


def register(router: Router, deps: HTTPDeps) -> None:
    router.add("/v1/internal/service-virtual-ip", {"PUT": partial(assign, deps.writer)})
