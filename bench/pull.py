"""``docker pull`` of a multi-layer image from a registry on 127.0.0.1.

Starts Debian's ``docker-registry`` on a free loopback port (temporary
storage, removed at the end), uploads one image straight through the
distribution API (``--layers`` gzip layers of ``--mb`` MB of incompressible
data in total, so both daemons pull the very same blobs), then times the
real docker CLI's ``docker pull`` against each target, removing the image
between runs.  127.0.0.0/8 is an insecure registry range for both daemons
by default, so neither needs a flag.

    .venv/bin/python bench/pull.py [--mb 50] [--layers 5] [-n 3] [--oracle] [--host NAME=URL]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Target, add_target_args, fmt_seconds, stop_all, summary,  # noqa: E402
                     targets_from_args, timed)

from dockerpy.registry import manifest as mf  # noqa: E402
from dockerpy.test.test_registry import layer_tar  # noqa: E402
from dockerpy.test.test_registry_integration import LocalRegistry  # noqa: E402


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(reg: LocalRegistry, repo: str, data: bytes) -> str:
    status, headers, _ = reg.request("POST", f"/v2/{repo}/blobs/uploads/")
    if status != 202:
        raise RuntimeError(f"upload start answered {status}")
    location = headers["Location"]
    path = location.split(f"127.0.0.1:{reg.port}", 1)[-1]
    digest = sha(data)
    sep = "&" if "?" in path else "?"
    status, _, body = reg.request("PUT", f"{path}{sep}digest={digest}", data,
                                  {"Content-Type": "application/octet-stream"})
    if status != 201:
        raise RuntimeError(f"upload answered {status}: {body[:200]!r}")
    return digest


def make_image(reg: LocalRegistry, repo: str, tag: str, mb: int, layers: int) -> int:
    """Upload the image; :return: the total compressed size."""
    rng = random.Random(1)
    per_layer = mb * 1000 * 1000 // layers
    diff_ids, descs = [], []
    for i in range(layers):
        raw = layer_tar({f"layer{i}/data": rng.randbytes(per_layer)})
        blob = gzip.compress(raw, compresslevel=1, mtime=0)
        diff_ids.append(sha(raw))
        descs.append(mf.Descriptor(mf.DOCKER_LAYER_GZIP, upload(reg, repo, blob), len(blob)))
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i}"} for i in range(layers)]}).encode()
    config_desc = mf.Descriptor(mf.DOCKER_CONFIG, upload(reg, repo, config), len(config))
    manifest = mf.schema2_manifest(config_desc, descs)
    status, _, body = reg.request("PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                                  {"Content-Type": mf.DOCKER_MANIFEST})
    if status != 201:
        raise RuntimeError(f"manifest put answered {status}: {body[:200]!r}")
    return sum(d.size for d in descs)


def measure(targets: list[Target], name: str, runs: int) -> dict[str, dict]:
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        for target in targets:
            target.cli("rmi", "-f", name, check=False)
            samples.setdefault(target.name, []).append(
                timed(lambda: target.cli("pull", "-q", name, timeout=600)))
            target.cli("rmi", "-f", name, check=False)
    return {k: summary(v) for k, v in samples.items()}


def parse_args(description: str) -> argparse.Namespace:
    """The options of the registry benchmarks (pull.py, push.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("-n", "--runs", type=int, default=3)
    add_target_args(parser)
    return parser.parse_args()


@contextlib.contextmanager
def image_and_targets(args: argparse.Namespace, repo: str):
    """A registry on 127.0.0.1 holding ``repo:1`` (``args.layers`` layers of
    ``args.mb`` MB), and the targets; :return: (registry, reference,
    compressed size, targets).  Stops the targets and the registry after."""
    reg = LocalRegistry()
    targets: list[Target] = []
    try:
        reg.start()
        size = make_image(reg, repo, "1", args.mb, args.layers)
        targets = targets_from_args(args)
        yield reg, f"{reg.host}/{repo}:1", size, targets
    finally:
        stop_all(targets)
        reg.destroy()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    with image_and_targets(args, "bench/big") as (reg, name, size, targets):
        results = measure(targets, name, args.runs)
        print(f"pull of {args.layers} layers, {size / 1e6:.1f} MB compressed, "
              f"from {reg.host} ({args.runs} runs)")
        for target_name, s in results.items():
            print(f"  {target_name:10s} {fmt_seconds(s)}  {size / 1e6 / s['median']:.0f} MB/s")

if __name__ == "__main__":
    main()
