# -*- test-case-name: dockerpy.test.test_client_run -*-
"""Tests for docker create/run/start against the fake Engine API: the
create body, the create-attach-wait-start order, stdcopy demux, stdin
half-close and the 125/126/127 exit statuses."""

import threading

from dockerpy.client.format import frame
from dockerpy.client.testing import Hijack, Reply
from dockerpy.test.test_client_main import EngineTestCase


class RunTests(EngineTestCase):
    def setUp(self):
        super().setUp()
        self.started = threading.Event()
        self.exited = threading.Event()
        self.stdin_seen = []
        self.engine.route("POST", "/containers/create", Reply(201, {"Id": "abc123",
                                                                    "Warnings": []}))

        def start(req):
            self.started.set()
            return Reply(204)

        def wait(req):
            # Like a daemon that answers only at exit: run must not block on it.
            self.exited.wait(10)
            return Reply(200, {"StatusCode": 3, "Error": None})

        self.engine.route("POST", "/containers/abc123/start", start)
        self.engine.route("POST", "/containers/abc123/wait", wait)

    def attach_with(self, session):
        def handler(req):
            def run(rfile, write):
                try:
                    session(rfile, write)
                finally:
                    self.exited.set()
            return Hijack(run)
        self.engine.route("POST", "/containers/abc123/attach", handler)

    def test_attached_run_demuxes_output_and_exits_with_container_status(self):
        def session(rfile, write):
            self.started.wait(10)
            write(frame(1, b"hello\n"))
            write(frame(2, b"oops\n"))
        self.attach_with(session)
        rc, out, err = self.cli("run", "--name", "x1", "busybox", "sh", "-c", "echo hello")
        self.assertEqual((rc, out, err), (3, "hello\n", "oops\n"))
        calls = [(r.method, r.path.split("/", 2)[2]) for r in self.engine.calls()]
        self.assertEqual(calls, [("POST", "containers/create"),
                                 ("POST", "containers/abc123/attach"),
                                 ("POST", "containers/abc123/wait"),
                                 ("POST", "containers/abc123/start")])
        create = self.engine.calls("POST", "create")[0]
        self.assertEqual(create.query, {"name": ["x1"]})
        body = create.json()
        self.assertEqual((body["Image"], body["Cmd"], body["AttachStdout"], body["AttachStdin"],
                          body["OpenStdin"], body["Tty"]),
                         ("busybox", ["sh", "-c", "echo hello"], True, False, False, False))
        attach = self.engine.calls("POST", "attach")[0]
        self.assertEqual(attach.query, {"stream": ["1"], "stdout": ["1"], "stderr": ["1"]})
        self.assertEqual((attach.headers["Connection"], attach.headers["Upgrade"]),
                         ("Upgrade", "tcp"))
        self.assertEqual(self.engine.calls("POST", "wait")[0].query,
                         {"condition": ["next-exit"]})

    def test_interactive_stdin_is_pumped_and_half_closed(self):
        def session(rfile, write):
            data = rfile.read()  # until the client's SHUT_WR
            self.started.wait(10)
            write(frame(1, data.upper()))
        self.attach_with(session)
        rc, out, err = self.cli("run", "-i", "--rm", "busybox", "cat", stdin=b"abc\n")
        self.assertEqual((rc, out), (3, "ABC\n"))
        self.assertEqual(self.engine.calls("POST", "attach")[0].query,
                         {"stream": ["1"], "stdin": ["1"], "stdout": ["1"], "stderr": ["1"]})
        self.assertEqual(self.engine.calls("POST", "wait")[0].query, {"condition": ["removed"]})
        body = self.engine.calls("POST", "create")[0].json()
        self.assertEqual((body["AttachStdin"], body["OpenStdin"], body["StdinOnce"],
                          body["HostConfig"]["AutoRemove"]), (True, True, True, True))

    def test_tty_output_is_raw(self):
        def session(rfile, write):
            self.started.wait(10)
            write(b"raw\r\n")
        self.attach_with(session)
        rc, out, err = self.cli("run", "-t", "busybox")
        self.assertEqual((rc, out), (3, "raw\r\n"))
        self.assertTrue(self.engine.calls("POST", "create")[0].json()["Tty"])

    def test_detached_prints_full_id_and_skips_attach(self):
        self.exited.set()
        rc, out, err = self.cli(
            "run", "-d", "-e", "A=b", "-w", "/tmp", "-u", "1000", "--entrypoint", "/bin/sh",
            "-l", "k=v", "--hostname", "hh", "--network", "none", "--stop-signal", "SIGINT",
            "--stop-timeout", "5", "-i", "-t", "busybox", "-c", "true")
        self.assertEqual((rc, out, err), (0, "abc123\n", ""))
        body = self.engine.calls("POST", "create")[0].json()
        expected = {"Env": ["A=b"], "WorkingDir": "/tmp", "User": "1000",
                    "Entrypoint": ["/bin/sh"], "Labels": {"k": "v"}, "Hostname": "hh",
                    "StopSignal": "SIGINT", "StopTimeout": 5, "Cmd": ["-c", "true"],
                    "Tty": True, "OpenStdin": True, "StdinOnce": False,
                    "AttachStdout": False}
        self.assertEqual({k: body[k] for k in expected}, expected)
        self.assertEqual(body["HostConfig"]["NetworkMode"], "none")
        self.assertEqual(self.engine.calls("POST", "attach"), [])

    def test_env_without_value_comes_from_environment(self):
        self.exited.set()
        from dockerpy.test.test_client_main import run_cli
        run_cli(self, ["run", "-d", "-e", "FOO", "-e", "UNSET", "busybox"], engine=self.engine,
                environ={"FOO": "bar"})
        self.assertEqual(self.engine.calls("POST", "create")[0].json()["Env"], ["FOO=bar"])

    def test_missing_image_exits_125_without_pulling(self):
        self.engine.route("POST", "/containers/create",
                          Reply(404, {"message": "No such image: busybox:latest"}))
        rc, out, err = self.cli("run", "busybox", "true")
        self.assertEqual(rc, 125)
        self.assertEqual(err, "Unable to find image 'busybox:latest' locally\n"
                              "docker: Error response from daemon: No such image: "
                              "busybox:latest\n\nRun 'docker run --help' for more information\n")

    def test_start_error_statuses(self):
        self.exited.set()
        for message, status in [
                ('exec: "foo": executable file not found in $PATH', 127),
                ("exec: /etc: permission denied", 126),
                ("something else", 125)]:
            self.engine.route("POST", "/containers/abc123/start",
                              Reply(400, {"message": message}))
            rc, out, err = self.cli("run", "-d", "busybox", "foo")
            self.assertEqual((rc, out), (status, "abc123\n"))
            self.assertEqual(err, f"docker: Error response from daemon: {message}\n\n"
                                  "Run 'docker run --help' for more information\n")

    def test_attached_start_error_closes_attach_and_exits_127(self):
        self.attach_with(lambda rfile, write: self.started.wait(2))
        self.engine.route("POST", "/containers/abc123/start",
                          Reply(400, {"message": "executable file not found in $PATH"}))
        rc, out, err = self.cli("run", "busybox", "foo")
        self.assertEqual(rc, 127)

    def test_create_prints_id_and_warnings(self):
        self.engine.route("POST", "/containers/create",
                          Reply(201, {"Id": "abc123", "Warnings": ["careful"]}))
        self.assertEqual(self.cli("create", "busybox"), (0, "abc123\n", "WARNING: careful\n"))

    def test_start_prints_names_and_reports_failures(self):
        self.engine.route("POST", "/containers/bad/start",
                          Reply(404, {"message": "No such container: bad"}))
        self.exited.set()
        rc, out, err = self.cli("start", "abc123", "bad")
        self.assertEqual((rc, out, err), (1, "abc123\n",
                                          "Error response from daemon: No such container: bad\n"
                                          "Error: failed to start containers: bad\n"))

    def test_start_attach(self):
        self.engine.route("GET", "/containers/abc123/json",
                          {"Id": "abc123", "Config": {"Tty": False, "OpenStdin": False},
                           "HostConfig": {"AutoRemove": False}})

        def session(rfile, write):
            self.started.wait(10)
            write(frame(1, b"again\n"))
        self.attach_with(session)
        self.assertEqual(self.cli("start", "-a", "abc123"), (3, "again\n", ""))

    def test_flag_after_image_belongs_to_command(self):
        self.exited.set()
        self.cli("run", "-d", "busybox", "ls", "-l", "--rm")
        body = self.engine.calls("POST", "create")[0].json()
        self.assertEqual((body["Cmd"], body["HostConfig"]["AutoRemove"]),
                         (["ls", "-l", "--rm"], False))
