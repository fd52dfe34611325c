"""Latency of ``docker run --rm --network none busybox true``.

Each client (the real docker CLI, and dockerpy's ``bin/docker``) is run
against each target in turn, round-robin, so a drift in the machine's speed
hits every pair alike.  Prints the median per (client, target).

    .venv/bin/python bench/run_latency.py [-n 30] [--oracle] [--host NAME=URL]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (OUR_CLI, REAL_CLI, Target, add_target_args, fmt_seconds,  # noqa: E402
                     stop_all, summary, targets_from_args, timed)

ARGS = ("run", "--rm", "--network", "none", "busybox", "true")


def measure(targets: list[Target], runs: int = 30, clients: tuple[str, ...] = (REAL_CLI, OUR_CLI),
            warmup: int = 2) -> dict[tuple[str, str], dict]:
    """:return: ``{(client, target name): summary}``; a client that fails is left out."""
    samples: dict[tuple[str, str], list[float]] = {}
    usable = []
    for target in targets:
        for cli in clients:
            try:
                for _ in range(warmup):
                    target.cli(*ARGS, cli=cli)
            except RuntimeError as e:
                print(f"skipping {cli} on {target.name}: {e}", file=sys.stderr)
                continue
            usable.append((cli, target))
            samples[(cli, target.name)] = []
    for _ in range(runs):
        for cli, target in usable:
            samples[(cli, target.name)].append(timed(lambda: target.cli(*ARGS, cli=cli)))
    return {key: summary(values) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    add_target_args(parser)
    args = parser.parse_args()
    targets = targets_from_args(args)
    try:
        for (cli, name), s in measure(targets, args.runs).items():
            print(f"run --rm  {name:10s} via {cli:24s} {fmt_seconds(s)}")
    finally:
        stop_all(targets)


if __name__ == "__main__":
    main()
