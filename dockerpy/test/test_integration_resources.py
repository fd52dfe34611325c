"""Resource limits and OOM kills on real containers (root, crun or runc,
real cgroups), through the docker CLI and docker-py; behaviour checked
against Docker 20.10."""

from __future__ import annotations

import json

from dockerpy.test.daemon_fixture import CLIDaemonTestCase

try:
    import docker
except ImportError:  # pragma: no cover
    docker = None

# The container's own limit files: cgroup v1 (host cgroup namespace, the
# container's cgroups mounted at the hierarchies' roots), else v2.
_SHOW_LIMITS = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max;"
    " cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null"
    " || cut -d' ' -f1 /sys/fs/cgroup/cpu.max;"
    " cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")


class ResourceLimitTests(CLIDaemonTestCase):

    def test_memory_cpu_and_pids_limits_reach_the_cgroups(self):
        out = self.out("run", "--rm", "-m", "64m", "--cpus", "0.5", "--pids-limit", "20",
                       "busybox", "sh", "-c", _SHOW_LIMITS)
        self.assertEqual(out.split(), [str(64 * 1024 * 1024), "50000", "20"])

    def test_oom_killed_init_exits_137_and_is_recorded(self):
        r = self.docker("run", "--name", "oom", "-m", "8m", "busybox",
                        "dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=1")
        self.assertEqual(r.returncode, 137, r.stderr)
        state = json.loads(self.out("inspect", "oom"))[0]
        self.assertEqual((state["State"]["OOMKilled"], state["State"]["ExitCode"]), (True, 137))
        self.assertEqual((state["HostConfig"]["Memory"], state["HostConfig"]["MemorySwap"]),
                         (8 * 1024 * 1024, 16 * 1024 * 1024))

    def test_oom_kill_of_another_process_is_recorded_too(self):
        """As with Docker: the shell survives its killed dd, exits 0, and the
        container still says OOMKilled."""
        out = self.out("run", "--name", "oom2", "-m", "8m", "busybox", "sh", "-c",
                       "dd if=/dev/zero of=/dev/null bs=32M count=1 2>/dev/null; echo survived")
        self.assertEqual(out, "survived\n")
        self.assertEqual(self.out("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}",
                                  "oom2"), "true 0\n")
        self.out("start", "-a", "oom2")
        self.assertEqual(self.out("inspect", "-f", "{{.State.OOMKilled}}", "oom2"), "true\n")

    def test_no_limit_no_oom(self):
        self.out("run", "--name", "fine", "busybox", "true")
        self.assertEqual(self.out("inspect", "-f", "{{.State.OOMKilled}}", "fine"), "false\n")

    def test_bad_limits_get_dockers_errors(self):
        r = self.docker("run", "--rm", "-m", "1m", "busybox", "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"Minimum memory limit allowed is 6MB", r.stderr)
        r = self.docker("run", "--rm", "--cpus", "1000", "busybox", "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(b"Range of CPUs is from 0.01 to", r.stderr)
        self.assertEqual(self.out("ps", "-aq"), "")

    def test_docker_py_mem_limit_and_oom(self):
        if docker is None:
            self.skipTest("docker-py is not installed")
        client = docker.DockerClient(base_url=self.daemon.host)
        self.addCleanup(client.close)
        c = client.containers.run("busybox", ["dd", "if=/dev/zero", "of=/dev/null", "bs=32M",
                                              "count=1"], mem_limit="8m", detach=True)
        self.assertEqual(c.wait()["StatusCode"], 137)
        c.reload()
        self.assertTrue(c.attrs["State"]["OOMKilled"])
        self.assertEqual(c.attrs["HostConfig"]["Memory"], 8 * 1024 * 1024)
        c.remove()

    def test_bin_docker_resource_flags(self):
        bd = self.daemon.bin_docker
        r = bd("run", "--name", "lim", "-m", "64m", "--memory-reservation", "32m",
               "--cpus", "0.5", "-c", "512", "--pids-limit", "20", "busybox", "sh", "-c",
               _SHOW_LIMITS)
        self.assertEqual((r.returncode, r.stdout.decode().split()),
                         (0, [str(64 * 1024 * 1024), "50000", "20"]), r.stderr)
        hc = json.loads(self.out("inspect", "-f", "{{json .HostConfig}}", "lim"))
        self.assertEqual((hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"],
                          hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]),
                         (64 << 20, 128 << 20, 32 << 20, 500_000_000, 512, 20))
        r = bd("run", "--rm", "--cpus", "lots", "busybox", "true")
        self.assertEqual(r.returncode, 125)
        self.assertIn(b'invalid argument "lots" for "--cpus" flag', r.stderr)
