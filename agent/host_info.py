"""This machine, as Consul's `/v1/agent/host` reports it (agent/debug/host.go).

Consul fills its answer with gopsutil: `Host` (host.InfoStat), `Memory`
(mem.VirtualMemoryStat), `Disk` (disk.UsageStat of `/`), `CPU` ([]cpu.InfoStat, one per
logical processor), `CollectionTime` (Unix nanoseconds) and `Errors`. The same figures are
read here from /proc, /etc/os-release and statvfs, under gopsutil's JSON names, with its
Linux arithmetic (`used` memory is total - free - buffers - cached). A part that cannot be read
is null and adds an entry to `Errors`; Go marshals an error value as `{}`, so the entry is an
empty object, as Consul's, and the reason goes to the log.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("agent.host")

__all__ = ["collect_host_info", "cpu_info", "disk_usage", "memory_info", "parse_meminfo"]

DISK_USAGE_PATH = "/"
_PROC = Path("/proc")

# /proc/meminfo key -> gopsutil field (values in kB there, bytes here)
_MEMINFO_FIELDS = {
    "MemTotal": "total",
    "MemFree": "free",
    "MemAvailable": "available",
    "Buffers": "buffers",
    "Cached": "cached",
    "Active": "active",
    "Inactive": "inactive",
    "Writeback": "writeBack",
    "Dirty": "dirty",
    "WritebackTmp": "writeBackTmp",
    "Shmem": "shared",
    "Slab": "slab",
    "SReclaimable": "sreclaimable",
    "SUnreclaim": "sunreclaim",
    "PageTables": "pageTables",
    "SwapCached": "swapCached",
    "CommitLimit": "commitLimit",
    "Committed_AS": "committedAS",
    "HighTotal": "highTotal",
    "HighFree": "highFree",
    "LowTotal": "lowTotal",
    "LowFree": "lowFree",
    "SwapTotal": "swapTotal",
    "SwapFree": "swapFree",
    "Mapped": "mapped",
    "VmallocTotal": "vmallocTotal",
    "VmallocUsed": "vmallocUsed",
    "VmallocChunk": "vmallocChunk",
    "HugePages_Total": "hugePagesTotal",
    "HugePages_Free": "hugePagesFree",
    "HugePages_Rsvd": "hugePagesRsvd",
    "HugePages_Surp": "hugePagesSurp",
    "Hugepagesize": "hugePageSize",
    "AnonHugePages": "anonHugePages",
}
_MEMORY_ORDER = [
    "total",
    "available",
    "used",
    "usedPercent",
    "free",
    "active",
    "inactive",
    "wired",
    "laundry",
    "buffers",
    "cached",
    "writeBack",
    "dirty",
    "writeBackTmp",
    "shared",
    "slab",
    "sreclaimable",
    "sunreclaim",
    "pageTables",
    "swapCached",
    "commitLimit",
    "committedAS",
    "highTotal",
    "highFree",
    "lowTotal",
    "lowFree",
    "swapTotal",
    "swapFree",
    "mapped",
    "vmallocTotal",
    "vmallocUsed",
    "vmallocChunk",
    "hugePagesTotal",
    "hugePagesFree",
    "hugePagesRsvd",
    "hugePagesSurp",
    "hugePageSize",
    "anonHugePages",
]
_COUNTS = {"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"}


def parse_meminfo(text: str) -> dict[str, Any]:
    """mem.VirtualMemoryStat from the text of /proc/meminfo."""
    stat: dict[str, Any] = dict.fromkeys(_MEMORY_ORDER, 0)
    stat["usedPercent"] = 0.0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        field = _MEMINFO_FIELDS.get(key.strip())
        parts = rest.split()
        if field is None or not parts or not parts[0].isdigit():
            continue
        value = int(parts[0])
        stat[field] = value if key in _COUNTS else value * 1024
    stat["cached"] += stat["sreclaimable"]  # gopsutil counts reclaimable slab as cached
    if "MemAvailable" not in text:
        stat["available"] = stat["cached"] + stat["free"]
    stat["used"] = max(0, stat["total"] - stat["free"] - stat["buffers"] - stat["cached"])
    if stat["total"]:
        stat["usedPercent"] = stat["used"] / stat["total"] * 100.0
    return stat


def memory_info() -> dict[str, Any]:
    return parse_meminfo((_PROC / "meminfo").read_text())


def _int(text: str) -> int:
    digits = text.strip().split(" ")[0]
    return int(digits) if digits.isdigit() else 0


def cpu_info(text: str | None = None) -> list[dict[str, Any]]:
    """[]cpu.InfoStat from /proc/cpuinfo: one entry per logical processor."""
    if text is None:
        text = (_PROC / "cpuinfo").read_text()
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            current = {
                "cpu": _int(value),
                "vendorId": "",
                "family": "",
                "model": "",
                "stepping": 0,
                "physicalId": "",
                "coreId": "",
                "cores": 1,
                "modelName": "",
                "mhz": 0.0,
                "cacheSize": 0,
                "flags": [],
                "microcode": "",
            }
            out.append(current)
        elif current is None:
            continue
        elif key == "vendor_id":
            current["vendorId"] = value
        elif key == "cpu family":
            current["family"] = value
        elif key == "model":
            current["model"] = value
        elif key == "model name":
            current["modelName"] = value
        elif key == "stepping":
            current["stepping"] = _int(value)
        elif key == "physical id":
            current["physicalId"] = value
        elif key == "core id":
            current["coreId"] = value
        elif key == "cpu MHz":
            try:
                current["mhz"] = float(value)
            except ValueError:
                pass
        elif key == "cache size":
            current["cacheSize"] = _int(value)
        elif key in ("flags", "Features"):
            current["flags"] = value.split()
        elif key == "microcode":
            current["microcode"] = value
    return out


def _fstype(path: str) -> str:
    best, fstype = "", ""
    for line in (_PROC / "mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and path.startswith(parts[1]) and len(parts[1]) >= len(best):
            best, fstype = parts[1], parts[2]
    return fstype


def disk_usage(path: str = DISK_USAGE_PATH) -> dict[str, Any]:
    """disk.UsageStat of the filesystem holding `path`."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    inodes_used = st.f_files - st.f_ffree
    return {
        "path": path,
        "fstype": _fstype(path),
        "total": total,
        "free": free,
        "used": used,
        "usedPercent": used / (used + free) * 100.0 if used + free else 0.0,
        "inodesTotal": st.f_files,
        "inodesUsed": inodes_used,
        "inodesFree": st.f_ffree,
        "inodesUsedPercent": inodes_used / st.f_files * 100.0 if st.f_files else 0.0,
    }


