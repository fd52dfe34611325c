"""Volumes through the real docker CLI and docker-py against a real daemon
(root, runc, overlayfs): bind mounts, named and anonymous volumes,
--volumes-from, tmpfs, the volume API, and a symlink attack on a mount target.

Each test has its own daemon; the fixture fails the test if any mount under
the daemon's directory (bind sources made there included) is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

from dockerpy.test.daemon_fixture import CLIDaemonTestCase, DaemonTestCase, _mounts_under

try:
    import docker
    import docker.errors
except ImportError:  # pragma: no cover
    docker = None


class VolumeTestBase(CLIDaemonTestCase):
    def host_dir(self) -> str:
        """A directory for bind mounts inside the daemon's temp dir (leak-checked)."""
        path = tempfile.mkdtemp(dir=self.daemon.tmp, prefix="bind-")
        return path

    def inspect(self, ref: str) -> dict:
        return json.loads(self.out("inspect", ref))[0]


class BindMountTests(VolumeTestBase):
    def test_bind_mount_data_is_visible_both_ways(self):
        src = self.host_dir()
        with open(os.path.join(src, "in"), "w") as f:
            f.write("from host\n")
        out = self.out("run", "--rm", "-v", f"{src}:/mnt", "busybox", "sh", "-c",
                       "cat /mnt/in; echo from container > /mnt/out")
        self.assertEqual(out, "from host\n")
        with open(os.path.join(src, "out")) as f:
            self.assertEqual(f.read(), "from container\n")
        self.assertEqual(_mounts_under(src), [], "the bind source is left mounted")

    def test_bind_read_only_refuses_writes(self):
        src = self.host_dir()
        r = self.docker("run", "--rm", "-v", f"{src}:/mnt:ro", "busybox", "sh", "-c",
                        "echo x > /mnt/f")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"Read-only file system", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(src, "f")))

    def test_v_creates_missing_host_path_and_mount_refuses_it(self):
        missing = os.path.join(self.daemon.tmp, "made", "by", "v")
        self.out("create", "--name", "v1", "-v", f"{missing}:/data", "busybox", "true")
        self.assertFalse(os.path.exists(missing), "made at start, as Docker does")
        self.out("start", "-a", "v1")
        self.assertTrue(os.path.isdir(missing))
        absent = os.path.join(self.daemon.tmp, "absent")
        r = self.docker("create", "--mount", f"type=bind,source={absent},target=/x",
                        "busybox", "true")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f'invalid mount config for type "bind": bind source path does not '
                      f"exist: {absent}".encode(), r.stderr)

    def test_inspect_shows_mounts_as_docker(self):
        src = self.host_dir()
        self.out("create", "--name", "m1", "-v", f"{src}:/b:ro", "-v", "named:/n",
                 "--mount", f"type=bind,source={src},target=/c", "--tmpfs", "/t",
                 "--mount", "type=tmpfs,target=/u,tmpfs-size=1m", "busybox", "true")
        mounts = {m["Destination"]: m for m in self.inspect("m1")["Mounts"]}
        self.assertEqual(sorted(mounts), ["/b", "/c", "/n", "/u"])
        self.assertEqual(mounts["/b"], {"Type": "bind", "Source": src, "Destination": "/b",
                                        "Mode": "ro", "RW": False, "Propagation": "rprivate"})
        self.assertEqual(mounts["/c"], {"Type": "bind", "Source": src, "Destination": "/c",
                                        "Mode": "", "RW": True, "Propagation": "rprivate"})
        self.assertEqual(mounts["/n"], {
            "Type": "volume", "Name": "named", "Destination": "/n", "Driver": "local",
            "Source": os.path.join(self.daemon.data_root, "volumes", "named", "_data"),
            "Mode": "z", "RW": True, "Propagation": ""})
        self.assertEqual(mounts["/u"], {"Type": "tmpfs", "Source": "", "Destination": "/u",
                                        "Mode": "", "RW": True, "Propagation": ""})
        status, [listed] = self.daemon.json("GET", "/containers/json?all=1")
        self.assertEqual(sorted(listed["Mounts"], key=lambda m: m["Destination"]),
                         [mounts[k] for k in sorted(mounts)])


