# -*- test-case-name: dockerpy.test.test_volumes -*-
"""The ``local`` volume driver.

Each volume is ``<root>/<name>/_data`` plus an atomic record
``<root>/<name>/volume.json`` (labels, driver options, creation time).
With the driver options ``type``/``device``/``o`` (as ``mount -t type -o o
device``) the volume is a mount, made when its first user mounts it and
undone when its last user leaves, as Docker's local driver does.

Blocking: call every method from the thread pool.  One lock guards the
mount counts, so threads can mount and unmount concurrently.
"""

from __future__ import annotations

import os
import re
import shutil
import threading

from zope.interface import implementer

from dockerpy import atomic, errors, syscalls
from dockerpy.interfaces import IVolumeDriver
from dockerpy.timeutil import rfc3339

VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_VALID_OPTIONS = ("type", "device", "o", "size")

# mount(2) flags for the ``o`` words that are flags, not file-system data.
_MS = {
    "ro": (1, True), "rw": (1, False), "nosuid": (2, True), "suid": (2, False),
    "nodev": (4, True), "dev": (4, False), "noexec": (8, True), "exec": (8, False),
    "sync": (16, True), "async": (16, False), "remount": (32, True),
    "mand": (64, True), "nomand": (64, False), "dirsync": (128, True),
    "noatime": (1024, True), "atime": (1024, False), "nodiratime": (2048, True),
    "diratime": (2048, False), "bind": (4096, True), "rbind": (4096 | 16384, True),
    "relatime": (1 << 21, True), "norelatime": (1 << 21, False),
    "strictatime": (1 << 24, True),
}
def parse_mount_options(o: str) -> tuple[int, str]:
    """``mount -o`` words -> (mount(2) flags, data string for the file system)."""
    flags, data = 0, []
    for word in (w for w in o.split(",") if w):
        if word in _MS:
            bit, on = _MS[word]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(word)
    return flags, ",".join(data)


# The mount calls live in dockerpy.syscalls (shared with the storage drivers).
sys_mount = syscalls.mount
sys_umount = syscalls.umount


