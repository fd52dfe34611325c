# -*- test-case-name: dockerpy.test.test_runtime_spec -*-
"""The OCI spec carries Docker's defaults (moby ``oci/defaults.go``, ``daemon/oci_linux.go``)."""

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.errors import InvalidParameter
from dockerpy.runtime.spec import (
    ALL_CAPABILITIES, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS,
    SpecInput, build_spec, tweak_capabilities)

DOCKER_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def spec(**kwargs) -> dict:
    kwargs.setdefault("rootfs", "/r")
    kwargs.setdefault("args", ["/bin/sh"])
    return build_spec(SpecInput(**kwargs), sysctl_exists=lambda name: True,
                      all_caps=ALL_CAPABILITIES)


def mount(s: dict, destination: str) -> dict:
    [m] = [m for m in s["mounts"] if m["destination"] == destination]
    return m


class DefaultSpecTests(SynchronousTestCase):

    def test_version_root_process(self) -> None:
        s = spec(env=["PATH=/bin"], cwd="/w", hostname="h", tty=True)
        self.assertEqual(s["ociVersion"], "1.0.2-dev")
        self.assertEqual(s["root"], {"path": "/r", "readonly": False})
        self.assertEqual(s["hostname"], "h")
        p = s["process"]
        self.assertEqual((p["args"], p["env"], p["cwd"], p["terminal"]),
                         (["/bin/sh"], ["PATH=/bin"], "/w", True))
        self.assertEqual(p["user"], {"uid": 0, "gid": 0})
        self.assertIs(p["noNewPrivileges"], False)
        self.assertNotIn("rlimits", p)
        self.assertNotIn("apparmorProfile", p)

    def test_rootfs_propagation_follows_the_binds_like_moby(self) -> None:
        def bind(prop):
            return {"destination": "/m", "type": "bind", "source": "/h",
                    "options": ["rbind", prop]}
        self.assertNotIn("rootfsPropagation", spec(mounts=[bind("rprivate")])["linux"])
        self.assertEqual(spec(mounts=[bind("rslave")])["linux"]["rootfsPropagation"], "rslave")
        self.assertEqual(spec(mounts=[bind("rslave"), dict(bind("shared"), destination="/n")]
                              )["linux"]["rootfsPropagation"], "rshared")

    def test_default_capabilities_are_dockers_fourteen(self) -> None:
        caps = spec()["process"]["capabilities"]
        self.assertEqual(DEFAULT_CAPABILITIES, DOCKER_CAPS)
        for kind in ("bounding", "effective", "permitted"):
            self.assertEqual(caps[kind], DOCKER_CAPS)
        self.assertNotIn("inheritable", caps)
        self.assertNotIn("ambient", caps)

    def test_non_root_user_gets_only_bounding_capabilities(self) -> None:
        s = spec(uid=1000, gid=100, additional_gids=[100, 10])
        self.assertEqual(s["process"]["capabilities"], {"bounding": DOCKER_CAPS})
        self.assertEqual(s["process"]["user"],
                         {"uid": 1000, "gid": 100, "additionalGids": [100, 10]})

    def test_default_mounts(self) -> None:
        s = spec()
        self.assertEqual(
            [m["destination"] for m in s["mounts"]],
            ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
             "/dev/shm"])
        self.assertEqual(mount(s, "/proc"), {
            "destination": "/proc", "type": "proc", "source": "proc",
            "options": ["rw", "nosuid", "noexec", "nodev"]})
        self.assertEqual(mount(s, "/dev")["options"],
                         ["rw", "nosuid", "strictatime", "mode=755", "size=65536k"])
        self.assertEqual(mount(s, "/dev/pts")["options"],
                         ["rw", "nosuid", "noexec", "newinstance", "ptmxmode=0666",
                          "mode=0620", "gid=5"])
        self.assertIn("ro", mount(s, "/sys")["options"])
        self.assertIn("ro", mount(s, "/sys/fs/cgroup")["options"])
        self.assertEqual(mount(s, "/dev/shm")["options"],
                         ["rw", "nosuid", "noexec", "nodev", "mode=1777",
                          "size=67108864"])

    def test_shm_size(self) -> None:
        self.assertIn("size=1048576", mount(spec(shm_size=1 << 20), "/dev/shm")["options"])

    def test_extra_mounts_sorted_by_depth_after_defaults(self) -> None:
        s = spec(mounts=[
            {"destination": "/a/b/c", "type": "bind", "source": "/x", "options": ["rbind"]},
            {"destination": "/a", "type": "bind", "source": "/y", "options": ["rbind"]},
            {"destination": "/a/b", "type": "tmpfs", "source": "tmpfs", "options": []},
        ])
        self.assertEqual([m["destination"] for m in s["mounts"][-3:]],
                         ["/a", "/a/b", "/a/b/c"])

    def test_user_mount_replaces_default_at_same_destination(self) -> None:
        s = spec(mounts=[{"destination": "/dev/shm", "type": "bind",
                          "source": "/host/shm", "options": ["rbind"]}])
        [shm] = [m for m in s["mounts"] if m["destination"] == "/dev/shm"]
        self.assertEqual(shm["source"], "/host/shm")

    def test_user_dev_mount_drops_default_dev_submounts(self) -> None:
        s = spec(mounts=[{"destination": "/dev", "type": "bind", "source": "/dev",
                          "options": ["rbind"]}])
        self.assertEqual([m["destination"] for m in s["mounts"]],
                         ["/proc", "/sys", "/sys/fs/cgroup", "/dev"])

    def test_namespaces_private_network(self) -> None:
        s = spec()
        self.assertEqual(sorted(n["type"] for n in s["linux"]["namespaces"]),
                         ["ipc", "mount", "network", "pid", "uts"])
        [net] = [n for n in s["linux"]["namespaces"] if n["type"] == "network"]
        self.assertNotIn("path", net)

    def test_namespaces_host_network(self) -> None:
        s = spec(network="host")
        self.assertNotIn("network", [n["type"] for n in s["linux"]["namespaces"]])
        self.assertNotIn("sysctl", s["linux"])

    def test_namespaces_joined_network(self) -> None:
        s = spec(network="/var/run/netns/x")
        [net] = [n for n in s["linux"]["namespaces"] if n["type"] == "network"]
        self.assertEqual(net["path"], "/var/run/netns/x")

    def test_cgroup_namespace_only_when_private(self) -> None:
        self.assertNotIn("cgroup", [n["type"] for n in spec()["linux"]["namespaces"]])
        self.assertIn("cgroup", [n["type"] for n in
                                 spec(cgroupns="private")["linux"]["namespaces"]])

    def test_default_network_sysctls_and_user_sysctls(self) -> None:
        s = spec(sysctls={"net.ipv4.ip_forward": "1"})
        self.assertEqual(s["linux"]["sysctl"], {
            "net.ipv4.ping_group_range": "0 2147483647",
            "net.ipv4.ip_unprivileged_port_start": "0",
            "net.ipv4.ip_forward": "1"})

    def test_masked_and_readonly_paths(self) -> None:
        linux = spec()["linux"]
        self.assertEqual(linux["maskedPaths"], [
            "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
            "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
            "/sys/devices/virtual/powercap"])
        self.assertEqual(linux["readonlyPaths"], [
            "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"])
        self.assertEqual((MASKED_PATHS, READONLY_PATHS),
                         (linux["maskedPaths"], linux["readonlyPaths"]))

    def test_device_rules_deny_all_then_allow_defaults(self) -> None:
        rules = spec()["linux"]["resources"]["devices"]
        self.assertEqual(rules[0], {"allow": False, "access": "rwm"})
        allowed = {(r.get("type"), r.get("major"), r.get("minor"), r["access"])
                   for r in rules if r["allow"]}
        for major, minor in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1),
                             (5, 2)]:
            self.assertIn(("c", major, minor, "rwm"), allowed)
        self.assertIn(("c", None, None, "m"), allowed)
        self.assertIn(("b", None, None, "m"), allowed)
        # The wildcard mknod rules come after every deny (cgroup v1 cannot
        # punch a hole in a wildcard).
        last_deny = max(i for i, r in enumerate(rules) if not r["allow"])
        first_wild = min(i for i, r in enumerate(rules) if "major" not in r and r["allow"])
        self.assertLess(last_deny, first_wild)

    def test_cgroups_path(self) -> None:
        self.assertEqual(spec(cgroups_path="/p/c")["linux"]["cgroupsPath"], "/p/c")

    def test_readonly_rootfs(self) -> None:
        s = spec(readonly_rootfs=True)
        self.assertTrue(s["root"]["readonly"])
        self.assertNotIn("ro", mount(s, "/proc")["options"])
        self.assertNotIn("ro", mount(s, "/dev/shm")["options"])

    def test_privileged(self) -> None:
        devices = [{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0,
                    "fileMode": 0o660, "uid": 0, "gid": 6}]
        s = spec(privileged=True, devices=devices)
        caps = s["process"]["capabilities"]
        self.assertEqual(caps["bounding"], ALL_CAPABILITIES)
        self.assertEqual(caps["effective"], ALL_CAPABILITIES)
        self.assertNotIn("maskedPaths", s["linux"])
        self.assertNotIn("readonlyPaths", s["linux"])
        self.assertEqual(s["linux"]["resources"]["devices"],
                         [{"allow": True, "access": "rwm"}])
        self.assertEqual(s["linux"]["devices"], devices)
        self.assertNotIn("ro", mount(s, "/sys")["options"])
        self.assertNotIn("ro", mount(s, "/sys/fs/cgroup")["options"])

    def test_init(self) -> None:
        s = spec(args=["sleep", "1"], init_path="/usr/bin/tini")
        self.assertEqual(s["process"]["args"], ["/sbin/docker-init", "--", "sleep", "1"])
        self.assertEqual(mount(s, "/sbin/docker-init"), {
            "destination": "/sbin/docker-init", "type": "bind",
            "source": "/usr/bin/tini", "options": ["bind", "ro"]})

    def test_ulimits(self) -> None:
        s = spec(ulimits=[{"name": "nofile", "soft": 1024, "hard": 2048}])
        self.assertEqual(s["process"]["rlimits"],
                         [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}])

    def test_domainname(self) -> None:
        self.assertEqual(spec(domainname="example.com")["domainname"], "example.com")
        self.assertNotIn("domainname", spec())

    def test_relative_cwd_rejected(self) -> None:
        self.assertRaises(InvalidParameter, spec, cwd="w")

    def test_empty_args_rejected(self) -> None:
        self.assertRaises(InvalidParameter, spec, args=[])


class CapabilityTests(SynchronousTestCase):

    def test_add_and_drop(self) -> None:
        caps = tweak_capabilities(["net_admin", "CAP_SYS_ADMIN"], ["chown", "MKNOD"],
                                  False, ALL_CAPABILITIES)
        self.assertNotIn("CAP_CHOWN", caps)
        self.assertNotIn("CAP_MKNOD", caps)
        self.assertIn("CAP_NET_ADMIN", caps)
        self.assertIn("CAP_SYS_ADMIN", caps)

    def test_drop_all_keeps_only_added(self) -> None:
        self.assertEqual(tweak_capabilities(["KILL"], ["ALL"], False, ALL_CAPABILITIES),
                         ["CAP_KILL"])

    def test_add_all(self) -> None:
        self.assertEqual(tweak_capabilities(["ALL"], [], False, ALL_CAPABILITIES),
                         ALL_CAPABILITIES)

    def test_unknown_capability(self) -> None:
        e = self.assertRaises(InvalidParameter, tweak_capabilities, ["FOO"], [], False,
                              ALL_CAPABILITIES)
        self.assertEqual(str(e), 'unknown capability: "CAP_FOO"')
