# -*- test-case-name: dockerpy.test.test_archive -*-
"""``docker cp`` / ``docker export`` file access: paths resolved inside the
container root, Docker's stat JSON, tar shapes, and safe extraction."""

import io
import os
import shutil
import stat
import tarfile

from twisted.trial.unittest import TestCase

from dockerpy import archive
from dockerpy.errors import InvalidParameter, NotFound
from dockerpy.test.storage_conformance import entry, make_tar


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


class ArchiveTestCase(TestCase):

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.outside = os.path.abspath(self.mktemp())
        for path in (self.root, self.outside):
            os.makedirs(path)
            self.addCleanup(shutil.rmtree, path, True)
        self.make("etc/passwd", b"root:x:0:0")
        self.make("usr/bin/tool", b"#!/bin/sh", mode=0o4755)
        os.symlink("/usr/bin", os.path.join(self.root, "bin"))
        os.symlink("../../../../../../etc", os.path.join(self.root, "up"))
        os.symlink(self.outside, os.path.join(self.root, "escape"))
        os.symlink("loop", os.path.join(self.root, "loop"))

    def make(self, rel: str, data: bytes, mode: int = 0o644) -> str:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path


class ResolveTests(ArchiveTestCase):

    def test_plain_path(self) -> None:
        self.assertEqual(archive.resolve_in_root(self.root, "/etc/passwd"),
                         os.path.join(self.root, "etc/passwd"))

    def test_absolute_symlink_is_relative_to_root(self) -> None:
        self.assertEqual(archive.resolve_in_root(self.root, "/bin/tool"),
                         os.path.join(self.root, "usr/bin/tool"))

    def test_dotdot_never_leaves_root(self) -> None:
        self.assertEqual(archive.resolve_in_root(self.root, "/up/passwd"),
                         os.path.join(self.root, "etc/passwd"))
        self.assertEqual(archive.resolve_in_root(self.root, "../../etc"),
                         os.path.join(self.root, "etc"))

    def test_symlink_to_host_path_stays_inside(self) -> None:
        self.assertEqual(archive.resolve_in_root(self.root, "/escape/x"),
                         self.root + self.outside + "/x")

    def test_missing_components_kept(self) -> None:
        self.assertEqual(archive.resolve_in_root(self.root, "/bin/nope/more"),
                         os.path.join(self.root, "usr/bin/nope/more"))

    def test_loop_is_an_error(self) -> None:
        self.assertRaises(OSError, archive.resolve_in_root, self.root, "/loop/x")


class StatTests(ArchiveTestCase):

    def test_file(self) -> None:
        os.utime(os.path.join(self.root, "etc/passwd"), ns=(0, 1_700_000_000_250_000_000))
        self.assertEqual(archive.stat_path(self.root, "/etc/passwd"), {
            "name": "passwd", "size": 10, "mode": 0o644,
            "mtime": "2023-11-14T22:13:20.25Z", "linkTarget": ""})

    def test_setuid_and_dir_bits(self) -> None:
        self.assertEqual(archive.stat_path(self.root, "usr/bin/tool")["mode"],
                         archive.MODE_SETUID | 0o755)
        os.chmod(os.path.join(self.root, "usr"), 0o1777)
        self.assertEqual(archive.stat_path(self.root, "/usr")["mode"],
                         archive.MODE_DIR | archive.MODE_STICKY | 0o777)

    def test_symlink_reports_resolved_target(self) -> None:
        info = archive.stat_path(self.root, "/bin")
        self.assertEqual((info["name"], info["linkTarget"]), ("bin", "/usr/bin"))
        self.assertEqual(info["mode"] & archive.MODE_SYMLINK, archive.MODE_SYMLINK)

    def test_trailing_slash_follows_symlink(self) -> None:
        info = archive.stat_path(self.root, "/bin/")
        self.assertEqual((info["name"], info["linkTarget"]), ("bin", ""))
        self.assertTrue(info["mode"] & archive.MODE_DIR)

    def test_root(self) -> None:
        self.assertEqual(archive.stat_path(self.root, "/")["name"], "/")

    def test_devices(self) -> None:
        self.assertEqual(archive.go_file_mode(stat.S_IFCHR | 0o666),
                         archive.MODE_DEVICE | archive.MODE_CHAR_DEVICE | 0o666)
        self.assertEqual(archive.go_file_mode(stat.S_IFIFO | 0o600),
                         archive.MODE_NAMED_PIPE | 0o600)

    def test_missing(self) -> None:
        error = self.assertRaises(NotFound, archive.stat_path, self.root, "/nope", "web")
        self.assertEqual(error.message, "Could not find the file /nope in container web")

    def test_rfc3339_without_fraction(self) -> None:
        self.assertEqual(archive.rfc3339(0), "1970-01-01T00:00:00Z")