def is_mountpoint(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == path:
                return True
    return False


def validate_name(name: str) -> None:
    """:raises errors.InvalidParameter: with Docker's message for a bad name."""
    if not VALID_NAME.match(name):
        raise errors.InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            f'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            f"directory, use absolute path")


def dir_size(path: str) -> int:
    """Bytes used by the files under ``path`` (hard links counted once)."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if not os.path.isdir(os.path.join(dirpath, name)) or os.path.islink(
                    os.path.join(dirpath, name)):
                total += st.st_size
    return total


@implementer(IVolumeDriver)
class LocalDriver:
    name = "local"
    scope = "local"

    def __init__(self, root: str, clock=None):
        """:param root: ``<data-root>/volumes``.
        :param clock: ``() -> seconds`` for creation times (default: time.time)."""
        import time

        self.root = root
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._users: dict[str, set[str]] = {}
        os.makedirs(root, mode=0o701, exist_ok=True)
        # Volumes hold users' trees of files: each in a block group of its own.
        syscalls.spread_subdirectories(root)

    # -- paths ---------------------------------------------------------

    def _dir(self, name: str) -> str:
        validate_name(name)
        return os.path.join(self.root, name)

    def _record_path(self, name: str) -> str:
        return os.path.join(self._dir(name), "volume.json")

    def data_path(self, name: str) -> str:
        return os.path.join(self._dir(name), "_data")

    # -- create, get, list, remove ----------------------------------------

    def create(self, name: str, options: dict | None, labels: dict | None) -> dict:
        validate_name(name)
        given_options, options = options, options or {}
        for key in options:
            if key not in _VALID_OPTIONS:
                raise errors.InvalidParameter(f'create {name}: invalid option key: "{key}"')
        if "type" in options or "device" in options:
            if not options.get("type") or not options.get("device"):
                raise errors.InvalidParameter(
                    f"create {name}: missing required option: "
                    f"\"{'type' if not options.get('type') else 'device'}\"")
        with self._lock:
            try:
                return self._read(name)
            except errors.NotFound:
                pass
            vdir = self._dir(name)
            os.makedirs(vdir, mode=0o701, exist_ok=True)
            try:
                os.makedirs(os.path.join(vdir, "_data"), mode=0o755, exist_ok=True)
                record = {"Name": name, "CreatedAt": rfc3339(int(self._clock())),
                          "Labels": labels, "Options": given_options, "Version": 1}
                atomic.write_json(os.path.join(vdir, "volume.json"), record, 0o600)
            except BaseException:
                shutil.rmtree(vdir, ignore_errors=True)
                raise
            return self._view(record)

    def _read(self, name: str) -> dict:
        try:
            record = atomic.read_json(self._record_path(name))
        except (OSError, ValueError):
            raise errors.NotFound(f"get {name}: no such volume") from None
        return self._view(record)

    def _view(self, record: dict) -> dict:
        name = record["Name"]
        return {"CreatedAt": record.get("CreatedAt", ""), "Driver": self.name,
                "Labels": record.get("Labels"), "Mountpoint": self.data_path(name),
                "Name": name, "Options": record.get("Options"), "Scope": self.scope}

    def get(self, name: str) -> dict:
        if not VALID_NAME.match(name):
            raise errors.NotFound(f"get {name}: no such volume")
        return self._read(name)

    def list(self) -> list[dict]:  # noqa: A003 - the interface's name
        out = []
        for name in sorted(os.listdir(self.root)):
            if VALID_NAME.match(name):
                try:
                    out.append(self._read(name))
                except errors.NotFound:
                    continue  # a creation that never completed
        return out

    def remove(self, name: str) -> None:
        self.get(name)
        with self._lock:
            if self._users.get(name):
                raise errors.Conflict(f"remove {name}: volume is in use")
            path = self.data_path(name)
            if is_mountpoint(path):
                sys_umount(path)
            vdir = self._dir(name)
            # The record goes first: a crash midway leaves no half volume listed.
            os.unlink(os.path.join(vdir, "volume.json"))
            shutil.rmtree(vdir, ignore_errors=True)

    # -- use ---------------------------------------------------------------

    def _options(self, name: str) -> dict:
        return self._read(name).get("Options") or {}

    def mount(self, name: str, ref: str) -> str:
        opts = self._options(name)
        path = self.data_path(name)
        with self._lock:
            users = self._users.setdefault(name, set())
            if not users and opts.get("type") and not is_mountpoint(path):
                try:
                    self._mount_backing(opts, path)
                except BaseException:
                    if not users:
                        del self._users[name]
                    raise
            users.add(ref)
        return path

    def _mount_backing(self, opts: dict, path: str) -> None:
        flags, data = parse_mount_options(opts.get("o", ""))
        fstype = opts["type"]
        device = opts["device"]
        if fstype == "none" or flags & 4096:
            if not os.path.exists(device):
                raise errors.InvalidParameter(
                    f"error while mounting volume '{path}': failed to mount local volume: "
                    f"mount {device}:{path}, flags: {hex(flags)}: no such file or directory")
            fstype = ""
            flags |= 4096
        try:
            sys_mount(device, path, fstype, flags, data)
        except OSError as e:
            raise errors.SystemError_(
                f"error while mounting volume '{path}': failed to mount local volume: "
                f"mount {device}:{path}, data: {data}: {os.strerror(e.errno or 0).lower()}"
            ) from None

    def unmount(self, name: str, ref: str) -> None:
        with self._lock:
            users = self._users.get(name)
            if not users or ref not in users:
                return
            users.discard(ref)
            if users:
                return
            del self._users[name]
            try:
                opts = self._options(name)
            except errors.NotFound:
                return
            path = self.data_path(name)
            if opts.get("type") and is_mountpoint(path):
                sys_umount(path)

    def size(self, name: str) -> int:
        return dir_size(self.data_path(name))

    def cleanup(self) -> None:
        with self._lock:
            self._users.clear()
            for name in os.listdir(self.root):
                if VALID_NAME.match(name):
                    path = os.path.join(self.root, name, "_data")
                    if is_mountpoint(path):
                        sys_umount(path)
