"""Where the time of ``docker run --rm --network none busybox true`` goes,
seen from the client: every API round trip, timed by a logging proxy.

A small unix-socket proxy sits between the CLI and the daemon and records,
per connection, when each request's first bytes were sent, when its
response's status line came back and when the connection closed.  The CLI
is run N times through it; for each request (ids replaced by ``{id}``) the
median start offset (from the CLI's exec) and median duration are printed,
plus the median time from the CLI's exec to its first request (client
start-up) and from the last response to its exit.

    .venv/bin/python bench/trace_run.py [-n 20] [--cli PATH] [--host URL]

With no ``--host`` it starts a fresh dockerpy daemon.  Request bodies and
the hijacked attach stream are relayed untouched.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import REAL_CLI, Target, start_dockerpy  # noqa: E402

REQUEST = re.compile(rb"^(GET|POST|DELETE|PUT|HEAD) (\S+) HTTP/1\.[01]\r\n")
STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")
ID = re.compile(r"/[0-9a-f]{64}")
VERSION = re.compile(r"^/v1\.\d+")


class Proxy:
    """Relay ``listen`` to ``upstream``, logging request and response times."""

    def __init__(self, listen: str, upstream: str) -> None:
        self.upstream = upstream
        self.events: list[tuple[float, int, str, str]] = []  # (time, conn, kind, text)
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(listen)
        self.server.listen(16)
        self.conns = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def log(self, conn: int, kind: str, text: str) -> None:
        with self.lock:
            self.events.append((time.monotonic(), conn, kind, text))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.conns += 1
            n = self.conns
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.upstream)
            threading.Thread(target=self._pump, args=(n, client, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(n, up, client, False), daemon=True).start()

    def _pump(self, n: int, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                m = (REQUEST if outbound else STATUS).match(data)
                if m:
                    if outbound:
                        self.log(n, "req", f"{m.group(1).decode()} {m.group(2).decode()}")
                    else:
                        self.log(n, "resp", m.group(1).decode())
                if not outbound:
                    self.log(n, "data", "")
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not outbound:
                self.log(n, "close", "")
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


def normalise(path: str) -> str:
    path = VERSION.sub("", path)
    path = ID.sub("/{id}", path)
    return path


def one_run(proxy: Proxy, cli: str, env: dict) -> tuple[float, float, list]:
    with proxy.lock:
        proxy.events.clear()
    t0 = time.monotonic()
    subprocess.run([cli, "run", "--rm", "--network", "none", "busybox", "true"], env=env,
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    t1 = time.monotonic()
    time.sleep(0.05)  # let the pumps log the last closes
    with proxy.lock:
        events = list(proxy.events)
    return t0, t1, events


def rows(t0: float, t1: float, events: list) -> tuple[list[tuple[str, float, float, float]], float, float]:
    """:return: ([(request, start offset, to status line, to its last byte)],
        first request offset, time from the last byte received to the CLI's exit).

    A request's last byte is the last data the daemon sent on that
    connection before the client's next request on it (for ``wait`` and a
    hijacked ``attach``, the end of the body or stream, not the headers).
    """
    per_conn: dict[int, list] = {}
    for t, conn, kind, text in events:
        items = per_conn.setdefault(conn, [])
        if kind == "req":
            items.append([text, t, None, None])
        elif items and kind == "resp" and items[-1][2] is None:
            items[-1][2] = t
        elif items and kind == "data":
            items[-1][3] = t
    out = []
    first = None
    last = t0
    for items in per_conn.values():
        for text, start, resp, end in items:
            method, path = text.split(" ", 1)
            out.append((f"{method} {normalise(path)}", start - t0,
                        (resp or t1) - start, (end or t1) - start))
            first = start if first is None else min(first, start)
            last = max(last, end or start)
    out.sort(key=lambda r: r[1])
    return out, (first or t0) - t0, t1 - last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("--cli", default=REAL_CLI)
    parser.add_argument("--host", help="unix:// URL of a running daemon (default: start dockerpy)")
    args = parser.parse_args()
    target = Target("given", args.host) if args.host else start_dockerpy()
    tmp = tempfile.mkdtemp(prefix="dpb-trace-")
    listen = os.path.join(tmp, "proxy.sock")
    proxy = Proxy(listen, target.sock)
    env = dict(target.env, DOCKER_HOST="unix://" + listen)
    try:
        one_run(proxy, args.cli, env)  # warm-up
        totals, firsts, tails = [], [], []
        per: dict[str, list[tuple[float, float, float]]] = {}
        for _ in range(args.runs):
            t0, t1, events = one_run(proxy, args.cli, env)
            table, first, tail = rows(t0, t1, events)
            totals.append(t1 - t0)
            firsts.append(first)
            tails.append(tail)
            seen: dict[str, int] = {}
            for name, start, head, full in table:
                seen[name] = seen.get(name, 0) + 1
                key = name if seen[name] == 1 else f"{name} #{seen[name]}"
                per.setdefault(key, []).append((start, head, full))
        med = statistics.median
        print(f"{args.cli} run --rm --network none busybox true, {args.runs} runs, medians (ms)")
        print(f"  total (exec to exit)            {med(totals) * 1000:7.1f}")
        print(f"  exec to first request           {med(firsts) * 1000:7.1f}")
        print(f"  {'request':46s} {'starts at':>9s} {'headers':>8s} {'done':>8s}")
        for key, values in sorted(per.items(), key=lambda kv: med(v[0] for v in kv[1])):
            print(f"  {key:46s} {med(v[0] for v in values) * 1000:9.1f} "
                  f"{med(v[1] for v in values) * 1000:8.1f} {med(v[2] for v in values) * 1000:8.1f}"
                  f"{'' if len(values) == args.runs else f'  (in {len(values)} runs)'}")
        print(f"  last response to exit           {med(tails) * 1000:7.1f}")
    finally:
        proxy.close()
        if target.stop is not None:
            target.stop()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