def _os_release() -> dict[str, str]:
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(candidate).read_text()
        except OSError:
            continue
        fields = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip().strip('"')
        return fields
    return {}


_FAMILIES = {
    "debian": "debian",
    "ubuntu": "debian",
    "linuxmint": "debian",
    "raspbian": "debian",
    "fedora": "fedora",
    "rhel": "rhel",
    "centos": "rhel",
    "rocky": "rhel",
    "almalinux": "rhel",
    "amzn": "rhel",
    "ol": "rhel",
    "alpine": "alpine",
    "arch": "arch",
    "opensuse": "suse",
    "sles": "suse",
    "gentoo": "gentoo",
}


def _host_id() -> str:
    for candidate in ("/sys/class/dmi/id/product_uuid", "/etc/machine-id"):
        try:
            value = Path(candidate).read_text().strip().lower()
        except OSError:
            continue
        if len(value) == 32 and "-" not in value:  # a machine-id, given UUID dashes
            value = f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        if value:
            return value
    return (_PROC / "sys/kernel/random/boot_id").read_text().strip()


def host_stat() -> dict[str, Any]:
    """host.InfoStat."""
    uname = platform.uname()
    uptime = int(float((_PROC / "uptime").read_text().split()[0]))
    boot = 0
    for line in (_PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            boot = int(line.split()[1])
    release = _os_release()
    distro = release.get("ID", "")
    return {
        "hostname": uname.node,
        "uptime": uptime,
        "bootTime": boot,
        "procs": sum(1 for p in _PROC.iterdir() if p.name.isdigit()),
        "os": sys.platform,  # Go's runtime.GOOS spelling on Linux: "linux"
        "platform": distro,
        "platformFamily": _FAMILIES.get(distro, distro),
        "platformVersion": release.get("VERSION_ID", ""),
        "kernelVersion": uname.release,
        "kernelArch": uname.machine,
        "virtualizationSystem": "",
        "virtualizationRole": "",
        "hostId": _host_id(),
    }


def collect_host_info(now: Callable[[], float] = time.time) -> dict[str, Any]:
    info: dict[str, Any] = {"CollectionTime": int(now() * 1e9)}
    errors: list[dict] = []
    for field, read in (
        ("Host", host_stat),
        ("Memory", memory_info),
        ("Disk", disk_usage),
        ("CPU", cpu_info),
    ):
        try:
            info[field] = read()
        except (OSError, ValueError, IndexError) as exc:
            log.warning("agent: host info: %s unavailable: %s", field, exc)
            info[field] = None
            errors.append({})
    return {
        "Memory": info["Memory"],
        "CPU": info["CPU"],
        "Host": info["Host"],
        "Disk": info["Disk"],
        "CollectionTime": info["CollectionTime"],
        "Errors": errors or None,
    }
