# -*- test-case-name: dockerpy.test.test_stats -*-
"""A container's resource usage as ``GET /containers/{id}/stats`` shows it.

This module owns reading a container's cgroup (v1 controllers, as on a
hybrid host, or the v2 unified tree), ``/proc/stat`` and the container's
``/proc/<pid>/net/dev`` into a plain :class:`Sample`, and turning two
samples into Docker's JSON (``cpu_stats``/``precpu_stats``,
``memory_stats``, ``blkio_stats``, ``pids_stats``, ``networks``).

Reading is blocking file work (:func:`read_sample`: run it in the thread
pool); building the JSON is pure (:func:`stats_json`).  Nothing here writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from dockerpy.runtime.cgroups import CGROUP_ROOT, UNIFIED, cgroup_mode
from dockerpy.timeutil import rfc3339

#: Docker's "never read" time (Go's zero ``time.Time``).
ZERO_TIME = "0001-01-01T00:00:00Z"

_NS = 1_000_000_000
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: ``blkio_stats`` members, always present (``null`` when unknown).
BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive",
              "io_queue_recursive", "io_service_time_recursive",
              "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
              "sectors_recursive")


@dataclass
class Sample:
    """One reading of a container's counters (all cumulative)."""

    read: float
    cpu_total: int = 0
    cpu_kernel: int = 0
    cpu_user: int = 0
    percpu: Optional[list[int]] = None
    system_cpu: int = 0
    online_cpus: int = 0
    periods: int = 0
    throttled_periods: int = 0
    throttled_time: int = 0
    memory_usage: Optional[int] = None
    memory_max_usage: Optional[int] = None
    memory_failcnt: Optional[int] = None
    memory_limit: Optional[int] = None
    memory_stats: dict[str, int] = field(default_factory=dict)
    pids_current: Optional[int] = None
    pids_limit: Optional[int] = None
    io_service_bytes: Optional[list[dict]] = None
    io_serviced: Optional[list[dict]] = None
    networks: Optional[dict[str, dict]] = None


# -- small readers -----------------------------------------------------------

def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _int(path: str) -> Optional[int]:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _flat_keyed(text: Optional[str]) -> dict[str, int]:
    """``key value`` lines (``memory.stat``, ``cpu.stat``, ``cpuacct.stat``)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def host_memory(meminfo: str = "/proc/meminfo") -> int:
    """Total host memory in bytes (a limit of "no limit" shows as this)."""
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def system_cpu_usage(proc_stat: str = "/proc/stat") -> tuple[int, int]:
    """:return: ``(host CPU time in ns, online CPUs)`` as Docker counts them:
    the first seven fields of the ``cpu`` line (user .. softirq), and the
    number of ``cpuN`` lines."""
    total, cpus = 0, 0
    for line in (_read(proc_stat) or "").splitlines():
        if line.startswith("cpu "):
            fields = [int(v) for v in line.split()[1:8]]
            total = sum(fields) * _NS // _CLK_TCK
        elif line.startswith("cpu") and line[3:4].isdigit():
            cpus += 1
    return total, cpus


def parse_blkio_v1(text: Optional[str]) -> Optional[list[dict]]:
    """``blkio.throttle.io_service_bytes_recursive``: ``8:0 Read 4096`` lines."""
    if text is None:
        return None
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        try:
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                            "value": int(parts[2])})
        except ValueError:
            continue
    return entries


def parse_io_stat_v2(text: Optional[str]) -> tuple[Optional[list[dict]], Optional[list[dict]]]:
    """``io.stat`` (``8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...``) as Docker's
    v2 ``io_service_bytes_recursive`` and ``io_serviced_recursive``."""
    if text is None:
        return None, None
    service_bytes, serviced = [], []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        values = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        try:
            dev = {"major": int(major), "minor": int(minor)}
            for key, op, target in (("rbytes", "read", service_bytes),
                                    ("wbytes", "write", service_bytes),
                                    ("rios", "read", serviced), ("wios", "write", serviced)):
                if key in values:
                    target.append(dict(dev, op=op, value=int(values[key])))
        except ValueError:
            continue
    return service_bytes, serviced


def parse_net_dev(text: Optional[str]) -> Optional[dict[str, dict]]:
    """``/proc/<pid>/net/dev`` as Docker's ``networks`` (loopback left out)."""
    if text is None:
        return None
    out = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        if len(v) < 16:
            continue
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2],
                     "rx_dropped": v[3], "tx_bytes": v[8], "tx_packets": v[9],
                     "tx_errors": v[10], "tx_dropped": v[11]}
    return out


