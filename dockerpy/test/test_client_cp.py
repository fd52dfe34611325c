# -*- test-case-name: dockerpy.test.test_client_cp -*-
"""Tests for docker cp: moby's destination naming rules, safe extraction,
and the archive requests sent to the fake Engine API."""

import base64
import io
import json
import os
import tarfile
import tempfile
import shutil

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.client.command import StatusError
from dockerpy.client.cp import (
    GO_MODE_DIR, extract, prepare_copy, rebase_name, split_cp_arg)
from dockerpy.client.testing import Reply
from dockerpy.test.test_client_main import EngineTestCase


def make_tar(entries):
    """entries: list of (name, data or None for a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def stat_header(name, mode, size=0):
    return base64.b64encode(json.dumps({"name": name, "size": size, "mode": mode,
                                        "mtime": "2024-01-01T00:00:00Z",
                                        "linkTarget": ""}).encode()).decode()


class TempDirMixin:
    def tempdir(self):
        path = tempfile.mkdtemp(prefix="dockerpy-cp-test-")
        self.addCleanup(shutil.rmtree, path, True)
        return path


class RulesTests(SynchronousTestCase):
    def test_split_cp_arg(self):
        self.assertEqual(split_cp_arg("c1:/etc/hosts"), ("c1", "/etc/hosts"))
        self.assertEqual(split_cp_arg("/abs:path"), ("", "/abs:path"))
        self.assertEqual(split_cp_arg("./a:b"), ("", "./a:b"))
        self.assertEqual(split_cp_arg("local"), ("", "local"))

    def test_existing_directory_keeps_source_name(self):
        self.assertEqual(prepare_copy("/etc/hosts", False, None, "/tmp", True, True),
                         ("/tmp", None, None))

    def test_missing_destination_takes_its_name(self):
        self.assertEqual(prepare_copy("/etc", True, None, "/tmp/new", False, False),
                         ("/tmp", "etc", "new"))

    def test_contents_of_directory(self):
        self.assertEqual(prepare_copy("/etc/.", True, None, "/tmp/new", False, False),
                         ("/tmp", ".", "new"))
        self.assertEqual(rebase_name("./a/b", ".", "new"), "new/a/b")
        self.assertEqual(rebase_name(".", ".", "new"), "new")

    def test_directory_onto_file_and_file_into_missing_dir_fail(self):
        e = self.assertRaises(StatusError, prepare_copy, "/etc", True, None, "/f", True, False)
        self.assertEqual(e.message, "cannot copy directory")
        e = self.assertRaises(StatusError, prepare_copy, "/f", False, None, "/nodir/", False,
                              False)
        self.assertEqual(e.message, "no such directory")

    def test_rebase_only_top_entry(self):
        self.assertEqual(rebase_name("etc/etcx", "etc", "new"), "new/etcx")
        self.assertEqual(rebase_name("etcx", "etc", "new"), "etcx")


class ExtractTests(TempDirMixin, SynchronousTestCase):
    def test_refuses_parent_escape(self):
        dst = self.tempdir()
        data = make_tar([("../evil", b"x")])
        self.assertRaises(StatusError, extract, io.BytesIO(data), dst, None, None)
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(dst), "evil")))

    def test_does_not_write_through_existing_symlink(self):
        dst, outside = self.tempdir(), self.tempdir()
        os.symlink(outside, os.path.join(dst, "link"))
        data = make_tar([("link/file", b"x")])
        self.assertRaises(StatusError, extract, io.BytesIO(data), dst, None, None)
        self.assertEqual(os.listdir(outside), [])

    def test_replaces_existing_file_symlink_instead_of_following(self):
        dst, outside = self.tempdir(), self.tempdir()
        target = os.path.join(outside, "victim")
        with open(target, "w") as f:
            f.write("keep")
        os.symlink(target, os.path.join(dst, "f"))
        extract(io.BytesIO(make_tar([("f", b"new")])), dst, None, None)
        with open(target) as f:
            self.assertEqual(f.read(), "keep")
        with open(os.path.join(dst, "f")) as f:
            self.assertEqual(f.read(), "new")


class CpTests(TempDirMixin, EngineTestCase):
    def test_copy_directory_out_to_new_name(self):
        self.engine.route("GET", "/containers/c/archive", Reply(
            200, make_tar([("etc", None), ("etc/hosts", b"127.0.0.1\n")]),
            {"X-Docker-Container-Path-Stat": stat_header("etc", GO_MODE_DIR | 0o755)}))
        dst = self.tempdir()
        rc, out, err = self.cli("cp", "c:/etc", os.path.join(dst, "copy"))
        self.assertEqual(rc, 0, err)
        with open(os.path.join(dst, "copy", "hosts")) as f:
            self.assertEqual(f.read(), "127.0.0.1\n")
        self.assertEqual(self.engine.calls("GET")[0].query, {"path": ["/etc"]})

    def test_copy_file_out_into_existing_dir(self):
        self.engine.route("GET", "/containers/c/archive", Reply(
            200, make_tar([("hosts", b"h")]),
            {"X-Docker-Container-Path-Stat": stat_header("hosts", 0o644, 1)}))
        dst = self.tempdir()
        self.assertEqual(self.cli("cp", "c:/etc/hosts", dst)[0], 0)
        self.assertEqual(os.listdir(dst), ["hosts"])

    def test_copy_out_to_stdout_is_the_raw_tar(self):
        data = make_tar([("hosts", b"h")])
        self.engine.route("GET", "/containers/c/archive", Reply(200, data))
        self.assertEqual(self.cli("cp", "c:/etc/hosts", "-")[1].encode(), data)

    def test_copy_file_in_under_new_name(self):
        self.engine.route("HEAD", "/containers/c/archive",
                          Reply(404, {"message": "Could not find the file /tmp/new"}))
        self.engine.route("PUT", "/containers/c/archive", Reply(200))
        src = os.path.join(self.tempdir(), "local.txt")
        with open(src, "w") as f:
            f.write("data")
        rc, out, err = self.cli("cp", src, "c:/tmp/new")
        self.assertEqual(rc, 0, err)
        put = self.engine.calls("PUT")[0]
        self.assertEqual(put.query, {"path": ["/tmp"], "noOverwriteDirNonDir": ["1"]})
        with tarfile.open(fileobj=io.BytesIO(put.body)) as tar:
            self.assertEqual(tar.getnames(), ["new"])
            self.assertEqual(tar.extractfile("new").read(), b"data")

    def test_copy_directory_contents_into_existing_dir(self):
        self.engine.route("HEAD", "/containers/c/archive", Reply(
            200, None, {"X-Docker-Container-Path-Stat": stat_header("dst", GO_MODE_DIR)}))
        self.engine.route("PUT", "/containers/c/archive", Reply(200))
        src = self.tempdir()
        for name in ("a", "b"):
            with open(os.path.join(src, name), "w") as f:
                f.write(name)
        self.assertEqual(self.cli("cp", src + "/.", "c:/dst")[0], 0)
        put = self.engine.calls("PUT")[0]
        self.assertEqual(put.query["path"], ["/dst"])
        with tarfile.open(fileobj=io.BytesIO(put.body)) as tar:
            self.assertEqual(sorted(tar.getnames()), ["a", "b"])

    def test_missing_local_source(self):
        rc, out, err = self.cli("cp", "/nonexistent/x", "c:/tmp")
        self.assertEqual((rc, err), (1, "lstat /nonexistent/x: no such file or directory\n"))
        self.assertEqual(self.engine.calls("PUT"), [])

    def test_between_containers_is_refused(self):
        self.assertEqual(self.cli("cp", "a:/x", "b:/y")[2],
                         "copying between containers is not supported\n")
