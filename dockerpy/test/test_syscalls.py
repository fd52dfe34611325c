# -*- test-case-name: dockerpy.test.test_syscalls -*-
"""`dockerpy.syscalls.spread_subdirectories`: the ext4 "top of a directory
hierarchy" flag that keeps new layers out of block groups full of recently
freed inodes."""

import fcntl
import os
import shutil
import struct
import tempfile

from twisted.trial.unittest import SkipTest, TestCase

from dockerpy import syscalls
from dockerpy.storage.vfs import VfsDriver
from dockerpy.volumes.local import LocalDriver


def _flags(path: str) -> int | None:
    """The inode flags of ``path``, or ``None`` where the file system has none."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return struct.unpack("I", fcntl.ioctl(fd, syscalls.FS_IOC_GETFLAGS, b"\0" * 4))[0]
    except OSError:
        return None
    finally:
        os.close(fd)


class SpreadSubdirectoriesTests(TestCase):

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.addCleanup(shutil.rmtree, self.dir, True)

    def _require_flag_support(self) -> None:
        probe = tempfile.mkdtemp(dir=self.dir)
        if not syscalls.spread_subdirectories(probe):
            raise SkipTest(f"the file system of {self.dir} has no top-directory flag")

    def test_sets_the_flag_and_keeps_the_others(self) -> None:
        self._require_flag_support()
        path = os.path.join(self.dir, "home")
        os.mkdir(path)
        before = _flags(path)
        self.assertTrue(syscalls.spread_subdirectories(path))
        self.assertEqual(_flags(path), before | syscalls.FS_TOPDIR_FL)
        # Idempotent, and not inherited: only the store's own directory is a top.
        self.assertTrue(syscalls.spread_subdirectories(path))
        os.mkdir(os.path.join(path, "layer"))
        self.assertFalse(_flags(os.path.join(path, "layer")) & syscalls.FS_TOPDIR_FL)

    def test_missing_directory_or_file_is_refused_quietly(self) -> None:
        self.assertFalse(syscalls.spread_subdirectories(os.path.join(self.dir, "missing")))
        regular = os.path.join(self.dir, "file")
        open(regular, "w").close()
        self.assertFalse(syscalls.spread_subdirectories(regular))

    def test_file_system_without_the_flag(self) -> None:
        if not os.path.isdir("/dev/shm"):
            raise SkipTest("no /dev/shm")
        shm = tempfile.mkdtemp(dir="/dev/shm")
        self.addCleanup(shutil.rmtree, shm, True)
        self.assertFalse(syscalls.spread_subdirectories(shm))  # tmpfs: no such flag

    def test_layer_and_volume_homes_are_tops(self) -> None:
        """vfs and the local volume driver mark their homes (overlay2's own
        tests check its home); each layer or volume lands in a quiet group."""
        self._require_flag_support()
        vfs = VfsDriver(os.path.join(self.dir, "vfs"))
        LocalDriver(os.path.join(self.dir, "volumes"))
        self.assertTrue(_flags(vfs._dirs) & syscalls.FS_TOPDIR_FL)
        self.assertTrue(_flags(os.path.join(self.dir, "volumes")) & syscalls.FS_TOPDIR_FL)
