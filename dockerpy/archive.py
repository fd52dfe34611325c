# -*- test-case-name: dockerpy.test.test_archive -*-
"""File access inside a container's root file system: ``docker cp`` and
``docker export``.

Paths are container paths; every lookup stays inside the container's root
(symlinks are resolved as if the root were ``/``, like moby's
``FollowSymlinkInScope``), and reading or writing goes through
`dockerpy.storage.layertar`, whose file-descriptor walk cannot be led out of
the root by a symlink swapped in by the running container.

This module knows nothing of containers beyond their root directory and the
name used in error messages; the caller mounts and unmounts the root.
Blocking: run it in the thread pool.
"""

from __future__ import annotations

import datetime
import os
import posixpath
import stat
from typing import BinaryIO, Callable, Optional

from dockerpy.errors import InvalidParameter, NotFound
from dockerpy.storage import layertar

# Go's os.FileMode bits, as Docker puts them in X-Docker-Container-Path-Stat.
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20

_MAX_SYMLINKS = 255


def resolve_components(path: str, readlink: Callable[[list[str]], str | None]) -> list[str]:
    """The components of ``path`` with symlinks followed inside a root (an
    absolute link target is relative to the root, ``..`` never climbs above
    it); missing components are kept as they are.

    :param readlink: the target of the symlink at these components, or
        ``None`` when that is no symlink (or nothing).
    :raises OSError: ELOOP on a symlink loop.
    """
    todo = [p for p in reversed(posixpath.normpath("/" + path).split("/")) if p]
    resolved: list[str] = []
    links = 0
    while todo:
        comp = todo.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        target = readlink(resolved + [comp])
        if target is not None:
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(40, "too many levels of symbolic links", path)
            if target.startswith("/"):
                resolved = []
            todo.extend(reversed(target.split("/")))
            continue
        resolved.append(comp)
    return resolved


def resolve_in_root(root: str, path: str) -> str:
    """The host path of the container path ``path``, symlinks followed
    inside ``root`` (see :func:`resolve_components`).

    :raises OSError: ELOOP on a symlink loop.
    """
    root = os.path.abspath(root)

    def readlink(parts: list[str]) -> str | None:
        candidate = os.path.join(root, *parts)
        try:
            if not stat.S_ISLNK(os.lstat(candidate).st_mode):
                return None
        except (FileNotFoundError, NotADirectoryError):
            return None
        return os.readlink(candidate)

    return os.path.join(root, *resolve_components(path, readlink))


def _preserve_trailing(cleaned: str, original: str) -> str:
    if original.endswith("/.") and not cleaned.endswith("/."):
        return cleaned.rstrip("/") + "/."
    if original.endswith("/") and not cleaned.endswith("/"):
        return cleaned + "/"
    return cleaned


def _abs_path(path: str) -> str:
    return _preserve_trailing(posixpath.normpath("/" + path), path)


def _go_base(path: str) -> str:
    """Go's ``filepath.Base``: the last element, ``/`` for the root."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def _resolve_path(root: str, path: str) -> tuple[str, str]:
    """Docker's ``ResolvePath``: the directory part resolved in the root,
    the last element kept (so a symlink names itself) unless the path ends
    with ``/`` or ``/.``.

    :return: ``(host path, absolute container path)``.
    """
    abs_path = _abs_path(path)
    head, _, base = abs_path.rpartition("/")
    if base in ("", "."):
        return resolve_in_root(root, abs_path), abs_path
    return os.path.join(resolve_in_root(root, head or "/"), base), abs_path


def go_file_mode(mode: int) -> int:
    """Translate a ``st_mode`` to Go's ``os.FileMode`` bits."""
    out = stat.S_IMODE(mode) & 0o777
    fmt = stat.S_IFMT(mode)
    if fmt == stat.S_IFDIR:
        out |= MODE_DIR
    elif fmt == stat.S_IFLNK:
        out |= MODE_SYMLINK
    elif fmt == stat.S_IFIFO:
        out |= MODE_NAMED_PIPE
    elif fmt == stat.S_IFSOCK:
        out |= MODE_SOCKET
    elif fmt == stat.S_IFBLK:
        out |= MODE_DEVICE
    elif fmt == stat.S_IFCHR:
        out |= MODE_DEVICE | MODE_CHAR_DEVICE
    if mode & stat.S_ISUID:
        out |= MODE_SETUID
    if mode & stat.S_ISGID:
        out |= MODE_SETGID
    if mode & stat.S_ISVTX:
        out |= MODE_STICKY
    return out


