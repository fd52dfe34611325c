"""``docker build`` timings (issue 3): cold build, fully cached rebuild and
rebuild after changing one copied file, on a Dockerfile with ENV, WORKDIR,
COPY of 2,000 small files, RUN, EXPOSE and CMD; and the context transfer
rate of a 100 MB context.

Each client (the real docker CLI with DOCKER_BUILDKIT=0, i.e. the classic
``POST /build`` protocol, and dockerpy's ``bin/docker``) builds on each
target, and on Docker 20.10 also its own CLI with ``DOCKER_BUILDKIT=1``; clients and targets take turns in every round so a drift in the
machine's speed hits every pair alike.  A cold build uses ``--no-cache``
(the base image stays, as Docker's own figures assume).  Prints medians,
and the ratio to Docker 20.10 (legacy builder) when ``--oracle`` is given.

    .venv/bin/python bench/build.py [-n 5] [--oracle] [--host NAME=URL] [--mb 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (OUR_CLI, REAL_CLI, Target, add_target_args, fmt_seconds,  # noqa: E402
                     stop_all, summary, targets_from_args, timed)

DOCKERFILE = """\
FROM busybox
ENV APP_HOME=/app MODE=bench
WORKDIR /app
COPY files/ /app/files/
RUN ls /app/files | wc -l > /app/count
EXPOSE 8080
CMD ["sh", "-c", "cat /app/count"]
"""

BIG_DOCKERFILE = """\
FROM busybox
COPY big/ /big/
"""


def make_context(root: str, files: int = 2000) -> str:
    """The 2,000-small-file context; :return: the file a "one change" run edits."""
    with open(os.path.join(root, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    for i in range(files):
        d = os.path.join(root, "files", f"d{i // 100:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:04d}.txt"), "w") as f:
            f.write(f"file {i}\n" * 8)
    return os.path.join(root, "files", "d00", "f0000.txt")


def make_big_context(root: str, mb: int) -> None:
    """``mb`` MB of incompressible data in 10 MB files (random, so no layer
    of the stack gets it cheaper through compression or dedup)."""
    with open(os.path.join(root, "Dockerfile"), "w") as f:
        f.write(BIG_DOCKERFILE)
    os.makedirs(os.path.join(root, "big"))
    left = mb
    i = 0
    while left > 0:
        size = min(10, left)
        with open(os.path.join(root, "big", f"blob{i}"), "wb") as f:
            f.write(os.urandom(size * 1024 * 1024))
        left -= size
        i += 1


#: Docker 20.10's own CLI (Debian's docker.io) builds with BuildKit when
#: ``DOCKER_BUILDKIT=1``, without the buildx plugin the v28 CLI would need.
BUILDKIT_CLI = os.environ.get("DOCKER_CLI_20", "/usr/bin/docker")


def client_name(cli: str) -> str:
    return {REAL_CLI: "docker-cli", BUILDKIT_CLI: "buildkit"}.get(cli, "bin/docker")


def build(target: Target, cli: str, context: str, *extra: str) -> None:
    if cli == BUILDKIT_CLI:
        # The oracle dockerd has no bridge (oracle_docker.sh), and BuildKit's
        # RUN refuses to start without one; the legacy builder falls back.
        env = dict(target.env, DOCKER_BUILDKIT="1")
        r = subprocess.run([cli, "build", "-q", "--network", "none", "-t", "bench-build",
                            *extra, context],
                           env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"{target.name}: buildkit build exited {r.returncode}: "
                               f"{r.stderr.decode(errors='replace')}")
        return
    target.cli("build", "-q", "-t", "bench-build", *extra, context, cli=cli, timeout=600)


def measure(targets: list[Target], runs: int, context: str, changed: str,
            clients: tuple[str, ...]) -> dict[tuple[str, str, str], dict]:
    """:return: ``{(kind, client, target): summary}`` for kind in cold, cached, changed."""
    pairs = []
    for target in targets:
        with_buildkit = target.name == "docker20" and os.path.exists(BUILDKIT_CLI)
        for cli in clients + ((BUILDKIT_CLI,) if with_buildkit else ()):
            try:
                build(target, cli, context)  # warm up and prime the cache
            except RuntimeError as e:
                print(f"skipping {cli} on {target.name}: {e}", file=sys.stderr)
                continue
            pairs.append((cli, target))
    samples: dict[tuple[str, str, str], list[float]] = {}
    for n in range(runs):
        for cli, target in pairs:
            key = (cli, target.name)
            samples.setdefault(("cold",) + key, []).append(
                timed(lambda: build(target, cli, context, "--no-cache")))
            samples.setdefault(("cached",) + key, []).append(
                timed(lambda: build(target, cli, context)))
            with open(changed, "a") as f:
                f.write(f"change {n} {cli} {target.name}\n")
            samples.setdefault(("changed",) + key, []).append(
                timed(lambda: build(target, cli, context)))
    return {k: summary(v) for k, v in samples.items()}


def measure_transfer(targets: list[Target], runs: int, context: str, mb: int,
                     clients: tuple[str, ...]) -> dict[tuple[str, str], dict]:
    """Send the big context and COPY it (``--no-cache``): the CLI's tar, the
    upload, the daemon's extraction and one copy into a layer.  bin/docker's
    context sessions are off here (``DOCKERPY_CONTEXT_SESSION=0``): with them
    an unchanged context is not sent again, and there is no transfer to time."""
    os.environ["DOCKERPY_CONTEXT_SESSION"] = "0"
    out = {}
    for target in targets:
        for cli in clients:
            try:
                samples = [timed(lambda: build(target, cli, context, "--no-cache"))
                           for _ in range(runs)]
            except RuntimeError as e:
                print(f"skipping transfer {cli} on {target.name}: {e}", file=sys.stderr)
                continue
            s = summary(samples)
            s["mb_per_s"] = mb / s["median"]
            out[(cli, target.name)] = s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100, help="size of the big context (MB)")
    parser.add_argument("--transfer-runs", type=int, default=3)
    parser.add_argument("--no-our-cli", action="store_true", help="only the real docker CLI")
    add_target_args(parser)
    args = parser.parse_args()
    os.environ["DOCKER_BUILDKIT"] = "0"
    clients = (REAL_CLI,) if args.no_our_cli else (REAL_CLI, OUR_CLI)
    work = tempfile.mkdtemp(prefix="bench-build-")
    targets = targets_from_args(args)
    try:
        small = os.path.join(work, "small")
        big = os.path.join(work, "big")
        os.makedirs(small)
        os.makedirs(big)
        changed = make_context(small)
        make_big_context(big, args.mb)
        results = measure(targets, args.runs, small, changed, clients)
        transfer = measure_transfer(targets, args.transfer_runs, big, args.mb, clients)
        oracle = {k[0]: v["median"] for k, v in results.items()
                  if k[1] == REAL_CLI and k[2] == "docker20"}
        buildkit = {k[0]: v["median"] for k, v in results.items() if k[1] == BUILDKIT_CLI}
        for (kind, cli, name), s in sorted(results.items()):
            ratio = ""
            if name != "docker20" and kind in oracle:
                ratio = f"  = {s['median'] / oracle[kind]:.2f}x docker20 legacy"
            if name != "docker20" and kind in buildkit:
                ratio += f", {s['median'] / buildkit[kind]:.2f}x buildkit"
            print(f"{kind:8s} {name:10s} via {client_name(cli):10s} {fmt_seconds(s)}{ratio}")
        for (cli, name), s in sorted(transfer.items()):
            print(f"transfer {name:10s} via {client_name(cli):10s} {fmt_seconds(s)}  "
                  f"{s['mb_per_s']:.0f} MB/s for {args.mb} MB")
    finally:
        stop_all(targets)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
