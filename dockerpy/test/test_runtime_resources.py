# -*- test-case-name: dockerpy.test.test_runtime_resources -*-
"""Resource limits: HostConfig to ``linux.resources``, moby's refusals, and
the OOM kill count read from a container's memory cgroup."""

import os

from twisted.trial.unittest import SynchronousTestCase

from dockerpy import errors
from dockerpy.runtime import cgroups
from dockerpy.runtime.resources import oci_resources, validate

MB = 1024 * 1024


class ValidateTests(SynchronousTestCase):

    def refused(self, hc: dict, cpus: int = 2) -> str:
        return self.assertRaises(errors.InvalidParameter, validate, hc, cpus).message

    def test_dockers_words_for_bad_limits(self) -> None:
        """The messages Docker 20.10 gives (checked: -m 1m, --cpus 5 on 2 CPUs)."""
        self.assertEqual(self.refused({"Memory": MB}), "Minimum memory limit allowed is 6MB")
        self.assertEqual(self.refused({"NanoCpus": 5 * 10**9}),
                         "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available")
        self.assertEqual(self.refused({"Memory": 64 * MB, "MemorySwap": 32 * MB}),
                         "Minimum memoryswap limit should be larger than memory limit, see usage")
        self.assertEqual(self.refused({"MemorySwap": 64 * MB}),
                         "You should always set the Memory limit when using Memoryswap limit, "
                         "see usage")
        self.assertEqual(self.refused({"NanoCpus": 10**9, "CpuQuota": 50000}),
                         "Conflicting options: Nano CPUs and CPU Quota cannot both be set")
        self.assertEqual(self.refused({"Memory": 8 * MB, "MemoryReservation": 16 * MB}),
                         "Minimum memory limit can not be less than memory reservation limit, "
                         "see usage")
        self.assertIn("invalid value for Memory", self.refused({"Memory": "lots"}))

    def test_good_limits_and_none_pass(self) -> None:
        validate({}, 2)
        validate({"Memory": 6 * MB, "MemorySwap": -1, "NanoCpus": 2 * 10**9,
                  "CpuShares": 512, "PidsLimit": -1}, 2)


class OCIResourcesTests(SynchronousTestCase):

    def test_no_limit_no_member(self) -> None:
        self.assertEqual(oci_resources({}), {})
        self.assertEqual(oci_resources({"Memory": 0, "PidsLimit": 0, "NanoCpus": 0}), {})

    def test_memory_with_and_without_swap_accounting(self) -> None:
        hc = {"Memory": 8 * MB, "MemoryReservation": 6 * MB}
        self.assertEqual(oci_resources(hc), {"memory": {
            "limit": 8 * MB, "swap": 16 * MB, "reservation": 6 * MB}})
        self.assertEqual(oci_resources(dict(hc, MemorySwap=-1))["memory"]["swap"], -1)
        # Without swap accounting (this machine), moby drops the swap limit.
        self.assertEqual(oci_resources(hc, swap_limit=False),
                         {"memory": {"limit": 8 * MB, "reservation": 6 * MB}})
        self.assertEqual(oci_resources({"OomKillDisable": True}),
                         {"memory": {"disableOOMKiller": True}})

    def test_cpus_become_a_quota_on_dockers_period(self) -> None:
        self.assertEqual(oci_resources({"NanoCpus": 1_500_000_000, "CpuShares": 512,
                                        "CpusetCpus": "0", "CpusetMems": "0"}),
                         {"cpu": {"period": 100000, "quota": 150000, "shares": 512,
                                  "cpus": "0", "mems": "0"}})
        self.assertEqual(oci_resources({"CpuPeriod": 50000, "CpuQuota": 25000}),
                         {"cpu": {"period": 50000, "quota": 25000}})

    def test_pids_limit(self) -> None:
        self.assertEqual(oci_resources({"PidsLimit": 20}), {"pids": {"limit": 20}})
        self.assertEqual(oci_resources({"PidsLimit": -1}), {"pids": {"limit": -1}})
        self.assertEqual(oci_resources({"PidsLimit": None}), {})


class OOMKillsTests(SynchronousTestCase):

    def test_counts_from_v1_and_v2_files(self) -> None:
        root = os.path.abspath(self.mktemp())
        v1 = os.path.join(root, "memory", "parent", "c1")
        v2 = os.path.join(root, "unified", "parent", "c1")
        os.makedirs(v1)
        os.makedirs(v2)
        with open(os.path.join(v1, "memory.oom_control"), "w") as f:
            f.write("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
        with open(os.path.join(v2, "memory.events"), "w") as f:
            f.write("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
        mounts = [(os.path.join(root, "memory"), "cgroup"),
                  (os.path.join(root, "unified"), "cgroup2"),
                  (os.path.join(root, "cpu"), "cgroup")]
        self.assertEqual(cgroups.oom_kills("/parent/c1", mounts), 2)
        self.assertEqual(cgroups.oom_kills("/parent/other", mounts), 0)
        self.assertEqual(cgroups.oom_kills("/../etc", mounts), 0)