class BindPropagationTests(VolumeTestBase):
    """``bind-propagation`` works as on Docker: the root gets the propagation
    the binds need, and a host mount that cannot propagate is refused."""

    def mounted_dir(self, make: str) -> str:
        """A host directory that is its own mount point, made ``make``
        (``--make-shared``...); unmounted (recursively) at the end."""
        src = tempfile.mkdtemp(prefix="dpt-prop-", dir="/tmp")
        subprocess.run(["mount", "--bind", src, src], check=True)
        self.addCleanup(shutil.rmtree, src, True)
        self.addCleanup(subprocess.run, ["umount", "-R", "-l", src])
        subprocess.run(["mount", make, src], check=True)
        return src

    def test_rslave_bind_sees_host_mounts_made_after_start_and_rprivate_does_not(self):
        src = self.mounted_dir("--make-shared")
        self.out("run", "-d", "--name", "slave", "-v", f"{src}:/mnt:rslave", "busybox",
                 "sleep", "300")
        self.out("run", "-d", "--name", "private", "--mount",
                 f"type=bind,source={src},target=/mnt", "busybox", "sleep", "300")
        sub = os.path.join(src, "sub")
        os.mkdir(sub)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", sub], check=True)
        try:
            with open(os.path.join(sub, "f"), "w") as f:
                f.write("late mount\n")
            self.assertEqual(self.out("exec", "slave", "cat", "/mnt/sub/f"), "late mount\n")
            self.assertEqual(self.out("exec", "private", "ls", "/mnt/sub"), "")
            self.assertEqual(self.inspect("slave")["Mounts"][0]["Propagation"], "rslave")
        finally:
            subprocess.run(["umount", sub])
            self.out("rm", "-f", "slave", "private")

    def test_rshared_bind_propagates_container_mounts_to_the_host(self):
        src = self.mounted_dir("--make-shared")
        os.mkdir(os.path.join(src, "sub"))
        try:
            self.out("run", "--rm", "--cap-add", "SYS_ADMIN", "--mount",
                     f"type=bind,source={src},target=/mnt,bind-propagation=rshared",
                     "busybox", "sh", "-c",
                     "mount -t tmpfs tmpfs /mnt/sub && echo from container > /mnt/sub/f")
            with open(os.path.join(src, "sub", "f")) as f:
                self.assertEqual(f.read(), "from container\n")
        finally:
            subprocess.run(["umount", os.path.join(src, "sub")])

    def test_shared_bind_of_a_private_mount_is_refused_with_dockers_message(self):
        src = self.mounted_dir("--make-private")
        r = self.docker("run", "--rm", "-v", f"{src}:/mnt:rshared", "busybox", "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(f"path {src} is mounted on {src} but it is not a shared mount".encode(),
                      r.stderr)


class SymlinkAttackTests(VolumeTestBase):
    def test_symlink_target_cannot_mount_outside_the_root(self):
        self.out("run", "--name", "evil", "busybox", "ln", "-s", "/etc", "/target")
        self.out("commit", "evil", "evil:latest")
        src = tempfile.mkdtemp(prefix="dpt-evil-src-", dir="/tmp")
        self.addCleanup(shutil.rmtree, src, True)
        before = sorted(os.listdir("/etc"))
        mounts_before = _mounts_under("/etc")
        out = self.out("run", "--rm", "-v", f"{src}:/target", "evil", "sh", "-c",
                       "echo pwned > /target/pwned-by-dockerpy-test; ls /etc")
        self.assertIn("pwned-by-dockerpy-test", out, "mounted on the container's /etc")
        self.assertFalse(os.path.exists("/etc/pwned-by-dockerpy-test"))
        self.assertTrue(os.path.exists(os.path.join(src, "pwned-by-dockerpy-test")))
        self.assertEqual(sorted(os.listdir("/etc")), before)
        self.assertEqual(_mounts_under("/etc"), mounts_before)
        self.assertEqual(_mounts_under(src), [])


