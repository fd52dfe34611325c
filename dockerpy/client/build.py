# -*- test-case-name: dockerpy.test.test_integration_build -*-
"""``docker build`` (classic builder protocol): send the context
(`dockerpy.client.buildcontext`: the whole tar, or to a dockerpy daemon
only what changed since the last build of the directory) to ``POST /build``
and print the progress stream as the docker CLI does with
``DOCKER_BUILDKIT=0``.  Standard library only.
"""

from __future__ import annotations

import io
import json
import os

from dockerpy.client import buildcontext
from dockerpy.client.command import Cli, Parser, StatusError
from dockerpy.client.format import human_size
from dockerpy.client.transport import APIError

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any

#: The daemon's answer when a context session cannot be used (see
#: dockerpy.build.sessions.EXPIRED): the client sends the whole context.
_SESSION_EXPIRED = "build context session expired"


def _spool_file():
    """An anonymous temporary file for the body (``tempfile`` costs ~5 ms
    of start-up; ``O_TMPFILE`` makes the same thing)."""
    try:
        fd = os.open(os.environ.get("TMPDIR") or "/tmp", os.O_RDWR | os.O_TMPFILE, 0o600)
    except (OSError, AttributeError):
        import tempfile

        return tempfile.TemporaryFile()
    return os.fdopen(fd, "w+b")


def _begin_session(cli: Cli, context: str, walked: "buildcontext.Walked", spool) -> str:
    """Offer the daemon the context's manifest and write to ``spool`` what
    it lacks; :return: the session token, or ``""`` after writing the whole
    context (a daemon without sessions, ``DOCKERPY_CONTEXT_SESSION=0``, or a
    context a manifest cannot describe)."""
    entries = None
    if cli.environ.get("DOCKERPY_CONTEXT_SESSION", "1") != "0":
        entries = buildcontext.manifest(walked)
    if entries is not None:
        try:
            answer = cli.client.request(
                "POST", "/dockerpy/build/context",
                body={"Key": buildcontext.session_key(context), "Entries": entries}).json()
        except APIError as e:
            if e.status not in (400, 404, 405):
                raise
        else:
            buildcontext.write_tar(walked, spool, set(answer.get("Need") or ()))
            return str(answer["Token"])
    buildcontext.write_tar(walked, spool)
    return ""


