"""Docker's default seccomp profile on real containers (root, crun or
runc), through the docker CLI: what it refuses, what capabilities and
``--security-opt`` open, ``exec`` under the same filter, and crun reusing
the filter it compiled."""

from __future__ import annotations

import json
import os

from dockerpy.test.daemon_fixture import CLIDaemonTestCase

_TRY_UNSHARE = "unshare -U true 2>&1; echo rc=$?"
_REFUSED = "unshare: unshare(0x10000000): Operation not permitted\nrc=1\n"


class SeccompTests(CLIDaemonTestCase):

    def test_default_profile_refuses_new_namespaces(self):
        self.assertEqual(self.out("run", "--rm", "busybox", "sh", "-c", _TRY_UNSHARE), _REFUSED)
        # Twice: the second start uses the filter crun compiled for the first.
        self.assertEqual(self.out("run", "--rm", "busybox", "sh", "-c", _TRY_UNSHARE), _REFUSED)

    def test_sys_admin_or_unconfined_opens_it(self):
        for opts in (["--cap-add", "SYS_ADMIN"], ["--security-opt", "seccomp=unconfined"]):
            self.assertEqual(self.out("run", "--rm", *opts, "busybox", "sh", "-c", _TRY_UNSHARE),
                             "rc=0\n", opts)

    def test_custom_profile_file(self):
        """The docker CLI reads the file and sends its JSON in SecurityOpt."""
        path = os.path.join(self.daemon.tmp, "no-mkdir.json")
        with open(path, "w") as f:
            json.dump({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["mkdir", "mkdirat"],
                                     "action": "SCMP_ACT_ERRNO"}]}, f)
        out = self.out("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "sh",
                       "-c", "mkdir /tmp/x 2>&1; echo rc=$?; unshare -U true && echo ns")
        self.assertEqual(out, "mkdir: can't create directory '/tmp/x': Operation not permitted"
                              "\nrc=1\nns\n")
        r = self.daemon.bin_docker("run", "--rm", "--security-opt", f"seccomp={path}",
                                   "busybox", "sh", "-c",
                                   "mkdir /tmp/x 2>/dev/null || echo refused", timeout=60)
        self.assertEqual((r.returncode, r.stdout), (0, b"refused\n"), r.stderr)

    def test_exec_runs_under_the_containers_filter_and_crun_reuses_it(self):
        # The first start compiles the default profile; crun keeps the filter
        # in the running container's state, where the daemon reads it back.
        self.out("run", "-d", "--name", "warm", "busybox", "sleep", "100")
        cid = self.out("run", "-d", "--name", "sec", "busybox", "sleep", "100").strip()
        self.assertEqual(self.out("exec", "sec", "sh", "-c", _TRY_UNSHARE), _REFUSED)
        if json.loads(self.out("info", "--format", "{{json .DefaultRuntime}}")) == "crun":
            with open(os.path.join(self.daemon.exec_root, "containers", cid,
                                   "config.json")) as f:
                spec = json.load(f)
            self.assertNotIn("seccomp", spec["linux"])
            self.assertIn("run.oci.seccomp_bpf_data", spec["annotations"])
        self.out("rm", "-f", "sec", "warm")

    def test_info_lists_seccomp(self):
        self.assertIn("name=seccomp,profile=builtin",
                      self.out("info", "--format", "{{json .SecurityOptions}}"))

    def test_bad_profile_fails_the_start_as_with_docker(self):
        """Docker 20.10: the create goes through, the start answers 500
        "Decoding seccomp profile failed: ..."; nothing is left mounted."""
        status, body = self.daemon.json("POST", "/containers/create?name=badsec", {
            "Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"SecurityOpt": ["seccomp={not json"]}})
        self.assertEqual(status, 201, body)
        status, body = self.daemon.json("POST", "/containers/badsec/start")
        self.assertEqual(status, 500)
        self.assertTrue(body["message"].startswith("decoding seccomp profile failed: "), body)
        self.assertEqual(self.out("inspect", "-f", "{{.State.Status}}", "badsec"), "created\n")
        self.out("rm", "badsec")
