# -*- test-case-name: dockerpy.test.test_build_context -*-
"""The build context read straight from its tar (`TarTree`): the same
sources, plans, content hashes and copied files as the extracted
directory (`DiskTree`) gives, without extracting anything."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile

from twisted.trial import unittest

from dockerpy.api.build import open_context
from dockerpy.build import context as ctx
from dockerpy.errors import InvalidParameter, NotFound
from dockerpy.storage import layertar


def tar_of(root: str) -> bytes:
    """The context tar the docker CLI would send for ``root``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(root)):
            tar.add(os.path.join(root, name), name)
    return buf.getvalue()


def members(*specs) -> bytes:
    """A tar from ``(name, kind, data_or_link, mode)`` tuples, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value, mode in specs:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.mtime = 1000
            if kind == "file":
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = value
            tar.addfile(info)
    return buf.getvalue()


class TarTreeMatchesDiskTests(unittest.SynchronousTestCase):
    """Every planner function gives the same answer on the indexed tar as on
    the directory the tar extracts to."""

    def setUp(self):
        self.src = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.src, True)
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside, True)
        os.makedirs(os.path.join(self.src, "dir", "sub"))
        os.makedirs(os.path.join(self.src, "real"))
        for name, mode in (("a.txt", 0o644), ("b.txt", 0o600), ("dir/c", 0o755),
                           ("dir/sub/d", 0o640), ("real/e", 0o644), ("dir/skip.log", 0o644)):
            path = os.path.join(self.src, name)
            with open(path, "w") as f:
                f.write(name * 3)
            os.chmod(path, mode)
        os.chmod(os.path.join(self.src, "dir", "sub"), 0o750)
        os.link(os.path.join(self.src, "a.txt"), os.path.join(self.src, "hard"))
        os.symlink("real", os.path.join(self.src, "alias"))
        os.symlink("/dir/c", os.path.join(self.src, "abs"))
        os.symlink(outside + "/x", os.path.join(self.src, "evil"))
        os.symlink("../../..", os.path.join(self.src, "dir", "up"))
        with open(os.path.join(self.src, ".dockerignore"), "w") as f:
            f.write("**/*.log\n")
        self.data = tar_of(self.src)
        self.disk = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.disk, True)
        layertar.extract_tar(io.BytesIO(self.data), self.disk, "")
        self.tar = ctx.TarTree.index(io.BytesIO(self.data), 0)

    def plan(self, root, src, dest="/t/", workdir="/"):
        ignore = ctx.IgnoreMatcher.from_context(root)
        sources = ctx.resolve_sources(root, src, ignore)
        entries = ctx.plan_copy(root, sources, dest, workdir, ignore)
        tree = ctx.as_tree(root)
        digest = ctx.content_hash(entries, None, None, tree)
        return ([(s.rel, s.is_dir) for s in sources],
                [(e.arcname, e.kind, e.mode, e.link) for e in entries], digest)

    def test_same_plans_and_hashes(self):
        for src, dest in ((".", "/t/"), ("dir", "/t"), ("*.txt", "/t/"), ("alias", "/t"),
                          ("alias/e", "/f"), ("abs", "/f"), ("hard", "/t/"), ("dir/up", "/u"),
                          ("d*", "/t/"), ("dir/sub/d", "rel")):
            self.assertEqual(self.plan(self.tar, src, dest), self.plan(self.disk, src, dest),
                             src)

    def test_ignored_and_outside_sources(self):
        for root in (self.tar, self.disk):
            e = self.assertRaises(NotFound, self.plan, root, "evil")
            self.assertIn("file not found in build context", e.message)
            self.assertRaises(NotFound, self.plan, root, "dir/skip.log")
            self.assertRaises(InvalidParameter, self.plan, root, "../x")

    def test_written_tar_has_the_same_members_and_content(self):
        def written(root):
            tree = ctx.as_tree(root)
            sources = ctx.resolve_sources(root, ".", None)
            entries = ctx.plan_copy(root, sources, "/t/", "/", None)
            out = io.BytesIO()
            ctx.write_entries_tar(entries, out, (5, 6), None, tree=tree)
            out.seek(0)
            with tarfile.open(fileobj=out) as tar:
                return [(m.name, m.type, m.mode, m.uid, m.linkname, m.size,
                         tar.extractfile(m).read() if m.isreg() else b"")
                        for m in tar.getmembers()]

        self.assertEqual(written(self.tar), written(self.disk))

    def test_dockerfile_and_archive_detection(self):
        inner = tarfile.TarInfo("x")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            t.addfile(inner)
        data = members(("Dockerfile", "file", b"FROM scratch\n", 0o644),
                       ("arch.tar.gz", "file", gzip.compress(buf.getvalue()), 0o644),
                       ("plain", "file", b"x" * 2000, 0o644))
        tree = ctx.TarTree.index(io.BytesIO(data), 0)
        self.assertTrue(ctx.is_archive("arch.tar.gz", tree))
        self.assertFalse(ctx.is_archive("plain", tree))
        with tree.open("Dockerfile") as f:
            self.assertEqual(f.read(), b"FROM scratch\n")


class TarTreeLayoutTests(unittest.SynchronousTestCase):
    """The index lays members out as the safe extractor would."""

    def test_later_member_replaces_earlier_and_parents_are_made(self):
        tree = ctx.TarTree.index(io.BytesIO(members(
            ("a/b/f", "file", b"one", 0o600),
            ("a/b", "file", b"two", 0o644),
            ("x", "dir", None, 0o700),
            ("x", "dir", None, 0o711),
            ("x/y", "file", b"y", 0o644))), 0)
        self.assertEqual(tree.lstat("a").mode, 0o755)
        self.assertEqual((tree.lstat("a/b").kind, tree.lstat("a/b").size), ("file", 3))
        self.assertEqual(tree.lstat("x").mode, 0o711)
        self.assertEqual(tree.listdir("x"), ["y"])

    def test_members_below_a_symlinked_parent_land_in_its_target(self):
        tree = ctx.TarTree.index(io.BytesIO(members(
            ("real", "dir", None, 0o755),
            ("link", "symlink", "/real", 0o777),
            ("link/f", "file", b"f", 0o644))), 0)
        self.assertEqual(tree.listdir("real"), ["f"])
        self.assertEqual(tree.lstat("link").kind, "symlink")

    def test_climbing_members_and_bad_hardlinks_are_refused(self):
        for data in (members(("../x", "file", b"x", 0o644)),
                     members(("h", "hardlink", "missing", 0o644)),
                     members(("f", "file", b"", 0o644), ("f/g", "file", b"", 0o644))):
            self.assertRaises(InvalidParameter, ctx.TarTree.index, io.BytesIO(data), 0)


class OpenContextTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def open(self, body: bytes):
        f = tempfile.TemporaryFile()
        self.addCleanup(f.close)
        f.write(body)
        tree, spool = open_context(f, self.tmp, 0)
        if spool is not None:
            self.addCleanup(spool.close)
        return tree

    def read(self, tree, name):
        with tree.open(name) as f:
            return f.read()

    def test_plain_and_compressed_tars(self):
        data = members(("Dockerfile", "file", b"FROM busybox\n", 0o644))
        self.assertEqual(self.read(self.open(data), "Dockerfile"), b"FROM busybox\n")
        self.assertEqual(self.read(self.open(gzip.compress(data)), "Dockerfile"),
                         b"FROM busybox\n")
        # The decompressed copy is anonymous: nothing is left under tmp.
        self.assertEqual(os.listdir(self.tmp), [])

    def test_bare_dockerfile_and_empty_body(self):
        self.assertEqual(self.read(self.open(b"FROM busybox\nRUN true\n"), "Dockerfile"),
                         b"FROM busybox\nRUN true\n")
        self.assertEqual(self.open(b"").listdir(""), [])

    def test_garbage_is_a_clear_error(self):
        e = self.assertRaises(InvalidParameter, self.open, gzip.compress(b"garbage " * 200))
        self.assertIn("failed to read the build context", e.message)

    def test_a_small_body_in_memory_can_still_be_closed(self):
        # Twisted keeps small bodies in a BytesIO and closes it when the
        # client goes away: the tree must not hold an export of its buffer.
        body = io.BytesIO(members(("Dockerfile", "file", b"FROM busybox\n", 0o644)))
        tree, spool = open_context(body, self.tmp, 0)
        self.assertIsNone(spool)
        body.close()
        self.assertEqual(self.read(tree, "Dockerfile"), b"FROM busybox\n")


def _tarfile_entries_tar(entries, out, owner, chmod, tree, prefix_dirs=()):
    """write_entries_tar as it was written with tarfile alone: the fast
    writer must give these exact bytes (layer digests, image ids)."""
    uid, gid = owner or (0, 0)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, mode, duid, dgid, mtime in prefix_dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode, info.uid, info.gid, info.mtime = mode, duid, dgid, mtime
            info.uname = info.gname = ""
            tar.addfile(info)
        for e in entries:
            if not e.arcname:
                continue
            info = tarfile.TarInfo(e.arcname)
            info.uid, info.gid = uid, gid
            info.uname = info.gname = ""
            st = tree.lstat(e.host) if e.kind == "symlink" else tree.stat(e.host)
            info.mtime = int(st.mtime) if st is not None else 0
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = chmod if chmod is not None else e.mode
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e.link
                info.mode = 0o777
                tar.addfile(info)
            else:
                info.mode = chmod if chmod is not None else e.mode
                with tree.open(e.host) as f:
                    info.size = st.size
                    tar.addfile(info, f)


class FastTarWriterTests(unittest.SynchronousTestCase):

    def test_same_bytes_as_tarfile_for_every_kind_of_member(self):
        root = tempfile.mkdtemp(prefix="dpt-fasttar-")
        self.addCleanup(shutil.rmtree, root, True)
        names = ["a", "x" * 99, "y" * 100, "z" * 101, "dir/" + "d" * 120, "ünïcode",
                 "space name", "empty"]
        os.makedirs(os.path.join(root, "dir"))
        for i, name in enumerate(names):
            with open(os.path.join(root, name), "wb") as f:
                f.write(os.urandom(i * 300) if name != "empty" else b"")
            os.chmod(os.path.join(root, name), 0o600 + i)
        os.symlink("t" * 99, os.path.join(root, "short-link"))
        os.symlink("t" * 140, os.path.join(root, "long-link"))
        os.symlink("ünï", os.path.join(root, "uni-link"))
        os.utime(os.path.join(root, "a"), (1.5, 2 ** 34))  # beyond 11 octal digits
        tree = ctx.as_tree(root)
        entries = ctx.plan_copy(root, ctx.resolve_sources(root, ".", None), "/t/", "/", None)
        for owner, chmod, prefix in (((0, 0), None, ()), ((5, 6), 0o640, ()),
                                     ((2 ** 21 + 1, 3), None, ()),
                                     (None, None, [("t", 0o755, 0, 0, 1700000000),
                                                   ("t/p", 0o700, 1, 1, 1.25)])):
            fast, slow = io.BytesIO(), io.BytesIO()
            ctx.write_entries_tar(entries, fast, owner, chmod, tree=tree, prefix_dirs=prefix)
            _tarfile_entries_tar(entries, slow, owner, chmod, tree, prefix)
            self.assertEqual(fast.getvalue(), slow.getvalue(), (owner, chmod, prefix))
