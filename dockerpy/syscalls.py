# -*- test-case-name: dockerpy.test.test_storage_overlay2,dockerpy.test.test_volumes -*-
"""mount(2) and umount2(2) through ctypes, and the ext4 "top of a directory
hierarchy" flag, for the storage and volume drivers.

Blocking; callers run them in the thread pool (or at start-up).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

MNT_DETACH = 2

# linux/fs.h: FS_IOC_GETFLAGS/SETFLAGS (declared with ``long``, but the
# kernel reads and writes an int) and FS_TOPDIR_FL.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


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


def spread_subdirectories(path: str) -> bool:
    """Mark ``path`` as the top of a directory hierarchy (``chattr +T``), so
    that ext2/3/4 place each new subdirectory, and the files made in it, in a
    block group of its own (the Orlov allocator) instead of beside ``path``.

    Why a layer store wants that: ext4 without a journal never hands out an
    inode freed less than a minute ago (five while its inode table block is
    dirty), and to find a free one it checks those recently freed inodes one
    by one, for every new file.  A store that makes and removes trees of
    thousands of files in one block group then pays up to a millisecond per
    new file; spread out, new layers land in quiet groups (2,000 files:
    ~0.05 s instead of 0.3-1.9 s on this machine's disk).  Harmless with a
    journal, where the flag only spreads directories.

    :return: whether the flag is set; ``False`` on file systems without it
        (tmpfs, xfs, btrfs, ...), which are left alone.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = struct.unpack("I", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 4))[0]
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("I", flags | FS_TOPDIR_FL))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
