# -*- test-case-name: dockerpy.test.test_storage_overlay2,dockerpy.test.test_volumes -*-
"""mount(2) and umount2(2) through ctypes, for the storage and volume drivers.

Blocking; callers run them in the thread pool.
"""

from __future__ import annotations

import ctypes
import errno
import os

MNT_DETACH = 2


def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    if libc().mount(os.fsencode(source), os.fsencode(target),
                    os.fsencode(fstype) if fstype else None, ctypes.c_ulong(flags),
                    os.fsencode(data) if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def umount(target: str) -> None:
    """Unmount ``target``; a busy mount is detached lazily, a missing one is fine."""
    c = libc()
    if c.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):
        return  # not mounted
    if err == errno.EBUSY and c.umount2(os.fsencode(target), MNT_DETACH) == 0:
        return
    err = ctypes.get_errno()
    raise OSError(err, f"unmount {target}: {os.strerror(err)}")