class WritePathTarTests(ArchiveTestCase):

    def tar_of(self, path: str) -> dict[str, tarfile.TarInfo]:
        out = io.BytesIO()
        archive.write_path_tar(self.root, path, out)
        return _members(out.getvalue())

    def test_file(self) -> None:
        members = self.tar_of("/etc/passwd")
        self.assertEqual(list(members), ["passwd"])
        self.assertEqual(members["passwd"].size, 10)

    def test_directory_named_by_its_basename(self) -> None:
        self.assertEqual(sorted(self.tar_of("/usr")), ["usr", "usr/bin", "usr/bin/tool"])
        # The file-type bits too, as Docker's headers carry them.
        self.assertEqual(self.tar_of("/usr")["usr/bin/tool"].mode, stat.S_IFREG | 0o4755)
        self.assertEqual(self.tar_of("/usr")["usr/bin"].mode & 0o170000, stat.S_IFDIR)

    def test_symlink_itself(self) -> None:
        members = self.tar_of("/bin")
        self.assertEqual(list(members), ["bin"])
        self.assertEqual(members["bin"].linkname, "/usr/bin")

    def test_symlink_followed_keeps_requested_name(self) -> None:
        self.assertEqual(sorted(self.tar_of("/bin/")), ["bin", "bin/tool"])

    def test_symlink_to_host_is_not_read(self) -> None:
        with open(os.path.join(self.outside, "secret"), "w") as f:
            f.write("host secret")
        self.assertRaises(NotFound, self.tar_of, "/escape/secret")

    def test_root(self) -> None:
        out = io.BytesIO()
        archive.write_path_tar(self.root, "/", out)
        # Docker names the root "/" (tarfile strips the slash when reading).
        self.assertEqual(out.getvalue()[:2], b"/\0")
        self.assertIn("/etc/passwd", _members(out.getvalue()))


