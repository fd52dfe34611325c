# -*- test-case-name: dockerpy.test.test_client_main -*-
"""Tests for bin/docker's entry point, transport and listing commands,
run against dockerpy.client.testing.FakeEngine on a temporary unix socket."""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.client.main import main
from dockerpy.client.testing import FakeEngine, Reply

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(test, argv, stdin=b"", engine=None, environ=None):
    """Run main(argv); return (exit status, stdout, stderr)."""
    env = dict(environ or {})
    if engine is not None:
        env.setdefault("DOCKER_HOST", engine.host)
    out, err = io.BytesIO(), io.BytesIO()
    rc = main(argv, stdin=io.BytesIO(stdin), stdout=out, stderr=err, environ=env)
    return rc, out.getvalue().decode(), err.getvalue().decode()


class EngineTestCase(SynchronousTestCase):
    api_version = "1.47"

    def setUp(self):
        self.engine = FakeEngine(self.api_version).start()
        self.addCleanup(self.engine.stop)

    def cli(self, *argv, stdin=b""):
        return run_cli(self, list(argv), stdin=stdin, engine=self.engine)


class StartupTests(SynchronousTestCase):
    def modules_after_version(self, which: str) -> str:
        """Run ``docker version`` in a fresh interpreter; :return: its exit
        status and the sorted modules of ``sys.modules`` that ``which`` (an
        expression over ``m``) selects, as printed."""
        engine = FakeEngine().start()
        self.addCleanup(engine.stop)
        engine.route("GET", "/version", {"Version": "0.1.0", "ApiVersion": "1.47"})
        code = ("import sys, io\n"
                "from dockerpy.client.main import main\n"
                "rc = main(['version'], stdout=io.BytesIO(), stderr=io.BytesIO())\n"
                f"print(rc, sorted(m for m in list(sys.modules) if {which}))\n")
        env = dict(os.environ, DOCKER_HOST=engine.host, PYTHONPATH=ROOT)
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, cwd=ROOT)
        self.assertEqual(result.stderr, "")
        return result.stdout.strip()

    def test_version_command_does_not_import_twisted(self):
        self.assertEqual(self.modules_after_version(
            "m.split('.')[0] in ('twisted', 'klein', 'zope', 'treq') or "
            "(m.startswith('dockerpy.') and not m.startswith('dockerpy.client'))"), "0 []")

    def test_version_command_imports_no_heavy_standard_modules(self):
        # http.client brings the email package, typing and ssl ~10 ms each:
        # bin/docker speaks HTTP itself and uses typing for annotations only.
        self.assertEqual(self.modules_after_version(
            "m in ('http.client', 'email', 'ssl', 'typing', 'tarfile', 'tempfile')"), "0 []")

    def test_connection_refused_message(self):
        path = os.path.join(tempfile.mkdtemp(), "none.sock")
        self.addCleanup(os.rmdir, os.path.dirname(path))
        rc, out, err = run_cli(self, ["ps"], environ={"DOCKER_HOST": f"unix://{path}"})
        self.assertEqual((rc, err), (1, f"Cannot connect to the Docker daemon at "
                                        f"unix://{path}. Is the docker daemon running?\n"))

    def test_host_flag_overrides_environment(self):
        engine = FakeEngine().start()
        self.addCleanup(engine.stop)
        engine.route("GET", "/containers/json", [])
        rc, out, err = run_cli(self, ["-H", engine.host, "ps", "-q"],
                               environ={"DOCKER_HOST": "unix:///nonexistent.sock"})
        self.assertEqual((rc, out, err), (0, "", ""))

    def test_unknown_command(self):
        rc, out, err = run_cli(self, ["frob"])
        self.assertEqual((rc, err), (1, "docker: unknown command: docker frob\n\n"
                                        "Run 'docker --help' for more information\n"))

    def test_unknown_flag_exits_125(self):
        rc, out, err = run_cli(self, ["ps", "--foo"])
        self.assertEqual((rc, err), (125, "unknown flag: --foo\n\nUsage:  docker ps [OPTIONS]"
                                          "\n\nRun 'docker ps --help' for more information\n"))

    def test_bad_int_flag_exits_125(self):
        rc, out, err = run_cli(self, ["stop", "-t", "x", "a"])
        self.assertEqual(rc, 125)
        self.assertTrue(err.startswith('invalid argument "x" for "-t, --timeout" flag: '
                                       'strconv.ParseInt: parsing "x": invalid syntax'), err)

    def test_missing_arguments_exit_1(self):
        rc, out, err = run_cli(self, ["rm"])
        self.assertEqual((rc, err), (1, "docker: 'docker rm' requires at least 1 argument\n\n"
                                        "Usage:  docker rm [OPTIONS] CONTAINER [CONTAINER...]"
                                        "\n\nSee 'docker rm --help' for more information\n"))
        rc, out, err = run_cli(self, ["tag", "a"])
        self.assertEqual(rc, 1)
        self.assertIn("'docker tag' requires 2 arguments", err)


