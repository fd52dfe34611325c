# -*- test-case-name: dockerpy.test.test_storage_overlay2 -*-
"""The overlay2 driver: the storage conformance suite plus overlay specifics
(layout, whiteout representation, long lower chains, stale mounts)."""

import io
import os
import shutil
import stat
import tarfile

from twisted.trial.unittest import SkipTest, TestCase

from dockerpy import syscalls
from dockerpy.errors import InvalidParameter
from dockerpy.storage import make_driver
from dockerpy.storage.overlay2 import Overlay2Driver, mountinfo, supported
from dockerpy.test.storage_conformance import (
    entry, make_storage_driver_tests, make_tar, tar_names)


def _home(test: TestCase) -> str:
    home = os.path.abspath(test.mktemp())
    test.addCleanup(shutil.rmtree, home, True)
    if supported(home) is None:
        raise SkipTest(f"overlay cannot be mounted under {home} on this kernel")
    return home


def overlay_driver(test: TestCase, home: str = None) -> Overlay2Driver:
    driver = Overlay2Driver(home or _home(test))
    test.addCleanup(driver.cleanup)
    return driver


class Overlay2ConformanceTests(make_storage_driver_tests(overlay_driver)):
    """`Overlay2Driver` passes the storage driver suite."""


def _mounted_under(path: str) -> list[str]:
    real = os.path.realpath(path)
    return [point for point, _ in mountinfo() if point.startswith(real + "/")]


class Overlay2Tests(TestCase):

    def setUp(self) -> None:
        self.home = _home(self)
        self.driver = overlay_driver(self, self.home)

    def test_make_driver(self) -> None:
        driver = make_driver("overlay2", self.home + "-root")
        self.addCleanup(shutil.rmtree, self.home + "-root", True)
        self.assertEqual(driver.home, os.path.join(self.home + "-root", "storage", "overlay2"))
        self.assertIn(["Native Overlay Diff", "true"], driver.status())

    def test_home_is_a_top_directory(self) -> None:
        """Each layer directory in a block group of its own, where the file
        system has the flag (see syscalls.spread_subdirectories)."""
        from dockerpy.test.test_syscalls import _flags

        probe = self.home + "-probe"
        os.mkdir(probe)
        self.addCleanup(os.rmdir, probe)
        if not syscalls.spread_subdirectories(probe):
            raise SkipTest("the file system has no top-directory flag")
        self.assertTrue(_flags(self.home) & syscalls.FS_TOPDIR_FL)

    def test_unknown_driver(self) -> None:
        error = self.assertRaises(InvalidParameter, make_driver, "aufs", self.home)
        self.assertIn("driver not supported: aufs", error.message)

    def test_layout(self) -> None:
        """Docker's layout: diff, link, lower of short links, l/<short> -> ../<id>/diff."""
        self.driver.create("a", None)
        self.driver.create("b", "a")
        self.driver.create("c", "b")
        link = {}
        for layer in "abc":
            with open(os.path.join(self.home, layer, "link")) as f:
                link[layer] = f.read()
            self.assertEqual(len(link[layer]), 26)
            self.assertEqual(os.readlink(os.path.join(self.home, "l", link[layer])),
                             f"../{layer}/diff")
        self.assertFalse(os.path.exists(os.path.join(self.home, "a", "lower")))
        with open(os.path.join(self.home, "c", "lower")) as f:
            self.assertEqual(f.read(), f"l/{link['b']}:l/{link['a']}")
        real = os.path.realpath(self.home)
        self.assertEqual(self.driver.metadata("c"), {
            "LowerDir": f"{real}/b/diff:{real}/a/diff", "MergedDir": f"{real}/c/merged",
            "UpperDir": f"{real}/c/diff", "WorkDir": f"{real}/c/work"})
        self.driver.remove("b")
        self.assertFalse(os.path.lexists(os.path.join(self.home, "l", link["b"])))

    def test_whiteouts_become_overlay_whiteouts(self) -> None:
        self.driver.create("a", None)
        self.driver.apply_diff("a", make_tar([entry("d/", "d"), entry("d/.wh.gone"),
                                               entry("o/", "d"), entry("o/.wh..wh..opq")]))
        diff = os.path.join(self.home, "a", "diff")
        st = os.lstat(os.path.join(diff, "d/gone"))
        self.assertTrue(stat.S_ISCHR(st.st_mode))
        self.assertEqual(st.st_rdev, 0)
        self.assertEqual(os.getxattr(os.path.join(diff, "o"), "trusted.overlay.opaque"), b"y")
        self.assertFalse(os.path.lexists(os.path.join(diff, "o/.wh..wh..opq")))
        out = io.BytesIO()
        self.driver.diff("a", out)
        self.assertEqual(tar_names(out.getvalue()),
                         ["d", "d/.wh.gone", "o", "o/.wh..wh..opq"])
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            for member in tar:
                self.assertNotIn("SCHILY.xattr.trusted.overlay.opaque", member.pax_headers)

    def test_layer_tar_cannot_forge_overlay_xattrs(self) -> None:
        self.driver.create("a", None)
        self.driver.apply_diff("a", make_tar([
            entry("d/", "d", xattrs={"trusted.overlay.redirect": b"/etc"})]))
        self.assertNotIn("trusted.overlay.redirect",
                         os.listxattr(os.path.join(self.home, "a", "diff", "d")))

    def test_long_lower_chain_mounts(self) -> None:
        """More lower layers than absolute paths fit in one page: mounted
        through mount(8) with relative paths."""
        # Precondition: absolute lower paths would not fit in a page.
        self.assertGreater(60 * len(os.path.join(self.home, "l", "X" * 26)), 4096)
        parent = None
        for i in range(60):
            layer = f"layer{i}"
            self.driver.create(layer, parent)
            self.driver.apply_diff(layer, make_tar([entry(f"f{i}", data=str(i).encode())]))
            parent = layer
        self.driver.create("top", parent)
        root = self.driver.mount("top")
        self.addCleanup(self.driver.unmount, "top")
        self.assertEqual(len(os.listdir(root)), 60)
        with open(os.path.join(root, "f0")) as f:
            self.assertEqual(f.read(), "0")
        self.assertTrue(self.driver.is_mounted("top"))

    def test_unmount_removes_the_mount(self) -> None:
        self.driver.create("a", None)
        self.driver.create("c", "a")
        self.driver.mount("c")
        self.assertEqual(len(_mounted_under(self.home)), 1)
        self.driver.unmount("c")
        self.assertEqual(_mounted_under(self.home), [])

    def test_restarted_driver_cleans_stale_mounts(self) -> None:
        self.driver.create("a", None)
        self.driver.create("c", "a")
        self.driver.mount("c")
        again = overlay_driver(self, self.home)
        self.assertTrue(again.is_mounted("c"))
        again.cleanup()
        self.assertEqual(_mounted_under(self.home), [])
        self.assertFalse(again.is_mounted("c"))

    def test_restarted_driver_adopts_existing_mount(self) -> None:
        self.driver.create("a", None)
        self.driver.create("c", "a")
        first = self.driver.mount("c")
        again = overlay_driver(self, self.home)
        self.assertEqual(again.mount("c"), first)
        again.unmount("c")
        self.assertEqual(_mounted_under(self.home), [])