class NamedVolumeTests(VolumeTestBase):
    def test_named_volume_outlives_its_container_and_is_seen_by_the_next(self):
        self.out("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c",
                 "echo kept > /data/f")
        self.assertEqual(self.out("volume", "ls", "-q"), "data\n")
        out = self.out("run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f")
        self.assertEqual(out, "kept\n")

    def test_volume_actions_are_reported_as_dockers_events(self):
        since = str(int(time.time()) - 1)
        self.out("volume", "create", "ev")
        cid = self.out("run", "-d", "-v", "ev:/d:ro", "busybox", "true").strip()
        self.out("wait", cid)
        self.out("rm", cid)
        self.out("volume", "rm", "ev")
        self.out("volume", "prune", "-f")
        out = self.out("events", "--since", since, "--until", str(int(time.time()) + 1),
                       "--filter", "type=volume", "--format",
                       "{{.Action}} {{.Actor.ID}} {{json .Actor.Attributes}}")
        events = [line.split(" ", 2) for line in out.splitlines()]
        self.assertEqual([e[:2] for e in events], [
            ["create", "ev"], ["mount", "ev"], ["unmount", "ev"], ["destroy", "ev"],
            ["prune", ""]])
        self.assertEqual(json.loads(events[1][2]), {
            "container": cid, "destination": "/d", "driver": "local", "propagation": "",
            "read/write": "false"})
        self.assertEqual(json.loads(events[4][2]), {"reclaimed": "0"})

    def test_volume_in_use_cannot_be_removed(self):
        self.out("volume", "create", "busy")
        cid = self.out("create", "-v", "busy:/d", "busybox", "true").strip()
        r = self.docker("volume", "rm", "busy")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"remove busy: volume is in use - [{cid}]".encode(), r.stderr)
        status, _ = self.daemon.json("DELETE", "/volumes/busy?force=1")
        self.assertEqual(status, 409)
        self.out("rm", "-v", cid)
        self.assertEqual(self.out("volume", "ls", "-q"), "busy\n", "rm -v keeps named volumes")
        self.out("volume", "rm", "busy")
        self.assertEqual(self.out("volume", "ls", "-q"), "")

    def test_volumes_from_shares_volumes(self):
        self.out("create", "--name", "store", "-v", "/shared", "busybox", "true")
        self.out("run", "--rm", "--volumes-from", "store", "busybox", "sh", "-c",
                 "echo hello > /shared/x")
        out = self.out("run", "--rm", "--volumes-from", "store:ro", "busybox", "sh", "-c",
                       "cat /shared/x; touch /shared/y || echo refused")
        self.assertEqual(out.splitlines()[0], "hello")
        self.assertEqual(out.splitlines()[-1], "refused")

    def test_image_volume_is_prepopulated_and_rm_v_removes_only_anonymous(self):
        self.out("run", "--name", "seed", "busybox", "sh", "-c",
                 "mkdir /data && echo seeded > /data/x && chown 65534:65534 /data/x "
                 "&& chmod 640 /data/x")
        self.out("commit", "-c", "VOLUME /data", "seed", "withvol:latest")
        out = self.out("run", "--name", "c1", "-v", "keep:/named", "withvol", "sh", "-c",
                       "cat /data/x; stat -c '%u %a' /data/x")
        self.assertEqual(out, "seeded\n65534 640\n")
        anon = [m for m in self.inspect("c1")["Mounts"] if m["Destination"] == "/data"][0]
        self.assertEqual((anon["Type"], anon["Mode"], anon["Propagation"]), ("volume", "", ""))
        self.assertEqual(len(anon["Name"]), 64)
        with open(os.path.join(anon["Source"], "x")) as f:
            self.assertEqual(f.read(), "seeded\n")
        vols = set(self.out("volume", "ls", "-q").split())
        self.assertEqual(vols, {anon["Name"], "keep"})
        self.out("rm", "c1")
        self.assertEqual(set(self.out("volume", "ls", "-q").split()), vols,
                         "rm without -v keeps volumes")
        self.out("run", "--rm", "withvol", "true")
        self.assertEqual(len(self.out("volume", "ls", "-q").split()), 2,
                         "--rm removes the anonymous volume")
        self.out("run", "--name", "c2", "-v", "keep:/named", "withvol", "true")
        self.out("rm", "-v", "c2")
        self.assertEqual(set(self.out("volume", "ls", "-q").split()), vols)
        out = self.out("volume", "prune", "-f")
        self.assertIn(anon["Name"], out)
        self.assertEqual(self.out("volume", "ls", "-q"), "keep\n",
                         "prune removes only anonymous volumes")

    def test_volume_create_inspect_ls_filters_and_df(self):
        self.out("volume", "create", "--label", "tier=db", "v1")
        self.out("volume", "create", "v2")
        [v1] = json.loads(self.out("volume", "inspect", "v1"))
        self.assertEqual((v1["Name"], v1["Driver"], v1["Labels"], v1["Scope"]),
                         ("v1", "local", {"tier": "db"}, "local"))
        self.assertEqual(v1["Mountpoint"],
                         os.path.join(self.daemon.data_root, "volumes", "v1", "_data"))
        self.assertEqual(self.out("volume", "ls", "-q", "-f", "label=tier=db"), "v1\n")
        self.assertEqual(self.out("volume", "ls", "-q", "-f", "name=2"), "v2\n")
        self.out("create", "-v", "v1:/d", "busybox", "true")
        self.assertEqual(self.out("volume", "ls", "-q", "-f", "dangling=true"), "v2\n")
        status, df = self.daemon.json("GET", "/system/df")
        usage = {v["Name"]: v["UsageData"]["RefCount"] for v in df["Volumes"]}
        self.assertEqual(usage, {"v1": 1, "v2": 0})
        r = self.docker("volume", "create", "bad/name")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"includes invalid characters for a local volume name", r.stderr)

    def test_prune_label_negation_spares_only_volumes_with_every_label(self):
        """Checked against Docker 20.10: ``label!`` is a prune filter, and a
        volume survives it only if it has all the labels given; listing
        refuses it."""
        from urllib.parse import quote

        for name, labels in [("va", ["env=prod", "team=x"]), ("vb", ["env=dev", "team=x"]),
                             ("vc", ["env=prod"]), ("vd", [])]:
            self.out("volume", "create", *[a for lb in labels for a in ("--label", lb)], name)
        flt = quote(json.dumps({"label!": ["env=prod", "team=x"]}))
        status, body = self.daemon.json("GET", f"/volumes?filters={flt}")
        self.assertEqual((status, body), (400, {"message": "invalid filter 'label!'"}))
        status, body = self.daemon.json("POST", f"/v1.41/volumes/prune?filters={flt}")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(body["VolumesDeleted"]), ["vb", "vc", "vd"])
        self.assertEqual(self.out("volume", "ls", "-q"), "va\n")

    def test_tmpfs_backed_local_volume_is_mounted_only_while_used(self):
        self.out("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
                 "--opt", "o=size=1m", "tv")
        out = self.out("run", "--rm", "-v", "tv:/d", "busybox", "sh", "-c",
                       "grep ' /d ' /proc/mounts; dd if=/dev/zero of=/d/f bs=1k count=2048 "
                       "2>/dev/null || echo full")
        self.assertIn("tmpfs", out)
        self.assertIn("full", out)
        path = os.path.join(self.daemon.data_root, "volumes", "tv", "_data")
        self.assertEqual(_mounts_under(path), [])


