"""Build-context sessions: the daemon keeps a context and asks only for what
changed (unit tests, no root), and bin/docker uses them against a real
daemon with the same result as a whole context."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.build import sessions
from dockerpy.build.sessions import ContextStore, Entry, parse_manifest
from dockerpy.errors import Conflict, InvalidParameter
from dockerpy.test.daemon_fixture import DaemonTestCase


def bin_docker(daemon, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return daemon.bin_docker(*args, env=env)


def tar_of(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def read_tree(tree, name: str) -> bytes:
    with tree.open(tree.resolve(name)) as f:
        return f.read()


class Context:
    """A client's view: files with stamps that change when they do."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.stamps: dict[str, int] = {}

    def put(self, name: str, data: bytes) -> None:
        self.files[name] = data
        self.stamps[name] = self.stamps.get(name, 0) + 1

    def entries(self) -> list[Entry]:
        out = [Entry("d", "dir", 0o755, 1, 0, "", "")]
        for name, data in sorted(self.files.items()):
            out.append(Entry(name, "file", 0o644, 1, len(data), "", str(self.stamps[name])))
        out.append(Entry("d/link", "symlink", 0o777, 1, 0, "../a", ""))
        return out


class ContextStoreTests(SynchronousTestCase):

    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="dpt-ctx-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.now = [1000.0]
        self.store = ContextStore(self.root, clock=lambda: self.now[0])
        self.ctx = Context()
        self.ctx.put("a", b"alpha")
        self.ctx.put("d/b", b"beta")

    def packs(self, key: str = "k1") -> list[str]:
        try:
            return [n for n in os.listdir(os.path.join(self.root, key)) if n.endswith(".tar")]
        except FileNotFoundError:
            return []

    def session(self, key: str = "k1") -> tuple[str, list[str]]:
        return self.store.begin(key, self.ctx.entries())

    def send(self, token: str, need: list[str]):
        return self.store.assemble(token, tar_of({n: self.ctx.files[n] for n in need}), 0)

    def test_first_session_asks_for_every_file_and_builds_the_tree(self):
        token, need = self.session()
        self.assertEqual(sorted(need), ["a", "d/b"])
        tree = self.send(token, need)
        self.assertEqual(read_tree(tree, "a"), b"alpha")
        self.assertEqual(read_tree(tree, "d/b"), b"beta")
        self.assertEqual(tree.lstat("d/link").link, "../a")
        self.assertEqual(read_tree(tree, "d/link"), b"alpha")
        self.assertEqual(tree.lstat("d").kind, "dir")

    def test_an_unchanged_context_sends_nothing(self):
        token, need = self.session()
        self.send(token, need)
        token, need = self.session()
        self.assertEqual(need, [])
        tree = self.store.assemble(token, io.BytesIO(b""), 0)
        self.assertEqual(read_tree(tree, "d/b"), b"beta")

    def test_only_changed_and_new_files_are_asked_for_and_removed_ones_go(self):
        token, need = self.session()
        self.send(token, need)
        self.ctx.put("d/b", b"BETA!")
        self.ctx.put("c", b"new")
        del self.ctx.files["a"]
        token, need = self.session()
        self.assertEqual(sorted(need), ["c", "d/b"])
        tree = self.send(token, need)
        self.assertEqual(read_tree(tree, "d/b"), b"BETA!")
        self.assertEqual(read_tree(tree, "c"), b"new")
        self.assertIsNone(tree.lstat("a"))
        # The first pack holds nothing the index needs any more: it is gone.
        self.assertEqual(len(self.packs()), 1)

    def test_a_file_the_store_lost_is_asked_for_again(self):
        token, need = self.session()
        self.send(token, need)
        for name in os.listdir(os.path.join(self.root, "k1")):
            if name.endswith(".tar"):
                with open(os.path.join(self.root, "k1", name), "r+b") as f:
                    f.truncate(10)  # a crash before the pack reached the disk
        token, need = self.session()
        self.assertEqual(sorted(need), ["a", "d/b"])

    def test_a_file_neither_sent_nor_kept_is_a_conflict_the_client_recovers_from(self):
        token, need = self.session()
        with self.assertRaises(Conflict) as e:
            self.store.assemble(token, io.BytesIO(b""), 0)
        self.assertIn("build context session expired", str(e.exception))
        self.assertEqual(self.packs(), [])

    def test_a_token_works_once_and_expires(self):
        token, need = self.session()
        self.send(token, need)
        self.assertRaises(Conflict, self.send, token, need)
        token, need = self.session()
        self.now[0] += sessions.TOKEN_TTL + 1
        self.assertRaises(Conflict, self.send, token, need)

    def test_names_climbing_out_are_refused(self):
        self.ctx.put("../evil", b"x")
        token, need = self.session()
        with self.assertRaises(InvalidParameter):
            self.send(token, need)
        self.assertEqual(self.packs(), [], "no pack is left")

    def test_too_many_packs_ask_for_everything_again(self):
        for i in range(sessions.MAX_PACKS):
            self.ctx.put(f"f{i}", b"%d" % i)
            token, need = self.session()
            self.send(token, need)
        # Each file was sent in its own upload and is still current.
        token, need = self.session()
        self.assertEqual(len(need), len(self.ctx.files))
        self.send(token, need)
        self.assertEqual(len(self.packs()), 1)

    def test_least_recently_used_keys_are_dropped(self):
        for i in range(sessions.MAX_KEYS + 2):
            token, need = self.session(f"key{i}")
            self.send(token, need)
            os.utime(os.path.join(self.root, f"key{i}"), (i, i))
        self.assertEqual(len(os.listdir(self.root)), sessions.MAX_KEYS)
        self.assertNotIn("key0", os.listdir(self.root))

    def test_prune_removes_everything_and_counts_it(self):
        token, need = self.session()
        self.send(token, need)
        self.assertGreater(self.store.prune(), 0)
        self.assertEqual(os.listdir(self.root), [])
        token, need = self.session()
        self.assertEqual(sorted(need), ["a", "d/b"])