def _key_values(items: list[str], environ, allow_env: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k, eq, v = item.partition("=")
        if eq:
            out[k] = v
        elif allow_env:
            out[k] = environ.get(k)
        else:
            out[k] = ""
    return out


def build(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile",
               min_args=1, max_args=1)
    p.add("-t", "--tag", kind="list", help='Name and optionally a tag in the "name:tag" format')
    p.add("-f", "--file", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
    p.add("--build-arg", kind="list", help="Set build-time variables")
    p.add("--target", help="Set the target build stage to build.")
    p.add("--no-cache", kind="bool", help="Do not use cache when building the image")
    p.add("-q", "--quiet", kind="bool", help="Suppress the build output and print image ID "
                                             "on success")
    p.add("--label", kind="list", help="Set metadata for an image")
    p.add("--network", help="Set the networking mode for the RUN instructions during build")
    p.add("--iidfile", help="Write the image ID to the file")
    p.add("--rm", kind="bool", default=True, help="Remove intermediate containers after a "
                                                  "successful build")
    p.add("--force-rm", kind="bool", help="Always remove intermediate containers")
    p.add("--pull", kind="bool", help="Always attempt to pull a newer version of the image")
    p.add("--platform", help="Set platform if server is multi-platform capable")
    p.add("--add-host", kind="list", help="Add a custom host-to-IP mapping (host:ip)")
    p.add("--shm-size", help="Size of /dev/shm")
    p.add("--cache-from", kind="list", help="Images to consider as cache sources")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    path = ns.args[0]
    if "://" in path or path.startswith("git@"):
        raise StatusError(1, "unable to prepare context: remote contexts are not supported "
                             "by this client")
    if ns.iidfile:
        try:
            os.unlink(ns.iidfile)
        except FileNotFoundError:
            pass
    spool = _spool_file()
    dockerfile_name = ns.file
    walked = None
    try:
        if path == "-":
            if ns.file == "-":
                raise StatusError(1, "invalid argument: can't use stdin for both build context "
                                     "and dockerfile")
            import tarfile

            data = cli.stdin.read()
            head = data[:tarfile.BLOCKSIZE]
            is_tar = False
            try:
                is_tar = len(head) == tarfile.BLOCKSIZE and bool(
                    tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape"))
            except tarfile.HeaderError:
                is_tar = data[:3] == b"\x1f\x8b\x08" or data[:3] == b"BZh" or \
                    data[:6] == b"\xfd7zXZ\x00"
            if is_tar:
                spool.write(data)
            else:
                with tarfile.open(fileobj=spool, mode="w|") as tar:
                    info = tarfile.TarInfo("Dockerfile")
                    info.size, info.mode = len(data), 0o600
                    tar.addfile(info, io.BytesIO(data))
                dockerfile_name = None
        else:
            if not os.path.isdir(path):
                raise StatusError(1, f'unable to prepare context: path "{path}" not found')
            if ns.file == "-":
                import tempfile

                data = cli.stdin.read()
                tmpdir = tempfile.mkdtemp(prefix="docker-build-")
                try:
                    df_path = os.path.join(tmpdir, "Dockerfile")
                    with open(df_path, "wb") as f:
                        f.write(data)
                    dockerfile_name = buildcontext.tar_context(path, df_path, spool)
                finally:
                    for f in os.listdir(tmpdir):
                        os.unlink(os.path.join(tmpdir, f))
                    os.rmdir(tmpdir)
            else:
                df = ns.file
                if df and not os.path.isabs(df) and not os.path.exists(df):
                    df = os.path.join(path, df)
                walked = buildcontext.walk_context(
                    path, df or os.path.join(path, "Dockerfile"))
                dockerfile_name = walked.dockerfile
        headers = {"Content-Type": "application/x-tar"}
        if walked is not None:
            token = _begin_session(cli, path, walked, spool)
            if token:
                headers["X-Dockerpy-Context"] = token
        size = spool.tell()
        spool.seek(0)
        if not ns.quiet:
            cli.out(f"Sending build context to Docker daemon  {human_size(size, 4)}\r",
                    end="")
            cli.out()
        query: dict[str, Any] = {
            "t": ns.tag or None, "dockerfile": dockerfile_name, "target": ns.target,
            "nocache": ns.no_cache or None, "q": ns.quiet or None,
            "rm": ns.rm, "forcerm": ns.force_rm or None, "networkmode": ns.network,
            "platform": ns.platform, "pull": ns.pull or None,
        }
        if ns.add_host:
            query["extrahosts"] = list(ns.add_host)
        if ns.shm_size:
            from dockerpy.client.run import ram_in_bytes

            query["shmsize"] = str(ram_in_bytes(ns.shm_size))
        if ns.cache_from:
            query["cachefrom"] = json.dumps(list(ns.cache_from))
        if ns.build_arg:
            query["buildargs"] = json.dumps(_key_values(ns.build_arg, cli.environ, True))
        if ns.label:
            query["labels"] = json.dumps(_key_values(ns.label, cli.environ, False))
        try:
            resp = cli.client.request("POST", "/build", query, body=spool, headers=headers,
                                      stream=True)
        except APIError as e:
            if "X-Dockerpy-Context" not in headers or _SESSION_EXPIRED not in e.message:
                raise
            # Another build of this directory changed what the daemon kept.
            spool.seek(0)
            spool.truncate()
            buildcontext.write_tar(walked, spool)
            spool.seek(0)
            del headers["X-Dockerpy-Context"]
            resp = cli.client.request("POST", "/build", query, body=spool, headers=headers,
                                      stream=True)
        image_id = ""
        for msg in resp.json_lines():
            if msg.get("error") or msg.get("errorDetail"):
                detail = msg.get("errorDetail") or {}
                code = int(detail.get("code") or 1)
                raise StatusError(code, str(msg.get("error") or detail.get("message", "")))
            aux = msg.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
            if "stream" in msg and not ns.quiet:
                cli.stdout.write(str(msg["stream"]).encode())
                cli.stdout.flush()
        if ns.quiet and image_id:
            cli.out(image_id)
        if ns.iidfile and image_id:
            with open(ns.iidfile, "w") as f:
                f.write(image_id)
        return 0
    finally:
        spool.close()
