# -*- test-case-name: dockerpy.test.test_runtime_seccomp -*-
"""Docker's default seccomp profile (checked rule for rule against the
sections Docker 20.10 wrote for the same capabilities), custom profiles,
and crun's compiled-filter cache."""

import base64
import json
import os

from twisted.trial.unittest import SynchronousTestCase

from dockerpy import errors
from dockerpy.runtime import oci, seccomp
from dockerpy.runtime.spec import DEFAULT_CAPABILITIES

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def docker20(name: str) -> dict:
    """A ``linux.seccomp`` section recorded from Docker 20.10's bundle
    (``docker run busybox`` with the default capabilities, or with
    ``--cap-add SYS_ADMIN``) on amd64."""
    with open(os.path.join(DATA, f"seccomp-docker20-{name}.json")) as f:
        return json.load(f)


class DefaultProfileTests(SynchronousTestCase):

    def test_matches_docker_for_the_default_capabilities(self) -> None:
        self.assertEqual(seccomp.default_profile(DEFAULT_CAPABILITIES, "x86_64"),
                         docker20("default"))

    def test_matches_docker_with_sys_admin(self) -> None:
        self.assertEqual(
            seccomp.default_profile(DEFAULT_CAPABILITIES + ["CAP_SYS_ADMIN"], "x86_64"),
            docker20("sys-admin"))

    def test_what_the_default_refuses(self) -> None:
        profile = seccomp.default_profile(DEFAULT_CAPABILITIES, "x86_64")
        allowed = {n for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
                   and "args" not in rule for n in rule["names"]}
        for name in ("unshare", "mount", "setns", "keyctl", "add_key", "bpf", "reboot",
                     "init_module", "kexec_load", "open_by_handle_at"):
            self.assertNotIn(name, allowed)
        self.assertIn("chroot", allowed)
        dropped = seccomp.default_profile(
            [c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"], "x86_64")
        self.assertNotIn(["chroot"], [r["names"] for r in dropped["syscalls"]])

    def test_profile_for_options(self) -> None:
        caps = list(DEFAULT_CAPABILITIES)
        self.assertEqual(seccomp.profile_for([], caps), seccomp.default_profile(caps))
        self.assertIsNone(seccomp.profile_for(["seccomp=unconfined"], caps))
        self.assertIsNone(seccomp.profile_for(["seccomp:unconfined"], caps))
        self.assertIsNone(seccomp.profile_for([], caps, privileged=True))
        self.assertEqual(seccomp.profile_for(["no-new-privileges"], caps),
                         seccomp.default_profile(caps))


class CustomProfileTests(SynchronousTestCase):

    def test_dockers_format_with_includes_and_excludes(self) -> None:
        profile = json.dumps({
            "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                         "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["chown"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "excludes": {"caps": ["CAP_CHOWN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["amd64"]}},
            ]})
        out = seccomp.from_docker_profile(profile, ["CAP_NET_RAW"], "x86_64")
        self.assertEqual(out, {
            "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["chown"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"}]})
        with_admin = seccomp.from_docker_profile(profile, ["CAP_SYS_ADMIN", "CAP_CHOWN"],
                                                 "aarch64")
        self.assertEqual([r["names"] for r in with_admin["syscalls"]],
                         [["mkdir", "mkdirat"], ["mount"]])

    def test_bad_profiles_are_refused(self) -> None:
        for text in ("not json", "[]", '{"syscalls": []}',
                     '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [3]}'):
            error = self.assertRaises(errors.SystemError_,
                                      seccomp.from_docker_profile, text, [])
            self.assertIn("decoding seccomp profile failed", error.message)


class CompiledFilterCacheTests(SynchronousTestCase):

    def runtime(self, name: str) -> oci.OCIRuntime:
        runtime = oci.OCIRuntime(None, name, f"/usr/bin/{name}", self.mktemp())
        runtime.compiled_seccomp = name == "crun"  # as choose_default learns for crun 1.x
        return runtime

    def spec(self) -> dict:
        return {"linux": {"seccomp": seccomp.default_profile(DEFAULT_CAPABILITIES, "x86_64")}}

    def test_crun_gets_the_compiled_filter_once_known(self) -> None:
        crun = self.runtime("crun")
        first = self.spec()
        crun.prepare_spec(first)
        self.assertIn("seccomp", first["linux"], "not compiled yet: crun compiles it")
        key = first["annotations"][oci._PROFILE_KEY_ANNOTATION]
        crun._seccomp_bpf[key] = "AAAAAAAAAAA="
        second = self.spec()
        crun.prepare_spec(second)
        self.assertNotIn("seccomp", second["linux"])
        self.assertEqual(second["annotations"], {crun.SECCOMP_BPF_ANNOTATION: "AAAAAAAAAAA="})
        other = {"linux": {"seccomp": seccomp.default_profile(
            DEFAULT_CAPABILITIES + ["CAP_SYS_ADMIN"], "x86_64")}}
        crun.prepare_spec(other)
        self.assertIn("seccomp", other["linux"], "another profile, another filter")

    def test_runc_and_unfiltered_specs_are_left_alone(self) -> None:
        spec = self.spec()
        self.runtime("runc").prepare_spec(spec)
        self.assertEqual(spec, self.spec())
        old_crun = self.runtime("crun")
        old_crun.compiled_seccomp = False  # a crun before 1.0
        old_crun._seccomp_bpf = {oci._profile_key(spec["linux"]["seccomp"]): "AAAAAAAAAAA="}
        old_crun.prepare_spec(spec)
        self.assertEqual(spec, self.spec())
        bare = {"linux": {}}
        self.runtime("crun").prepare_spec(bare)
        self.assertEqual(bare, {"linux": {}})

    def test_only_whole_filters_are_read_back(self) -> None:
        path = self.mktemp()
        for data, expected in [(b"\0" * 16, base64.b64encode(b"\0" * 16).decode()),
                               (b"\0" * 12, None), (b"", None)]:
            with open(path, "wb") as f:
                f.write(data)
            self.assertEqual(oci._read_bpf(path), expected)
        self.assertIsNone(oci._read_bpf(path + "-missing"))