class ParseManifestTests(SynchronousTestCase):

    def test_accepts_the_documented_shape(self):
        key, entries = parse_manifest({"Key": "abc_D-1", "Entries": [
            ["a", "file", 0o644, 1, 5, "", "s"], ["d", "dir", 0o755, 1, 0, "", ""],
            ["l", "symlink", 0o777, 1, 0, "a", ""]]})
        self.assertEqual(key, "abc_D-1")
        self.assertEqual(entries[0], Entry("a", "file", 0o644, 1, 5, "", "s"))

    def test_refuses_anything_else(self):
        good = ["a", "file", 0o644, 1, 5, "", "s"]
        bad = [
            None, [], {"Key": "../x", "Entries": []}, {"Key": "k", "Entries": {}},
            {"Key": "k", "Entries": [good[:6]]},
            {"Key": "k", "Entries": [["a", "fifo", 0o644, 1, 5, "", "s"]]},
            {"Key": "k", "Entries": [["a", "file", 0o170000, 1, 5, "", "s"]]},
            {"Key": "k", "Entries": [["a", "file", 0o644, 1, -1, "", "s"]]},
            {"Key": "k", "Entries": [["a", "file", True, 1, 5, "", "s"]]},
            {"Key": "k", "Entries": [["a\0b", "file", 0o644, 1, 5, "", "s"]]},
            {"Key": "k", "Entries": [["", "file", 0o644, 1, 5, "", "s"]]},
            {"Key": "k", "Entries": [["a", "file", 0o644, 1, 5, "", "s" * 300]]},
        ]
        for doc in bad:
            self.assertRaises(InvalidParameter, parse_manifest, doc)


