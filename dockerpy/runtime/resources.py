# -*- test-case-name: dockerpy.test.test_runtime_resources -*-
"""A container's resource limits: HostConfig fields to the OCI spec's
``linux.resources``, checked as moby checks them.

Owned here: which HostConfig members limit memory, CPU and pids, Docker's
refusals of bad values (400 at create, with moby's words), and how each
becomes an OCI member (the runtime writes the cgroup files).
"""

from __future__ import annotations

import os
from typing import Any

from dockerpy import errors

#: moby's ``linuxMinMemory``: below 6 MB the kernel would kill at once.
MIN_MEMORY = 6 * 1024 * 1024
#: The CFS period Docker uses for ``--cpus`` (``NanoCpus``).
CPU_PERIOD = 100_000


def _int(hc: dict, key: str) -> int:
    value = hc.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidParameter(f"invalid value for {key}: {value!r}")
    return value


def validate(hc: dict, cpus: int | None = None) -> None:
    """Refuse what moby's ``verifyPlatformContainerResources`` refuses.

    :param cpus: the host's CPU count (default: this machine's).
    :raises errors.InvalidParameter: with Docker's message.
    """
    memory, swap = _int(hc, "Memory"), _int(hc, "MemorySwap")
    reservation = _int(hc, "MemoryReservation")
    if memory < 0 or reservation < 0:
        raise errors.InvalidParameter("invalid memory limit: must not be negative")
    if 0 < memory < MIN_MEMORY:
        raise errors.InvalidParameter("Minimum memory limit allowed is 6MB")
    if swap > 0 and memory == 0:
        raise errors.InvalidParameter(
            "You should always set the Memory limit when using Memoryswap limit, see usage")
    if memory > 0 and 0 < swap < memory:
        raise errors.InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage")
    if 0 < reservation < MIN_MEMORY:
        raise errors.InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > memory:
        raise errors.InvalidParameter(
            "Minimum memory limit can not be less than memory reservation limit, see usage")
    nano = _int(hc, "NanoCpus")
    period, quota = _int(hc, "CpuPeriod"), _int(hc, "CpuQuota")
    if nano and period:
        raise errors.InvalidParameter(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano and quota:
        raise errors.InvalidParameter(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    host_cpus = cpus or os.cpu_count() or 1
    if nano < 0 or nano > host_cpus * 10**9:
        raise errors.InvalidParameter(
            f"Range of CPUs is from 0.01 to {host_cpus}.00, as there are only "
            f"{host_cpus} CPUs available")
    if period and not 1000 <= period <= 1_000_000:
        raise errors.InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) "
                                      "or larger than 1s (i.e. 1000000)")
    if quota and 0 < quota < 1000:
        raise errors.InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if _int(hc, "CpuShares") < 0:
        raise errors.InvalidParameter("invalid CPU shares: must not be negative")


def oci_resources(hc: dict, swap_limit: bool = True) -> dict[str, Any]:
    """``linux.resources`` members (``memory``, ``cpu``, ``pids``) for the
    container's HostConfig; empty when it sets no limit.

    :param swap_limit: whether the kernel accounts swap (v1's ``memsw``
        files, v2's ``memory.swap.max``).  Without it, as moby does, the
        memory limit applies alone and ``MemorySwap`` is dropped.
    """
    out: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    limit = _int(hc, "Memory")
    if limit > 0:
        memory["limit"] = limit
        swap = _int(hc, "MemorySwap")
        if swap_limit:
            # Docker's default: as much swap as memory (total = 2 x limit).
            memory["swap"] = swap if swap != 0 else 2 * limit
    if _int(hc, "MemoryReservation") > 0:
        memory["reservation"] = _int(hc, "MemoryReservation")
    if hc.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if _int(hc, "CpuShares") > 0:
        cpu["shares"] = _int(hc, "CpuShares")
    nano = _int(hc, "NanoCpus")
    if nano > 0:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = nano * CPU_PERIOD // 10**9
    else:
        if _int(hc, "CpuPeriod") > 0:
            cpu["period"] = _int(hc, "CpuPeriod")
        if _int(hc, "CpuQuota") != 0:
            cpu["quota"] = _int(hc, "CpuQuota")
    for key, member in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if hc.get(key):
            cpu[member] = str(hc[key])
    if cpu:
        out["cpu"] = cpu
    pids = hc.get("PidsLimit")
    if isinstance(pids, int) and not isinstance(pids, bool) and pids != 0:
        # Docker: 0 and null mean "unlimited"; -1 is unlimited too.
        out["pids"] = {"limit": pids if pids > 0 else -1}
    return out
