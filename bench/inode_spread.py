"""What the ext4 top-directory flag saves when a store makes new trees of
small files next to trees it has just removed (see
``dockerpy.syscalls.spread_subdirectories``).

Each round removes a tree of ``--churn`` files (as a removed container or
layer does), then times the making of a new tree of ``--files`` small files
(as an unpacked layer or a COPY does), once in a home without the flag and
once in a home with it.  The two kinds take turns, so drift in the
machine's speed hits both alike.  Prints medians and the ratio.

    python3 bench/inode_spread.py [-n 7] [--files 2000] [--churn 4000] [--dir /var/tmp]

The directory must be on ext2/3/4 (the flag means nothing elsewhere); the
effect is largest on ext4 without a journal, where the inode allocator
checks every recently freed inode of a block group one by one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dockerpy.syscalls import spread_subdirectories  # noqa: E402


def make_tree(root: str, files: int, per_dir: int = 100) -> None:
    os.mkdir(root)
    for i in range(files):
        d = os.path.join(root, f"d{i // per_dir:03d}")
        if i % per_dir == 0:
            os.mkdir(d)
        fd = os.open(os.path.join(d, f"f{i:05d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 80)
        os.close(fd)


def round_in(home: str, n: int, files: int, churn: int) -> float:
    """Remove a churn tree made beside the new one, then time the new one."""
    old = os.path.join(home, f"old{n}")
    make_tree(old, churn)
    shutil.rmtree(old)
    t0 = time.monotonic()
    make_tree(os.path.join(home, f"new{n}"), files)
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=7)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--churn", type=int, default=4000)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="inode-spread-", dir=args.dir)
    try:
        plain, spread = os.path.join(work, "plain"), os.path.join(work, "spread")
        os.mkdir(plain)
        os.mkdir(spread)
        if not spread_subdirectories(spread):
            sys.exit(f"{args.dir}: the file system has no top-directory flag")
        times: dict[str, list[float]] = {"plain": [], "spread": []}
        for n in range(args.runs):
            for name, home in (("plain", plain), ("spread", spread)):
                times[name].append(round_in(home, n, args.files, args.churn))
        for name, samples in times.items():
            print(f"{name:7s} median {statistics.median(samples) * 1000:8.1f} ms  "
                  f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)})"
                  f"  for {args.files} files after removing {args.churn}")
        print(f"ratio spread/plain {statistics.median(times['spread']) / statistics.median(times['plain']):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
