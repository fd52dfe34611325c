# -*- test-case-name: dockerpy.test.test_storage_overlay2 -*-
"""The overlay2 storage driver: layers as overlayfs upper directories.

On-disk layout (as Docker's)::

    <home>/<id>/diff     the layer's own content (overlay upper dir)
    <home>/<id>/link     the layer's short name
    <home>/<id>/lower    short links of all ancestors, nearest first
                         ("l/ABC:l/DEF"); absent for a base layer
    <home>/<id>/work     overlay work dir (layers with a parent)
    <home>/<id>/merged   mount point (layers with a parent)
    <home>/l/<short>     symlink to ../<id>/diff (keeps mount options short)

A base layer (no parent) is never mounted: its "mount" is its diff directory.
Mounts are made with mount(2) through ctypes; an option string longer than
a page falls back to ``mount(8)`` run with ``cwd=home`` and relative paths.
Mount references are counted in memory; `cleanup` finds the driver's mounts
in ``/proc/self/mountinfo`` so a restarted daemon can drop stale ones.

This module must not touch anything outside ``home``.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import os
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
from typing import BinaryIO, Optional

from zope.interface import implementer

from dockerpy import atomic, syscalls
from dockerpy.errors import Conflict, InvalidParameter, NotFound, SystemError_, Unavailable
from dockerpy.interfaces import IStorageDriver
from dockerpy.storage import layertar

_MAX_DEPTH = 128
_LAYER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Tried in order by the probe: Docker passes index=off; the others make sure
# the upper directory alone describes the layer (native diff).
_OPTION_SETS = ("index=off,redirect_dir=off,metacopy=off,", "index=off,", "")

_FS_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mountinfo() -> list[tuple[str, str]]:
    """:return: ``(mount point, fs type)`` of this process's mounts, in order."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out.append((_unescape_mountinfo(fields[4]), fields[sep + 1]))
    return out


def backing_fs(path: str) -> str:
    """:return: Docker's name of the file system holding ``path``."""
    real = os.path.realpath(path)
    best, fstype = "", "unknown"
    for point, kind in mountinfo():
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fstype = point, kind
    return _FS_NAMES.get(fstype, fstype)


def _mount_overlay(libc: ctypes.CDLL, target: str, options: str) -> None:
    rc = libc.mount(b"overlay", os.fsencode(target), b"overlay", ctypes.c_ulong(0),
                    os.fsencode(options))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount overlay on {target}: {os.strerror(err)}")


def supported(home: str) -> Optional[str]:
    """Probe whether overlay mounts work under ``home``.

    :return: the extra mount options to use, or ``None`` if overlay does not work.
    """
    try:
        return _probe(home)
    except OSError:
        return None


def _probe(home: str) -> str:
    os.makedirs(home, mode=0o710, exist_ok=True)
    libc = _libc()
    work = tempfile.mkdtemp(prefix=".probe-", dir=home)
    try:
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(work, sub))
        with open(os.path.join(work, "lower", "probe"), "w") as f:
            f.write("probe")
        merged = os.path.join(work, "merged")
        last: Optional[OSError] = None
        for extra in _OPTION_SETS:
            opts = (f"{extra}lowerdir={work}/lower,upperdir={work}/upper,"
                    f"workdir={work}/work")
            try:
                _mount_overlay(libc, merged, opts)
            except OSError as e:
                last = e
                continue
            try:
                if not os.path.exists(os.path.join(merged, "probe")):
                    raise OSError(errno.EIO, "overlay mount shows no lower content")
            finally:
                syscalls.umount(merged)
            return extra
        assert last is not None
        raise last
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _short_id() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()[:26]