class NegotiationTests(EngineTestCase):
    api_version = "1.41"

    def test_uses_lower_server_version_and_head_ping(self):
        self.engine.route("GET", "/containers/json", [])
        self.assertEqual(self.cli("ps", "-q")[0], 0)
        self.assertEqual([(r.method, r.path) for r in self.engine.requests],
                         [("HEAD", "/_ping"), ("GET", "/v1.41/containers/json")])


class ErrorTests(EngineTestCase):
    def test_daemon_error_printed_and_exit_1(self):
        self.engine.route("DELETE", "/containers/nope",
                          Reply(404, {"message": "No such container: nope"}))
        self.assertEqual(self.cli("rm", "nope"),
                         (1, "", "Error response from daemon: No such container: nope\n"))

    def test_rm_continues_after_failure_and_prints_names(self):
        self.engine.route("DELETE", "/containers/nope",
                          Reply(404, {"message": "No such container: nope"}))
        self.engine.route("DELETE", "/containers/ok", Reply(204))
        rc, out, err = self.cli("rm", "-f", "-v", "nope", "ok")
        self.assertEqual((rc, out), (1, "ok\n"))
        self.assertEqual(self.engine.calls("DELETE", "ok")[0].query, {"force": ["1"], "v": ["1"]})

    def test_non_json_error_body_shown_raw(self):
        self.engine.route("POST", "/containers/x/stop", Reply(500, b"boom"))
        self.assertEqual(self.cli("stop", "x")[2], "Error response from daemon: boom\n")

    def test_rename_failure_wording(self):
        self.engine.route("POST", "/containers/a/rename", Reply(409, {"message": "in use"}))
        self.assertEqual(self.cli("rename", "a", "b"),
                         (1, "", "Error response from daemon: in use\n"
                                 "Error: failed to rename container named a\n"))


PS_ROW = {"Id": "0123456789abcdef0123", "Names": ["/foo"], "Image": "busybox",
          "ImageID": "sha256:ff", "Command": "sh -c 'sleep 1000 && echo hello world'",
          "Created": 1700000000, "Ports": [{"PrivatePort": 80, "Type": "tcp"}],
          "Labels": {"a": "b"}, "State": "running", "Status": "Up 3 seconds",
          "SizeRw": 12, "SizeRootFs": 4260000}


class PsTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("GET", "/containers/json", [PS_ROW])

    def test_default_table(self):
        rc, out, err = self.cli("ps")
        lines = out.splitlines()
        self.assertEqual(lines[0], "CONTAINER ID   IMAGE     COMMAND                  CREATED"
                                   "       STATUS         PORTS     NAMES")
        self.assertTrue(lines[1].startswith('0123456789ab   busybox   "sh -c \'sleep 1000 &…"   '),
                        lines[1])
        self.assertTrue(lines[1].endswith("   Up 3 seconds   80/tcp    foo"), lines[1])
        self.assertEqual(self.engine.calls("GET")[0].query, {})

    def test_flags_become_query(self):
        self.cli("ps", "-a", "-n", "3", "-s", "-f", "status=exited", "-q")
        self.assertEqual(self.engine.calls("GET")[0].query,
                         {"all": ["1"], "limit": ["3"], "size": ["1"],
                          "filters": ['{"status":{"exited":true}}']})

    def test_quiet_and_size_and_custom_table(self):
        self.assertEqual(self.cli("ps", "-q")[1], "0123456789ab\n")
        self.assertEqual(self.cli("ps", "--no-trunc", "-q")[1], "0123456789abcdef0123\n")
        self.assertEqual(self.cli("ps", "--format", "table {{.ID}}\\t{{.Size}}")[1],
                         "CONTAINER ID   SIZE\n0123456789ab   12B (virtual 4.26MB)\n")

    def test_json_format(self):
        row = json.loads(self.cli("ps", "--format", "json")[1])
        self.assertEqual((row["Names"], row["Labels"], row["Command"]),
                         ("foo", "a=b", "\"sh -c 'sleep 1000 &…\""))


class ImagesTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("GET", "/images/json", [
            {"Id": "sha256:0123456789abcdef", "RepoTags": ["busybox:latest", "busybox:1"],
             "Created": 1700000000, "Size": 4260000},
            {"Id": "sha256:fedcba9876543210", "RepoTags": [], "Created": 1700000000,
             "Size": 999}])

    def test_table_one_row_per_tag(self):
        lines = self.cli("images")[1].splitlines()
        self.assertEqual(lines[0], "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE")
        self.assertTrue(lines[1].startswith("busybox      latest    0123456789ab   "))
        self.assertTrue(lines[1].endswith(" ago   4.26MB"))
        self.assertTrue(lines[3].startswith("<none>       <none>    fedcba987654   "))
        self.assertTrue(lines[3].endswith("999B"))

    def test_reference_argument_is_a_filter(self):
        self.cli("images", "-q", "busybox")
        self.assertEqual(self.engine.calls("GET")[0].query,
                         {"filters": ['{"reference":{"busybox":true}}']})

    def test_tag_normalizes_repository(self):
        self.engine.route("POST", "/images/a/tag", Reply(201))
        self.assertEqual(self.cli("tag", "a", "b/c:d")[0], 0)
        self.assertEqual(self.engine.calls("POST")[0].query,
                         {"repo": ["docker.io/b/c"], "tag": ["d"]})

    def test_rmi_prints_untagged_and_deleted(self):
        self.engine.route("DELETE", "/images/x", [{"Untagged": "x:latest"},
                                                  {"Deleted": "sha256:abc"}])
        self.assertEqual(self.cli("image", "rm", "x"),
                         (0, "Untagged: x:latest\nDeleted: sha256:abc\n", ""))

    def test_import_streams_file_and_prints_id(self):
        self.engine.route("POST", "/images/create", Reply(200, b'{"status":"sha256:aaaa"}\n'))
        with tempfile.NamedTemporaryFile(suffix=".tar") as f:
            f.write(b"tarbytes")
            f.flush()
            rc, out, err = self.cli("import", "-c", "CMD [\"sh\"]", "-m", "msg", f.name, "r/x:t")
        self.assertEqual((rc, out), (0, "sha256:aaaa\n"))
        req = self.engine.calls("POST")[0]
        self.assertEqual(req.body, b"tarbytes")
        self.assertEqual(req.query, {"changes": ['CMD ["sh"]'], "fromSrc": ["-"],
                                     "message": ["msg"], "repo": ["r/x:t"]})

    def test_load_from_stdin(self):
        self.engine.route("POST", "/images/load",
                          Reply(200, b'{"stream":"Loaded image: x:latest\\n"}\n'))
        self.assertEqual(self.cli("load", stdin=b"TAR")[1], "Loaded image: x:latest\n")
        self.assertEqual(self.engine.calls("POST")[0].body, b"TAR")

    def test_prune_all_force(self):
        self.engine.route("POST", "/images/prune", {
            "ImagesDeleted": [{"Untagged": "x:latest"}, {"Deleted": "sha256:abc"}],
            "SpaceReclaimed": 4260000})
        self.assertEqual(self.cli("image", "prune", "-a", "-f")[1],
                         "Deleted Images:\nuntagged: x:latest\ndeleted: sha256:abc\n\n"
                         "Total reclaimed space: 4.26MB\n")
        self.assertEqual(self.engine.calls("POST")[0].query,
                         {"filters": ['{"dangling":{"false":true}}']})

    def test_history_not_human(self):
        self.engine.route("GET", "/images/x/history", [
            {"Id": "sha256:0123456789abcdef", "Created": 1700000000, "CreatedBy": "/bin/sh",
             "Size": 4260000, "Comment": "imported"}])
        self.assertEqual(self.cli("history", "-H=false", "x")[1],
                         "IMAGE          CREATED AT             CREATED BY   SIZE      COMMENT\n"
                         "0123456789ab   2023-11-14T22:13:20Z   /bin/sh      4260000   imported\n")


class InspectTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.engine.route("GET", "/containers/c1/json",
                          {"Id": "c1full", "State": {"Running": True}})
        self.engine.route("GET", "/containers/nope/json",
                          Reply(404, {"message": "No such container: nope"}))
        self.engine.route("GET", "/images/nope/json",
                          Reply(404, {"message": "No such image: nope:latest"}))

    def test_default_json_array(self):
        rc, out, err = self.cli("inspect", "c1")
        self.assertEqual(json.loads(out), [{"Id": "c1full", "State": {"Running": True}}])
        self.assertTrue(out.startswith('[\n    {\n        "Id": "c1full",'))

    def test_format_and_missing_object(self):
        rc, out, err = self.cli("inspect", "-f", "{{.State.Running}}", "c1", "nope")
        self.assertEqual((rc, out, err), (1, "true\n", "Error: No such object: nope\n"))

    def test_typed_inspect_reports_daemon_error(self):
        rc, out, err = self.cli("container", "inspect", "nope")
        self.assertEqual((rc, out, err),
                         (1, "[]\n", "Error response from daemon: No such container: nope\n"))


class LogsTests(EngineTestCase):
    def test_logs_demuxed_unless_tty(self):
        from dockerpy.client.format import frame
        self.engine.route("GET", "/containers/c/json", {"Config": {"Tty": False}})
        self.engine.route("GET", "/containers/c/logs",
                          Reply(200, frame(1, b"out\n") + frame(2, b"err\n")))
        rc, out, err = self.cli("logs", "-t", "--tail", "5", "c")
        self.assertEqual((rc, out, err), (0, "out\n", "err\n"))
        self.assertEqual(self.engine.calls("GET", "logs")[0].query,
                         {"stdout": ["1"], "stderr": ["1"], "tail": ["5"], "timestamps": ["1"]})

    def test_logs_raw_with_tty(self):
        self.engine.route("GET", "/containers/c/json", {"Config": {"Tty": True}})
        self.engine.route("GET", "/containers/c/logs", Reply(200, b"raw\r\n"))
        self.assertEqual(self.cli("logs", "c")[1], "raw\r\n")

    def test_since_duration_becomes_timestamp(self):
        from dockerpy.client.containers import get_timestamp
        self.assertEqual(get_timestamp("1m30s", now=1000.0), "910")
        self.assertEqual(get_timestamp("2013-01-02T13:23:37Z"), "1357133017.000000000")
        self.assertEqual(get_timestamp("1357133017"), "1357133017")


