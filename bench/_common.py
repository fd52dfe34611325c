"""Shared helpers for dockerpy's benchmarks (not a test module).

A *target* is a daemon under measurement: a name, a ``DOCKER_HOST`` and,
when the benchmark started it, a way to stop it.  Every benchmark script
accepts ``--host NAME=unix:///path`` (repeatable) to measure daemons it did
not start; with no ``--host`` it starts a fresh dockerpy daemon of this
checkout (``dockerpy.test.daemon_fixture.Daemon``) and, with ``--oracle``,
a private Docker 20.10 through ``bench/oracle_docker.sh``.

Figures are wall-clock seconds from :func:`time.monotonic`, summarised by
their median; min and max are printed to show the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from dockerpy.test.daemon_fixture import UnixHTTPConnection  # noqa: E402

REAL_CLI = os.environ.get("DOCKER_CLI", "/usr/local/bin/docker")
# The installed script (pip rewrites its shebang to the venv's interpreter),
# as a user runs it; bin/docker from the checkout goes through
# "/usr/bin/env python3", which on this machine is a pyenv shim costing
# ~150 ms per call.
_INSTALLED_CLI = os.path.join(REPO, ".venv", "bin", "docker")
OUR_CLI = os.environ.get("DOCKERPY_CLI") or (
    _INSTALLED_CLI if os.path.exists(_INSTALLED_CLI) else os.path.join(REPO, "bin", "docker"))
ORACLE_SCRIPT = os.path.join(BENCH, "oracle_docker.sh")
ORACLE_DIR = os.environ.get("DOCKERPY_BENCH_ORACLE_DIR", "/tmp/dref")


@dataclass
class Target:
    """A daemon to measure.

    :ivar name: label in reports (``dockerpy``, ``docker20``, or ``--host``'s).
    :ivar host: its ``DOCKER_HOST``.
    :ivar stop: how to stop it, if this run started it.
    """

    name: str
    host: str
    stop: Optional[Callable[[], object]] = None
    config_dir: str = field(default="")

    @property
    def sock(self) -> str:
        if not self.host.startswith("unix://"):
            raise ValueError(f"{self.host}: only unix:// hosts are supported")
        return self.host[len("unix://"):]

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        if self.config_dir:
            env["DOCKER_CONFIG"] = self.config_dir
        return env

    def cli(self, *args: str, cli: str = REAL_CLI, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([cli, *args], env=self.env, capture_output=True,
                                stdin=subprocess.DEVNULL, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{self.name}: {cli} {' '.join(args)} exited "
                               f"{result.returncode}: {result.stderr.decode(errors='replace')}")
        return result

    def api(self, method: str, path: str, body: object = None,
            timeout: float = 60) -> tuple[int, bytes]:
        conn = UnixHTTPConnection(self.sock, timeout)
        try:
            headers = {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


def start_dockerpy(extra_args: Optional[list[str]] = None) -> Target:
    """Start a fresh dockerpy daemon with a busybox image; ``stop`` destroys it."""
    from dockerpy.test.daemon_fixture import Daemon

    daemon = Daemon(extra_args=extra_args)
    daemon.start()
    daemon.import_busybox()

    def stop() -> None:
        leaks = daemon.destroy()
        if leaks:
            print(f"warning: the dockerpy daemon left {leaks}", file=sys.stderr)

    target = Target("dockerpy", daemon.host, stop,
                    os.path.join(daemon.tmp, "client-config"))
    target.daemon = daemon  # type: ignore[attr-defined]
    return target


def start_oracle() -> Target:
    """Start Docker 20.10 through ``oracle_docker.sh``; ``stop`` stops it."""
    out = subprocess.run(["sh", ORACLE_SCRIPT, "start", ORACLE_DIR], check=True,
                         capture_output=True, text=True).stdout.split()
    host = out[-1]
    config = os.path.join(ORACLE_DIR, "client-config")

    def stop() -> None:
        subprocess.run(["sh", ORACLE_SCRIPT, "stop", ORACLE_DIR], check=False)

    return Target("docker20", host, stop, config)


def add_target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", action="append", default=[], metavar="NAME=URL",
                        help="measure this already running daemon (repeatable); "
                             "it needs a busybox:latest image")
    parser.add_argument("--oracle", action="store_true",
                        help="also start Docker 20.10 (bench/oracle_docker.sh)")
    parser.add_argument("--no-dockerpy", action="store_true",
                        help="do not start a dockerpy daemon of this checkout")


def targets_from_args(args: argparse.Namespace) -> list[Target]:
    targets: list[Target] = []
    try:
        if not args.no_dockerpy and not args.host:
            targets.append(start_dockerpy())
        for spec in args.host:
            name, sep, url = spec.partition("=")
            if not sep:
                name, url = url_name(spec), spec
            targets.append(Target(name, url))
        if args.oracle:
            targets.append(start_oracle())
    except BaseException:
        stop_all(targets)
        raise
    return targets


def url_name(url: str) -> str:
    return os.path.basename(os.path.dirname(url)) or url


def stop_all(targets: list[Target]) -> None:
    for target in reversed(targets):
        if target.stop is not None:
            target.stop()
            target.stop = None


# -- numbers --------------------------------------------------------------------

def timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def summary(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples),
            "max": max(samples), "n": len(samples)}


def fmt_seconds(s: dict) -> str:
    return (f"median {s['median'] * 1000:8.1f} ms  (min {s['min'] * 1000:.1f}, "
            f"max {s['max'] * 1000:.1f}, n={s['n']})")


# -- processes and memory -------------------------------------------------------

def socket_owner(path: str) -> int:
    """:return: pid of the process listening on the unix socket ``path``."""
    inodes = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path:
                inodes.add(parts[6])
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in sorted((int(p) for p in os.listdir("/proc") if p.isdigit())):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return pid
        except OSError:
            continue
    raise LookupError(f"no process listens on {path}")


def children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(p))
    return out


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def rollup(pid: int) -> dict:
    """``/proc/PID/smaps_rollup`` in kB: Rss, Pss, ..."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def daemon_pids(target: Target) -> dict[str, int]:
    """The daemon's own processes: the socket's owner and its containerd, if any."""
    pid = socket_owner(target.sock)
    pids = {os.path.basename(cmdline(pid).split()[0]): pid}
    for child in children(pid):
        name = os.path.basename(cmdline(child).split()[0]) if cmdline(child) else ""
        if name == "containerd":
            pids[name] = child
    return pids
