# -*- test-case-name: dockerpy.test.test_client_buildcontext -*-
"""The build context as bin/docker sends it: the whole directory as a tar
(the classic protocol), or, to a dockerpy daemon, a manifest and then only
the files the daemon does not have yet (a context session; see
`dockerpy.build.sessions` and doc/api.md).  Standard library only.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import secrets
import socket
import stat

from dockerpy.client.command import StatusError


class Walked:
    """The context's entries in tar order: ``(name, path, lstat)``; and the
    Dockerfile's name in the context (``extra``: its name and bytes when it
    lives outside the context, sent under a random name)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, os.stat_result]] = []
        self.dockerfile = "Dockerfile"
        self.extra: tuple[str, bytes] | None = None


def walk_context(context: str, dockerfile: str | None) -> Walked:
    """Every path of ``context`` the build sends (``.dockerignore`` applied;
    the Dockerfile and ``.dockerignore`` always sent), parents first."""
    from dockerpy.build.ignore import IgnoreMatcher

    ignore = IgnoreMatcher.from_context(context)
    walked = Walked()
    keep = {".dockerignore"}
    if dockerfile:
        full = os.path.abspath(dockerfile)
        ctx_abs = os.path.abspath(context)
        if full.startswith(ctx_abs + os.sep):
            walked.dockerfile = os.path.relpath(full, ctx_abs).replace(os.sep, "/")
        else:
            try:
                with open(full, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise StatusError(1, f"unable to prepare context: unable to evaluate symlinks "
                                     f"in Dockerfile path: {e.strerror.lower()}") from None
            walked.dockerfile = f".dockerfile.{secrets.token_hex(10)}"
            walked.extra = (walked.dockerfile, data)
    keep.add(walked.dockerfile)
    out = walked.entries
    for dirpath, dirnames, filenames in os.walk(context):
        rel_dir = os.path.relpath(dirpath, context).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        kept_dirs = []
        for d in sorted(dirnames):
            rel = posixpath.join(rel_dir, d) if rel_dir else d
            if ignore.can_skip_dir(rel):
                continue
            kept_dirs.append(d)
            if not ignore.matches(rel):
                full = os.path.join(dirpath, d)
                out.append((rel, full, os.lstat(full)))
        dirnames[:] = kept_dirs
        for fname in sorted(filenames):
            rel = posixpath.join(rel_dir, fname) if rel_dir else fname
            if ignore.matches(rel) and rel not in keep:
                continue
            full = os.path.join(dirpath, fname)
            out.append((rel, full, os.lstat(full)))
    return walked


def write_tar(walked: Walked, out, only: set[str] | None = None) -> None:
    """A tar of the walked entries (of the names in ``only`` when given),
    written to the binary file ``out``; nothing at all when ``only`` is
    empty (a context session with nothing to send)."""
    if only is not None and not only:
        return
    import tarfile

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, full, _ in walked.entries:
            if only is None or rel in only:
                _add(tar, full, rel)
        if walked.extra is not None and (only is None or walked.extra[0] in only):
            name, data = walked.extra
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))


def _add(tar, path: str, arcname: str) -> None:
    info = tar.gettarinfo(path, arcname)
    # The docker CLI sends files owned by root, whoever runs it, and whole
    # seconds (a float mtime would cost a pax header per file).
    info.uid = info.gid = 0
    info.mtime = int(info.mtime)
    info.uname = info.gname = ""
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def tar_context(context: str, dockerfile: str | None, out) -> str:
    """Write the whole context as a tar to ``out``; :return: the Dockerfile
    name to send."""
    walked = walk_context(context, dockerfile)
    write_tar(walked, out)
    return walked.dockerfile


# ---------------------------------------------------------------------------
# Context sessions


def session_key(context: str) -> str:
    """Names what the daemon keeps of this directory for this user and host."""
    ident = f"{socket.gethostname()}\0{os.getuid()}\0{os.path.realpath(context)}"
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def manifest(walked: Walked) -> list[list] | None:
    """The session manifest of a walked context (see
    `dockerpy.build.sessions`), or None when the context holds something a
    manifest cannot describe (a device, a fifo, a socket): then the whole
    context goes as a tar."""
    entries: list[list] = []
    for rel, full, st in walked.entries:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            kind, link, size = "dir", "", 0
        elif stat.S_ISREG(mode):
            kind, link, size = "file", "", st.st_size
        elif stat.S_ISLNK(mode):
            kind, link, size = "symlink", os.readlink(full), 0
        else:
            return None
        entries.append([rel, kind, stat.S_IMODE(mode), int(st.st_mtime), size, link,
                        f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"])
    if walked.extra is not None:
        name, data = walked.extra
        entries.append([name, "file", 0o600, 0, len(data), "", secrets.token_hex(8)])
    return entries
