"""``docker ps`` (``GET /containers/json``) with 50 running containers.

Times both the whole CLI (``docker ps``, process start included) and the
bare API request over the unix socket, round-robin across targets.

    .venv/bin/python bench/ps.py [-c 50] [-n 30] [--oracle] [--host NAME=URL]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import start_many  # noqa: E402
from _common import (Target, add_target_args, fmt_seconds, stop_all, summary,  # noqa: E402
                     targets_from_args, timed)


def measure(targets: list[Target], runs: int = 30) -> dict[tuple[str, str], dict]:
    """:return: ``{("cli" | "api", target name): summary}``."""
    samples: dict[tuple[str, str], list[float]] = {}
    for target in targets:
        target.cli("ps")
        target.api("GET", "/containers/json")
    for _ in range(runs):
        for target in targets:
            samples.setdefault(("cli", target.name), []).append(
                timed(lambda: target.cli("ps")))
            samples.setdefault(("api", target.name), []).append(
                timed(lambda: _api_ok(target)))
    return {key: summary(values) for key, values in samples.items()}


def _api_ok(target: Target) -> None:
    status, _ = target.api("GET", "/containers/json")
    if status != 200:
        raise RuntimeError(f"{target.name}: GET /containers/json answered {status}")


def running(target: Target) -> int:
    return len(target.cli("ps", "-q").stdout.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--count", type=int, default=50)
    parser.add_argument("-n", "--runs", type=int, default=30)
    add_target_args(parser)
    args = parser.parse_args()
    targets = targets_from_args(args)
    started: dict[str, list[str]] = {}
    try:
        for target in targets:
            started[target.name] = start_many.start(target, args.count)[1]
        for target in targets:
            print(f"{target.name}: {running(target)} running")
        for (kind, name), s in measure(targets, args.runs).items():
            what = "docker ps" if kind == "cli" else "GET /containers/json"
            print(f"{what:22s} {name:10s} {fmt_seconds(s)}")
    finally:
        for target in targets:
            start_many.remove(target, started.get(target.name) or start_many.leftovers(target))
        stop_all(targets)


if __name__ == "__main__":
    main()