def rfc3339(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC (trailing zeros of the fraction dropped)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def _not_found(path: str, container: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container}")


def _container_path(root: str, host_path: str) -> str:
    rel = os.path.relpath(host_path, os.path.abspath(root))
    return "/" if rel == "." else "/" + rel


def _stat(root: str, path: str, container: str) -> tuple[dict, str, str, os.stat_result]:
    resolved, abs_path = _resolve_path(root, path)
    try:
        st = os.lstat(resolved)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(path, container) from None
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        link_target = _container_path(root, resolve_in_root(root, abs_path))
    info = {
        "name": _go_base(abs_path),
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": rfc3339(st.st_mtime_ns),
        "linkTarget": link_target,
    }
    return info, resolved, abs_path, st


def stat_path(root: str, path: str, container: str = "") -> dict:
    """``HEAD /containers/{id}/archive``: the X-Docker-Container-Path-Stat JSON.

    :param container: the container's name or id, for the error message.
    :raises NotFound: nothing at ``path``.
    """
    return _stat(root, path, container)[0]


def write_path_tar(root: str, path: str, out: BinaryIO, container: str = "") -> dict:
    """``GET /containers/{id}/archive``: write a tar of ``path`` to ``out``.

    The top entry is named after the requested path's last element (so a
    symlink followed through a trailing ``/`` keeps the requested name); a
    directory brings everything below it.

    :return: the path's stat (`stat_path`).
    :raises NotFound: nothing at ``path``.
    """
    info, resolved, abs_path, st = _stat(root, path, container)
    top = info["name"]
    rel = os.path.relpath(resolved, os.path.abspath(root))
    parts = [] if rel == "." else rel.split("/")
    tree = layertar.SafeTree(root)
    try:
        if parts:
            try:
                parent_fd, _ = tree.open_dir(parts[:-1], create=False)
            except (FileNotFoundError, NotADirectoryError):
                raise _not_found(path, container) from None
            name = parts[-1]
        else:
            parent_fd, name = tree.root_fd, "."
        with layertar.LayerTarWriter(out) as writer:
            entry = writer.add(parent_fd, name, top)
            if entry is not None and stat.S_ISDIR(entry.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, dir_fd=parent_fd)
                try:
                    writer.add_tree(fd, "/" if top == "/" else top + "/")
                finally:
                    os.close(fd)
    finally:
        tree.close()
    return info


def extract_into(root: str, path: str, stream: BinaryIO,
                 no_overwrite_dir_non_dir: bool = False, container: str = "",
                 chown: Optional[tuple[int, int]] = None) -> None:
    """``PUT /containers/{id}/archive``: extract a tar into the directory ``path``.

    ``path`` is followed through symlinks (inside the root) and must be an
    existing directory.  Entries are written without whiteout handling.

    :param chown: owner for every entry (``docker cp -a``), else the tar's.
    :raises NotFound: ``path`` does not exist.
    :raises InvalidParameter: ``path`` is not a directory, an entry escapes
        it, or a directory/non-directory would be replaced while
        ``no_overwrite_dir_non_dir``.
    """
    resolved = resolve_in_root(root, _abs_path(path))
    try:
        st = os.lstat(resolved)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(path, container) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidParameter("extraction point is not a directory")
    rel = os.path.relpath(resolved, os.path.abspath(root))
    layertar.extract_tar(stream, root, "" if rel == "." else rel,
                         no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown=chown)


def write_rootfs_tar(root: str, out: BinaryIO) -> None:
    """``docker export``: the whole root file system, without a root entry."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with layertar.LayerTarWriter(out) as writer:
            writer.add_tree(fd, "")
    finally:
        os.close(fd)
