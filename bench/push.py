"""``docker push`` of a multi-layer image to a registry on 127.0.0.1.

Uploads one image (``--layers`` gzip layers of ``--mb`` MB of incompressible
data in total, as ``bench/pull.py`` makes it) to a source registry, and has
every target pull it once.  Then, for each run and each target, it starts a
fresh, empty ``docker-registry`` on a new loopback port (so no daemon can
skip a layer or mount it from elsewhere: every layer is compressed and
uploaded), tags the image for it and times the real docker CLI's
``docker push``; the daemons take turns.  127.0.0.0/8 is an insecure
registry range for both daemons by default, so neither needs a flag.

    .venv/bin/python bench/push.py [--mb 50] [--layers 5] [-n 3] [--oracle] [--host NAME=URL]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Target, fmt_seconds, summary, timed  # noqa: E402
from pull import image_and_targets, parse_args  # noqa: E402

from dockerpy.test.test_registry_integration import LocalRegistry  # noqa: E402


def measure(targets: list[Target], source: str, runs: int) -> dict[str, dict]:
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        for target in targets:
            reg = LocalRegistry()
            try:
                reg.start()
                name = f"{reg.host}/bench/pushed:1"
                target.cli("tag", source, name)
                samples.setdefault(target.name, []).append(
                    timed(lambda: target.cli("push", name, timeout=600)))
                target.cli("rmi", name)
            finally:
                reg.destroy()
    return {k: summary(v) for k, v in samples.items()}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    with image_and_targets(args, "bench/src") as (_, source, size, targets):
        for target in targets:
            target.cli("pull", "-q", source, timeout=600)
        results = measure(targets, source, args.runs)
        print(f"push of {args.layers} layers, {args.mb} MB of data "
              f"({size / 1e6:.1f} MB gzip), to a fresh registry on 127.0.0.1 "
              f"({args.runs} runs)")
        for target_name, s in results.items():
            print(f"  {target_name:10s} {fmt_seconds(s)}  {args.mb / s['median']:.0f} MB/s")
        for target in targets:
            target.cli("rmi", "-f", source, check=False)

if __name__ == "__main__":
    main()
