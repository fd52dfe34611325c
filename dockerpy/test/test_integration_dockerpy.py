"""docker-py (the Python SDK) driving a real dockerpy daemon."""

from __future__ import annotations

import io
import tarfile

from twisted.trial import unittest

from dockerpy.test.daemon_fixture import DaemonTestCase

try:
    import docker
    import docker.errors
except ImportError:  # pragma: no cover - the test extra installs it
    docker = None


class DockerPyTests(DaemonTestCase):
    def setUp(self):
        if docker is None:
            raise unittest.SkipTest("docker-py is not installed")
        self.daemon = self.start_daemon()
        self.client = docker.DockerClient(base_url=self.daemon.host, version="auto")
        self.addCleanup(self.client.close)

    def test_run_returns_output(self):
        out = self.client.containers.run("busybox", ["echo", "from docker-py"], remove=True)
        self.assertEqual(out, b"from docker-py\n")

    def test_run_nonzero_raises_container_error(self):
        with self.assertRaises(docker.errors.ContainerError) as ctx:
            self.client.containers.run("busybox", ["sh", "-c", "exit 4"], remove=True)
        self.assertEqual(ctx.exception.exit_status, 4)

    def test_detached_lifecycle_logs_wait_remove(self):
        c = self.client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2"],
                                       detach=True, name="dpy-life")
        self.addCleanup(self._force_remove, "dpy-life")
        self.assertEqual(c.wait()["StatusCode"], 0)
        self.assertEqual(c.logs(stdout=True, stderr=False), b"one\n")
        self.assertEqual(c.logs(stdout=False, stderr=True), b"two\n")
        c.reload()
        self.assertEqual(c.status, "exited")
        self.assertEqual(c.attrs["State"]["ExitCode"], 0)
        c.remove()
        with self.assertRaises(docker.errors.NotFound):
            self.client.containers.get("dpy-life")

    def _force_remove(self, name):
        try:
            self.client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass

    def test_stop_kill_and_list_filters(self):
        c = self.client.containers.run("busybox", ["sleep", "1000"], detach=True,
                                       name="dpy-sleeper", labels={"team": "a"})
        self.addCleanup(self._force_remove, "dpy-sleeper")
        running = self.client.containers.list(filters={"label": "team=a"})
        self.assertEqual([x.name for x in running], ["dpy-sleeper"])
        self.assertEqual(self.client.containers.list(filters={"label": "team=b"}), [])
        c.kill()
        self.assertEqual(c.wait()["StatusCode"], 137)
        exited = self.client.containers.list(all=True, filters={"status": "exited",
                                                                 "name": "dpy-sleeper"})
        self.assertEqual([x.name for x in exited], ["dpy-sleeper"])

    def test_put_and_get_archive(self):
        c = self.client.containers.create("busybox", ["true"], name="dpy-archive")
        self.addCleanup(self._force_remove, "dpy-archive")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = b"payload\n"
            info = tarfile.TarInfo("hello.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        self.assertTrue(c.put_archive("/tmp", buf.getvalue()))
        stream, stat = c.get_archive("/tmp/hello.txt")
        self.assertEqual(stat["name"], "hello.txt")
        self.assertEqual(stat["size"], 8)
        tar = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
        self.assertEqual(tar.extractfile("hello.txt").read(), b"payload\n")

    def test_images_list_inspect_tag_remove(self):
        image = self.client.images.get("busybox")
        self.assertIn("busybox:latest", image.tags)
        image.tag("dpy-tagged", "v2")
        self.assertIn("dpy-tagged:v2", self.client.images.get("busybox").tags)
        # images.list re-inspects each match (all its tags); the list API itself
        # shows only the matching names, as Docker does.
        listed = self.client.images.list(filters={"reference": "dpy-tagged"})
        self.assertEqual([i.id for i in listed], [image.id])
        summaries = self.client.api.images(filters={"reference": "dpy-tagged"})
        self.assertEqual([s["RepoTags"] for s in summaries], [["dpy-tagged:v2"]])
        self.client.images.remove("dpy-tagged:v2")
        with self.assertRaises(docker.errors.ImageNotFound):
            self.client.images.get("dpy-tagged:v2")

    def test_missing_things_raise_not_found(self):
        with self.assertRaises(docker.errors.NotFound):
            self.client.containers.get("no-such-container")
        with self.assertRaises(docker.errors.ImageNotFound):
            self.client.images.get("no-such-image:1")

    def test_commit_and_history(self):
        c = self.client.containers.run("busybox", ["sh", "-c", "echo hi > /committed"],
                                       detach=True, name="dpy-commit")
        self.addCleanup(self._force_remove, "dpy-commit")
        c.wait()
        image = c.commit("dpy-committed", "1", message="a message", author="me")
        self.addCleanup(self.client.images.remove, "dpy-committed:1", force=True)
        out = self.client.containers.run("dpy-committed:1", ["cat", "/committed"], remove=True)
        self.assertEqual(out, b"hi\n")
        history = image.history()
        self.assertEqual(history[0]["Comment"], "a message")

    def test_ping_version_info(self):
        self.assertTrue(self.client.ping())
        self.assertEqual(self.client.version()["ApiVersion"], "1.47")
        self.assertEqual(self.client.info()["Swarm"]["LocalNodeState"], "inactive")

    def test_logs_follow_streams_until_exit(self):
        c = self.client.containers.run(
            "busybox", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done"],
            detach=True, name="dpy-follow")
        self.addCleanup(self._force_remove, "dpy-follow")
        lines = list(c.logs(stream=True, follow=True))
        self.assertEqual(b"".join(lines), b"1\n2\n3\n")