class TmpfsTests(VolumeTestBase):
    def test_tmpfs_size_limit_is_enforced(self):
        for flags in (["--tmpfs", "/t:size=1m"],
                      ["--mount", "type=tmpfs,destination=/t,tmpfs-size=1048576"]):
            out = self.out("run", "--rm", *flags, "busybox", "sh", "-c",
                           "grep ' /t ' /proc/mounts; "
                           "dd if=/dev/zero of=/t/f bs=1k count=2048 2>/dev/null "
                           "&& echo wrote || echo full")
            self.assertIn("tmpfs /t tmpfs", out, flags)
            self.assertIn("size=1024k", out, flags)
            self.assertEqual(out.splitlines()[-1], "full", flags)


class RestartTests(VolumeTestBase):
    def test_volumes_and_their_users_survive_a_daemon_restart(self):
        self.out("run", "--name", "r1", "-v", "persist:/p", "busybox", "sh", "-c",
                 "echo durable > /p/f")
        self.daemon.stop()
        self.daemon.start()
        self.assertEqual(self.out("volume", "ls", "-q"), "persist\n")
        r = self.docker("volume", "rm", "persist")
        self.assertIn(b"volume is in use", r.stderr, "the user was remembered")
        self.assertEqual(self.inspect("r1")["Mounts"][0]["Name"], "persist")
        out = self.out("run", "--rm", "-v", "persist:/p", "busybox", "cat", "/p/f")
        self.assertEqual(out, "durable\n")


