"""dockerpy.atomic: replacing files whole, and rewriting per-start files in place."""

from __future__ import annotations

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from dockerpy import atomic


class InDirTestCase(SynchronousTestCase):
    """Each test gets an empty directory and ``path``, a name in it."""

    name = "file"

    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, self.name)


class WriteBytesTests(InDirTestCase):
    name = "record"

    def test_replaces_the_file_whole_with_a_new_inode_and_no_temporary_left(self) -> None:
        atomic.write_bytes(self.path, b"old", 0o600)
        before = os.stat(self.path).st_ino
        atomic.write_json(self.path, {"a": 1})
        self.assertEqual(atomic.read_json(self.path), {"a": 1})
        self.assertNotEqual(os.stat(self.path).st_ino, before)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o644)
        self.assertEqual(os.listdir(self.dir), ["record"])


class RewriteTests(InDirTestCase):
    name = "hosts"

    def test_keeps_the_inode_so_a_bind_mount_sees_the_new_content(self) -> None:
        atomic.rewrite(self.path, b"a much longer first content\n", 0o600)
        before = os.stat(self.path).st_ino
        atomic.rewrite(self.path, b"short\n", 0o644)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"short\n")
        st = os.stat(self.path)
        self.assertEqual((st.st_ino, stat.S_IMODE(st.st_mode)), (before, 0o644))

    def test_refuses_to_write_through_a_symlink(self) -> None:
        target = os.path.join(self.dir, "elsewhere")
        os.symlink(target, self.path)
        self.assertRaises(OSError, atomic.rewrite, self.path, b"x")
        self.assertFalse(os.path.exists(target))


class WriteNewTests(InDirTestCase):
    name = "link"

    def test_creates_the_file_with_its_mode_and_never_overwrites(self) -> None:
        atomic.write_new(self.path, b"ABC", 0o600)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"ABC")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertRaises(FileExistsError, atomic.write_new, self.path, b"other")
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"ABC")


class DiscardTests(InDirTestCase):

    def test_removes_a_file_and_accepts_one_already_gone(self) -> None:
        open(self.path, "w").close()
        atomic.discard(self.path)
        self.assertEqual(os.listdir(self.dir), [])
        atomic.discard(self.path)