# -- one reading -------------------------------------------------------------

def read_sample(cgroups_path: str, now: float, pid: int = 0, host_network: bool = False,
                root: str = CGROUP_ROOT, mode: Optional[str] = None,
                proc: str = "/proc") -> Sample:
    """Read the counters of the container whose ``linux.cgroupsPath`` is
    ``cgroups_path``.  Blocking.

    :param now: the time of the reading (seconds since the epoch).
    :param pid: the container's host pid, for its network counters.
    :param host_network: the container shares the host's network (Docker
        then reports no ``networks``).
    :param mode: the cgroup layout (:func:`cgroup_mode`; read when ``None``).
    """
    mode = mode or cgroup_mode(root)
    relative = cgroups_path.strip("/")
    sample = Sample(read=now)
    sample.system_cpu, sample.online_cpus = system_cpu_usage(os.path.join(proc, "stat"))
    host_mem = host_memory(os.path.join(proc, "meminfo"))
    if mode == UNIFIED:
        _read_v2(sample, os.path.join(root, relative), host_mem)
    else:
        _read_v1(sample, root, relative, host_mem)
    if pid and not host_network:
        sample.networks = parse_net_dev(_read(os.path.join(proc, str(pid), "net", "dev")))
    return sample


def _limit(value: Optional[int], host_mem: int) -> int:
    # v1 says "no limit" with a huge number, v2 with "max": Docker shows
    # the host's memory either way.
    if value is None or (host_mem and value > host_mem):
        return host_mem
    return value


def _read_v1(sample: Sample, root: str, relative: str, host_mem: int) -> None:
    def ctl(controller: str, name: str) -> str:
        return os.path.join(root, controller, relative, name)

    sample.cpu_total = _int(ctl("cpuacct", "cpuacct.usage")) or 0
    percpu = _read(ctl("cpuacct", "cpuacct.usage_percpu"))
    if percpu is not None:
        sample.percpu = [int(v) for v in percpu.split()]
    ticks = _flat_keyed(_read(ctl("cpuacct", "cpuacct.stat")))
    sample.cpu_user = ticks.get("user", 0) * _NS // _CLK_TCK
    sample.cpu_kernel = ticks.get("system", 0) * _NS // _CLK_TCK
    throttling = _flat_keyed(_read(ctl("cpu", "cpu.stat")))
    sample.periods = throttling.get("nr_periods", 0)
    sample.throttled_periods = throttling.get("nr_throttled", 0)
    sample.throttled_time = throttling.get("throttled_time", 0)
    sample.memory_usage = _int(ctl("memory", "memory.usage_in_bytes"))
    sample.memory_max_usage = _int(ctl("memory", "memory.max_usage_in_bytes"))
    sample.memory_failcnt = _int(ctl("memory", "memory.failcnt"))
    sample.memory_limit = _limit(_int(ctl("memory", "memory.limit_in_bytes")), host_mem)
    sample.memory_stats = _flat_keyed(_read(ctl("memory", "memory.stat")))
    sample.pids_current = _int(ctl("pids", "pids.current"))
    sample.pids_limit = _int(ctl("pids", "pids.max"))
    sample.io_service_bytes = parse_blkio_v1(
        _read(ctl("blkio", "blkio.throttle.io_service_bytes_recursive")))
    sample.io_serviced = parse_blkio_v1(
        _read(ctl("blkio", "blkio.throttle.io_serviced_recursive")))


