# -*- test-case-name: dockerpy.test.test_storage_vfs -*-
"""The vfs storage driver: every layer is a full copy of its parent.

Works on any kernel and file system.  Layout::

    <home>/dir/<id>      the layer's complete root file system
    <home>/meta/<id>     {"parent": <id or null>}

Changes and diffs are found by comparing a layer with its parent's copy
(Docker's ``ChangesDirs``).  "Mounting" is reference counting only.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
import threading
from typing import BinaryIO, Optional

from zope.interface import implementer

from dockerpy import atomic, syscalls
from dockerpy.errors import Conflict, InvalidParameter, NotFound
from dockerpy.interfaces import IStorageDriver
from dockerpy.storage import layertar

_LAYER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _copy_xattrs(src, dst, follow: bool = True) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=follow)
    except OSError:
        return
    for name in names:
        try:
            value = os.getxattr(src, name, follow_symlinks=follow)
            os.setxattr(dst, name, value, follow_symlinks=follow)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.ENODATA):
                raise


def _copy_data(src_fd: int, dst_fd: int) -> None:
    try:
        while os.copy_file_range(src_fd, dst_fd, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    while True:
        chunk = os.read(src_fd, 1 << 20)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view):]


def copy_tree(src: str, dst: str) -> None:
    """Copy ``src`` to the new directory ``dst`` keeping everything: hard
    links, symlinks, devices, fifos, sockets, owners, modes, xattrs, times."""
    os.mkdir(dst, 0o700)
    inodes: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, str, os.stat_result]] = [(src, dst, os.lstat(src))]
    stack = [(src, dst)]
    while stack:
        sdir, ddir = stack.pop()
        with os.scandir(sdir) as it:
            entries = list(it)
        for entry in entries:
            s = entry.path
            d = os.path.join(ddir, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(d, 0o700)
                dirs.append((s, d, st))
                stack.append((s, d))
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in inodes:
                os.link(inodes[key], d, follow_symlinks=False)
                continue
            if stat.S_ISREG(mode):
                sfd = os.open(s, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    dfd = os.open(d, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, 0o600)
                    try:
                        _copy_data(sfd, dfd)
                        # Owner before mode and xattrs: chown drops setuid
                        # bits and file capabilities.
                        os.fchown(dfd, st.st_uid, st.st_gid)
                        os.fchmod(dfd, stat.S_IMODE(mode))
                        _copy_xattrs(sfd, dfd)
                        os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
                    finally:
                        os.close(dfd)
                finally:
                    os.close(sfd)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
                os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
                _copy_xattrs(s, d, follow=False)
                os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            else:
                os.mknod(d, stat.S_IFMT(mode) | 0o600, st.st_rdev)
                os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
                os.chmod(d, stat.S_IMODE(mode))
                _copy_xattrs(s, d, follow=False)
                os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            if st.st_nlink > 1:
                inodes[key] = d
    # Directory metadata last: creating children changes their mtimes.
    for s, d, st in dirs:
        os.chown(d, st.st_uid, st.st_gid)
        os.chmod(d, stat.S_IMODE(st.st_mode))
        _copy_xattrs(s, d, follow=False)
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))


@implementer(IStorageDriver)
class VfsDriver:
    """Full copies: slow and space hungry, but needs nothing from the kernel."""

    name = "vfs"

    def __init__(self, home: str) -> None:
        self.home = os.path.abspath(home)
        self._dirs = os.path.join(self.home, "dir")
        self._meta = os.path.join(self.home, "meta")
        os.makedirs(self._dirs, mode=0o710, exist_ok=True)
        os.makedirs(self._meta, mode=0o700, exist_ok=True)
        syscalls.spread_subdirectories(self._dirs)
        self._lock = threading.RLock()
        self._refs: dict[str, int] = {}
        for name in os.listdir(self._dirs):
            if name.startswith((".tmp-", ".removing-")):
                shutil.rmtree(os.path.join(self._dirs, name), ignore_errors=True)

    def _dir(self, layer_id: str) -> str:
        if not _LAYER_ID.match(layer_id):
            raise InvalidParameter(f"invalid layer id: {layer_id!r}")
        return os.path.join(self._dirs, layer_id)

    def _require(self, layer_id: str) -> str:
        path = self._dir(layer_id)
        if not os.path.isdir(path):
            raise NotFound(f"layer {layer_id} does not exist")
        return path

    def _parent(self, layer_id: str) -> Optional[str]:
        try:
            return atomic.read_json(os.path.join(self._meta, layer_id)).get("parent")
        except FileNotFoundError:
            return None

    def _parent_dir(self, layer_id: str) -> Optional[str]:
        parent = self._parent(layer_id)
        return self._require(parent) if parent is not None else None

    def exists(self, layer_id: str) -> bool:
        return os.path.isdir(self._dir(layer_id))

    def create(self, layer_id: str, parent_id: Optional[str]) -> None:
        final = self._dir(layer_id)
        with self._lock:
            if os.path.lexists(final):
                raise Conflict(f"layer {layer_id} already exists")
            parent_dir = self._require(parent_id) if parent_id is not None else None
            tmp = os.path.join(self._dirs, f".tmp-{layer_id}-{secrets.token_hex(4)}")
        try:
            if parent_dir is not None:
                copy_tree(parent_dir, tmp)
            else:
                os.mkdir(tmp, 0o755)
                os.chmod(tmp, 0o755)
            with self._lock:
                if os.path.lexists(final):
                    raise Conflict(f"layer {layer_id} already exists")
                atomic.write_json(os.path.join(self._meta, layer_id), {"parent": parent_id})
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic.fsync_dir(self._dirs)

    def remove(self, layer_id: str, later: list[str] | None = None) -> None:
        path = self._dir(layer_id)
        with self._lock:
            self._refs.pop(layer_id, None)
            if not os.path.isdir(path):
                return
            doomed = os.path.join(self._dirs, f".removing-{layer_id}-{secrets.token_hex(4)}")
            os.rename(path, doomed)
            try:
                os.unlink(os.path.join(self._meta, layer_id))
            except FileNotFoundError:
                pass
        if later is not None:
            later.append(doomed)
        else:
            shutil.rmtree(doomed)

    def apply_diff(self, layer_id: str, stream: BinaryIO) -> int:
        path = self._require(layer_id)
        try:
            return layertar.apply_layer(stream, path, layertar.DeletingWhiteouts())
        except BaseException:
            self.remove(layer_id)
            raise

    def mount(self, layer_id: str) -> str:
        path = self._require(layer_id)
        with self._lock:
            self._refs[layer_id] = self._refs.get(layer_id, 0) + 1
        return path

    def unmount(self, layer_id: str) -> None:
        self._dir(layer_id)
        with self._lock:
            count = self._refs.get(layer_id, 0)
            if count > 1:
                self._refs[layer_id] = count - 1
            else:
                self._refs.pop(layer_id, None)

    def is_mounted(self, layer_id: str) -> bool:
        self._dir(layer_id)
        with self._lock:
            return self._refs.get(layer_id, 0) > 0

    def changes(self, layer_id: str) -> list[tuple[str, int]]:
        path = self._require(layer_id)
        return layertar.changes_dirs(path, self._parent_dir(layer_id))

    def diff(self, layer_id: str, out: BinaryIO) -> None:
        path = self._require(layer_id)
        changes = layertar.changes_dirs(path, self._parent_dir(layer_id))
        layertar.write_changes_tar(path, changes, out)

    def size(self, layer_id: str) -> int:
        path = self._require(layer_id)
        changes = layertar.changes_dirs(path, self._parent_dir(layer_id))
        return layertar.changes_size(path, changes)

    def metadata(self, layer_id: str) -> dict:
        # Docker's vfs reports no GraphDriver data.
        self._require(layer_id)
        return {}

    def status(self) -> list[list[str]]:
        return []

    def cleanup(self) -> None:
        with self._lock:
            self._refs.clear()
