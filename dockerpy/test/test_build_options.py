# -*- test-case-name: dockerpy.test.test_build_options -*-
"""``POST /build`` query parameters beyond the basics, through the real
docker CLI (classic builder): ``extrahosts`` and ``shmsize`` reach the RUN
containers, ``cachefrom`` lets another image's layers and history satisfy
the cache as Docker's classic builder does."""

from __future__ import annotations

import os
import shutil
import tempfile

from dockerpy.test.daemon_fixture import DaemonTestCase
from dockerpy.test.test_integration_build import BuildTestBase, write_context


class BuildOptionTests(BuildTestBase):
    def image_id(self, name):
        return self.inspect(name)["Id"]

    def test_add_host_and_shm_size_reach_run_containers(self):
        path = self.context({"Dockerfile": (
            "FROM busybox\n"
            "RUN cat /etc/hosts > /hosts && grep ' /dev/shm ' /proc/mounts > /shm\n")})
        self.build(path, "-t", "opts", "--add-host", "db.example:10.1.2.3",
                   "--add-host", "cache.example:10.1.2.4", "--shm-size", "96m")
        r = self.daemon.cli("run", "--rm", "opts", "cat", "/hosts", "/shm", check=True)
        out = r.stdout.decode()
        self.assertIn("10.1.2.3\tdb.example", out)
        self.assertIn("10.1.2.4\tcache.example", out)
        self.assertIn("size=98304k", out)

    def test_shm_size_changes_nothing_of_the_image(self):
        path = self.context({"Dockerfile": "FROM busybox\nRUN grep ' /dev/shm ' /proc/mounts\n"})
        _, out = self.build(path, "--shm-size", "32m")
        self.assertIn("size=32768k", out)

    def test_old_extracted_contexts_are_swept_and_nothing_is_left(self):
        import time

        tmp = os.path.join(self.daemon.data_root, "build", "tmp")
        os.makedirs(os.path.join(tmp, "context-old", "sub"))
        path = self.context({"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "x"})
        self.build(path)
        deadline = time.monotonic() + 60
        while os.listdir(tmp):
            if time.monotonic() > deadline:
                self.fail(f"left in build/tmp: {os.listdir(tmp)}")
            time.sleep(0.05)

    def test_bad_add_host_is_refused(self):
        status, _, body = self.daemon.request("POST", "/build?extrahosts=nocolon",
                                              b"FROM busybox\n")
        self.assertEqual(status, 400, body)
        self.assertIn(b"bad format for add-host", body)

    def test_cache_from_a_loaded_image_reuses_its_steps(self):
        files = {"Dockerfile": "FROM busybox\nENV A=1\nCOPY f /f\nRUN echo built > /out\n"
                               "CMD [\"cat\", \"/out\"]\n",
                 "f": "content\n"}
        path = self.context(files)
        self.build(path, "-t", "src:1")
        src = self.image_id("src:1")
        saved = tempfile.mktemp(prefix="cachefrom-", suffix=".tar")
        self.addCleanup(lambda: os.path.exists(saved) and os.unlink(saved))
        self.daemon.cli("save", "-o", saved, "src:1", check=True)
        # Forget every trace of the first build but the saved image.
        self.daemon.cli("rmi", "src:1", check=True)
        self.daemon.cli("builder", "prune", "-f", check=True)
        self.daemon.cli("load", "-i", saved, check=True)
        self.assertEqual(self.image_id("src:1"), src)
        # Without --cache-from the steps run again.
        _, out = self.build(path, "--no-cache")
        self.assertIn("Running in", out)
        self.daemon.cli("builder", "prune", "-f", check=True)
        _, out = self.build(path, "-t", "again", "--cache-from", "src:1")
        self.assertEqual(out.count("Using cache"), 4, out)
        self.assertNotIn("Running in", out)
        self.assertEqual(self.image_id("again"), src)
        r = self.daemon.cli("run", "--rm", "again", check=True)
        self.assertEqual(r.stdout.decode(), "built\n")

    def test_cache_from_stops_at_the_first_changed_step(self):
        path = self.context({"Dockerfile": "FROM busybox\nENV A=1\nRUN echo one > /one\n"
                                           "RUN echo two > /two\n"})
        self.build(path, "-t", "src:2")
        self.daemon.cli("builder", "prune", "-f", check=True)
        with open(os.path.join(path, "Dockerfile"), "w") as f:
            f.write("FROM busybox\nENV A=1\nRUN echo one > /one\nRUN echo three > /two\n")
        _, out = self.build(path, "-t", "changed", "--cache-from", "src:2")
        self.assertEqual(out.count("Using cache"), 2, out)
        self.assertEqual(out.count("Running in"), 1, out)
        r = self.daemon.cli("run", "--rm", "changed", "cat", "/one", "/two", check=True)
        self.assertEqual(r.stdout.decode(), "one\nthree\n")

    def test_cache_from_an_unrelated_image_ignores_the_local_cache(self):
        path = self.context({"Dockerfile": "FROM busybox\nRUN echo hi > /hi\n"})
        self.build(path)
        _, out = self.build(path)
        self.assertIn("Using cache", out)
        # As Docker's classic builder: a local hit counts only when it is an
        # ancestor of a --cache-from image.
        _, out = self.build(path, "--cache-from", "busybox")
        self.assertNotIn("Using cache", out)


class CopyFormTests(DaemonTestCase):
    """COPY here-documents, ``--link`` and ``--parents``."""

    def setUp(self):
        self.daemon = self.start_daemon(cli=True)

    def build(self, files, *args):
        path = write_context(files)
        self.addCleanup(shutil.rmtree, path, True)
        r = self.daemon.cli("build", *args, path)
        if r.returncode != 0:
            self.fail(f"build failed: {r.stdout.decode()}\n{r.stderr.decode()}")
        return r.stdout.decode()

    def run_in(self, image, script):
        return self.daemon.cli("run", "--rm", image, "sh", "-c", script,
                               check=True).stdout.decode()

    def test_copy_heredocs(self):
        self.build({"Dockerfile": (
            "FROM busybox\nENV WHO=world\n"
            "COPY <<EOF /etc/greeting\nhello $WHO \"quoted\" \\$kept\nEOF\n"
            "COPY --chmod=755 <<one <<'two' /dst/\necho one\none\nraw $WHO\ntwo\n")},
            "-t", "heredoc")
        out = self.run_in("heredoc", "cat /etc/greeting; stat -c '%a %n' /etc/greeting "
                                     "/dst/one /dst/two; cat /dst/two")
        self.assertEqual(out, 'hello world "quoted" \\$kept\n644 /etc/greeting\n'
                              "755 /dst/one\n755 /dst/two\nraw $WHO\n")

    def test_copy_keeps_image_directories_and_follows_image_symlinks(self):
        # The direct layer (no container) must give what the container's
        # diff gave: existing directories keep their metadata, missing
        # parents are made (owned by --chown), and a path through a
        # symlink of the image lands in its target.
        out = self.build({
            "Dockerfile": ("FROM busybox\n"
                           "RUN mkdir -p /app /real && chmod 700 /app && "
                           "chown 1000:1000 /app && ln -s /real /link\n"
                           "COPY d/ /app/\nCOPY f /link/f\nCOPY --chown=5:6 f /new/deep/f\n"),
            "d/x": "x", "f": "f"}, "-t", "keep")
        self.assertNotIn("Error", out)
        out = self.run_in("keep", "stat -c '%a %u %g %n' /app /app/x /new /new/deep "
                                  "/new/deep/f; test -L /link && cat /real/f")
        self.assertEqual(out, "700 1000 1000 /app\n644 0 0 /app/x\n755 5 6 /new\n"
                              "755 5 6 /new/deep\n644 5 6 /new/deep/f\nf")

    def test_copy_link_is_accepted_and_copies_the_same(self):
        self.build({"Dockerfile": "FROM busybox\nCOPY --link a /a\n", "a": "x"}, "-t", "link")
        self.assertEqual(self.run_in("link", "cat /a"), "x")

    def test_copy_parents_keeps_the_source_directories(self):
        self.build({"Dockerfile": ("FROM busybox\n"
                                   "COPY --parents x/*/f.txt y/./z/g.txt /out/\n"
                                   "COPY --parents x/a /dir/\n"),
                    "x/a/f.txt": "1", "x/b/f.txt": "2", "x/b/other": "3", "y/z/g.txt": "4"},
                   "-t", "parents")
        out = self.run_in("parents", "cd /out && find . -type f | sort; cd /dir && find . | sort")
        self.assertEqual(out.split(), ["./x/a/f.txt", "./x/b/f.txt", "./z/g.txt",
                                       ".", "./x", "./x/a", "./x/a/f.txt"])


class BuildCacheCommandTests(DaemonTestCase):
    """The step cache in ``system df`` and ``builder prune``."""

    def test_system_df_and_builder_prune(self):
        daemon = self.start_daemon(cli=True)
        path = write_context({"Dockerfile": "FROM busybox\nRUN head -c 5000 /dev/zero > /z\n"
                                            "ENV A=1\n"})
        self.addCleanup(shutil.rmtree, path, True)
        daemon.cli("build", "-t", "kept", path, check=True)
        with open(os.path.join(path, "Dockerfile"), "a") as f:
            f.write("RUN head -c 7000 /dev/zero > /y\n")
        # An untagged build: only the cache keeps its last image.
        r = daemon.cli("build", "-q", path, check=True)
        dangling = r.stdout.decode().strip()
        status, df = daemon.json("GET", "/system/df")
        self.assertEqual(status, 200)
        cache = df["BuildCache"]
        self.assertEqual(len(cache), 3, cache)
        by_desc = {c["Description"]: c for c in cache}
        top = [c for d, c in by_desc.items() if "> /y" in d][0]
        self.assertFalse(top["Shared"])
        self.assertGreaterEqual(top["Size"], 7000)
        self.assertTrue([c for d, c in by_desc.items() if "> /z" in d][0]["Shared"])
        self.assertEqual(df["BuilderSize"], top["Size"])
        out = daemon.cli("system", "df", check=True).stdout.decode()
        self.assertRegex(out, r"Build Cache\s+3\s+0\s+")
        r = daemon.cli("builder", "prune", "-f", check=True)
        out = r.stdout.decode()
        self.assertIn("Deleted build cache objects:", out)
        self.assertIn("Total reclaimed space:", out)
        self.assertNotIn("Total reclaimed space: 0B", out)
        status, df = daemon.json("GET", "/system/df")
        self.assertEqual(df["BuildCache"], [])
        self.assertEqual(daemon.cli("image", "inspect", dangling).returncode, 1)
        daemon.cli("image", "inspect", "kept", check=True)
        # Nothing left: a second prune reclaims nothing.
        out = daemon.cli("builder", "prune", "-f", check=True).stdout.decode()
        self.assertEqual(out.strip(), "Total reclaimed space: 0B")

    def test_bin_docker_builder_prune(self):
        daemon = self.start_daemon()
        path = write_context({"Dockerfile": "FROM busybox\nENV A=1\n"})
        self.addCleanup(shutil.rmtree, path, True)
        daemon.cli("build", path, check=True)

        bd = daemon.bin_docker

        r = bd("builder", "prune", input=b"n\n")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"WARNING! This will remove all dangling build cache.", r.stdout)
        self.assertEqual(len(daemon.json("GET", "/system/df")[1]["BuildCache"]), 1)
        r = bd("builder", "prune", "-a", "-f")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(lines[0], "Deleted build cache objects:")
        self.assertEqual(len(lines[1]), 64)
        self.assertTrue(lines[-1].startswith("Total reclaimed space: "))
        self.assertEqual(daemon.json("GET", "/system/df")[1]["BuildCache"], [])


class CancelTests(DaemonTestCase):
    def test_client_disconnect_stops_the_running_step(self):
        import io
        import socket
        import tarfile
        import time

        daemon = self.start_daemon()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            # The output "started" is not in the step's own text.
            data = b"FROM busybox\nENV A=1\nRUN echo sta''rted; sleep 600\n"
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        body = buf.getvalue()
        images_before = {i["Id"] for i in daemon.json("GET", "/images/json?all=1")[1]}
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.settimeout(120)
        sock.connect(daemon.sock)
        sock.sendall(b"POST /v1.41/build?rm=1 HTTP/1.1\r\nHost: d\r\n"
                     b"Content-Type: application/x-tar\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        seen = b""
        while b"started" not in seen:
            chunk = sock.recv(4096)
            self.assertTrue(chunk, seen)
            seen += chunk
        self.assertIn(b"Running in", seen)
        status, existing = daemon.json("GET", "/containers/json?all=1")
        self.assertEqual(len(existing), 1)
        sock.close()
        # The daemon notices the disconnect and removes the step's container
        # (killing `sleep 600`); wait for it, bounded.
        deadline = time.monotonic() + 60
        while daemon.json("GET", "/containers/json?all=1")[1]:
            if time.monotonic() > deadline:
                self.fail("the cancelled step's container is still there")
            time.sleep(0.1)
        images_after = {i["Id"] for i in daemon.json("GET", "/images/json?all=1")[1]}
        # Only the ENV step (done before the disconnect) was committed.
        self.assertEqual(len(images_after - images_before), 1)
        # No rootfs mount is left (the network's spare namespaces are the
        # daemon's own; the leak check at teardown covers everything).
        self.assertEqual([m for m in daemon.mounts() if "/netns/" not in m], [])


class BinDockerBuildFlagTests(DaemonTestCase):
    def test_add_host_shm_size_and_cache_from(self):
        daemon = self.start_daemon()
        path = write_context({"Dockerfile": "FROM busybox\nRUN grep h.example /etc/hosts && "
                                            "grep ' /dev/shm ' /proc/mounts\n"})
        self.addCleanup(shutil.rmtree, path, True)
        r = daemon.bin_docker("build", "--add-host", "h.example:10.9.8.7", "--shm-size", "16m",
                              "--cache-from", "busybox", path)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("10.9.8.7\th.example", out)
        self.assertIn("size=16384k", out)
