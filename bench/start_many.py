"""Wall time to create and start 50 detached containers, 4 at a time.

Each container is ``docker run -d --network none busybox sleep 1000``
through the real docker CLI (create + start, as a user would); four CLI
processes are in flight at any moment.  Then the containers are removed
(``docker rm -f``, also 4 in flight) and that wall time is reported too.

    .venv/bin/python bench/start_many.py [-c 50] [-j 4] [--oracle] [--host NAME=URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Target, add_target_args, stop_all, targets_from_args)  # noqa: E402

LABEL = "dockerpy.bench=start_many"


def start(target: Target, count: int = 50, jobs: int = 4) -> tuple[float, list[str]]:
    """Start ``count`` detached sleepers; :return: (wall seconds, their ids)."""
    def one(_: int) -> str:
        out = target.cli("run", "-d", "--network", "none", "--label", LABEL,
                         "busybox", "sleep", "1000").stdout
        return out.decode().strip()

    t0 = time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        ids = list(pool.map(one, range(count)))
    return time.monotonic() - t0, ids


def remove(target: Target, ids: list[str], jobs: int = 4) -> float:
    """``docker rm -f`` each id, ``jobs`` at a time; :return: wall seconds."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda cid: target.cli("rm", "-f", cid), ids))
    return time.monotonic() - t0


def leftovers(target: Target) -> list[str]:
    out = target.cli("ps", "-aq", "--filter", f"label={LABEL}").stdout.decode()
    return out.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--count", type=int, default=50)
    parser.add_argument("-j", "--jobs", type=int, default=4)
    parser.add_argument("-r", "--repeat", type=int, default=3)
    add_target_args(parser)
    args = parser.parse_args()
    targets = targets_from_args(args)
    try:
        for _ in range(args.repeat):
            for target in targets:
                ids: list[str] = []
                try:
                    wall, ids = start(target, args.count, args.jobs)
                    print(f"start {args.count} x{args.jobs}  {target.name:10s} {wall:7.2f} s")
                finally:
                    rm = remove(target, ids or leftovers(target), args.jobs)
                    print(f"rm -f {len(ids)} x{args.jobs}  {target.name:10s} {rm:7.2f} s")
    finally:
        stop_all(targets)


if __name__ == "__main__":
    main()
