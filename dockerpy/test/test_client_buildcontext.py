"""bin/docker build's context: the manifest, the session with a daemon that
has them, and the whole context for one that has not (fake Engine API)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile

from dockerpy.client import buildcontext
from dockerpy.client.testing import Reply
from dockerpy.test.test_client_main import EngineTestCase, run_cli

BUILT = b'{"stream":"Step 1/1 : FROM busybox\\n"}\r\n{"aux":{"ID":"sha256:' + b"ab" * 32 + b'"}}\r\n'


def names_in(body: bytes) -> list[str]:
    if not body:
        return []
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return sorted(m.name for m in tar.getmembers())


class BuildContextTests(EngineTestCase):

    def setUp(self):
        super().setUp()
        self.ctx = tempfile.mkdtemp(prefix="dpt-bctx-")
        self.addCleanup(shutil.rmtree, self.ctx, True)
        os.mkdir(os.path.join(self.ctx, "d"))
        for name, data in {"Dockerfile": "FROM busybox\n", "d/a": "a", "d/b": "b",
                           "skip.log": "x", ".dockerignore": "*.log\n"}.items():
            with open(os.path.join(self.ctx, name), "w") as f:
                f.write(data)
        os.symlink("a", os.path.join(self.ctx, "d", "l"))
        self.engine.route("POST", "/build", Reply(200, BUILT))

    def build(self, environ=None):
        return run_cli(self, ["build", "-q", self.ctx], engine=self.engine, environ=environ)

    def test_manifest_lists_what_the_tar_holds_with_stamps(self):
        walked = buildcontext.walk_context(self.ctx, os.path.join(self.ctx, "Dockerfile"))
        entries = buildcontext.manifest(walked)
        # os.walk's order: a directory's subdirectories, then its files.
        self.assertEqual([e[0] for e in entries],
                         ["d", ".dockerignore", "Dockerfile", "d/a", "d/b", "d/l"])
        kinds = {e[0]: e[1] for e in entries}
        self.assertEqual((kinds["d"], kinds["d/a"], kinds["d/l"]), ("dir", "file", "symlink"))
        link = [e for e in entries if e[0] == "d/l"][0]
        self.assertEqual(link[5], "a")
        before = {e[0]: e[6] for e in entries}
        with open(os.path.join(self.ctx, "d", "a"), "w") as f:
            f.write("changed")
        after = {e[0]: e[6] for e in buildcontext.manifest(
            buildcontext.walk_context(self.ctx, os.path.join(self.ctx, "Dockerfile")))}
        self.assertNotEqual(before["d/a"], after["d/a"])
        self.assertEqual(before["d/b"], after["d/b"])
        buf = io.BytesIO()
        buildcontext.write_tar(walked, buf)
        self.assertEqual(names_in(buf.getvalue()), sorted(e[0] for e in entries))

    def test_a_fifo_cannot_be_described_so_the_whole_context_goes(self):
        os.mkfifo(os.path.join(self.ctx, "pipe"))
        walked = buildcontext.walk_context(self.ctx, None)
        self.assertIsNone(buildcontext.manifest(walked))

    def test_a_session_sends_only_the_files_the_daemon_asks_for(self):
        self.engine.route("POST", "/dockerpy/build/context",
                          Reply(200, {"Token": "t0k3n", "Need": ["d/b"]}))
        rc, out, err = self.build()
        self.assertEqual(rc, 0, err)
        offer = self.engine.calls("POST", "/dockerpy/build/context")[0].json()
        self.assertEqual(offer["Key"], buildcontext.session_key(self.ctx))
        self.assertIn(["d/a", "file", 0o644], [e[:3] for e in offer["Entries"]])
        build = self.engine.calls("POST", "/build$")[0]
        self.assertEqual(build.headers.get("X-Dockerpy-Context"), "t0k3n")
        self.assertEqual(names_in(build.body), ["d/b"])
        self.assertEqual(out.strip(), "sha256:" + "ab" * 32)

    def test_nothing_to_send_sends_an_empty_body(self):
        self.engine.route("POST", "/dockerpy/build/context",
                          Reply(200, {"Token": "t", "Need": []}))
        rc, out, err = self.build()
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.engine.calls("POST", "/build$")[0].body, b"")

    def test_a_daemon_without_sessions_gets_the_whole_context(self):
        self.engine.route("POST", "/dockerpy/build/context",
                          Reply(404, {"message": "page not found"}))
        rc, out, err = self.build()
        self.assertEqual(rc, 0, err)
        build = self.engine.calls("POST", "/build$")[0]
        self.assertIsNone(build.headers.get("X-Dockerpy-Context"))
        self.assertEqual(names_in(build.body),
                         [".dockerignore", "Dockerfile", "d", "d/a", "d/b", "d/l"])

    def test_an_expired_session_is_retried_with_the_whole_context(self):
        self.engine.route("POST", "/dockerpy/build/context",
                          Reply(200, {"Token": "old", "Need": []}))

        def build(req):
            if req.headers.get("X-Dockerpy-Context"):
                return Reply(409, {"message": "build context session expired or changed: "
                                              "send the whole context"})
            return Reply(200, BUILT)
        self.engine.route("POST", "/build", build)
        rc, out, err = self.build()
        self.assertEqual(rc, 0, err)
        first, second = self.engine.calls("POST", "/build$")
        self.assertEqual(first.headers.get("X-Dockerpy-Context"), "old")
        self.assertIsNone(second.headers.get("X-Dockerpy-Context"))
        self.assertEqual(len(names_in(second.body)), 6)

    def test_sessions_can_be_turned_off(self):
        rc, out, err = self.build(environ={"DOCKERPY_CONTEXT_SESSION": "0"})
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.engine.calls("POST", "/dockerpy/build/context"), [])
        self.assertEqual(len(names_in(self.engine.calls("POST", "/build$")[0].body)), 6)
