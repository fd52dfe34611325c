# -*- test-case-name: dockerpy.test.test_stats -*-
"""Container stats: cgroup v1 and v2 trees read into Docker's JSON (unit,
on fake trees), and ``GET /containers/{id}/stats`` through the docker CLI
and docker-py against a real daemon (integration)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from twisted.trial import unittest

from dockerpy.containers import stats
from dockerpy.runtime.cgroups import HYBRID, UNIFIED
from dockerpy.test.daemon_fixture import DaemonTestCase

CG = "dockerpy-1234/abc"

PROC_STAT = ("cpu  100 0 50 1000 10 0 5 7 0 0\n"
             "cpu0 50 0 25 500 5 0 2 3 0 0\ncpu1 50 0 25 500 5 0 3 4 0 0\n"
             "intr 1\n")
NET_DEV = ("Inter-|   Receive                                                |  Transmit\n"
           " face |bytes    packets errs drop fifo frame compressed multicast|bytes ...\n"
           "    lo:  10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n"
           "  eth0: 1500 12 1 2 0 0 0 0 700 7 3 4 0 0 0 0\n")


def _write(root: str, rel: str, text: str) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class FakeHost:
    def __init__(self, case: unittest.TestCase) -> None:
        self.tmp = tempfile.mkdtemp(prefix="stats-")
        case.addCleanup(shutil.rmtree, self.tmp, True)
        self.cgroup = os.path.join(self.tmp, "cgroup")
        self.proc = os.path.join(self.tmp, "proc")
        _write(self.proc, "stat", PROC_STAT)
        _write(self.proc, "meminfo", "MemTotal:        2048 kB\nMemFree: 1 kB\n")
        _write(self.proc, "42/net/dev", NET_DEV)


class ReadSampleTests(unittest.TestCase):
    def test_cgroup_v1_controllers(self):
        host = FakeHost(self)
        files = {
            "cpuacct/%s/cpuacct.usage": "5000\n",
            "cpuacct/%s/cpuacct.usage_percpu": "2000 3000 \n",
            "cpuacct/%s/cpuacct.stat": "user 3\nsystem 1\n",
            "cpu/%s/cpu.stat": "nr_periods 4\nnr_throttled 2\nthrottled_time 99\n",
            "memory/%s/memory.usage_in_bytes": "1000\n",
            "memory/%s/memory.max_usage_in_bytes": "1500\n",
            "memory/%s/memory.failcnt": "0\n",
            "memory/%s/memory.limit_in_bytes": "9223372036854771712\n",
            "memory/%s/memory.stat": "cache 10\ntotal_inactive_file 100\n",
            "pids/%s/pids.current": "3\n",
            "pids/%s/pids.max": "max\n",
            "blkio/%s/blkio.throttle.io_service_bytes_recursive":
                "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
        }
        for rel, text in files.items():
            _write(host.cgroup, rel % CG, text)
        sample = stats.read_sample("/" + CG, 10.0, pid=42, root=host.cgroup, mode=HYBRID,
                                   proc=host.proc)
        hz = os.sysconf("SC_CLK_TCK")
        self.assertEqual(
            (sample.cpu_total, sample.percpu, sample.cpu_user, sample.cpu_kernel),
            (5000, [2000, 3000], 3 * 10**9 // hz, 10**9 // hz))
        self.assertEqual((sample.periods, sample.throttled_periods, sample.throttled_time),
                         (4, 2, 99))
        self.assertEqual(sample.system_cpu, 1165 * 10**9 // hz)
        self.assertEqual(sample.online_cpus, 2)
        # "No limit" shows as the host's memory, as Docker shows it.
        self.assertEqual((sample.memory_usage, sample.memory_max_usage, sample.memory_limit),
                         (1000, 1500, 2048 * 1024))
        self.assertEqual(sample.memory_stats, {"cache": 10, "total_inactive_file": 100})
        self.assertEqual((sample.pids_current, sample.pids_limit), (3, None))
        self.assertEqual(sample.io_service_bytes, [
            {"major": 8, "minor": 0, "op": "Read", "value": 4096},
            {"major": 8, "minor": 0, "op": "Write", "value": 0}])
        self.assertEqual(sample.networks, {"eth0": {
            "rx_bytes": 1500, "rx_packets": 12, "rx_errors": 1, "rx_dropped": 2,
            "tx_bytes": 700, "tx_packets": 7, "tx_errors": 3, "tx_dropped": 4}})

    def test_cgroup_v2_unified_tree(self):
        host = FakeHost(self)
        files = {
            "cpu.stat": "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 1\n"
                        "nr_throttled 1\nthrottled_usec 3\n",
            "memory.current": "4096\n",
            "memory.max": "1024\n",
            "memory.stat": "anon 1\ninactive_file 2\n",
            "pids.current": "2\n",
            "pids.max": "100\n",
            "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
        }
        for name, text in files.items():
            _write(host.cgroup, f"{CG}/{name}", text)
        sample = stats.read_sample(CG, 10.0, pid=42, host_network=True, root=host.cgroup,
                                   mode=UNIFIED, proc=host.proc)
        self.assertEqual((sample.cpu_total, sample.cpu_user, sample.cpu_kernel, sample.percpu),
                         (7000, 5000, 2000, None))
        self.assertEqual(sample.throttled_time, 3000)
        self.assertEqual((sample.memory_usage, sample.memory_limit), (4096, 1024))
        self.assertEqual((sample.pids_current, sample.pids_limit), (2, 100))
        self.assertEqual(sample.io_service_bytes, [
            {"major": 8, "minor": 0, "op": "read", "value": 10},
            {"major": 8, "minor": 0, "op": "write", "value": 20}])
        self.assertEqual(sample.io_serviced, [
            {"major": 8, "minor": 0, "op": "read", "value": 1},
            {"major": 8, "minor": 0, "op": "write", "value": 2}])
        self.assertIsNone(sample.networks)  # host network: Docker shows none

    def test_missing_cgroup_reads_as_empty(self):
        host = FakeHost(self)
        sample = stats.read_sample(CG, 1.0, root=host.cgroup, mode=UNIFIED, proc=host.proc)
        self.assertEqual((sample.cpu_total, sample.memory_usage, sample.pids_current),
                         (0, None, None))


class StatsJSONTests(unittest.TestCase):
    def test_pair_of_samples_fills_precpu_and_preread(self):
        first = stats.Sample(read=100.0, cpu_total=1, system_cpu=10, online_cpus=2)
        second = stats.Sample(read=101.5, cpu_total=5, system_cpu=20, online_cpus=2,
                              memory_usage=3, memory_limit=9, memory_stats={"x": 1},
                              pids_current=1, networks={})
        doc = stats.stats_json("c" * 64, "/web", second, first)
        self.assertTrue(doc["read"].startswith("1970-01-01T00:01:41.5"), doc["read"])
        self.assertTrue(doc["preread"].startswith("1970-01-01T00:01:40"), doc["preread"])
        self.assertEqual(doc["cpu_stats"]["cpu_usage"]["total_usage"], 5)
        self.assertEqual(doc["precpu_stats"]["cpu_usage"]["total_usage"], 1)
        self.assertEqual(doc["precpu_stats"]["system_cpu_usage"], 10)
        self.assertEqual(doc["memory_stats"], {"usage": 3, "stats": {"x": 1}, "limit": 9})
        self.assertEqual(doc["pids_stats"], {"current": 1})
        self.assertEqual((doc["name"], doc["id"], doc["num_procs"]), ("/web", "c" * 64, 0))
        self.assertEqual(doc["networks"], {})
        self.assertEqual(set(doc["blkio_stats"]), set(stats.BLKIO_KEYS))

    def test_not_running_is_dockers_zero_document(self):
        doc = stats.stats_json("c" * 64, "/web", None)
        self.assertEqual((doc["read"], doc["preread"]),
                         ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"))
        self.assertEqual(doc["cpu_stats"]["cpu_usage"]["total_usage"], 0)
        self.assertEqual(doc["memory_stats"], {})
        self.assertNotIn("networks", doc)


class StatsIntegrationTests(DaemonTestCase):
    def test_docker_stats_no_stream_shows_the_container(self):
        daemon = self.start_daemon(cli=True)
        daemon.cli("run", "-d", "--name", "busy", "busybox", "sleep", "1000", check=True)
        self.addCleanup(daemon.cli, "rm", "-f", "busy")
        result = daemon.cli("stats", "--no-stream", "--format",
                            "{{.Name}} {{.MemUsage}} {{.PIDs}}", "busy", check=True)
        name, mem, _, _limit, pids = result.stdout.decode().split()
        self.assertEqual(name, "busy")
        self.assertNotEqual(mem, "0B")
        self.assertEqual(pids, "1")

    def test_docker_py_stats_keys_and_stream(self):
        daemon = self.start_daemon(cli=True)
        import docker

        client = docker.DockerClient(base_url=daemon.host)
        self.addCleanup(client.close)
        container = client.containers.run("busybox", ["sleep", "1000"], detach=True)
        self.addCleanup(container.remove, force=True)
        doc = container.stats(stream=False)
        for key in ("read", "preread", "pids_stats", "blkio_stats", "num_procs",
                    "cpu_stats", "precpu_stats", "memory_stats", "name", "id"):
            self.assertIn(key, doc)
        self.assertEqual((doc["id"], doc["name"]), (container.id, "/" + container.name))
        self.assertGreater(doc["cpu_stats"]["system_cpu_usage"],
                           doc["precpu_stats"]["system_cpu_usage"])
        self.assertGreater(doc["memory_stats"]["usage"], 0)
        self.assertEqual(doc["pids_stats"]["current"], 1)
        self.assertNotIn("lo", doc.get("networks", {}))
        stream = container.stats(stream=True, decode=True)
        first, second = next(stream), next(stream)
        stream.close()
        self.assertEqual(second["preread"], first["read"])
        status, _, body = daemon.request("GET", "/containers/nope/stats?stream=0")
        self.assertEqual(status, 404, body)

    def test_stats_of_a_stopped_container_is_the_zero_document(self):
        daemon = self.start_daemon()
        status, created = daemon.json("POST", "/containers/create?name=idle",
                                      {"Image": "busybox", "Cmd": ["true"]})
        self.assertEqual(status, 201, created)
        self.addCleanup(daemon.request, "DELETE", "/containers/idle?force=1")
        status, _, body = daemon.request("GET", "/containers/idle/stats?stream=false")
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual((doc["read"], doc["name"]), ("0001-01-01T00:00:00Z", "/idle"))
