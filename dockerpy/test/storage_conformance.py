# -*- test-case-name: dockerpy.test.test_storage_vfs,dockerpy.test.test_storage_overlay2 -*-
"""One test suite every `IStorageDriver` must pass (Flocker's verified fake).

``make_storage_driver_tests(factory)`` returns a TestCase class; ``factory``
takes the running test case and returns a driver whose home is under the
test's temporary directory, with cleanups registered.  The tests run as
root (device nodes, ownership, overlay mounts).
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import stat
import tarfile
from typing import Callable, Optional

from twisted.trial.unittest import TestCase

from dockerpy.errors import Conflict, InvalidParameter, NotFound
from dockerpy.interfaces import IStorageDriver

MODIFY, ADD, DELETE = 0, 1, 2
MTIME = 1_600_000_000


def entry(name: str, kind: str = "f", data: bytes = b"", mode: Optional[int] = None,
          uid: int = 0, gid: int = 0, link: str = "", mtime: int = MTIME,
          xattrs: Optional[dict[str, bytes]] = None, dev: tuple[int, int] = (0, 0)) -> dict:
    """Describe one tar member: kind is f(ile), d(ir), s(ymlink), h(ardlink),
    c(har device), p (fifo)."""
    return dict(name=name, kind=kind, data=data, mode=mode, uid=uid, gid=gid, link=link,
                mtime=mtime, xattrs=xattrs or {}, dev=dev)


_TYPES = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "s": tarfile.SYMTYPE,
          "h": tarfile.LNKTYPE, "c": tarfile.CHRTYPE, "p": tarfile.FIFOTYPE}


def make_tar(entries: list[dict]) -> io.BytesIO:
    """:return: an uncompressed PAX tar of ``entries``, positioned at 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e["name"])
            info.type = _TYPES[e["kind"]]
            info.mode = e["mode"] if e["mode"] is not None else (
                0o755 if e["kind"] == "d" else 0o644)
            info.uid, info.gid, info.mtime = e["uid"], e["gid"], e["mtime"]
            info.linkname = e["link"]
            info.devmajor, info.devminor = e["dev"]
            for key, value in e["xattrs"].items():
                info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
            if e["kind"] == "f":
                info.size = len(e["data"])
                tar.addfile(info, io.BytesIO(e["data"]))
            else:
                tar.addfile(info)
    buf.seek(0)
    return buf


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar.getmembers()]


