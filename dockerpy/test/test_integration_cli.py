"""The real docker CLI v28 driving a real dockerpy daemon (root, runc, overlayfs).

One daemon per test class (starting one costs about a second); each test
uses its own container names, and the class checks on tear-down that the
daemon left no mount or runtime state behind.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile


from dockerpy.test.daemon_fixture import CLIDaemonTestCase, settled_listdir


class CLITestBase(CLIDaemonTestCase):
    def cleanup_container(self, name: str) -> None:
        self.addCleanup(self.docker, "rm", "-f", name)


class RunTests(CLITestBase):
    def test_run_prints_output_and_exits_zero(self):
        r = self.docker("run", "--rm", "busybox", "echo", "hello world")
        self.assertEqual((r.returncode, r.stdout), (0, b"hello world\n"), r.stderr)

    def test_run_returns_container_exit_code(self):
        r = self.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, b"out\n")
        self.assertEqual(r.stderr, b"err\n")

    def test_run_with_stdin_passes_input_and_eof(self):
        r = self.docker("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo done",
                        input=b"abc\n")
        self.assertEqual((r.returncode, r.stdout), (0, b"ABC\ndone\n"), r.stderr)

    def test_run_missing_executable_exits_127(self):
        r = self.docker("run", "--rm", "busybox", "/nonexistent")
        self.assertEqual(r.returncode, 127, r.stderr)
        self.assertIn(b'exec: "/nonexistent": stat /nonexistent: no such file or directory',
                      r.stderr)
        self.assertEqual(self.out("ps", "-aq"), "", "--rm removes a container that never ran")

    def test_run_unknown_command_in_path_exits_127(self):
        r = self.docker("run", "--rm", "busybox", "nosuchcommand")
        self.assertEqual(r.returncode, 127, r.stderr)
        self.assertIn(b"executable file not found in $PATH", r.stderr)

    def test_run_missing_image_fails(self):
        r = self.docker("run", "--rm", "--pull=never", "nosuchimage:latest", "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"No such image", r.stderr)

    def test_run_env_workdir_user_hostname(self):
        out = self.out("run", "--rm", "-e", "FOO=bar", "-w", "/tmp/work", "-u", "nobody",
                       "--hostname", "boxy", "busybox", "sh", "-c",
                       'echo $FOO $(pwd) $(id -u) $(hostname)')
        self.assertEqual(out, "bar /tmp/work 65534 boxy\n")

    def test_run_network_none_has_only_loopback(self):
        out = self.out("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
        self.assertEqual(out.split(), ["lo"])

    def test_run_entrypoint_override(self):
        out = self.out("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
        self.assertEqual(out, "a b\n")


class LifecycleTests(CLITestBase):
    def test_detached_container_ps_logs_stop_rm(self):
        name = "lifecycle1"
        self.cleanup_container(name)
        cid = self.out("run", "-d", "--name", name, "busybox", "sh", "-c",
                       "echo started; trap 'echo bye; exit 0' TERM; "
                       "while true; do sleep 0.1; done").strip()
        self.assertEqual(len(cid), 64)
        ps = self.out("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}")
        self.assertIn(f"{cid[:12]} {name} Up", ps)
        self.assertEqual(self.out("inspect", "-f", "{{.State.Running}}", name), "true\n")
        self._wait_for_log(name, "started")
        self.out("stop", "-t", "5", name)
        self.assertEqual(self.out("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                                  name), "exited 0\n")
        self.assertEqual(self.out("logs", name), "started\nbye\n")
        self.assertNotIn(name, self.out("ps", "--format", "{{.Names}}"))
        self.assertIn(name, self.out("ps", "-a", "--format", "{{.Names}}"))
        self.out("rm", name)
        r = self.docker("inspect", name)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"No such object", r.stderr + b"No such object")

    def _wait_for_log(self, name: str, text: str) -> None:
        import time

        for _ in range(100):
            if text in self.out("logs", name):
                return
            time.sleep(0.05)
        self.fail(f"{text!r} never appeared in logs of {name}")

    def test_kill_and_wait_report_signal_exit_code(self):
        name = "killme"
        self.cleanup_container(name)
        self.out("run", "-d", "--name", name, "busybox", "sleep", "1000")
        self.out("kill", name)
        self.assertEqual(self.out("wait", name), "137\n")

    def test_kill_with_signal_name(self):
        name = "killterm"
        self.cleanup_container(name)
        self.out("run", "-d", "--name", name, "busybox", "sh", "-c",
                 "trap 'exit 7' USR1; while true; do sleep 0.1; done")
        import time
        time.sleep(0.3)
        self.out("kill", "-s", "USR1", name)
        self.assertEqual(self.out("wait", name), "7\n")

    def test_rm_running_container_conflicts_unless_forced(self):
        name = "busyrm"
        self.cleanup_container(name)
        self.out("run", "-d", "--name", name, "busybox", "sleep", "1000")
        r = self.docker("rm", name)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"container is running", r.stderr)
        self.out("rm", "-f", name)
        self.assertNotIn(name, self.out("ps", "-a", "--format", "{{.Names}}"))

    def test_name_conflict(self):
        name = "dupe"
        self.cleanup_container(name)
        self.out("create", "--name", name, "busybox", "true")
        r = self.docker("create", "--name", name, "busybox", "true")
        self.assertEqual(r.returncode, 1)  # what the docker CLI itself returns here
        self.assertIn(b'is already in use by container', r.stderr)

    def test_restart_and_top(self):
        name = "restarter"
        self.cleanup_container(name)
        self.out("run", "-d", "--name", name, "busybox", "sleep", "1000")
        self.out("restart", "-t", "0", name)
        self.assertEqual(self.out("inspect", "-f", "{{.State.Running}}", name), "true\n")
        top = self.out("top", name)
        self.assertIn("sleep 1000", top)
        self.assertIn("PID", top.splitlines()[0])

    def test_rename(self):
        self.cleanup_container("renamed2")
        self.out("create", "--name", "renamed1", "busybox", "true")
        self.out("rename", "renamed1", "renamed2")
        self.assertEqual(self.out("inspect", "-f", "{{.Name}}", "renamed2"), "/renamed2\n")

    def test_missing_container_errors(self):
        for args in (("stop", "nosuch"), ("rm", "nosuch"), ("logs", "nosuch"),
                     ("kill", "nosuch")):
            r = self.docker(*args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn(b"No such container: nosuch", r.stderr, args)

    def test_container_prune_removes_only_stopped(self):
        self.cleanup_container("prune-running")
        self.out("run", "-d", "--name", "prune-running", "busybox", "sleep", "1000")
        self.out("run", "--name", "prune-stopped", "busybox", "true")
        self.out("container", "prune", "-f")
        names = self.out("ps", "-a", "--format", "{{.Names}}").split()
        self.assertIn("prune-running", names)
        self.assertNotIn("prune-stopped", names)


class LogsAndListTests(CLITestBase):
    def test_logs_tail_timestamps_and_since(self):
        name = "logger"
        self.cleanup_container(name)
        self.out("run", "--name", name, "busybox", "sh", "-c", "echo one; echo two; echo three")
        self.assertEqual(self.out("logs", name), "one\ntwo\nthree\n")
        self.assertEqual(self.out("logs", "--tail", "1", name), "three\n")
        self.assertEqual(self.out("logs", "--tail", "0", name), "")
        stamped = self.out("logs", "-t", name).splitlines()
        self.assertEqual([line.split(" ", 1)[1] for line in stamped], ["one", "two", "three"])
        self.assertRegex(stamped[0].split(" ", 1)[0], r"^\d{4}-\d\d-\d\dT[\d:.]+Z$")
        self.assertEqual(self.out("logs", "--since", "2099-01-01T00:00:00Z", name), "")
        self.assertEqual(self.out("logs", "--until", "2000-01-01T00:00:00Z", name), "")

    def test_logs_keep_streams_apart(self):
        name = "streams"
        self.cleanup_container(name)
        self.out("run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2")
        r = self.docker("logs", name, check=True)
        self.assertEqual((r.stdout, r.stderr), (b"out\n", b"err\n"))

    def test_ps_filters_limit_and_size(self):
        for name in ("first", "second", "third"):
            self.cleanup_container(name)
            self.out("create", "--name", name, "--label", f"n={name}", "busybox", "true")
        fmt = ("--format", "{{.Names}}")
        self.assertEqual(self.out("ps", *fmt), "")
        self.assertEqual(self.out("ps", "-a", *fmt).split(), ["third", "second", "first"])
        self.assertEqual(self.out("ps", "-n", "2", *fmt).split(), ["third", "second"])
        self.assertEqual(self.out("ps", "-f", "before=third", *fmt).split(),
                         ["second", "first"])
        self.assertEqual(self.out("ps", "-f", "since=first", *fmt).split(),
                         ["third", "second"])
        self.assertEqual(self.out("ps", "-a", "-f", "label=n=second", *fmt).split(),
                         ["second"])
        self.assertEqual(self.out("ps", "-a", "-f", "status=created", "-f", "name=thi",
                                  *fmt).split(), ["third"])
        sizes = self.out("ps", "-a", "-s", "--format", "{{.Size}}").splitlines()
        self.assertEqual(len(sizes), 3)
        self.assertIn("virtual", sizes[0])


class SystemTests(CLITestBase):
    def test_system_df_counts_images_and_containers(self):
        self.cleanup_container("df1")
        self.out("run", "--name", "df1", "busybox", "sh", "-c", "echo data > /f")
        status, df = self.daemon.json("GET", "/system/df")
        self.assertEqual(status, 200)
        [image] = df["Images"]
        self.assertEqual((image["RepoTags"], image["Containers"]), (["busybox:latest"], 1))
        self.assertEqual(df["LayersSize"], image["Size"])
        [container] = df["Containers"]
        self.assertEqual(container["Names"], ["/df1"])
        self.assertEqual(container["SizeRw"], 5)
        out = self.out("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
        self.assertIn("Images 1 1", out)
        self.assertIn("Containers 1 0", out)


class APIVersionTests(CLITestBase):
    def test_container_config_is_shown_only_below_1_45(self):
        old = self.daemon.json("GET", "/v1.44/images/busybox/json")[1]
        new = self.daemon.json("GET", "/v1.45/images/busybox/json")[1]
        self.assertIn("ContainerConfig", old)
        self.assertNotIn("ContainerConfig", new)
        self.assertEqual(old["Id"], new["Id"])

    def test_old_client_versions_are_served(self):
        status, body = self.daemon.json("GET", "/v1.24/containers/json?all=1")
        self.assertEqual((status, body), (200, []))
        status, body = self.daemon.json("GET", "/v1.99/version")
        self.assertEqual(status, 400)


class FilesystemTests(CLITestBase):
    def test_diff_shows_changes(self):
        name = "differ"
        self.cleanup_container(name)
        self.out("run", "--name", name, "busybox", "sh", "-c",
                 "mkdir /newdir && echo x > /newdir/f && rm /etc/group")
        changes = self.out("diff", name).splitlines()
        self.assertIn("A /newdir", changes)
        self.assertIn("A /newdir/f", changes)
        self.assertIn("D /etc/group", changes)
        self.assertIn("C /etc", changes)
        self.assertFalse([c for c in changes if "hostname" in c or "resolv" in c], changes)

    def test_cp_in_and_out(self):
        name = "copier"
        self.cleanup_container(name)
        self.out("create", "--name", name, "busybox", "cat", "/data/in.txt")
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "in.txt")
            with open(src, "w") as f:
                f.write("copied in\n")
            self.out("cp", src, f"{name}:/tmp/")
            self.out("cp", src, f"{name}:/in-root.txt")
            dest = os.path.join(d, "out")
            self.out("cp", f"{name}:/tmp/in.txt", dest)
            with open(dest) as f:
                self.assertEqual(f.read(), "copied in\n")
            self.out("cp", f"{name}:/etc", os.path.join(d, "etc"))
            self.assertTrue(os.path.exists(os.path.join(d, "etc", "passwd")))
        r = self.docker("cp", f"{name}:/nonexistent", "/tmp/x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"Could not find the file /nonexistent", r.stderr)

    def test_commit_makes_runnable_image(self):
        name = "committer"
        self.cleanup_container(name)
        self.addCleanup(self.docker, "rmi", "-f", "committed:v1")
        self.out("run", "--name", name, "busybox", "sh", "-c", "echo baked > /baked")
        self.out("commit", "-c", 'CMD ["cat", "/baked"]', name, "committed:v1")
        self.assertEqual(self.out("run", "--rm", "committed:v1"), "baked\n")
        history = self.out("history", "committed:v1")
        self.assertIn("IMAGE", history)

    def test_export_is_a_rootfs_tar(self):
        name = "exporter"
        self.cleanup_container(name)
        self.out("create", "--name", name, "busybox", "true")
        r = self.docker("export", name, check=True)
        names = tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()
        self.assertIn("bin/busybox", [n.lstrip("./") for n in names])

    def test_save_load_round_trip_keeps_image_id(self):
        self.out("tag", "busybox", "roundtrip:1")
        image_id = self.out("inspect", "-f", "{{.Id}}", "roundtrip:1").strip()
        r = self.docker("save", "roundtrip:1", check=True)
        members = tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()
        self.assertIn("manifest.json", members)
        self.out("rmi", "roundtrip:1")
        out = self.out("load", input=r.stdout)
        self.assertIn("Loaded image: roundtrip:1", out)
        self.assertEqual(self.out("inspect", "-f", "{{.Id}}", "roundtrip:1").strip(), image_id)
        self.out("rmi", "roundtrip:1")

    def test_rmi_of_image_used_by_container_conflicts(self):
        name = "user-of-image"
        self.cleanup_container(name)
        self.out("tag", "busybox", "inuse:1")
        self.addCleanup(self.docker, "rmi", "-f", "inuse:1")
        image_id = self.out("inspect", "-f", "{{.Id}}", "busybox").strip()
        self.out("create", "--name", name, "busybox", "true")
        r = self.docker("rmi", image_id)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"conflict", r.stderr.lower())

    def test_removing_everything_leaves_an_empty_store(self):
        self.out("run", "--name", "last", "busybox", "true")
        self.out("rm", "last")
        self.out("rmi", "busybox")
        home = os.path.join(self.daemon.data_root, "storage", self.storage_driver)
        # the drivers' own bookkeeping directories stay; they must be empty
        bookkeeping = ("l", "dir", "meta")
        self.assertEqual(sorted(n for n in settled_listdir(home) if n not in bookkeeping), [])
        for sub in bookkeeping:
            if os.path.isdir(os.path.join(home, sub)):
                self.assertEqual(os.listdir(os.path.join(home, sub)), [])

    def test_images_lists_busybox(self):
        out = self.out("images", "--format", "{{.Repository}}:{{.Tag}}")
        self.assertIn("busybox:latest", out.split())
        r = self.docker("rmi", "nosuchimage:1")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"No such image", r.stderr)


class InfoTests(CLITestBase):
    def test_version_and_info(self):
        out = self.out("version", "--format", "{{json .Server}}")
        server = json.loads(out)
        self.assertEqual(server["ApiVersion"], "1.47")
        info = json.loads(self.out("info", "--format", "{{json .}}"))
        self.assertEqual(info["Driver"], self.storage_driver)
        self.assertIn(info["DefaultRuntime"], ("runc", "crun"))
        self.assertEqual(info["Swarm"]["LocalNodeState"], "inactive")