class DockerPyVolumeTests(VolumeTestBase):
    def setUp(self):
        if docker is None:
            self.skipTest("docker-py is not installed")
        super().setUp()
        self.client = docker.DockerClient(base_url=self.daemon.host, version="auto")
        self.addCleanup(self.client.close)

    def test_docker_py_volume_lifecycle(self):
        vol = self.client.volumes.create("dp", labels={"a": "b"})
        self.assertEqual(vol.attrs["Labels"], {"a": "b"})
        self.assertEqual([v.name for v in self.client.volumes.list(filters={"label": "a"})],
                         ["dp"])
        out = self.client.containers.run("busybox", "sh -c 'echo hi > /v/f; cat /v/f'",
                                         volumes={"dp": {"bind": "/v", "mode": "rw"}},
                                         remove=True)
        self.assertEqual(out, b"hi\n")
        with self.assertRaises(docker.errors.NotFound):
            self.client.volumes.get("nope")
        self.assertEqual(self.client.volumes.prune()["VolumesDeleted"], None)
        vol.remove()
        self.assertEqual(self.client.volumes.list(), [])


class BinDockerVolumeTests(DaemonTestCase):
    """dockerpy's own bin/docker: the volume commands and the mount flags."""

    def setUp(self):
        self.daemon = self.start_daemon()

    def bd(self, *args, input: bytes | None = None):
        return self.daemon.bin_docker(*args, input=input)

    def out(self, *args) -> str:
        r = self.bd(*args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def test_volume_commands_and_mount_flags(self):
        self.assertEqual(self.out("volume", "create", "--label", "k=v", "bv"), "bv\n")
        self.assertEqual(self.out("volume", "ls"), "DRIVER    VOLUME NAME\nlocal     bv\n")
        self.assertEqual(self.out("volume", "inspect", "-f", "{{.Labels}}", "bv"), "map[k:v]\n")
        src = tempfile.mkdtemp(dir=self.daemon.tmp)
        out = self.out("run", "--rm", "-v", "bv:/v", "--mount",
                       f"type=bind,source={src},target=/b,readonly", "--tmpfs", "/t:size=1m",
                       "--read-only", "busybox", "sh", "-c",
                       "echo in > /v/f; touch /b/x 2>/dev/null || echo ro; "
                       "touch /root-file 2>/dev/null || echo rootro; echo ok > /t/f; cat /v/f")
        self.assertEqual(out, "ro\nrootro\nin\n")
        r = self.bd("volume", "rm", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"no such volume", r.stderr)
        self.assertEqual(self.out("volume", "rm", "bv"), "bv\n")
        self.out("run", "--rm", "-v", "/anon", "busybox", "true")
        self.assertEqual(self.out("volume", "ls", "-q"), "")
        self.out("create", "-v", "/anon", "busybox", "true")
        out = self.out("volume", "prune", "-f")
        self.assertIn("Total reclaimed space: 0B", out)
