# -*- test-case-name: dockerpy.test.test_integration_build -*-
"""``docker build`` end to end: the real docker CLI (classic builder,
DOCKER_BUILDKIT=0) and docker-py against a real daemon with busybox."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile

from dockerpy.test.daemon_fixture import DaemonTestCase


def write_context(files: dict[str, str | bytes]) -> str:
    root = tempfile.mkdtemp(prefix="buildctx-")
    for name, content in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    return root


class BuildTestBase(DaemonTestCase):
    """A daemon per test, contexts from dicts, builds through the docker CLI."""

    def setUp(self):
        self.daemon = self.start_daemon(cli=True)

    def context(self, files):
        root = write_context(files)
        self.addCleanup(shutil.rmtree, root, True)
        return root

    def build(self, path, *args, ok=True):
        r = self.daemon.cli("build", *args, path)
        out = r.stdout.decode(errors="replace")
        if ok and r.returncode != 0:
            self.fail(f"build failed ({r.returncode}): {out}\n{r.stderr.decode()}")
        return r, out

    def inspect(self, name):
        return json.loads(self.daemon.cli("image", "inspect", name, check=True).stdout)[0]


class BuildCLITests(BuildTestBase):

    def run_in(self, image, script):
        r = self.daemon.cli("run", "--rm", image, "sh", "-c", script, check=True)
        return r.stdout.decode()

    def test_release_note_example_lowercase_tabs(self):
        path = self.context({
            "Dockerfile": "from\tbusybox\nrun\tmkdir -p /var/log/supervisor\n"
                          "add\tsupervisord.conf\t/etc/supervisor/conf.d/supervisord.conf\n",
            "supervisord.conf": "[supervisord]\nnodaemon=true\n"})
        _, out = self.build(path, "-t", "supervised")
        self.assertIn("Step 1/3 : from\tbusybox", out)
        self.assertIn("Successfully tagged supervised:latest", out)
        self.assertEqual(
            self.run_in("supervised", "cat /etc/supervisor/conf.d/supervisord.conf; "
                                      "test -d /var/log/supervisor && echo dir"),
            "[supervisord]\nnodaemon=true\ndir\n")

    def test_every_metadata_instruction_and_history(self):
        path = self.context({"Dockerfile": """\
FROM busybox
MAINTAINER someone
ARG V=1
ENV A=$V B="two words"
LABEL l1=$A "l 2"="v"
EXPOSE 80 53/udp
USER 1:1
WORKDIR /w
WORKDIR sub
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD true
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/echo"]
CMD ["hello"]
"""})
        self.build(path, "-t", "meta", "--build-arg", "V=7", "--label", "extra=yes")
        image = self.inspect("meta")
        c = image["Config"]
        self.assertIn("A=7", c["Env"])
        self.assertIn("B=two words", c["Env"])
        self.assertEqual(c["Labels"], {"l1": "7", "l 2": "v", "extra": "yes"})
        self.assertEqual(sorted(c["ExposedPorts"]), ["53/udp", "80/tcp"])
        self.assertEqual(c["User"], "1:1")
        self.assertEqual(c["WorkingDir"], "/w/sub")
        self.assertEqual(c["Volumes"], {"/data": {}})
        self.assertEqual(c["StopSignal"], "SIGINT")
        self.assertEqual(c["Healthcheck"], {"Test": ["CMD-SHELL", "true"],
                                            "Interval": 5000000000, "Retries": 3})
        self.assertEqual(c["Shell"], ["/bin/sh", "-ec"])
        self.assertEqual(c["OnBuild"], ["RUN echo triggered"])
        self.assertEqual(c["Entrypoint"], ["/bin/echo"])
        self.assertEqual(c["Cmd"], ["hello"])
        self.assertEqual(image["Author"], "someone")
        history = self.daemon.json("GET", "/images/meta/history")[1]
        created_by = [h["CreatedBy"] for h in history]
        # --label is a LABEL step after the last instruction, as with Docker.
        self.assertEqual(created_by[:2], ['/bin/sh -ec #(nop)  LABEL extra=yes',
                                          '/bin/sh -ec #(nop)  CMD ["hello"]'])
        self.assertIn("/bin/sh -c #(nop)  ENV A=7 B=two words", created_by)
        self.assertIn("/bin/sh -c #(nop)  ARG V=1", created_by)
        self.assertIn("/bin/sh -c #(nop)  EXPOSE 53/udp 80", created_by)
        self.assertIn("/bin/sh -c #(nop) WORKDIR /w/sub", created_by)
        r = self.daemon.cli("run", "--rm", "meta", check=True)
        self.assertEqual(r.stdout, b"hello\n")
        # The ONBUILD trigger runs in a child build.
        child = self.context({"Dockerfile": "FROM meta\n"})
        _, out = self.build(child, "-t", "child")
        self.assertIn("# Executing 1 build trigger", out)
        self.assertIn("triggered", out)
        self.assertIsNone(self.inspect("child")["Config"]["OnBuild"])

    def test_run_forms_copy_flags_and_cache(self):
        path = self.context({
            "Dockerfile": """\
