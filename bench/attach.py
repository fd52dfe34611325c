"""Throughput of a container's stdout through attach and ``logs -f`` (MB/s),
and the round-trip latency of one line through an attached stdin/stdout.

* attach: ``docker start -a`` of a container that writes SIZE bytes to
  stdout (``yes | head -c SIZE``), the CLI's output to /dev/null; timed from
  the start to the CLI's exit.
* logs -f: a running container waits for a file, ``docker logs -f``
  follows it, ``docker exec touch`` lets it write SIZE bytes; timed from the
  exec's return to the follower's exit.
* round trip: a ``cat`` container with stdin open, attached over the raw API
  (101 hijack, no CLI); one line written, the same line read back; the
  median of N.

Each measurement is repeated (``-r``) round-robin over the targets; the
median is printed with min and max.

    .venv/bin/python bench/attach.py [--size-mb 256] [-r 3] [--oracle] [--host NAME=URL]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (REAL_CLI, Target, add_target_args, stop_all, summary,  # noqa: E402
                     targets_from_args)

WRITER = "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {size}"


def attach_seconds(target: Target, size: int, name: str) -> float:
    target.cli("create", "--name", name, "--network", "none", "busybox", "sh", "-c",
               WRITER.format(size=size))
    try:
        start = time.monotonic()
        subprocess.run([REAL_CLI, "start", "-a", name], env=target.env, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=3600)
        return time.monotonic() - start
    finally:
        target.cli("rm", "-f", name, check=False)


def logs_follow_seconds(target: Target, size: int, name: str) -> float:
    target.cli("run", "-d", "--name", name, "--network", "none", "busybox", "sh", "-c",
               "while [ ! -e /go ]; do usleep 10000; done; " + WRITER.format(size=size))
    try:
        follower = subprocess.Popen([REAL_CLI, "logs", "-f", name], env=target.env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            target.cli("exec", name, "touch", "/go")
            start = time.monotonic()
            follower.wait(3600)
            return time.monotonic() - start
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
    finally:
        target.cli("rm", "-f", name, check=False)


def _recv_until(sock: socket.socket, needle: bytes, got: bytes = b"") -> bytes:
    while needle not in got:
        if not select.select([sock], [], [], 30)[0]:
            raise RuntimeError(f"no {needle!r} within 30 s; got {got[-200:]!r}")
        data = sock.recv(65536)
        if not data:
            raise RuntimeError(f"stream ended before {needle!r}")
        got += data
    return got


def round_trip_seconds(target: Target, lines: int, name: str) -> list[float]:
    target.cli("run", "-d", "-i", "-t", "--name", name, "--network", "none", "busybox", "cat")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(target.sock)
        sock.sendall(f"POST /containers/{name}/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\n"
                     "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                     "Content-Length: 0\r\n\r\n".encode())
        got = _recv_until(sock, b"\r\n\r\n")
        rest = got.split(b"\r\n\r\n", 1)[1]
        samples = []
        for i in range(lines):
            line = f"line-{i:06d}".encode()
            start = time.monotonic()
            sock.sendall(line + b"\n")
            # The terminal echoes the line, then cat writes it: wait for both.
            rest = _recv_until(sock, line + b"\r\n" + line + b"\r\n", rest)
            samples.append(time.monotonic() - start)
            rest = rest.split(line + b"\r\n" + line + b"\r\n", 1)[1]
        return samples
    finally:
        sock.close()
        target.cli("rm", "-f", name, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="MB (10^6) written per run")
    parser.add_argument("-r", "--repeat", type=int, default=3)
    parser.add_argument("--lines", type=int, default=200, help="lines for the round trip")
    add_target_args(parser)
    args = parser.parse_args()
    size = args.size_mb * 1_000_000
    targets = targets_from_args(args)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for i in range(args.repeat):
            for target in targets:
                for kind, fn in (("attach", attach_seconds),
                                 ("logs -f", logs_follow_seconds)):
                    secs = fn(target, size, f"bench-attach-{i}")
                    results.setdefault((kind, target.name), []).append(size / 1e6 / secs)
        for target in targets:
            samples = round_trip_seconds(target, args.lines, "bench-rtt")
            results[("round trip", target.name)] = samples
        for (kind, name), values in results.items():
            s = summary(values)
            if kind == "round trip":
                print(f"{kind:10s} {name:10s} median {s['median'] * 1000:7.2f} ms  "
                      f"(p90 {statistics.quantiles(values, n=10)[-1] * 1000:.2f}, "
                      f"n={s['n']})")
            else:
                print(f"{kind:10s} {name:10s} median {s['median']:7.1f} MB/s  "
                      f"(min {s['min']:.1f}, max {s['max']:.1f}, n={s['n']}, "
                      f"{args.size_mb} MB each)")
    finally:
        stop_all(targets)


if __name__ == "__main__":
    main()
