# -*- test-case-name: dockerpy.test.test_storage_vfs -*-
"""The vfs driver: the storage conformance suite plus vfs's own layout."""

import os
import shutil
import stat

from twisted.trial.unittest import TestCase

from dockerpy.storage import make_driver
from dockerpy.storage.vfs import VfsDriver, copy_tree
from dockerpy.test.storage_conformance import LAYER1, make_storage_driver_tests, make_tar


def vfs_driver(test: TestCase) -> VfsDriver:
    home = os.path.abspath(test.mktemp())
    driver = VfsDriver(home)
    test.addCleanup(shutil.rmtree, home, True)
    test.addCleanup(driver.cleanup)
    return driver


class VfsConformanceTests(make_storage_driver_tests(vfs_driver)):
    """`VfsDriver` passes the storage driver suite."""


class VfsTests(TestCase):

    def test_make_driver(self) -> None:
        root = os.path.abspath(self.mktemp())
        self.addCleanup(shutil.rmtree, root, True)
        driver = make_driver("vfs", root)
        self.assertEqual((driver.name, driver.home), ("vfs", os.path.join(root, "storage", "vfs")))
        self.assertEqual(driver.status(), [])

    def test_layer_is_a_full_copy(self) -> None:
        """A child layer holds its parent's files (hard links kept) without
        sharing them with the parent."""
        driver = vfs_driver(self)
        driver.create("a", None)
        driver.apply_diff("a", make_tar(LAYER1))
        driver.create("b", "a")
        a, b = driver.mount("a"), driver.mount("b")
        self.addCleanup(driver.unmount, "a")
        self.addCleanup(driver.unmount, "b")
        self.assertNotEqual(os.lstat(os.path.join(a, "etc/passwd")).st_ino,
                            os.lstat(os.path.join(b, "etc/passwd")).st_ino)
        self.assertEqual(os.lstat(os.path.join(b, "etc/passwd")).st_ino,
                         os.lstat(os.path.join(b, "etc/hosts-link")).st_ino)
        self.assertEqual(driver.changes("b"), [])
        self.assertEqual(driver.metadata("b"), {})

    def test_copy_tree_keeps_metadata(self) -> None:
        src = os.path.abspath(self.mktemp())
        dst = src + "-copy"
        self.addCleanup(shutil.rmtree, dst, True)
        self.addCleanup(shutil.rmtree, src, True)
        os.makedirs(os.path.join(src, "d"))
        with open(os.path.join(src, "d/f"), "w") as f:
            f.write("data")
        os.chown(os.path.join(src, "d/f"), 7, 8)
        os.chmod(os.path.join(src, "d/f"), 0o2750)
        os.setxattr(os.path.join(src, "d/f"), "user.k", b"v")
        os.mknod(os.path.join(src, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mkfifo(os.path.join(src, "fifo"))
        os.symlink("/nowhere", os.path.join(src, "s"))
        os.utime(os.path.join(src, "d"), (5, 5))
        copy_tree(src, dst)
        st = os.lstat(os.path.join(dst, "d/f"))
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (7, 8, 0o2750))
        self.assertEqual(os.getxattr(os.path.join(dst, "d/f"), "user.k"), b"v")
        self.assertEqual(os.lstat(os.path.join(dst, "null")).st_rdev, os.makedev(1, 3))
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(dst, "fifo")).st_mode))
        self.assertEqual(os.readlink(os.path.join(dst, "s")), "/nowhere")
        self.assertEqual(os.lstat(os.path.join(dst, "d")).st_mtime, 5)

    def test_crash_leftovers_are_swept(self) -> None:
        home = os.path.abspath(self.mktemp())
        self.addCleanup(shutil.rmtree, home, True)
        os.makedirs(os.path.join(home, "dir", ".tmp-x-1234"))
        VfsDriver(home)
        self.assertEqual(os.listdir(os.path.join(home, "dir")), [])
