# -*- test-case-name: dockerpy.test.test_client_cp -*-
"""``docker cp``: copying between a container (``GET``/``HEAD``/``PUT
/containers/{id}/archive``) and the local file system, with the naming
rules of moby's ``pkg/archive`` copy code:

- into an existing directory, the source keeps its name;
- ``SRC/.`` copies the directory's contents rather than the directory;
- a destination that does not exist takes the source's content under the
  destination's name (a trailing ``/`` asserts a directory, which a file
  source cannot make);
- a directory cannot replace an existing file.

Paths in the archive are sanitised on extraction: nothing is written
outside the destination directory, nor through a symlink already there.
"""

from __future__ import annotations

import os
import posixpath
import stat as statmod
import tarfile
import tempfile

from dockerpy.client.command import Cli, Parser, StatusError, write_stream
from dockerpy.client.format import human_size
from dockerpy.client.transport import APIError, decode_path_stat

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any, BinaryIO

# Go's os.FileMode bits, as the daemon encodes them in the path-stat header.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27

ERR_CANNOT_COPY_DIR = "cannot copy directory"
ERR_DIR_NOT_EXISTS = "no such directory"


def split_cp_arg(arg: str) -> tuple[str, str]:
    """``container:path`` -> (container, path); a local path -> ("", path).

    An absolute path, or one without ``:`` before any ``/``, is local, as
    in the docker CLI (so ``./a:b`` is a local file).
    """
    if arg.startswith("/") or arg.startswith("."):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or "/" in container:
        return "", arg
    return container, path


def asserts_directory(path: str) -> bool:
    return path.endswith("/") or path.endswith("/.") or path == "."


def split_dir_entry(path: str, sep_mod: Any = posixpath) -> tuple[str, str]:
    """moby's ``SplitPathDirEntry``: ``a/b/.`` -> (``a/b``, ``.``)."""
    cleaned = sep_mod.normpath(path)
    if path.endswith("/.") or path == ".":
        return cleaned, "."
    return sep_mod.dirname(cleaned) or ".", sep_mod.basename(cleaned)


def prepare_copy(src_path: str, src_is_dir: bool, rebase: str | None, dst_path: str,
                 dst_exists: bool, dst_is_dir: bool, sep_mod: Any = posixpath
                 ) -> tuple[str, str | None, str | None]:
    """moby's ``PrepareArchiveCopy``: where to extract, and how to rename.

    :return: (directory to extract into, old top name, new top name); the
        names are ``None`` when the archive goes in unchanged.
    :raises StatusError: ``cannot copy directory`` / ``no such directory``.
    """
    _, src_base = split_dir_entry(src_path, sep_mod)
    if rebase:
        src_base = rebase
    dst_dir, dst_base = split_dir_entry(dst_path, sep_mod)
    if dst_exists and dst_is_dir:
        return dst_path, None, None
    if dst_exists and src_is_dir:
        raise StatusError(1, ERR_CANNOT_COPY_DIR)
    if not dst_exists and not src_is_dir and asserts_directory(dst_path):
        raise StatusError(1, ERR_DIR_NOT_EXISTS)
    return dst_dir, src_base, dst_base


def rebase_name(name: str, old: str | None, new: str | None) -> str:
    """Rename the archive's top entry *old* to *new* (``.`` means "the
    contents", whose entries may or may not carry a ``./`` prefix)."""
    if old is None or new is None:
        return name
    if old == ".":
        stripped = name[2:] if name.startswith("./") else ("" if name == "." else name)
        return new + ("/" + stripped if stripped else "")
    if name == old:
        return new
    if name.startswith(old + "/"):
        return new + name[len(old):]
    return name


class _NoChownTarFile(tarfile.TarFile):
    """docker cp extracts with ``NoLchown``: files belong to the caller."""

    def chown(self, tarinfo: tarfile.TarInfo, targetpath: str, numeric_owner: bool) -> None:
        return None


