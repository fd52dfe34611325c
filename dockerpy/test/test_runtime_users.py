# -*- test-case-name: dockerpy.test.test_runtime_users -*-
"""``User`` resolves as Docker resolves it, reading only inside the rootfs."""

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.errors import InvalidParameter
from dockerpy.runtime.users import read_file_in_root, resolve_user

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "alice:x:1000:1000::/home/alice:/bin/sh\n"
    "bob:x:1001:100::/home/bob:/bin/sh\n"
)
GROUP = (
    "root:x:0:\n"
    "wheel:x:10:root,alice\n"
    "users:x:100:\n"
    "alice:x:1000:\n"
    "audio:x:29:alice,bob\n"
)


class ResolveUserTests(SynchronousTestCase):

    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="users-")
        self.addCleanup(self._rm, self.root)
        os.mkdir(os.path.join(self.root, "etc"))
        self.write("etc/passwd", PASSWD)
        self.write("etc/group", GROUP)

    @staticmethod
    def _rm(path: str) -> None:
        import shutil
        shutil.rmtree(path, ignore_errors=True)

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.root, name), "w") as f:
            f.write(text)

    def test_default_is_root_with_its_groups(self) -> None:
        self.assertEqual(resolve_user(self.root, ""), (0, 0, [0, 10]))

    def test_name(self) -> None:
        self.assertEqual(resolve_user(self.root, "alice"), (1000, 1000, [1000, 10, 29]))

    def test_uid_with_passwd_entry(self) -> None:
        self.assertEqual(resolve_user(self.root, "1001"), (1001, 100, [100, 29]))

    def test_uid_without_passwd_entry(self) -> None:
        self.assertEqual(resolve_user(self.root, "4242"), (4242, 0, [0]))

    def test_name_and_group_name(self) -> None:
        # An explicit group replaces the supplementary groups (runc semantics).
        self.assertEqual(resolve_user(self.root, "alice:users"), (1000, 100, [100]))

    def test_uid_and_gid_unknown(self) -> None:
        self.assertEqual(resolve_user(self.root, "5000:6000"), (5000, 6000, [6000]))

    def test_name_and_gid(self) -> None:
        self.assertEqual(resolve_user(self.root, "bob:29"), (1001, 29, [29]))

    def test_unknown_name(self) -> None:
        e = self.assertRaises(InvalidParameter, resolve_user, self.root, "foo")
        self.assertEqual(str(e), "unable to find user foo: no matching entries in passwd file")

    def test_unknown_group(self) -> None:
        e = self.assertRaises(InvalidParameter, resolve_user, self.root, "alice:nogroup")
        self.assertEqual(str(e),
                         "unable to find group nogroup: no matching entries in group file")

    def test_out_of_range(self) -> None:
        e = self.assertRaises(InvalidParameter, resolve_user, self.root, "4294967296")
        self.assertEqual(str(e), "uids and gids must be in range 0-2147483647")

    def test_missing_files_numeric_ok(self) -> None:
        os.unlink(os.path.join(self.root, "etc/passwd"))
        os.unlink(os.path.join(self.root, "etc/group"))
        self.assertEqual(resolve_user(self.root, "12:34"), (12, 34, [34]))
        self.assertEqual(resolve_user(self.root, ""), (0, 0, [0]))

    def test_missing_files_name_fails(self) -> None:
        os.unlink(os.path.join(self.root, "etc/passwd"))
        e = self.assertRaises(InvalidParameter, resolve_user, self.root, "alice")
        self.assertIn("no matching entries in passwd file", str(e))

    def test_group_add(self) -> None:
        self.assertEqual(resolve_user(self.root, "bob", ["wheel", "777", "29"]),
                         (1001, 100, [100, 29, 10, 777]))
        e = self.assertRaises(InvalidParameter, resolve_user, self.root, "bob", ["nope"])
        self.assertEqual(str(e), "Unable to find group nope: no matching entries in group file")

    def test_absolute_symlink_stays_inside_root(self) -> None:
        outside = tempfile.mkdtemp(prefix="outside-")
        self.addCleanup(self._rm, outside)
        with open(os.path.join(outside, "passwd"), "w") as f:
            f.write("evil:x:0:0::/:/bin/sh\n")
        os.unlink(os.path.join(self.root, "etc/passwd"))
        # Points at the host's file by absolute path; must be read as
        # <root><outside>/passwd, which does not exist.
        os.symlink(os.path.join(outside, "passwd"), os.path.join(self.root, "etc/passwd"))
        self.assertRaises(InvalidParameter, resolve_user, self.root, "evil")
        os.makedirs(os.path.join(self.root, outside.lstrip("/")))
        with open(os.path.join(self.root, outside.lstrip("/"), "passwd"), "w") as f:
            f.write("inside:x:7:7::/:/bin/sh\n")
        self.assertEqual(resolve_user(self.root, "inside")[:2], (7, 7))

    def test_relative_symlink_cannot_climb_out(self) -> None:
        os.unlink(os.path.join(self.root, "etc/passwd"))
        os.symlink("../../../../../../../../etc/hostpasswd",
                   os.path.join(self.root, "etc/passwd"))
        with open(os.path.join(self.root, "etc/hostpasswd"), "w") as f:
            f.write("local:x:9:9::/:/bin/sh\n")
        self.assertEqual(resolve_user(self.root, "local")[:2], (9, 9))

    def test_symlinked_directory_resolved_in_root(self) -> None:
        os.rename(os.path.join(self.root, "etc"), os.path.join(self.root, "real-etc"))
        os.symlink("/real-etc", os.path.join(self.root, "etc"))
        self.assertEqual(resolve_user(self.root, "alice")[:2], (1000, 1000))

    def test_fifo_is_not_read(self) -> None:
        os.unlink(os.path.join(self.root, "etc/passwd"))
        os.mkfifo(os.path.join(self.root, "etc/passwd"))
        self.assertIsNone(read_file_in_root(self.root, "/etc/passwd"))
        self.assertEqual(resolve_user(self.root, "0"), (0, 0, [0]))

    def test_symlink_loop(self) -> None:
        os.unlink(os.path.join(self.root, "etc/passwd"))
        os.symlink("passwd", os.path.join(self.root, "etc/passwd"))
        self.assertRaises(OSError, read_file_in_root, self.root, "/etc/passwd")