def snapshot(root: str) -> dict[str, tuple]:
    """Everything observable about a tree except directory times."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            fmt = stat.S_IFMT(st.st_mode)
            if fmt == stat.S_IFREG:
                with open(path, "rb") as f:
                    extra = f.read()
            elif fmt == stat.S_IFLNK:
                extra = os.readlink(path)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                extra = None
            xattrs = {}
            if fmt in (stat.S_IFREG, stat.S_IFDIR):
                xattrs = {k: os.getxattr(path, k) for k in os.listxattr(path)
                          if k.startswith("user.")}
            mtime = None if fmt == stat.S_IFDIR else int(st.st_mtime)
            out["/" + os.path.relpath(path, root)] = (
                fmt, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, extra, mtime,
                tuple(sorted(xattrs.items())))
    return out


LAYER1 = [
    entry("etc/", "d", mtime=1_000_000),
    entry("etc/passwd", data=b"root:x:0:0"),
    entry("etc/shadow", data=b"secret", mode=0o600),
    entry("etc/hosts-link", "h", link="etc/passwd"),
    entry("bin/", "d"),
    entry("bin/su", data=b"su", mode=0o4755),
    entry("bin/sh", "s", link="/bin/busybox"),
    entry("home/user/", "d", mode=0o700, uid=1000, gid=1001),
    entry("home/user/.profile", data=b"PS1=$", uid=1000, gid=1001),
    entry("dev/null", "c", mode=0o666, dev=(1, 3)),
    entry("run/fifo", "p", mode=0o600),
    entry("opt/app/", "d"),
    entry("opt/app/old1", data=b"1"),
    entry("opt/app/sub/old2", data=b"2"),
    entry("var/cache/", "d"),
    entry("var/cache/junk", data=b"junk"),
    entry("data/with-xattr", data=b"x", xattrs={"user.comment": b"hello"}),
    entry("usr/lib/libx.so", data=b"ELF"),
    entry("usr/lib/libx.so.1", "s", link="libx.so"),
]
LAYER2 = [
    entry("etc/.wh.shadow"),
    entry("var/.wh.cache"),
    entry("opt/app/.wh..wh..opq"),
    entry("opt/app/new", data=b"new"),
    entry("etc/passwd", data=b"root:x:0:0:changed"),
    entry("bin/sh", data=b"real sh", mode=0o755),
]
LAYER3 = [
    entry("var/cache/", "d"),
    entry("var/cache/fresh", data=b"fresh"),
    entry("opt/app/sub/", "d"),
    entry("opt/app/sub/x", data=b"x"),
    entry("etc/shadow", data=b"new secret", mode=0o640, gid=42),
]
MERGED = {
    "/bin": (stat.S_IFDIR, 0o755),
    "/bin/su": (stat.S_IFREG, 0o4755, b"su"),
    "/bin/sh": (stat.S_IFREG, 0o755, b"real sh"),
    "/data": (stat.S_IFDIR, 0o755),
    "/data/with-xattr": (stat.S_IFREG, 0o644, b"x"),
    "/dev": (stat.S_IFDIR, 0o755),
    "/dev/null": (stat.S_IFCHR, 0o666, (1, 3)),
    "/etc": (stat.S_IFDIR, 0o755),
    "/etc/passwd": (stat.S_IFREG, 0o644, b"root:x:0:0:changed"),
    "/etc/hosts-link": (stat.S_IFREG, 0o644, b"root:x:0:0"),
    "/etc/shadow": (stat.S_IFREG, 0o640, b"new secret"),
    "/home": (stat.S_IFDIR, 0o755),
    "/home/user": (stat.S_IFDIR, 0o700),
    "/home/user/.profile": (stat.S_IFREG, 0o644, b"PS1=$"),
    "/opt": (stat.S_IFDIR, 0o755),
    "/opt/app": (stat.S_IFDIR, 0o755),
    "/opt/app/new": (stat.S_IFREG, 0o644, b"new"),
    "/opt/app/sub": (stat.S_IFDIR, 0o755),
    "/opt/app/sub/x": (stat.S_IFREG, 0o644, b"x"),
    "/run": (stat.S_IFDIR, 0o755),
    "/run/fifo": (stat.S_IFIFO, 0o600),
    "/usr": (stat.S_IFDIR, 0o755),
    "/usr/lib": (stat.S_IFDIR, 0o755),
    "/usr/lib/libx.so": (stat.S_IFREG, 0o644, b"ELF"),
    "/usr/lib/libx.so.1": (stat.S_IFLNK, 0o777, "libx.so"),
    "/var": (stat.S_IFDIR, 0o755),
    "/var/cache": (stat.S_IFDIR, 0o755),
    "/var/cache/fresh": (stat.S_IFREG, 0o644, b"fresh"),
}


def make_storage_driver_tests(factory: Callable[[TestCase], IStorageDriver]) -> type:
    """:return: a TestCase class testing the drivers ``factory`` makes."""

    class StorageDriverTests(TestCase):

        def setUp(self) -> None:
            self.driver = factory(self)
            self.outside = os.path.abspath(self.mktemp())
            os.makedirs(self.outside)
            self.addCleanup(shutil.rmtree, self.outside, True)

        # -- helpers ------------------------------------------------------

        def mount(self, layer_id: str) -> str:
            root = self.driver.mount(layer_id)
            self.addCleanup(self.driver.unmount, layer_id)
            return root

        def image(self) -> str:
            """Three image layers; :return: the top one's id."""
            for layer, parent, entries in (("l1", None, LAYER1), ("l2", "l1", LAYER2),
                                           ("l3", "l2", LAYER3)):
                self.driver.create(layer, parent)
                self.driver.apply_diff(layer, make_tar(entries))
            return "l3"

        def assert_nothing_outside(self, name: str) -> None:
            """No file called ``name`` exists outside the driver's layers."""
            for top in (self.outside, "/", "/etc", "/tmp"):
                self.assertFalse(os.path.lexists(os.path.join(top, name)), top)
            self.assertEqual(os.listdir(self.outside), [])

        def assert_rejected(self, entries: list[dict], message: str) -> None:
            self.driver.create("bad", None)
            error = self.assertRaises(InvalidParameter, self.driver.apply_diff, "bad",
                                      make_tar(entries))
            self.assertIn(message, error.message)
            self.assertFalse(self.driver.exists("bad"))

        # -- lifecycle ----------------------------------------------------

        def test_interface(self) -> None:
            self.assertTrue(IStorageDriver.providedBy(self.driver))
            self.assertIsInstance(self.driver.status(), list)

        def test_create_exists_remove(self) -> None:
            self.assertFalse(self.driver.exists("a"))
            self.driver.create("a", None)
            self.driver.create("b", "a")
            self.assertTrue(self.driver.exists("a"))
            self.assertTrue(self.driver.exists("b"))
            self.driver.remove("b")
            self.assertFalse(self.driver.exists("b"))
            self.assertTrue(self.driver.exists("a"))
            self.driver.remove("b")

        def test_create_existing_is_conflict(self) -> None:
            self.driver.create("a", None)
            self.assertRaises(Conflict, self.driver.create, "a", None)

        def test_create_on_missing_parent_is_not_found(self) -> None:
            self.assertRaises(NotFound, self.driver.create, "a", "nope")
            self.assertFalse(self.driver.exists("a"))

        def test_invalid_layer_id_is_refused(self) -> None:
            self.assertRaises(InvalidParameter, self.driver.create, "../x", None)

        def test_new_layer_is_empty(self) -> None:
            self.driver.create("a", None)
            self.assertEqual(os.listdir(self.mount("a")), [])
            self.assertEqual(self.driver.changes("a"), [])

        # -- applying layers ----------------------------------------------

        def test_apply_diff_returns_content_bytes(self) -> None:
            self.driver.create("a", None)
            size = self.driver.apply_diff("a", make_tar([
                entry("d/", "d"), entry("d/f", data=b"12345"), entry("g", data=b"678"),
                entry("h", "h", link="g")]))
            self.assertEqual(size, 8)

        def test_three_layers_merge(self) -> None:
            """Files, dirs, symlinks, hard links, devices, fifos, whiteouts and
            opaque directories across three layers give the expected view."""
            root = self.mount(self.image())
            view = snapshot(root)
            self.assertEqual(sorted(view), sorted(MERGED))
            for path, expected in MERGED.items():
                fmt, mode, uid, gid, extra, mtime, xattrs = view[path]
                self.assertEqual((fmt, mode), expected[:2], path)
                if len(expected) > 2:
                    self.assertEqual(extra, expected[2], path)
            self.assertEqual(view["/home/user"][2:4], (1000, 1001))
            self.assertEqual(view["/home/user/.profile"][2:4], (1000, 1001))
            self.assertEqual(view["/etc/shadow"][2:4], (0, 42))
            self.assertEqual(view["/data/with-xattr"][6], (("user.comment", b"hello"),))
            self.assertEqual(view["/usr/lib/libx.so"][5], MTIME)

        def test_empty_stream_is_an_empty_layer(self) -> None:
            self.driver.create("a", None)
            self.assertEqual(self.driver.apply_diff("a", io.BytesIO(b"")), 0)
            self.assertEqual(os.listdir(self.mount("a")), [])

        def test_stream_is_read_to_its_end(self) -> None:
            """Padding after the end-of-archive marker is consumed too (the
            caller may be hashing the stream)."""
            stream = io.BytesIO(make_tar([entry("f", data=b"f")]).getvalue() + b"\0" * 30000)
            self.driver.create("a", None)
            self.driver.apply_diff("a", stream)
            self.assertEqual(stream.read(), b"")

        def test_hard_links_share_an_inode(self) -> None:
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar(LAYER1))
            root = self.mount("a")
            one = os.lstat(os.path.join(root, "etc/passwd"))
            two = os.lstat(os.path.join(root, "etc/hosts-link"))
            self.assertEqual((one.st_ino, one.st_nlink), (two.st_ino, 2))

        def test_directory_times_survive_children(self) -> None:
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar([
                entry("d/", "d", mtime=12345), entry("d/e/", "d", mtime=23456),
                entry("d/e/f", data=b"f"), entry("d/g", data=b"g")]))
            root = self.mount("a")
            self.assertEqual(os.lstat(os.path.join(root, "d")).st_mtime, 12345)
            self.assertEqual(os.lstat(os.path.join(root, "d/e")).st_mtime, 23456)

        def test_missing_parents_are_created(self) -> None:
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar([entry("x/y/z", data=b"z")]))
            root = self.mount("a")
            self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(root, "x/y")).st_mode), 0o755)
            with open(os.path.join(root, "x/y/z"), "rb") as f:
                self.assertEqual(f.read(), b"z")

        def test_setuid_survives_ownership(self) -> None:
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar([
                entry("s", data=b"s", mode=0o6755, uid=1, gid=2)]))
            st = os.lstat(os.path.join(self.mount("a"), "s"))
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (0o6755, 1, 2))

        def test_replacing_entries(self) -> None:
            """A later entry replaces an earlier one of another kind; a
            directory entry over a directory merges."""
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar([
                entry("d/", "d"), entry("d/keep", data=b"k"), entry("d/", "d", mode=0o700),
                entry("f", data=b"file"), entry("f/", "d"), entry("s", "s", link="/etc"),
                entry("s", data=b"now a file")]))
            root = self.mount("a")
            self.assertEqual(os.listdir(os.path.join(root, "d")), ["keep"])
            self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(root, "d")).st_mode), 0o700)
            self.assertTrue(stat.S_ISDIR(os.lstat(os.path.join(root, "f")).st_mode))
            self.assertTrue(stat.S_ISREG(os.lstat(os.path.join(root, "s")).st_mode))

        # -- safety ---------------------------------------------------------

        def test_rejects_parent_traversal(self) -> None:
            name = "escaped-" + secrets.token_hex(4)
            self.assert_rejected([entry("ok", data=b"1"), entry("../" + name, data=b"x")],
                                 f'"../{name}" is outside of "/"')
            self.assert_nothing_outside(name)

        def test_rejects_traversal_after_cleaning(self) -> None:
            name = "escaped-" + secrets.token_hex(4)
            self.assert_rejected([entry(f"a/../../../{name}", data=b"x")], "is outside of")
            self.assert_nothing_outside(name)

        def test_absolute_names_stay_inside(self) -> None:
            name = "abs-" + secrets.token_hex(4)
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar([
                entry(f"/etc/{name}", data=b"1"), entry(f"/../../{name}", data=b"2"),
                entry(os.path.join(self.outside, name), data=b"3")]))
            self.assert_nothing_outside(name)
            root = self.mount("a")
            self.assertTrue(os.path.isfile(os.path.join(root, "etc", name)))
            self.assertTrue(os.path.isfile(os.path.join(root, name)))
            self.assertTrue(os.path.isfile(root + os.path.join(self.outside, name)))

        def test_rejects_hardlink_outside(self) -> None:
            self.assert_rejected([entry("h", "h", link="../../../../../../etc/passwd")],
                                 "invalid hardlink")
            self.assert_rejected([entry("h", "h", link="/../../../../../etc/passwd")],
                                 "invalid hardlink")
            self.assertEqual(os.lstat("/etc/passwd").st_nlink, 1)

        def test_rejects_hardlink_through_symlink_to_host(self) -> None:
            """A hard link whose target path crosses a symlink to ``/`` is
            looked up inside the layer, never on the host."""
            self.assert_rejected([entry("a", "s", link="/"),
                                  entry("h", "h", link="a/etc/passwd")], "invalid hardlink")
            self.assertEqual(os.lstat("/etc/passwd").st_nlink, 1)

        def test_no_write_through_symlink_to_host(self) -> None:
            """``a -> /`` then ``a/etc/evil``: the file lands in the layer."""
            name = "evil-" + secrets.token_hex(4)
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar([
                entry("a", "s", link="/"), entry(f"a/etc/{name}", data=b"pwned"),
                entry("b", "s", link=self.outside), entry(f"b/{name}", data=b"pwned"),
                entry("c", "s", link="../../../../../../.."),
                entry(f"c/{name}", data=b"pwned")]))
            self.assert_nothing_outside(name)
            root = self.mount("a")
            self.assertEqual(os.readlink(os.path.join(root, "a")), "/")
            self.assertTrue(os.path.isfile(os.path.join(root, "etc", name)))
            self.assertTrue(os.path.isfile(root + os.path.join(self.outside, name)))
            self.assertTrue(os.path.isfile(os.path.join(root, name)))

        def test_no_write_over_symlink_to_host(self) -> None:
            """A symlink replaced by a file is replaced, never written through."""
            victim = os.path.join(self.outside, "victim")
            with open(victim, "wb") as f:
                f.write(b"intact")
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar([
                entry("v", "s", link=victim), entry("v", data=b"pwned")]))
            with open(victim, "rb") as f:
                self.assertEqual(f.read(), b"intact")
            os.unlink(victim)

        def test_failed_apply_leaves_no_layer(self) -> None:
            self.driver.create("a", None)
            data = make_tar([entry("f", data=b"x" * 5000)]).getvalue()
            self.assertRaises(Exception, self.driver.apply_diff, "a", io.BytesIO(data[:1500]))
            self.assertFalse(self.driver.exists("a"))

        def test_failed_apply_on_missing_hardlink_target(self) -> None:
            self.assert_rejected([entry("h", "h", link="nowhere")], "invalid hardlink")

        # -- mounts -----------------------------------------------------------

        def test_mount_is_reference_counted(self) -> None:
            self.driver.create("a", None)
            self.driver.apply_diff("a", make_tar([entry("f", data=b"f")]))
            self.driver.create("c", "a")
            first = self.driver.mount("c")
            second = self.driver.mount("c")
            self.assertEqual(first, second)
            self.driver.unmount("c")
            self.assertTrue(self.driver.is_mounted("c"))
            self.assertTrue(os.path.isfile(os.path.join(first, "f")))
            self.driver.unmount("c")
            self.assertFalse(self.driver.is_mounted("c"))

        def test_layer_without_parent_mounts_writable(self) -> None:
            """A container of an image with no layers still gets a root."""
            self.driver.create("c", None)
            root = self.mount("c")
            self.assertTrue(self.driver.is_mounted("c"))
            with open(os.path.join(root, "hello"), "w") as f:
                f.write("hi")
            self.assertEqual(self.driver.changes("c"), [("/hello", ADD)])

        def test_remove_mounted_layer(self) -> None:
            self.driver.create("a", None)
            self.driver.create("c", "a")
            self.driver.mount("c")
            self.driver.remove("c")
            self.assertFalse(self.driver.exists("c"))
            self.driver.cleanup()

        def test_remove_later_takes_the_layer_at_once_and_hands_over_its_files(self) -> None:
            self.driver.create("a", None)
            self.driver.create("c", "a")
            root = self.driver.mount("c")
            with open(os.path.join(root, "written"), "wb") as f:
                f.write(b"x")
            later: list[str] = []
            self.driver.remove("c", later=later)
            self.assertFalse(self.driver.exists("c"))
            self.assertEqual(len(later), 1)
            self.assertTrue(os.path.isdir(later[0]))
            # The layer's name is free again at once.
            self.driver.create("c", "a")
            shutil.rmtree(later[0])
            self.driver.remove("c")
            self.driver.cleanup()

        # -- changes and diffs ----------------------------------------------

        def container(self) -> tuple[str, str]:
            """A container layer on `image` with writes; :return: (id, root)."""
            self.driver.create("c", self.image())
            root = self.mount("c")
            with open(os.path.join(root, "etc/newfile"), "w") as f:
                f.write("new")
            with open(os.path.join(root, "etc/passwd"), "a") as f:
                f.write(":more")
            os.unlink(os.path.join(root, "etc/shadow"))
            shutil.rmtree(os.path.join(root, "usr/lib"))
            os.makedirs(os.path.join(root, "srv/www"))
            with open(os.path.join(root, "srv/www/index.html"), "w") as f:
                f.write("<html>")
            os.chmod(os.path.join(root, "home/user"), 0o750)
            shutil.rmtree(os.path.join(root, "opt/app"))
            os.mkdir(os.path.join(root, "opt/app"), 0o755)
            with open(os.path.join(root, "opt/app/again"), "w") as f:
                f.write("again")
            os.symlink("/etc/newfile", os.path.join(root, "link"))
            return "c", root

        def test_changes(self) -> None:
            layer, _ = self.container()
            self.assertEqual(self.driver.changes(layer), [
                ("/etc", MODIFY), ("/etc/newfile", ADD), ("/etc/passwd", MODIFY),
                ("/etc/shadow", DELETE), ("/home", MODIFY), ("/home/user", MODIFY),
                ("/link", ADD), ("/opt", MODIFY), ("/opt/app", MODIFY),
                ("/opt/app/again", ADD), ("/opt/app/new", DELETE), ("/opt/app/sub", DELETE),
                ("/srv", ADD), ("/srv/www", ADD), ("/srv/www/index.html", ADD),
                ("/usr", MODIFY), ("/usr/lib", DELETE)])

        def test_image_layer_changes(self) -> None:
            self.image()
            self.assertEqual(self.driver.changes("l2"), [
                ("/bin", MODIFY), ("/bin/sh", MODIFY), ("/etc", MODIFY),
                ("/etc/passwd", MODIFY), ("/etc/shadow", DELETE), ("/opt", MODIFY),
                ("/opt/app", MODIFY), ("/opt/app/new", ADD), ("/opt/app/old1", DELETE),
                ("/opt/app/sub", DELETE), ("/var", MODIFY), ("/var/cache", DELETE)])

        def test_diff_has_whiteouts(self) -> None:
            layer, _ = self.container()
            out = io.BytesIO()
            self.driver.diff(layer, out)
            names = tar_names(out.getvalue())
            for name in ("etc/.wh.shadow", "usr/.wh.lib", "etc/newfile", "srv/www/index.html",
                         "link"):
                self.assertIn(name, names)
            self.assertNotIn("etc/passwd-", names)
            self.assertEqual(self.driver.size(layer),
                             len("new") + len("root:x:0:0:changed:more") + len("<html>")
                             + len("again") + len("/etc/newfile"))

        def test_diff_reapplied_reproduces_layer(self) -> None:
            layer, root = self.container()
            out = io.BytesIO()
            self.driver.diff(layer, out)
            out.seek(0)
            self.driver.create("copy", "l3")
            self.driver.apply_diff("copy", out)
            self.assertEqual(snapshot(self.mount("copy")), snapshot(root))
            self.assertEqual(self.driver.changes("copy"), self.driver.changes(layer))

        def test_diff_of_image_layer_reapplied(self) -> None:
            self.image()
            out = io.BytesIO()
            self.driver.diff("l2", out)
            out.seek(0)
            self.driver.create("l2b", "l1")
            self.driver.apply_diff("l2b", out)
            self.assertEqual(snapshot(self.mount("l2b")), snapshot(self.mount("l2")))

    return StorageDriverTests