FROM busybox
ARG WHO
RUN echo "shell form $WHO" > /shell
RUN ["sh", "-c", "echo exec form > /exec"]
COPY --chown=12:34 --chmod=600 a.txt /dst/
COPY dir /tree
COPY *.glob /globs/
ADD archive.tar.gz /unpacked/
""",
            "a.txt": "A", "dir/x": "X", "dir/sub/y": "Y", "1.glob": "1", "2.glob": "2",
            ".dockerignore": "2.glob\n"})
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("inside/f")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"in"))
        with open(os.path.join(path, "archive.tar.gz"), "wb") as f:
            f.write(buf.getvalue())
        _, out = self.build(path, "-t", "files", "--build-arg", "WHO=me")
        self.assertNotIn("Using cache", out)
        self.assertEqual(
            self.run_in("files", "cat /shell /exec; stat -c '%u:%g %a' /dst/a.txt; "
                                 "cat /tree/x /tree/sub/y /unpacked/inside/f; ls /globs"),
            "shell form me\nexec form\n12:34 600\nXYin1.glob\n")
        history = self.daemon.json("GET", "/images/files/history")[1]
        self.assertIn('|1 WHO=me /bin/sh -c echo "shell form $WHO" > /shell',
                      [h["CreatedBy"] for h in history])
        # Nothing changed: every step is a cache hit, same image.
        first = self.inspect("files")["Id"]
        _, out = self.build(path, "-t", "files", "--build-arg", "WHO=me")
        self.assertEqual(out.count(" ---> Using cache"), 7)
        self.assertEqual(self.inspect("files")["Id"], first)
        # Touching (not changing) a file keeps the cache; changing one rebuilds
        # from that step on.
        os.utime(os.path.join(path, "dir", "x"), (1, 1))
        _, out = self.build(path, "-t", "files", "--build-arg", "WHO=me")
        self.assertEqual(out.count(" ---> Using cache"), 7)
        with open(os.path.join(path, "dir", "x"), "w") as f:
            f.write("changed")
        _, out = self.build(path, "-t", "files", "--build-arg", "WHO=me")
        self.assertEqual(out.count(" ---> Using cache"), 4)
        # A different build arg misses from the RUN that uses it.
        _, out = self.build(path, "--build-arg", "WHO=you")
        self.assertEqual(out.count(" ---> Using cache"), 1)
        _, out = self.build(path, "--no-cache", "--build-arg", "WHO=me")
        self.assertNotIn("Using cache", out)

    def test_cache_survives_restart(self):
        path = self.context({"Dockerfile": "FROM busybox\nRUN echo once > /f\n"})
        self.build(path, "-t", "c")
        self.daemon.stop()
        self.daemon.start()
        _, out = self.build(path, "-t", "c")
        self.assertIn(" ---> Using cache", out)

    def test_multi_stage_target_and_copy_from(self):
        path = self.context({"Dockerfile": """\
