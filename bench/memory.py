"""Idle daemon memory and the memory each running container costs.

* Idle: RSS and PSS of the daemon's own processes (for Docker: dockerd and
  the containerd it started), after start-up and a busybox import, with no
  container.
* Per container: with N ``sleep 1000`` containers running, what they cost
  beyond the idle daemon, divided by N: the PSS of each container's
  supervising process -- the parent of the container's init (``State.Pid``)
  when that is not the daemon itself: ``containerd-shim-runc-v2`` for
  Docker; none for dockerpy, whose daemon is the subreaper of its
  containers (it was a ``runc run`` per container before) -- plus the
  growth of the daemon's own PSS; from ``/proc/PID/smaps_rollup``.  The
  containers' own processes are not counted.

    .venv/bin/python bench/memory.py [-c 50] [--oracle] [--host NAME=URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import start_many  # noqa: E402
from _common import (Target, add_target_args, cmdline, daemon_pids, parent,  # noqa: E402
                     rollup, stop_all, targets_from_args)


def daemon_memory(target: Target) -> dict:
    """:return: ``{"rss": kB, "pss": kB, "procs": {name: rss kB}}`` of the daemon."""
    procs = {}
    rss = pss = 0
    for name, pid in daemon_pids(target).items():
        r = rollup(pid)
        procs[name] = r["Rss"]
        rss += r["Rss"]
        pss += r["Pss"]
    return {"rss": rss, "pss": pss, "procs": procs}


def supervisors(target: Target, ids: list[str]) -> dict:
    """PSS of the parent of each container's init, unless it is the daemon.

    :return: ``{"count": n, "pss": total kB, "rss": total kB, "per": kB each,
        "what": a sample command line}``
    """
    out = target.cli("inspect", "--format", "{{json .State.Pid}}", *ids).stdout.split()
    pids = [json.loads(p) for p in out]
    own = set(daemon_pids(target).values())
    total_pss = total_rss = 0
    what = ""
    for pid in pids:
        sup = parent(pid)
        if sup in own:
            what = what or "the daemon itself"
            continue
        r = rollup(sup)
        total_pss += r["Pss"]
        total_rss += r["Rss"]
        what = what or cmdline(sup)[:80]
    n = len(pids)
    return {"count": n, "pss": total_pss, "rss": total_rss,
            "per": total_pss / n if n else 0.0, "what": what}


def settle(seconds: float = 1.0) -> None:
    # Let start-up work (a GC, threads finishing) end before reading RSS.
    time.sleep(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--count", type=int, default=50)
    add_target_args(parser)
    args = parser.parse_args()
    targets = targets_from_args(args)
    started: dict[str, list[str]] = {}
    try:
        settle()
        idle = {t.name: daemon_memory(t) for t in targets}
        for name, m in idle.items():
            print(f"idle      {name:10s} RSS {m['rss'] / 1024:6.1f} MB  PSS {m['pss'] / 1024:6.1f} MB"
                  f"  {m['procs']}")
        for target in targets:
            started[target.name] = start_many.start(target, args.count)[1]
        settle()
        for target in targets:
            s = supervisors(target, started[target.name])
            busy = daemon_memory(target)
            growth = (busy["pss"] - idle[target.name]["pss"]) / s["count"]
            print(f"per ctr   {target.name:10s} {(s['per'] + growth) / 1024:5.2f} MB PSS:"
                  f" supervisor {s['per'] / 1024:.2f} MB ({s['what']!r})"
                  f" + daemon +{growth:.0f} kB/container")
    finally:
        for target in targets:
            start_many.remove(target, started.get(target.name) or start_many.leftovers(target))
        stop_all(targets)


if __name__ == "__main__":
    main()
