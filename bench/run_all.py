"""Run every benchmark against dockerpy and Docker 20.10 and print ratios.

Starts a fresh dockerpy daemon of this checkout and (unless ``--no-oracle``)
a private Docker 20.10 (``bench/oracle_docker.sh``), measures both in the
same run, prints medians and the dockerpy/Docker ratios against the
targets, then removes every container and stops both daemons.  ``--host
NAME=URL`` adds daemons that are already running (they need a
``busybox:latest`` image); they are measured and listed, never stopped.

    .venv/bin/python bench/run_all.py [-n 30] [-c 50] [--no-oracle] [--host NAME=URL]

Needs root, runc, overlayfs, the docker CLI at /usr/local/bin/docker, and
for the oracle ``apt-get install --no-install-recommends docker.io``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memory  # noqa: E402
import ps  # noqa: E402
import run_latency  # noqa: E402
import start_many  # noqa: E402
from _common import (BENCH, OUR_CLI, REAL_CLI, Target, fmt_seconds, start_dockerpy,  # noqa: E402
                     start_oracle, stop_all, url_name)

ORACLE = "docker20"


def cli_startup(target: Target, runs: int) -> dict[str, float]:
    """Run ``cli_startup.sh`` against ``target``; :return: ``{label: median ms}``."""
    out = subprocess.run(["sh", os.path.join(BENCH, "cli_startup.sh"), str(runs)],
                         env=target.env, check=True, capture_output=True, text=True).stdout
    print(out, end="")
    medians = {}
    for line in out.splitlines():
        m = re.match(r"(.*?)\s+median\s+([\d.]+) ms", line)
        if m:
            medians[m.group(1).strip()] = float(m.group(2))
    return medians


def ratio_line(what: str, ours: float, theirs: float, target: float | None, unit: str,
               lower_is_better: bool = True) -> str:
    """:param target: the issue's ratio; ``None`` for a figure shown for
        information (no target of the issue applies to it)."""
    r = ours / theirs if theirs else float("nan")
    line = f"  {what:44s} {ours:9.1f} {unit:3s} vs {theirs:9.1f} {unit:3s}  ratio {r:5.2f}"
    if target is None:
        return line + "  (no target)"
    ok = r <= target if lower_is_better else r >= target
    return line + f"  target <= {target:<4}  {'MET' if ok else 'NOT MET'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30,
                        help="samples per latency figure (default 30)")
    parser.add_argument("-c", "--count", type=int, default=50,
                        help="containers for the start/ps/memory figures (default 50)")
    parser.add_argument("-j", "--jobs", type=int, default=4)
    parser.add_argument("-r", "--repeat", type=int, default=3,
                        help="rounds of the start-many figure (default 3)")
    parser.add_argument("--no-oracle", action="store_true")
    parser.add_argument("--host", action="append", default=[], metavar="NAME=URL")
    args = parser.parse_args()

    targets: list[Target] = []
    started: dict[str, list[str]] = {}
    try:
        targets.append(start_dockerpy())
        for spec in args.host:
            name, sep, url = spec.partition("=")
            targets.append(Target(name, url) if sep else Target(url_name(spec), spec))
        if not args.no_oracle:
            targets.append(start_oracle())
        names = [t.name for t in targets]
        print(f"targets: {', '.join(f'{t.name}={t.host}' for t in targets)}")

        print("\n== idle daemon memory")
        memory.settle(2)
        idle = {}
        for t in targets:
            idle[t.name] = m = memory.daemon_memory(t)
            print(f"  {t.name:10s} RSS {m['rss'] / 1024:6.1f} MB  PSS {m['pss'] / 1024:6.1f} MB  "
                  f"{ {k: round(v / 1024, 1) for k, v in m['procs'].items()} }")

        print("\n== client start-up (against dockerpy)")
        startup = cli_startup(targets[0], args.runs)

        print("\n== docker run --rm --network none busybox true")
        latency = run_latency.measure(targets, args.runs)
        for (cli, name), s in latency.items():
            print(f"  {name:10s} via {cli:24s} {fmt_seconds(s)}")

        print(f"\n== create+start {args.count} detached, {args.jobs} in flight; then rm -f")
        walls: dict[str, list[float]] = {n: [] for n in names}
        rms: dict[str, list[float]] = {n: [] for n in names}
        for rnd in range(args.repeat):
            for t in targets:
                wall, ids = start_many.start(t, args.count, args.jobs)
                started[t.name] = ids
                walls[t.name].append(wall)
                print(f"  round {rnd + 1} {t.name:10s} start {wall:6.2f} s", end="")
                if rnd < args.repeat - 1:
                    rm = start_many.remove(t, started.pop(t.name), args.jobs)
                    rms[t.name].append(rm)
                    print(f"   rm -f {rm:6.2f} s", end="")
                print()
        memory.settle(2)

        print(f"\n== with {args.count} running: docker ps / GET /containers/json")
        for t in targets:
            print(f"  {t.name}: {ps.running(t)} running")
        psr = ps.measure(targets, args.runs)
        for (kind, name), s in psr.items():
            what = "docker ps" if kind == "cli" else "GET /containers/json"
            print(f"  {what:22s} {name:10s} {fmt_seconds(s)}")

        print(f"\n== memory per running container ({args.count} running)")
        per = {}
        for t in targets:
            per[t.name] = s = memory.supervisors(t, started[t.name])
            busy = memory.daemon_memory(t)
            growth = (busy["rss"] - idle[t.name]["rss"]) / max(1, s["count"])
            print(f"  {t.name:10s} supervisor PSS {s['per'] / 1024:5.2f} MB each "
                  f"(RSS {s['rss'] / max(1, s['count']) / 1024:.2f} MB) {s['what'][:40]!r}; "
                  f"daemon RSS {busy['rss'] / 1024:.1f} MB (+{growth:.0f} kB/container)")

        for t in targets:
            rm = start_many.remove(t, started.pop(t.name), args.jobs)
            rms[t.name].append(rm)
        print("\n== rm -f of each batch (medians)")
        for n in names:
            print(f"  {n:10s} {statistics.median(rms[n]):6.2f} s")

        print("\n== summary: medians, dockerpy / Docker 20.10 in this run")
        if ORACLE in names:
            ours, theirs = "dockerpy", ORACLE
            lat_real = latency.get((REAL_CLI, ours)), latency.get((REAL_CLI, theirs))
            lat_our = latency.get((OUR_CLI, ours))
            print(ratio_line("run --rm (docker CLI v28)", lat_real[0]["median"] * 1000,
                             lat_real[1]["median"] * 1000, 0.25, "ms"))
            if lat_our:
                # The target is through the same (real) CLI; this
                # row adds bin/docker's Python start-up (~55 ms) to ours.
                print(ratio_line("run --rm (bin/docker) vs docker20 via CLI",
                                 lat_our["median"] * 1000, lat_real[1]["median"] * 1000,
                                 None, "ms"))
            print(ratio_line(f"start {args.count} detached x{args.jobs} (wall)",
                             statistics.median(walls[ours]), statistics.median(walls[theirs]),
                             0.2, "s"))
            print(ratio_line("idle RSS (daemon [+containerd])", idle[ours]["rss"] / 1024,
                             idle[theirs]["rss"] / 1024, 0.5, "MB"))
            print(f"  {'PSS per running container (supervisor)':44s} "
                  f"{per[ours]['per'] / 1024:9.2f} MB vs {per[theirs]['per'] / 1024:9.2f} MB"
                  f"  target <= 1.3 MB  {'MET' if per[ours]['per'] / 1024 <= 1.3 else 'NOT MET'}")
            print(ratio_line(f"docker ps with {args.count} running",
                             psr[("cli", ours)]["median"] * 1000,
                             psr[("cli", theirs)]["median"] * 1000, 1.0, "ms"))
            print(ratio_line(f"GET /containers/json with {args.count} running",
                             psr[("api", ours)]["median"] * 1000,
                             psr[("api", theirs)]["median"] * 1000, 1.0, "ms"))
            print(f"  {'rm -f of a batch':44s} {statistics.median(rms[ours]):9.2f} s   vs "
                  f"{statistics.median(rms[theirs]):9.2f} s   ratio "
                  f"{statistics.median(rms[ours]) / statistics.median(rms[theirs]):5.2f}")
        for label, ms in startup.items():
            print(f"  {'start-up: ' + label:44s} {ms:9.1f} ms")
    finally:
        for t in targets:
            if t.name in started:
                try:
                    start_many.remove(t, started[t.name])
                except Exception as e:  # still stop the daemons
                    print(f"cleanup of {t.name}: {e}", file=sys.stderr)
        stop_all(targets)


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"\n(total {time.monotonic() - t0:.0f} s)")