FROM busybox AS builder
RUN echo built > /artifact
FROM busybox AS unused
RUN echo never-run-this-stage
FROM scratch AS final
COPY --from=builder /artifact /artifact
COPY --from=0 /bin/busybox /bin/busybox
FROM busybox AS other
RUN echo other
"""})
        _, out = self.build(path, "--target", "final", "-t", "final")
        # Only the stages the target needs are built.
        self.assertNotIn("never-run-this-stage", out)
        self.assertNotIn("other", out)
        self.assertIn("Step 1/5 : FROM busybox AS builder", out)
        r = self.daemon.cli("run", "--rm", "final", "/bin/busybox", "cat", "/artifact",
                            check=True)
        self.assertEqual(r.stdout, b"built\n")
        r, out = self.build(path, "--target", "nope", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("failed to reach build target nope", r.stderr.decode())

    def test_failed_run_exit_code_and_no_leftovers(self):
        path = self.context({"Dockerfile": "FROM busybox\nRUN echo ok\nRUN exit 3\n"})
        r, out = self.build(path, ok=False)
        self.assertEqual(r.returncode, 3)
        self.assertIn("The command '/bin/sh -c exit 3' returned a non-zero code: 3",
                      r.stderr.decode())
        self.assertEqual(self.daemon.json("GET", "/containers/json?all=1")[1], [])
        # The network's spare namespaces are the daemon's own, not the build's.
        self.assertEqual([m for m in self.daemon.mounts() if "/netns/" not in m], [])
        self.assertEqual(os.listdir(os.path.join(self.daemon.data_root, "build", "tmp")), [])
        # The steps before the failure are cached.
        _, _ = self.build(path, ok=False)
        r, out = self.build(path, ok=False)
        self.assertIn(" ---> Using cache", out)

    def test_hostile_context(self):
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside, True)
        with open(os.path.join(outside, "secret"), "w") as f:
            f.write("secret")
        path = self.context({"Dockerfile": "FROM busybox\nCOPY link /stolen\n"})
        os.symlink(os.path.join(outside, "secret"), os.path.join(path, "link"))
        r, _ = self.build(path, ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("file not found in build context", r.stderr.decode())
        path = self.context({"Dockerfile": "FROM busybox\nCOPY ../secret /stolen\n"})
        r, _ = self.build(path, ok=False)
        self.assertIn("outside the build context", r.stderr.decode())
        path = self.context({"Dockerfile": "FROM busybox\n"})
        r, _ = self.build(path, "-f", "../../etc/passwd", ok=False)
        self.assertNotEqual(r.returncode, 0)

    def test_parse_error_is_an_http_error(self):
        path = self.context({"Dockerfile": "FROM busybox\nBOGUS x\n"})
        r, _ = self.build(path, ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("unknown instruction: BOGUS", r.stderr.decode())

    def test_quiet_and_iidfile(self):
        path = self.context({"Dockerfile": "FROM busybox\nCMD [\"x\"]\n"})
        iid = os.path.join(path, "..", os.path.basename(path) + ".iid")
        self.addCleanup(lambda: os.path.exists(iid) and os.unlink(iid))
        r, out = self.build(path, "-q", "--iidfile", iid)
        with open(iid) as f:
            image_id = f.read().strip()
        self.assertEqual(out.strip(), image_id)
        self.assertTrue(image_id.startswith("sha256:"))


class BuildDockerPyTests(DaemonTestCase):
    def test_images_build(self):
        import docker

        daemon = self.start_daemon()
        client = docker.DockerClient(base_url=daemon.host, version="1.44")
        self.addCleanup(client.close)
        path = write_context({"Dockerfile": "FROM busybox\nRUN echo from-docker-py\n"
                                            "ENV X=1\n"})
        self.addCleanup(shutil.rmtree, path, True)
        image, logs = client.images.build(path=path, tag="dp:1", rm=True)
        lines = "".join(e.get("stream", "") for e in logs)
        self.assertIn("from-docker-py", lines)
        self.assertIn("X=1", image.attrs["Config"]["Env"])
        self.assertEqual(client.images.get("dp:1").id, image.id)
        with self.assertRaises(docker.errors.BuildError) as cm:
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"))
        self.assertIn("returned a non-zero code: 7", str(cm.exception))


class BuildBinDockerTests(DaemonTestCase):
    """Our own bin/docker build: flags, .dockerignore, stdin, exit codes."""

    def bd(self, daemon, *args, input: bytes | None = None):
        return daemon.bin_docker(*args, input=input)

    def test_build_flags_ignore_and_stdin(self):
        daemon = self.start_daemon()
        path = write_context({
            "Dockerfile": "FROM busybox\nARG X\nCOPY . /ctx/\nRUN echo arg=$X\n",
            "other.Dockerfile": "FROM busybox AS a\nRUN echo stage-a\nFROM busybox AS b\n"
                                "LABEL which=b\n",
            "keep.txt": "k", "skip.log": "s", ".dockerignore": "*.log\n"})
        self.addCleanup(shutil.rmtree, path, True)
        iid = path + ".iid"
        self.addCleanup(lambda: os.path.exists(iid) and os.unlink(iid))
        r = self.bd(daemon, "build", "-t", "bd:1", "--build-arg", "X=42", "--label", "l=v",
                    "--iidfile", iid, path)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("Sending build context to Docker daemon", out)
        self.assertIn("arg=42", out)
        self.assertIn("Successfully tagged bd:1", out)
        with open(iid) as f:
            image_id = f.read()
        r = daemon.cli("run", "--rm", image_id, "ls", "-A", "/ctx", check=True)
        self.assertEqual(r.stdout.decode().split(), [".dockerignore", "Dockerfile", "keep.txt",
                                                     "other.Dockerfile"])
        r = self.bd(daemon, "build", "-q", "-f", os.path.join(path, "other.Dockerfile"),
                    "--target", "a", "--no-cache", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.decode().strip().startswith("sha256:"))
        r = self.bd(daemon, "build", "-", input=b"FROM busybox\nRUN exit 5\n")
        self.assertEqual(r.returncode, 5)
        self.assertIn("returned a non-zero code: 5", r.stderr.decode())