def _read_v2(sample: Sample, path: str, host_mem: int) -> None:
    cpu = _flat_keyed(_read(os.path.join(path, "cpu.stat")))
    sample.cpu_total = cpu.get("usage_usec", 0) * 1000
    sample.cpu_user = cpu.get("user_usec", 0) * 1000
    sample.cpu_kernel = cpu.get("system_usec", 0) * 1000
    sample.periods = cpu.get("nr_periods", 0)
    sample.throttled_periods = cpu.get("nr_throttled", 0)
    sample.throttled_time = cpu.get("throttled_usec", 0) * 1000
    sample.memory_usage = _int(os.path.join(path, "memory.current"))
    sample.memory_limit = _limit(_int(os.path.join(path, "memory.max")), host_mem)
    sample.memory_stats = _flat_keyed(_read(os.path.join(path, "memory.stat")))
    sample.pids_current = _int(os.path.join(path, "pids.current"))
    sample.pids_limit = _int(os.path.join(path, "pids.max"))
    sample.io_service_bytes, sample.io_serviced = parse_io_stat_v2(
        _read(os.path.join(path, "io.stat")))


# -- Docker's JSON -----------------------------------------------------------

def _cpu_json(sample: Optional[Sample]) -> dict:
    if sample is None:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0,
                                    "throttled_time": 0}}
    usage: dict = {"total_usage": sample.cpu_total}
    if sample.percpu is not None:
        usage["percpu_usage"] = sample.percpu
    usage["usage_in_kernelmode"] = sample.cpu_kernel
    usage["usage_in_usermode"] = sample.cpu_user
    return {"cpu_usage": usage, "system_cpu_usage": sample.system_cpu,
            "online_cpus": sample.online_cpus,
            "throttling_data": {"periods": sample.periods,
                                "throttled_periods": sample.throttled_periods,
                                "throttled_time": sample.throttled_time}}


def stats_json(cid: str, name: str, sample: Optional[Sample],
               previous: Optional[Sample] = None) -> dict:
    """Docker's ``StatsResponse`` for one reading.

    :param name: the container's name with its leading ``/``.
    :param sample: the reading; ``None`` for a container that does not run
        (Docker then sends zeros and Go's zero times).
    :param previous: the reading before, for ``precpu_stats`` and ``preread``.
    """
    doc: dict = {
        "read": rfc3339(sample.read) if sample is not None else ZERO_TIME,
        "preread": rfc3339(previous.read) if previous is not None else ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {key: None for key in BLKIO_KEYS},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_json(sample),
        "precpu_stats": _cpu_json(previous),
        "memory_stats": {},
        "name": name,
        "id": cid,
    }
    if sample is None:
        return doc
    if sample.pids_current is not None:
        doc["pids_stats"]["current"] = sample.pids_current
    if sample.pids_limit is not None:
        doc["pids_stats"]["limit"] = sample.pids_limit
    doc["blkio_stats"]["io_service_bytes_recursive"] = sample.io_service_bytes
    doc["blkio_stats"]["io_serviced_recursive"] = sample.io_serviced
    memory: dict = {}
    if sample.memory_usage is not None:
        memory["usage"] = sample.memory_usage
    if sample.memory_max_usage is not None:
        memory["max_usage"] = sample.memory_max_usage
    if sample.memory_stats:
        memory["stats"] = sample.memory_stats
    if sample.memory_failcnt is not None:
        memory["failcnt"] = sample.memory_failcnt
    if sample.memory_limit is not None:
        memory["limit"] = sample.memory_limit
    doc["memory_stats"] = memory
    if sample.networks is not None:
        doc["networks"] = sample.networks
    return doc