class ExtractTests(ArchiveTestCase):

    def test_extract_into_directory(self) -> None:
        archive.extract_into(self.root, "/etc", make_tar([
            entry("conf/", "d"), entry("conf/a", data=b"a", uid=5, gid=6)]))
        st = os.lstat(os.path.join(self.root, "etc/conf/a"))
        self.assertEqual((st.st_uid, st.st_gid), (5, 6))

    def test_hardlinks_relative_to_destination(self) -> None:
        archive.extract_into(self.root, "/etc", make_tar([
            entry("a", data=b"a"), entry("b", "h", link="a")]))
        self.assertEqual(os.lstat(os.path.join(self.root, "etc/a")).st_ino,
                         os.lstat(os.path.join(self.root, "etc/b")).st_ino)

    def test_chown_overrides_owner(self) -> None:
        archive.extract_into(self.root, "/etc", make_tar([entry("a", data=b"a", uid=5)]),
                             chown=(10, 11))
        st = os.lstat(os.path.join(self.root, "etc/a"))
        self.assertEqual((st.st_uid, st.st_gid), (10, 11))

    def test_destination_symlink_followed_in_root(self) -> None:
        archive.extract_into(self.root, "/bin", make_tar([entry("new", data=b"n")]))
        self.assertTrue(os.path.isfile(os.path.join(self.root, "usr/bin/new")))

    def test_missing_destination(self) -> None:
        error = self.assertRaises(NotFound, archive.extract_into, self.root, "/nope",
                                  make_tar([]), False, "web")
        self.assertEqual(error.message, "Could not find the file /nope in container web")

    def test_destination_not_a_directory(self) -> None:
        error = self.assertRaises(InvalidParameter, archive.extract_into, self.root,
                                  "/etc/passwd", make_tar([]))
        self.assertEqual(error.message, "extraction point is not a directory")

    def test_entry_escaping_destination_rejected(self) -> None:
        self.assertRaises(InvalidParameter, archive.extract_into, self.root, "/etc",
                          make_tar([entry("../evil", data=b"x")]))
        self.assertFalse(os.path.lexists(os.path.join(self.root, "evil")))

    def test_container_symlink_to_host_not_written_through(self) -> None:
        """The container's ``escape -> <host dir>`` resolves inside the root."""
        archive.extract_into(self.root, "/", make_tar([entry("escape/x", data=b"x")]))
        self.assertEqual(os.listdir(self.outside), [])
        self.assertTrue(os.path.isfile(self.root + self.outside + "/x"))

    def test_destination_symlink_to_host_not_written_through(self) -> None:
        os.makedirs(self.root + self.outside)
        archive.extract_into(self.root, "/escape", make_tar([entry("x", data=b"x")]))
        self.assertEqual(os.listdir(self.outside), [])
        self.assertTrue(os.path.isfile(self.root + self.outside + "/x"))

    def test_whiteouts_are_plain_files(self) -> None:
        archive.extract_into(self.root, "/etc", make_tar([entry(".wh.passwd")]))
        self.assertTrue(os.path.isfile(os.path.join(self.root, "etc/passwd")))
        self.assertTrue(os.path.isfile(os.path.join(self.root, "etc/.wh.passwd")))

    def test_no_overwrite_dir_with_non_dir(self) -> None:
        tar = make_tar([entry("etc", data=b"file")])
        error = self.assertRaises(InvalidParameter, archive.extract_into, self.root, "/",
                                  tar, True)
        self.assertIn("cannot overwrite directory", error.message)
        self.assertTrue(os.path.isdir(os.path.join(self.root, "etc")))

    def test_no_overwrite_non_dir_with_dir(self) -> None:
        tar = make_tar([entry("passwd/", "d")])
        error = self.assertRaises(InvalidParameter, archive.extract_into, self.root, "/etc",
                                  tar, True)
        self.assertIn("cannot overwrite non-directory", error.message)

    def test_overwrite_allowed_by_default(self) -> None:
        archive.extract_into(self.root, "/etc", make_tar([entry("passwd/", "d")]))
        self.assertTrue(os.path.isdir(os.path.join(self.root, "etc/passwd")))

    def test_copy_round_trip(self) -> None:
        """What ``GET archive`` writes, ``PUT archive`` restores elsewhere."""
        out = io.BytesIO()
        archive.write_path_tar(self.root, "/usr", out)
        os.makedirs(os.path.join(self.root, "copy"))
        out.seek(0)
        archive.extract_into(self.root, "/copy", out)
        st = os.lstat(os.path.join(self.root, "copy/usr/bin/tool"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o4755)


class ExportTests(ArchiveTestCase):

    def test_rootfs_tar_has_no_root_entry(self) -> None:
        out = io.BytesIO()
        archive.write_rootfs_tar(self.root, out)
        members = _members(out.getvalue())
        self.assertEqual(sorted(members), ["bin", "escape", "etc", "etc/passwd", "loop", "up",
                                           "usr", "usr/bin", "usr/bin/tool"])
        self.assertEqual(members["escape"].linkname, self.outside)
        self.assertEqual(members["usr/bin/tool"].mode, stat.S_IFREG | 0o4755)