@implementer(IStorageDriver)
class Overlay2Driver:
    """Layers as overlay upper directories, mounted with their ancestors.

    :raises Unavailable: overlay cannot be mounted under ``home``.
    """

    name = "overlay2"

    def __init__(self, home: str) -> None:
        self.home = os.path.abspath(home)
        os.makedirs(os.path.join(self.home, "l"), mode=0o700, exist_ok=True)
        try:
            self._options = _probe(self.home)
        except OSError as e:
            raise Unavailable(f"driver not supported: overlay2 ({e.strerror or e})") from None
        # Each layer directory in a block group of its own (see the function).
        syscalls.spread_subdirectories(self.home)
        self._real_home = os.path.realpath(self.home)
        self._libc = _libc()
        self._lock = threading.RLock()
        self._refs: dict[str, int] = {}
        self._sweep()

    # -- paths ------------------------------------------------------------

    def _dir(self, layer_id: str) -> str:
        if not _LAYER_ID.match(layer_id) or layer_id == "l":
            raise InvalidParameter(f"invalid layer id: {layer_id!r}")
        return os.path.join(self.home, layer_id)

    def _read(self, layer_id: str, name: str) -> Optional[str]:
        try:
            with open(os.path.join(self._dir(layer_id), name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def _lowers(self, layer_id: str) -> list[str]:
        """:return: the ``l/<short>`` entries of the layer's ancestors, nearest first."""
        lower = self._read(layer_id, "lower")
        return lower.split(":") if lower else []

    def _lower_dirs(self, layer_id: str) -> list[str]:
        """:return: real diff directories of the ancestors, nearest first."""
        out = []
        for link in self._lowers(layer_id):
            target = os.readlink(os.path.join(self.home, link))
            out.append(os.path.normpath(os.path.join(self._real_home, "l", target)))
        return out

    def _require(self, layer_id: str) -> str:
        path = self._dir(layer_id)
        if not os.path.isdir(path):
            raise NotFound(f"layer {layer_id} does not exist")
        return path

    def _sweep(self) -> None:
        """Remove what a crash left half-made (temporary and doomed dirs)."""
        for name in os.listdir(self.home):
            if name.startswith((".tmp-", ".removing-", ".probe-")):
                self._unmount_below(os.path.join(self._real_home, name))
                shutil.rmtree(os.path.join(self.home, name), ignore_errors=True)
        links = os.path.join(self.home, "l")
        for name in os.listdir(links):
            if not os.path.exists(os.path.join(links, name)):
                try:
                    os.unlink(os.path.join(links, name))
                except FileNotFoundError:
                    pass

    def _unmount_below(self, real_path: str) -> None:
        # Never let rmtree walk into a mounted overlay (it would delete the
        # lower layers' content through it).
        for point, _ in reversed(mountinfo()):
            if point == real_path or point.startswith(real_path + "/"):
                syscalls.umount(point)

    # -- IStorageDriver ---------------------------------------------------

    def exists(self, layer_id: str) -> bool:
        return os.path.isdir(self._dir(layer_id))

    def create(self, layer_id: str, parent_id: Optional[str]) -> None:
        final = self._dir(layer_id)
        with self._lock:
            if os.path.lexists(final):
                raise Conflict(f"layer {layer_id} already exists")
            lower = None
            if parent_id is not None:
                self._require(parent_id)
                parent_lowers = self._lowers(parent_id)
                if len(parent_lowers) + 1 >= _MAX_DEPTH:
                    raise InvalidParameter(
                        f"max depth exceeded: a layer cannot have more than {_MAX_DEPTH} "
                        "ancestors")
                lower = ":".join(["l/" + self._read(parent_id, "link")] + parent_lowers)
            tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.home)
            short = _short_id()
            link = os.path.join(self.home, "l", short)
            linked = False
            try:
                os.chmod(tmp, 0o710)
                os.mkdir(os.path.join(tmp, "diff"), 0o755)
                # Fresh files in a fresh directory: its rename below is the
                # atomic step, so they need no temporary names of their own.
                # Their data is fsynced (with delayed allocation, a later
                # fsync of another file does not write it); the directories
                # are not: the record that names the layer (an image's layer
                # record, a container's record) is written durably right
                # after, and that journal commit carries these entries and
                # the rename too.  A layer a crash loses was never named (its
                # leftovers: _sweep).
                atomic.write_new(os.path.join(tmp, "link"), short.encode())
                if lower is not None:
                    os.mkdir(os.path.join(tmp, "work"), 0o700)
                    os.mkdir(os.path.join(tmp, "merged"), 0o700)
                    atomic.write_new(os.path.join(tmp, "lower"), lower.encode())
                os.symlink(f"../{layer_id}/diff", link)
                linked = True
                os.rename(tmp, final)
            except BaseException:
                if linked:
                    os.unlink(link)
                shutil.rmtree(tmp, ignore_errors=True)
                raise

    def remove(self, layer_id: str, later: list[str] | None = None) -> None:
        path = self._dir(layer_id)
        with self._lock:
            if not os.path.isdir(path):
                return
            self._refs.pop(layer_id, None)
            self._unmount_below(os.path.join(self._real_home, layer_id))
            short = self._read(layer_id, "link")
            doomed = os.path.join(self.home, f".removing-{layer_id}-{secrets.token_hex(4)}")
            os.rename(path, doomed)
            if short:
                try:
                    os.unlink(os.path.join(self.home, "l", short))
                except FileNotFoundError:
                    pass
        if later is not None:
            later.append(doomed)
        else:
            shutil.rmtree(doomed)

    def apply_diff(self, layer_id: str, stream: BinaryIO) -> int:
        path = self._require(layer_id)
        diff = os.path.join(path, "diff")
        try:
            layertar.apply_layer(stream, diff, layertar.OverlayWhiteouts())
            # Docker's overlay2 sizes a layer by walking it after applying,
            # which counts symlinks too; image sizes must agree with Docker's.
            return layertar.directory_size(diff)
        except BaseException:
            self.remove(layer_id)
            raise

    def _mounted(self, merged: str) -> bool:
        # A mount's root has another device than its parent: two stats,
        # where mountinfo grows with every running container (and holds
        # each one's long lowerdir list).  mountinfo only when a stat fails
        # other than for a missing directory (a broken mount, say).
        try:
            inside, parent = os.lstat(merged), os.lstat(os.path.dirname(merged))
        except FileNotFoundError:
            return False
        except OSError:
            real = os.path.join(self._real_home, os.path.relpath(merged, self.home))
            return any(point == real for point, _ in mountinfo())
        return inside.st_dev != parent.st_dev

    def mount(self, layer_id: str) -> str:
        path = self._require(layer_id)
        with self._lock:
            count = self._refs.get(layer_id, 0)
            lowers = self._lowers(layer_id)
            target = os.path.join(path, "merged") if lowers else os.path.join(path, "diff")
            if count == 0 and lowers and not self._mounted(target):
                self._do_mount(layer_id, lowers)
            # A mount left by a previous daemon is adopted as ours.
            self._refs[layer_id] = count + 1
            return target

    def _do_mount(self, layer_id: str, lowers: list[str]) -> None:
        path = self._dir(layer_id)
        merged = os.path.join(path, "merged")
        os.makedirs(merged, mode=0o700, exist_ok=True)
        options = (f"{self._options}lowerdir="
                   + ":".join(os.path.join(self.home, low) for low in lowers)
                   + f",upperdir={path}/diff,workdir={path}/work")
        if len(options) < os.sysconf("SC_PAGESIZE"):
            _mount_overlay(self._libc, merged, options)
            return
        # Too long for one page: mount(8) from inside home, with relative
        # paths (the daemon itself never changes directory).
        options = (f"{self._options}lowerdir={':'.join(lowers)},"
                   f"upperdir={layer_id}/diff,workdir={layer_id}/work")
        if len(options) >= os.sysconf("SC_PAGESIZE"):
            raise SystemError_(f"cannot mount layer {layer_id}: too many lower layers")
        result = subprocess.run(
            ["mount", "-n", "-t", "overlay", "overlay", "-o", options, f"{layer_id}/merged"],
            cwd=self.home, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemError_(
                f"error mounting layer {layer_id}: {result.stderr.strip() or result.returncode}")

    def unmount(self, layer_id: str) -> None:
        path = self._dir(layer_id)
        with self._lock:
            count = self._refs.get(layer_id, 0)
            if count > 1:
                self._refs[layer_id] = count - 1
                return
            self._refs.pop(layer_id, None)
            merged = os.path.join(path, "merged")
            if os.path.isdir(path) and self._lowers(layer_id) and self._mounted(merged):
                syscalls.umount(merged)

    def is_mounted(self, layer_id: str) -> bool:
        path = self._dir(layer_id)
        with self._lock:
            if self._refs.get(layer_id, 0) > 0:
                return True
            return os.path.isdir(path) and self._mounted(os.path.join(path, "merged"))

    def changes(self, layer_id: str) -> list[tuple[str, int]]:
        path = self._require(layer_id)
        return overlay_changes(self._lower_dirs(layer_id), os.path.join(path, "diff"))

    def diff(self, layer_id: str, out: BinaryIO) -> None:
        path = self._require(layer_id)
        layertar.write_upper_tar(os.path.join(path, "diff"), out)

    def size(self, layer_id: str) -> int:
        path = self._require(layer_id)
        return layertar.directory_size(os.path.join(path, "diff"))

    def metadata(self, layer_id: str) -> dict:
        self._require(layer_id)
        real = os.path.join(self._real_home, layer_id)
        data = {
            "MergedDir": f"{real}/merged",
            "UpperDir": f"{real}/diff",
            "WorkDir": f"{real}/work",
        }
        lowers = self._lower_dirs(layer_id)
        if lowers:
            data["LowerDir"] = ":".join(lowers)
        return data

    def status(self) -> list[list[str]]:
        return [
            ["Backing Filesystem", backing_fs(self.home)],
            ["Supports d_type", "true"],
            ["Using metacopy", "false"],
            ["Native Overlay Diff", "true"],
            ["userxattr", "false"],
        ]

    def cleanup(self) -> None:
        with self._lock:
            self._refs.clear()
            prefix = self._real_home + "/"
            # Innermost first, in case anything was mounted on top of a merged dir.
            for point, kind in reversed(mountinfo()):
                if point.startswith(prefix) and (point.endswith("/merged") or
                                                 "/.probe-" in point):
                    syscalls.umount(point)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, layertar.OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class _LowerView:
    """What the read-only layers below an upper directory show, as overlay
    would merge them (whiteouts and opaque directories honoured)."""

    def __init__(self, lowers: list[str]) -> None:
        self.lowers = lowers
        self._blocks: dict[tuple[int, str], bool] = {}

    def _block(self, index: int, rel: str) -> bool:
        """Whether ``rel`` in layer ``index`` hides what is below it in the
        lower layers (an opaque directory, a whiteout, any non-directory)."""
        key = (index, rel)
        if key not in self._blocks:
            path = os.path.join(self.lowers[index], rel)
            try:
                st = os.lstat(path)
                self._blocks[key] = not stat.S_ISDIR(st.st_mode) or _opaque(path)
            except (FileNotFoundError, NotADirectoryError):
                self._blocks[key] = False
        return self._blocks[key]

    def _blocked(self, index: int, rel: str) -> bool:
        head = os.path.dirname(rel)
        while head:
            if self._block(index, head):
                return True
            head = os.path.dirname(head)
        return False

    def lstat(self, rel: str) -> Optional[os.stat_result]:
        for index, lower in enumerate(self.lowers):
            try:
                st = os.lstat(os.path.join(lower, rel))
            except (FileNotFoundError, NotADirectoryError):
                st = None
            if st is not None:
                return None if _is_whiteout(st) else st
            if self._blocked(index, rel):
                return None
        return None

    def listdir(self, rel: str) -> list[str]:
        names: dict[str, bool] = {}
        for index, lower in enumerate(self.lowers):
            directory = os.path.join(lower, rel)
            if os.path.isdir(directory) and not os.path.islink(directory):
                with os.scandir(directory) as it:
                    for entry in it:
                        if entry.name not in names:
                            names[entry.name] = not _is_whiteout(
                                entry.stat(follow_symlinks=False))
            if self._block(index, rel) or self._blocked(index, rel):
                break
        return sorted(name for name, visible in names.items() if visible)


def overlay_changes(lowers: list[str], upper: str) -> list[tuple[str, int]]:
    """The changes an upper directory makes to its lower layers.

    Like Docker's ``OverlayChanges``, with two refinements so overlay2 and
    vfs report the same thing: a path whited out in a middle layer and
    created again counts as added, and an opaque directory that replaced an
    existing one is "modified" with its hidden entries "deleted".

    :param lowers: the lower diff directories, nearest first.
    :return: sorted ``(path, kind)``, paths absolute.
    """
    view = _LowerView(lowers)
    changes: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in sorted(dirnames + filenames):
            rel = os.path.join(rel_dir, name)
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if _is_whiteout(st):
                changes["/" + rel] = layertar.CHANGE_DELETE
                continue
            below = view.lstat(rel)
            if below is None:
                changes["/" + rel] = layertar.CHANGE_ADD
                continue
            if stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(below.st_mode):
                if _opaque(full):
                    changes["/" + rel] = layertar.CHANGE_MODIFY
                    present = set(os.listdir(full))
                    for hidden in view.listdir(rel):
                        if hidden not in present:
                            changes["/" + os.path.join(rel, hidden)] = layertar.CHANGE_DELETE
                elif (st.st_mode != below.st_mode or st.st_uid != below.st_uid
                      or st.st_gid != below.st_gid):
                    changes["/" + rel] = layertar.CHANGE_MODIFY
                continue
            changes["/" + rel] = layertar.CHANGE_MODIFY
    # Parents of changes are modified (they must be in a layer made from
    # these changes to keep their metadata).
    for path in list(changes):
        head = os.path.dirname(path)
        while head != "/" and head not in changes:
            changes[head] = layertar.CHANGE_MODIFY
            head = os.path.dirname(head)
    return sorted(changes.items())