class BinDockerSessionTests(DaemonTestCase):
    """bin/docker against a real daemon: the second build sends only what
    changed, and every build gives what a whole context gives."""

    def context(self, dockerfile: str) -> str:
        """A new context directory holding ``dockerfile``."""
        ctx = tempfile.mkdtemp(prefix="dpt-sess-")
        self.addCleanup(shutil.rmtree, ctx, True)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(dockerfile)
        return ctx

    def test_rebuilds_send_only_changes_and_match_the_whole_context(self):
        daemon = self.start_daemon()
        ctx = self.context("FROM busybox\nCOPY . /src/\n"
                           "RUN cat /src/files/f0 /src/files/f9 > /out\n")
        os.mkdir(os.path.join(ctx, "files"))
        for i in range(10):
            with open(os.path.join(ctx, "files", f"f{i}"), "w") as f:
                f.write(f"file {i}\n" * 200)
        os.symlink("f0", os.path.join(ctx, "files", "link"))

        def build(tag: str, *env: str):
            r = bin_docker(daemon, "build", "-t", tag, ctx, env=dict(e.split("=", 1) for e in env))
            self.assertEqual(r.returncode, 0, r.stderr)
            sent = re.search(r"Sending build context to Docker daemon\s+(\S+)", r.stdout.decode())
            image = daemon.json("GET", f"/images/{tag}/json")[1]["Id"]
            return sent.group(1), image, r.stdout.decode()

        first_sent, first, _ = build("s1")
        again_sent, again, out = build("s1")
        self.assertEqual(again, first)
        self.assertIn("Using cache", out)
        self.assertEqual(again_sent, "0B", "nothing changed, nothing sent")
        # The whole context, the classic way, gives the same image.
        whole_sent, whole, _ = build("s1", "DOCKERPY_CONTEXT_SESSION=0")
        self.assertEqual((whole, whole_sent), (first, first_sent))
        # A changed file and a removed one: sent and gone, as with a whole context.
        with open(os.path.join(ctx, "files", "f9"), "w") as f:
            f.write("changed\n")
        os.unlink(os.path.join(ctx, "files", "f5"))
        changed_sent, changed, _ = build("s2")
        self.assertNotEqual(changed, first)
        # f9 alone: one tar record (10,240 bytes), against 10 files of 1.6 kB.
        self.assertLessEqual(_bytes(changed_sent), 10240)
        self.assertLess(_bytes(changed_sent), _bytes(whole_sent))
        _, classic, _ = build("s3", "DOCKERPY_CONTEXT_SESSION=0")
        self.assertEqual(classic, changed)
        r = bin_docker(daemon, "run", "--rm", "s2", "sh", "-c",
                              "tail -1 /out; ls /src/files; readlink /src/files/link")
        self.assertEqual(r.stdout.decode().split(),
                         ["changed", "f0", "f1", "f2", "f3", "f4", "f6", "f7", "f8", "f9",
                          "link", "f0"])
        # docker builder prune drops what the daemon kept: the next build sends all.
        self.assertEqual(bin_docker(daemon, "builder", "prune", "-f").returncode, 0)
        sent, _, _ = build("s2")
        self.assertGreater(_bytes(sent), 10 * 1000, "every file again")

    def test_intermediate_images_are_listed_with_all_only(self):
        daemon = self.start_daemon()
        ctx = self.context("FROM busybox\nENV A=1\nENV B=2\n")
        r = bin_docker(daemon, "build", "-q", "-t", "layered", ctx)
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = {i["Id"] for i in daemon.json("GET", "/images/json")[1]}
        every = {i["Id"] for i in daemon.json("GET", "/images/json?all=1")[1]}
        top = daemon.json("GET", "/images/layered/json")[1]["Id"]
        self.assertIn(top, listed)
        self.assertEqual(len(every - listed), 1, "the ENV A step's image")


def _bytes(human: str) -> float:
    """``"4.5kB"`` -> 4500 (the units of human_size)."""
    m = re.match(r"^([0-9.]+)([kMG]?)B$", human)
    assert m, human
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]
