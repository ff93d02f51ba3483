"""Service virtual IPs: one address per service from 240.0.0.0/4, as Consul's state store hands
them out for transparent proxies.

A service gets its virtual IP when a connect-proxy for it (or a Connect-native instance of it)
is registered, or a service-resolver, -router or -splitter entry names it; the catalog shows
it in the instance's `TaggedAddresses["consul-virtual"]`. IPs are offsets from 240.0.0.0: the
counter starts at 0 and is bumped before each use (the first service gets 240.0.0.1); an IP
freed when a service's last instance goes is handed out again before the counter moves, the
lowest first, as Consul's free-IP table returns them. Manual IPs (`PUT
/v1/internal/service-virtual-ip`) are kept per service, each address by one service only.

Pure: the store calls in from its writes (`agent/state/store.py`), the FSM for manual IPs.
"""

from __future__ import annotations

import ipaddress
from typing import Any

VIRTUAL_IP_TABLE = "service-virtual-ips"
TAGGED_ADDRESS = "consul-virtual"  # Consul's structs.TaggedAddressVirtualIP
_START = int(ipaddress.IPv4Address("240.0.0.0"))
# Consul's virtualIPMaxOffset (15.255.255.254): the counter may not reach it.
EXHAUSTED = "cannot allocate any more unique service virtual IPs"
_MAX_OFFSET = int(ipaddress.IPv4Address("15.255.255.254"))


def address(offset: int) -> str:
    return str(ipaddress.IPv4Address(_START + offset))


class VirtualIPs:
    def __init__(self) -> None:
        # service name -> {"Offset", "ManualIPs", "CreateIndex", "ModifyIndex"}
        self.assigned: dict[str, dict[str, Any]] = {}
        self.freed: set[int] = set()
        self.counter = 0

    def ip_of(self, service: str) -> str:
        record = self.assigned.get(service)
        return address(record["Offset"]) if record is not None else ""

    def lookup(self, service: str) -> str:
        """`ip_of`, the name matched without regard to case (as DNS names are)."""
        if service in self.assigned:
            return self.ip_of(service)
        wanted = service.lower()
        return next((self.ip_of(n) for n in self.assigned if n.lower() == wanted), "")

    def exhausted_for(self, service: str) -> bool:
        """Whether `service` needs a new IP and none is left (checked before a write)."""
        return service not in self.assigned and not self.freed and self.counter + 1 >= _MAX_OFFSET

    def assign(self, service: str, index: int) -> tuple[str, bool]:
        """The service's virtual IP, assigning one if it has none: (address, assigned now);
        ("", False) when the range is used up (writes check `exhausted_for` first)."""
        record = self.assigned.get(service)
        if record is not None:
            return address(record["Offset"]), False
        if self.freed:
            offset = min(self.freed)
            self.freed.discard(offset)
        elif self.exhausted_for(service):
            return "", False
        else:
            self.counter += 1
            offset = self.counter
        self.assigned[service] = {
            "Offset": offset,
            "ManualIPs": [],
            "CreateIndex": index,
            "ModifyIndex": index,
        }
        return address(offset), True

    def free(self, service: str) -> bool:
        """Give the service's IP back (the caller has checked nothing still needs it)."""
        record = self.assigned.pop(service, None)
        if record is None:
            return False
        self.freed.add(record["Offset"])
        return True

    def set_manual(self, service: str, ips: list[str], index: int) -> tuple[bool, list[str]]:
        """Consul's AssignManualServiceVIPs: the addresses taken from any other service first,
        then given to `service`. (found, services that lost an address); nothing changes when
        the service has no virtual IP record, or already has exactly these."""
        record = self.assigned.get(service)
        if record is None:
            return False, []
        if set(record["ManualIPs"]) == set(ips):
            return True, []  # Consul answers this from its state without an apply
        wanted = set(ips)
        losers = []
        for name in sorted(self.assigned):
            other = self.assigned[name]
            if name == service or not wanted & set(other["ManualIPs"]):
                continue
            kept = [ip for ip in other["ManualIPs"] if ip not in wanted]
            self.assigned[name] = other | {"ManualIPs": kept, "ModifyIndex": index}
            losers.append(name)
        self.assigned[service] = record | {"ManualIPs": list(ips), "ModifyIndex": index}
        return True, losers

    # ------------------------------------------------------------------ snapshots

    def dump(self) -> dict[str, Any]:
        return {
            "assigned": [{"Service": n} | r for n, r in sorted(self.assigned.items())],
            "freed": sorted(self.freed),
            "counter": self.counter,
        }

    @classmethod
    def load(cls, raw: dict[str, Any] | None) -> VirtualIPs:
        table = cls()
        if not raw:
            return table
        for record in raw.get("assigned") or ():
            fields = dict(record)
            name = str(fields.pop("Service"))
            table.assigned[name] = {
                "Offset": int(fields["Offset"]),
                "ManualIPs": [str(ip) for ip in fields.get("ManualIPs") or ()],
                "CreateIndex": int(fields.get("CreateIndex") or 0),
                "ModifyIndex": int(fields.get("ModifyIndex") or 0),
            }
        table.freed = {int(x) for x in raw.get("freed") or ()}
        table.counter = int(raw.get("counter") or 0)
        return table
