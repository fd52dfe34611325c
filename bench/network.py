"""Networking: what a network costs at start, and published-port throughput.

1. Start latency of ``docker run --rm [--network MODE] busybox true`` with
   ``--network none``, the default bridge and a user-defined network, on a
   fresh dockerpy daemon and (``--oracle``) on Docker 20.10 with its bridge,
   NAT and iptables rules, which runs in a network namespace of its own
   (``ORACLE_NETWORK=bridge bench/oracle_docker.sh``) so the host's firewall
   stays untouched.  Runs take turns, round-robin.
2. Throughput of one TCP stream (``--mb`` MB from ``dd`` in the container)
   read through a published port on 127.0.0.1 versus from the container's
   own address; for Docker, the client runs inside its namespace, where
   127.0.0.1 goes through docker-proxy.

    .venv/bin/python bench/network.py [-n 20] [--mb 200] [--oracle]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (ORACLE_DIR, REAL_CLI, Target, fmt_seconds, start_dockerpy,  # noqa: E402
                     start_oracle, summary, timed)

READER = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
for _ in range(200):
    try:
        s = socket.create_connection((host, port), timeout=10)
        break
    except OSError:
        time.sleep(0.05)
t0 = time.monotonic()
n = 0
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    n += len(b)
print(n, time.monotonic() - t0)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latency(targets: list[Target], runs: int) -> dict[tuple[str, str], dict]:
    modes = {"none": ["--network", "none"], "bridge": [], "user": ["--network", "benchnet"]}
    plan = []
    for t in targets:
        t.cli("network", "create", "benchnet")
        for mode, args in modes.items():
            t.cli("run", "--rm", *args, "busybox", "true")  # warm up
            plan.append((t, mode, args))
    samples: dict[tuple[str, str], list[float]] = {(t.name, m): [] for t, m, _ in plan}
    for _ in range(runs):
        for t, mode, args in plan:
            samples[(t.name, mode)].append(
                timed(lambda: t.cli("run", "--rm", *args, "busybox", "true")))
    for t in targets:
        t.cli("network", "rm", "benchnet")
    return {k: summary(v) for k, v in samples.items()}


def _read(reader_prefix: list[str], host: str, port: int) -> tuple[int, float]:
    out = subprocess.run(reader_prefix + [sys.executable, "-c", READER, host, str(port)],
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1])


def throughput(t: Target, mb: int, reps: int, reader_prefix: list[str]) -> dict[str, dict]:
    port = _free_port()
    count = mb * 16  # 64 KiB blocks
    t.cli("run", "-d", "--name", "bench-stream", "-p", f"127.0.0.1:{port}:8080", "busybox",
          "nc", "-ll", "-p", "8080", "-e", "dd", "if=/dev/zero", "bs=64k", f"count={count}")
    try:
        info = json.loads(t.cli("inspect", "bench-stream").stdout)[0]
        ip = info["NetworkSettings"]["IPAddress"]
        rates: dict[str, list[float]] = {"published 127.0.0.1": [], "container address": []}
        for _ in range(reps):
            for label, (host, p) in (("published 127.0.0.1", ("127.0.0.1", port)),
                                     ("container address", (ip, 8080))):
                n, secs = _read(reader_prefix, host, p)
                if n != count * 65536:
                    raise RuntimeError(f"{label}: read {n} bytes")
                rates[label].append(n / secs / 1e6)
        return {k: summary(v) for k, v in rates.items()}
    finally:
        t.cli("rm", "-f", "bench-stream", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--oracle", action="store_true",
                        help="also Docker 20.10 with its bridge, in its own network namespace")
    args = parser.parse_args()
    targets = [start_dockerpy()]
    try:
        if args.oracle:
            os.environ["ORACLE_NETWORK"] = "bridge"
            targets.append(start_oracle())
        lat = latency(targets, args.runs)
        for (name, mode), s in lat.items():
            print(f"run --rm  {name:9s} {mode:7s} {fmt_seconds(s)}")
        for t in targets:
            none = lat[(t.name, "none")]["median"]
            print(f"{t.name}: bridge adds {1000 * (lat[(t.name, 'bridge')]['median'] - none):.1f} ms,"
                  f" a user network {1000 * (lat[(t.name, 'user')]['median'] - none):.1f} ms")
        if args.oracle:
            ratio = lat[("dockerpy", "bridge")]["median"] / lat[("docker20", "bridge")]["median"]
            print(f"bridge-mode run --rm: dockerpy/Docker = {ratio:.2f} (target <= 0.25)")
        for t in targets:
            prefix = []
            if t.name == "docker20":
                with open(os.path.join(ORACLE_DIR, "netns")) as f:
                    prefix = ["ip", "netns", "exec", f.read().strip()]
            rates = throughput(t, args.mb, args.reps, prefix)
            for label, s in rates.items():
                print(f"stream {t.name:9s} {label:20s} median {s['median']:.0f} MB/s "
                      f"(min {s['min']:.0f}, max {s['max']:.0f})")
            ratio = rates["published 127.0.0.1"]["median"] / rates["container address"]["median"]
            print(f"{t.name}: published/direct = {ratio:.2f} (target >= 0.9)")
    finally:
        for t in targets:
            if t.stop is not None:
                t.stop()


if __name__ == "__main__":
    main()