def extract(fileobj: BinaryIO, dst_dir: str, old: str | None, new: str | None) -> None:
    """Extract a tar stream into *dst_dir*, renaming its top entry.

    :raises StatusError: for an entry that would land outside *dst_dir*.
    """
    root = os.path.realpath(dst_dir)
    kwargs: dict[str, Any] = {}
    if hasattr(tarfile, "fully_trusted_filter"):
        kwargs["filter"] = "fully_trusted"
    with _NoChownTarFile.open(fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            name = rebase_name(member.name, old, new).lstrip("/")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if any(p == ".." for p in parts):
                raise StatusError(1, f"invalid path in archive: {member.name}")
            if not parts:
                continue
            name = "/".join(parts)
            parent = os.path.realpath(os.path.join(root, *parts[:-1]))
            if parent != root and not parent.startswith(root + os.sep):
                raise StatusError(1, f"invalid path in archive: {member.name}")
            target = os.path.join(parent, parts[-1])
            if os.path.lexists(target):
                existing_dir = os.path.isdir(target) and not os.path.islink(target)
                if member.isdir() and existing_dir:
                    pass
                elif existing_dir:
                    raise StatusError(1, f"cannot overwrite directory {target!r} with "
                                         f"non-directory")
                else:
                    os.unlink(target)
            member.name = name
            if member.islnk():
                member.linkname = rebase_name(member.linkname, old, new).lstrip("/")
            tar.extract(member, root, **kwargs)


def _remote_stat(cli: Cli, container: str, path: str) -> dict[str, Any] | None:
    """HEAD the archive path: its stat, or ``None`` when it does not exist."""
    try:
        resp = cli.client.request("HEAD", f"/containers/{container}/archive", {"path": path})
    except APIError as e:
        if e.status == 404 and "No such container" not in e.message:
            return None
        raise
    resp.close()
    return decode_path_stat(resp.headers.get("X-Docker-Container-Path-Stat")) or {}


def copy_from_container(cli: Cli, container: str, src: str, dst: str, follow: bool,
                        quiet: bool) -> None:
    rebase = None
    if follow:
        st = _remote_stat(cli, container, src)
        if st and st.get("mode", 0) & GO_MODE_SYMLINK:
            target = st.get("linkTarget", "")
            if not target.startswith("/"):
                target = posixpath.join(posixpath.dirname(src), target)
            if not src.endswith("/"):
                rebase = posixpath.basename(src)
            src = target
    resp = cli.client.request("GET", f"/containers/{container}/archive", {"path": src},
                              stream=True)
    try:
        if dst == "-":
            write_stream(resp.read, cli.stdout)
            return
        st = decode_path_stat(resp.headers.get("X-Docker-Container-Path-Stat")) or {}
        src_is_dir = bool(st.get("mode", 0) & GO_MODE_DIR)
        dst_exists = os.path.exists(dst)
        if not dst_exists:
            parent = os.path.dirname(os.path.abspath(dst.rstrip("/") or "/"))
            if not os.path.isdir(parent):
                raise StatusError(1, f"lstat {parent}: no such file or directory")
        dst_dir, old, new = prepare_copy(src, src_is_dir, rebase, dst, dst_exists,
                                         os.path.isdir(dst), os.path)
        extract(resp.raw, dst_dir, old, new)
        if not quiet and cli.isatty(cli.stderr):
            cli.err(f"Successfully copied {human_size(st.get('size', 0))} to {dst}")
    finally:
        resp.close()


def _tar_local(src: str, arc_top: str | None, follow: bool) -> tempfile.SpooledTemporaryFile:
    """Tar *src* under the name *arc_top* (``None``: its contents)."""
    out = tempfile.SpooledTemporaryFile(max_size=16 << 20)
    real = os.path.realpath(src) if follow else src.rstrip("/") or "/"
    if real.endswith("/."):
        real = real[:-2] or "/"
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if arc_top is None:
            for entry in sorted(os.listdir(real)):
                tar.add(os.path.join(real, entry), arcname=entry)
        else:
            tar.add(real, arcname=arc_top)
    out.seek(0)
    return out


def copy_to_container(cli: Cli, src: str, container: str, dst: str, follow: bool,
                      archive: bool, quiet: bool) -> None:
    if not dst:
        raise StatusError(1, "filesystem path cannot be empty")
    if not dst.startswith("/"):
        dst = "/" + dst
    query = {"path": None, "noOverwriteDirNonDir": True,
             "copyUIDGID": True if archive else None}
    dst_stat = _remote_stat(cli, container, dst)
    if dst_stat and dst_stat.get("mode", 0) & GO_MODE_SYMLINK:
        target = dst_stat.get("linkTarget", "")
        if not target.startswith("/"):
            target = posixpath.join(posixpath.dirname(dst), target)
        dst = target
        dst_stat = _remote_stat(cli, container, dst)
    dst_is_dir = bool(dst_stat and dst_stat.get("mode", 0) & GO_MODE_DIR)
    if src == "-":
        if dst_stat is None or not dst_is_dir:
            if dst_stat is None:
                raise StatusError(1, f"Error response from daemon: Could not find the file "
                                     f"{dst} in container {container}")
            raise StatusError(1, f'destination "{container}:{dst}" must be a directory')
        query["path"] = dst
        cli.client.send("PUT", f"/containers/{container}/archive", query, body=cli.stdin)
        return
    try:
        st = os.stat(src) if follow else os.lstat(src)
    except OSError as e:
        raise StatusError(1, f"lstat {os.path.abspath(src)}: {(e.strerror or '').lower()}")
    src_is_dir = statmod.S_ISDIR(st.st_mode)
    put_dir, old, new = prepare_copy(src, src_is_dir, None, dst, dst_stat is not None,
                                     dst_is_dir)
    if old is None:
        _, base = split_dir_entry(src, os.path)
        arc_top = None if base == "." else base
    else:
        arc_top = None if new == "." else new
    body = _tar_local(src, arc_top, follow)
    size = body.seek(0, os.SEEK_END)
    body.seek(0)
    query["path"] = put_dir
    try:
        cli.client.send("PUT", f"/containers/{container}/archive", query, body=body)
    finally:
        body.close()
    if not quiet and cli.isatty(cli.stderr):
        cli.err(f"Successfully copied {human_size(size)} to {container}:{dst}")


def cp(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\t"
               "docker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
               "Copy files/folders between a container and the local filesystem",
               min_args=2, max_args=2)
    p.add("-a", "--archive", kind="bool", help="Archive mode (copy all uid/gid information)")
    p.add("-L", "--follow-link", kind="bool", help="Always follow symbol link in SRC_PATH")
    p.add("-q", "--quiet", kind="bool", help="Suppress progress output during copy")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    src_container, src = split_cp_arg(ns.args[0])
    dst_container, dst = split_cp_arg(ns.args[1])
    if src_container and dst_container:
        raise StatusError(1, "copying between containers is not supported")
    if not src_container and not dst_container:
        raise StatusError(1, "must specify at least one container source")
    if src_container:
        if not src:
            raise StatusError(1, "filesystem path cannot be empty")
        copy_from_container(cli, src_container, src if src.startswith("/") else "/" + src,
                            dst, ns.follow_link, ns.quiet)
    else:
        copy_to_container(cli, src, dst_container, dst, ns.follow_link, ns.archive, ns.quiet)
    return 0