class MiscContainerTests(EngineTestCase):
    def test_top_uses_ps_args_and_wide_columns(self):
        self.engine.route("GET", "/containers/c/top",
                          {"Titles": ["PID", "CMD"], "Processes": [["1", "sh"]]})
        self.assertEqual(self.cli("top", "c", "-ef")[1],
                         "PID                 CMD\n1                   sh\n")
        self.assertEqual(self.engine.calls("GET")[0].query, {"ps_args": ["-ef"]})

    def test_diff_kinds(self):
        self.engine.route("GET", "/containers/c/changes",
                          [{"Path": "/a", "Kind": 0}, {"Path": "/b", "Kind": 1},
                           {"Path": "/c", "Kind": 2}])
        self.assertEqual(self.cli("diff", "c")[1], "C /a\nA /b\nD /c\n")

    def test_wait_prints_status(self):
        self.engine.route("POST", "/containers/c/wait", {"StatusCode": 7})
        self.assertEqual(self.cli("wait", "c"), (0, "7\n", ""))

    def test_stop_with_timeout_and_signal(self):
        self.engine.route("POST", "/containers/c/stop", Reply(204))
        self.assertEqual(self.cli("container", "stop", "-t", "3", "-s", "SIGINT", "c"),
                         (0, "c\n", ""))
        self.assertEqual(self.engine.calls("POST")[0].query, {"t": ["3"], "signal": ["SIGINT"]})

    def test_commit_query(self):
        self.engine.route("POST", "/commit", {"Id": "sha256:bbbb"})
        self.assertEqual(self.cli("commit", "-a", "me", "-p=false", "c", "r/y:t2")[1],
                         "sha256:bbbb\n")
        self.assertEqual(self.engine.calls("POST")[0].query,
                         {"author": ["me"], "container": ["c"], "pause": ["0"],
                          "repo": ["docker.io/r/y"], "tag": ["t2"]})

    def test_export_to_file(self):
        self.engine.route("GET", "/containers/c/export", Reply(200, b"TARDATA"))
        path = os.path.join(tempfile.mkdtemp(), "out.tar")
        self.addCleanup(os.rmdir, os.path.dirname(path))
        self.addCleanup(os.unlink, path)
        self.assertEqual(self.cli("export", "-o", path, "c")[0], 0)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"TARDATA")

    def test_container_prune(self):
        self.engine.route("POST", "/containers/prune",
                          {"ContainersDeleted": ["abc"], "SpaceReclaimed": 12345})
        self.assertEqual(self.cli("container", "prune", "-f")[1],
                         "Deleted Containers:\nabc\n\nTotal reclaimed space: 12.35kB\n")

    def test_prune_declined_removes_nothing(self):
        self.assertEqual(self.cli("container", "prune", stdin=b"n\n")[0], 0)
        self.assertEqual(self.engine.calls("POST"), [])


class TransportConfigTests(SynchronousTestCase):
    def test_parse_host(self):
        from dockerpy.client.transport import parse_host
        self.assertEqual(parse_host("unix:///run/d.sock", False), ("unix", "/run/d.sock", 0))
        self.assertEqual(parse_host("tcp://10.0.0.1:2375", False), ("tcp", "10.0.0.1", 2375))
        self.assertEqual(parse_host("tcp://example", True), ("tcp", "example", 2376))
        self.assertRaises(ValueError, parse_host, "ssh://x", False)

    def test_tls_verify_from_environment_uses_cert_path(self):
        from dockerpy.client.transport import tls_config
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        for name in ("ca.pem", "cert.pem", "key.pem"):
            open(os.path.join(d, name), "w").close()
        cfg = tls_config(False, None, None, None, None,
                         {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": d})
        self.assertEqual((cfg.verify, cfg.cafile, cfg.certfile),
                         (True, os.path.join(d, "ca.pem"), os.path.join(d, "cert.pem")))
        self.assertIsNone(tls_config(False, None, None, None, None, {}))
        insecure = tls_config(True, None, None, None, None, {"DOCKER_CERT_PATH": d})
        self.assertEqual((insecure.verify, insecure.cafile), (False, None))
