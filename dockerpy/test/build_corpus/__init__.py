# -*- test-case-name: dockerpy.test.test_build_conformance -*-
"""The ``docker build`` conformance corpus: cases and how a result is read.

Each directory beside this module is a case: a ``Dockerfile`` and its
context files, ``case.json`` (inputs: ``buildargs``, ``paths`` to list from
the exported root file system, ``also_targets`` to build with
``--target``, and the context entries git cannot keep: ``symlinks``,
``empty_dirs``, ``executables``) and ``expected.json``, what Docker 20.10's
legacy builder produced for it.  The same code reads a result from Docker
(to write ``expected.json``, once) and from dockerpy (in the test), through
the docker CLI alone, so both sides are observed the same way.

Regenerate the expectations against a Docker daemon (legacy builder)::

    DOCKER_HOST=$(bench/oracle_docker.sh start DIR) \\
        .venv/bin/python -m dockerpy.test.build_corpus
    bench/oracle_docker.sh stop DIR
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
INPUT_FILES = {"case.json", "expected.json"}
CONFIG_KEYS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels", "ExposedPorts",
               "Volumes", "StopSignal", "Healthcheck", "Shell", "OnBuild")

Docker = Callable[..., subprocess.CompletedProcess]


def cases() -> list[str]:
    """:return: the names of the corpus cases, sorted."""
    return sorted(d for d in os.listdir(HERE)
                  if os.path.isfile(os.path.join(HERE, d, "Dockerfile")))


def case_input(case: str) -> dict:
    with open(os.path.join(HERE, case, "case.json")) as f:
        return json.load(f)


def expected(case: str) -> dict:
    with open(os.path.join(HERE, case, "expected.json")) as f:
        return json.load(f)


def prepare_context(case: str) -> str:
    """Copy a case's context to a new temporary directory with fixed modes
    (0644 files, 0755 directories and executables), whatever the checkout's
    umask; add the symlinks and empty directories git does not keep.

    :return: the directory; the caller removes it.
    """
    spec = case_input(case)
    src = os.path.join(HERE, case)
    root = tempfile.mkdtemp(prefix=f"corpus-{case}-")
    try:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            rel = os.path.relpath(dirpath, src)
            out = os.path.normpath(os.path.join(root, rel))
            os.makedirs(out, exist_ok=True)
            os.chmod(out, 0o755)
            for name in filenames:
                if rel == "." and name in INPUT_FILES:
                    continue
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    continue
                shutil.copyfile(path, os.path.join(out, name))
                relname = os.path.normpath(os.path.join(rel, name))
                os.chmod(os.path.join(out, name),
                         0o755 if relname in spec.get("executables", []) else 0o644)
        for d in spec.get("empty_dirs", []):
            os.makedirs(os.path.join(root, d), mode=0o755, exist_ok=True)
            os.chmod(os.path.join(root, d), 0o755)
        for link, target in spec.get("symlinks", {}).items():
            os.symlink(target, os.path.join(root, link))
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def _check(r: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if r.returncode != 0:
        raise AssertionError(f"{what} exited {r.returncode}: "
                             f"{r.stdout.decode(errors='replace')[-3000:]}\n"
                             f"{r.stderr.decode(errors='replace')[-3000:]}")
    return r


def saved_history(docker: Docker, ref: str) -> list[dict]:
    """The image's history as stored in its config (``docker save``), with
    ``created_by``, ``empty_layer`` and ``comment``; no timestamps."""
    r = _check(docker("save", ref), f"docker save {ref}")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        config = json.load(t.extractfile(manifest[0]["Config"]))
    return [{"created_by": h.get("created_by", ""), "empty_layer": bool(h.get("empty_layer")),
             "comment": h.get("comment", "")} for h in config.get("history", [])]


def _listing(docker: Docker, ref: str, paths: list[str]) -> list[list]:
    if not paths:
        return []
    r = _check(docker("create", ref, "true"), f"docker create {ref}")
    cid = r.stdout.decode().strip()
    try:
        r = _check(docker("export", cid), f"docker export {cid}")
    finally:
        docker("rm", "-v", cid)
    prefixes = [p.strip("/") for p in paths]
    out = []
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        for m in t:
            name = m.name.strip("/")
            if name.startswith("./"):
                name = name[2:]
            if not any(name == p or name.startswith(p + "/") for p in prefixes):
                continue
            kind = ("dir" if m.isdir() else "symlink" if m.issym() else
                    "hardlink" if m.islnk() else "file" if m.isfile() else "other")
            out.append(["/" + name, kind, oct(stat.S_IMODE(m.mode)), m.uid, m.gid,
                        m.size if m.isfile() else 0, m.linkname if m.issym() else ""])
    return sorted(out)


def observe(docker: Docker, ref: str, base_history: int, paths: list[str]) -> dict:
    """What a build produced, minus ids and timestamps."""
    r = _check(docker("image", "inspect", ref), f"docker image inspect {ref}")
    config = json.loads(r.stdout)[0]["Config"] or {}
    history = saved_history(docker, ref)[base_history:]
    return {"config": {k: config.get(k) for k in CONFIG_KEYS},
            "history": history,
            "files": _listing(docker, ref, paths)}


def _steps(output: bytes) -> list[str]:
    return [line for line in output.decode(errors="replace").splitlines()
            if line.startswith("Step ") or line.startswith("[Warning]")]


def run_case(docker: Docker, case: str) -> dict:
    """Build a case (and its extra targets) with ``docker`` and observe it."""
    spec = case_input(case)
    base_history = len(saved_history(docker, "busybox:latest"))
    root = prepare_context(case)
    try:
        args = []
        for k, v in sorted(spec.get("buildargs", {}).items()):
            args += ["--build-arg", f"{k}={v}"]
        tag = f"corpus-{case.replace('_', '-')}"
        result: dict = {}
        for target in [None] + spec.get("also_targets", []):
            ref = tag + (f":{target}" if target else ":latest")
            extra = ["--target", target] if target else []
            r = _check(docker("build", "-t", ref, *extra, *args, root), f"docker build {case}")
            got = observe(docker, ref, base_history,
                          spec.get("paths", []) if not target else [])
            got["steps"] = _steps(r.stdout)
            if target:
                result.setdefault("targets", {})[target] = got
            else:
                result.update(got)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cli(host: str, config_dir: str, executable: str = "/usr/local/bin/docker") -> Docker:
    """:return: a function running the docker CLI (legacy builder) against ``host``."""
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0", DOCKER_CONFIG=config_dir)
    env.pop("DOCKER_CONTEXT", None)

    def docker(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([executable, *args], capture_output=True, env=env, timeout=300)

    return docker


def main(argv: list[str]) -> int:
    host = os.environ.get("DOCKER_HOST")
    if not host:
        print("set DOCKER_HOST to the reference Docker daemon", file=sys.stderr)
        return 2
    wanted = argv or cases()
    config_dir = tempfile.mkdtemp(prefix="corpus-cli-")
    try:
        docker = cli(host, config_dir)
        version = _check(docker("version", "--format", "{{.Server.Version}}"), "version")
        for case in wanted:
            result = run_case(docker, case)
            result["generated_with"] = "Docker " + version.stdout.decode().strip() + \
                " (legacy builder, DOCKER_BUILDKIT=0)"
            with open(os.path.join(HERE, case, "expected.json"), "w") as f:
                json.dump(result, f, indent=1, sort_keys=True)
                f.write("\n")
            print(f"{case}: ok", file=sys.stderr)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
    return 0
