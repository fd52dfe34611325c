"""exec, pause/unpause and events against a real daemon, driven by the real
docker CLI and docker-py (root, runc, overlayfs)."""

from __future__ import annotations

import json
import time

from dockerpy.test.daemon_fixture import DaemonTestCase


class ExecCLITests(DaemonTestCase):
    def setUp(self):
        self.d = self.start_daemon(cli=True)
        self.d.cli("run", "-d", "--name", "box", "-e", "FROM_RUN=1", "busybox", "sleep", "300",
                   check=True)
        self.addCleanup(self.d.cli, "rm", "-f", "box")

    def test_exec_output_stdin_exit_codes_user_env_and_workdir(self):
        d = self.d
        r = d.cli("exec", "box", "echo", "hi")
        self.assertEqual((r.returncode, r.stdout), (0, b"hi\n"))
        r = d.cli("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (3, b"out\n", b"err\n"))
        r = d.cli("exec", "-i", "box", "cat", input=b"line one\nline two\n")
        self.assertEqual((r.returncode, r.stdout), (0, b"line one\nline two\n"))
        r = d.cli("exec", "-u", "nobody", "box", "id", "-u")
        self.assertEqual(r.stdout, b"65534\n")
        r = d.cli("exec", "-e", "FOO=bar", "box", "sh", "-c", "echo $FOO $FROM_RUN")
        self.assertEqual(r.stdout, b"bar 1\n")
        r = d.cli("exec", "-w", "/etc", "box", "pwd")
        self.assertEqual(r.stdout, b"/etc\n")
        r = d.cli("exec", "box", "nosuchcommand")
        self.assertEqual(r.returncode, 127)
        self.assertIn(b"executable file not found", r.stdout + r.stderr)

    def test_detached_exec_runs_in_the_background(self):
        d = self.d
        d.cli("exec", "-d", "box", "sh", "-c", "echo done > /tmp/marker", check=True)
        for _ in range(100):
            r = d.cli("exec", "box", "cat", "/tmp/marker")
            if r.returncode == 0:
                break
            time.sleep(0.05)
        self.assertEqual(r.stdout, b"done\n")

    def test_pause_shows_in_ps_and_inspect_and_blocks_exec(self):
        d = self.d
        d.cli("pause", "box", check=True)
        r = d.cli("ps", "--format", "{{.Status}}")
        self.assertIn(b"(Paused)", r.stdout)
        r = d.cli("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "box")
        self.assertEqual(r.stdout, b"paused true\n")
        r = d.cli("exec", "box", "true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"is paused, unpause the container before exec", r.stderr)
        r = d.cli("pause", "box")
        self.assertIn(b"is already paused", r.stderr)
        d.cli("unpause", "box", check=True)
        r = d.cli("exec", "box", "echo", "back")
        self.assertEqual(r.stdout, b"back\n")
        r = d.cli("unpause", "box")
        self.assertIn(b"is not paused", r.stderr)

    def test_kill_of_a_paused_container(self):
        d = self.d
        d.cli("pause", "box", check=True)
        d.cli("kill", "box", check=True)
        r = d.cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "box")
        self.assertEqual(r.stdout, b"exited 137\n")


class EventsCLITests(DaemonTestCase):
    def test_events_since_until_show_a_containers_life(self):
        d = self.start_daemon(cli=True)
        since = time.time() - 1
        d.cli("run", "--rm", "--name", "brief", "busybox", "true", check=True)
        until = time.time() + 1
        r = d.cli("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                  "--filter", "container=brief", "--format", "{{json .}}", timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        events = [json.loads(line) for line in r.stdout.splitlines()]
        actions = [e["Action"] for e in events]
        for action in ("create", "start", "die", "destroy"):
            self.assertIn(action, actions)
        self.assertLess(actions.index("create"), actions.index("destroy"))
        die = events[actions.index("die")]
        self.assertEqual(die["Actor"]["Attributes"]["name"], "brief")
        self.assertEqual(die["Actor"]["Attributes"]["exitCode"], "0")
        self.assertEqual(die["Type"], "container")
        r = d.cli("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                  "--filter", "event=die", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
        self.assertEqual(r.stdout, b"die brief\n")


class ExecDockerPyTests(DaemonTestCase):
    def test_exec_run(self):
        import docker

        d = self.start_daemon()
        client = docker.DockerClient(base_url=d.host)
        self.addCleanup(client.close)
        ct = client.containers.run("busybox", "sleep 300", detach=True)
        self.addCleanup(ct.remove, force=True)
        result = ct.exec_run("sh -c 'echo out; exit 4'")
        self.assertEqual((result.exit_code, result.output), (4, b"out\n"))
        result = ct.exec_run(["id", "-u"], user="nobody", environment={"A": "b"},
                             workdir="/tmp")
        self.assertEqual(result.output, b"65534\n")
        result = ct.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        self.assertEqual(result.output, (b"o\n", b"e\n"))
        exec_id = client.api.exec_create(ct.id, "sleep 30")["Id"]
        client.api.exec_start(exec_id, detach=True)
        info = client.api.exec_inspect(exec_id)
        self.assertTrue(info["Running"])
        self.assertEqual(info["ContainerID"], ct.id)
        self.assertEqual(info["ProcessConfig"]["entrypoint"], "sleep")
        self.assertGreater(info["Pid"], 0)
        ct.pause()
        ct.reload()
        self.assertEqual(ct.status, "paused")
        with self.assertRaises(docker.errors.APIError) as caught:
            ct.exec_run("true")
        self.assertEqual(caught.exception.status_code, 409)
        ct.unpause()


class BinDockerInteractiveTests(DaemonTestCase):
    def bd(self, *args, input: bytes | None = None):
        import subprocess
        import sys

        from dockerpy.test.daemon_fixture import REPO

        return subprocess.run([sys.executable, f"{REPO}/bin/docker", *args], input=input,
                              capture_output=True, env=self.d.env, timeout=120)

    def test_exec_pause_unpause_and_events(self):
        self.d = self.start_daemon()
        since = f"{time.time() - 1:.3f}"
        r = self.bd("run", "-d", "--name", "box", "busybox", "sleep", "300")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.bd, "rm", "-f", "box")
        r = self.bd("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (3, b"out\n", b"err\n"))
        r = self.bd("exec", "-i", "-u", "nobody", "-w", "/tmp", "-e", "A=b", "box",
                    "sh", "-c", "cat; id -u; pwd; echo $A", input=b"in\n")
        self.assertEqual((r.returncode, r.stdout), (0, b"in\n65534\n/tmp\nb\n"), r.stderr)
        self.assertEqual(self.bd("exec", "box", "nosuch").returncode, 127)
        self.assertEqual(self.bd("exec", "-d", "box", "sleep", "1").returncode, 0)
        self.assertEqual(self.bd("pause", "box").stdout, b"box\n")
        r = self.bd("exec", "box", "true")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"is paused, unpause the container before exec", r.stderr)
        self.assertEqual(self.bd("unpause", "box").stdout, b"box\n")
        r = self.bd("events", "--since", since, "--until", f"{time.time() + 0.5:.3f}",
                    "--filter", "type=container", "--filter", "event=pause",
                    "--filter", "event=unpause",
                    "--format", "{{.Action}} {{.Actor.Attributes.name}}")
        self.assertEqual((r.returncode, r.stdout), (0, b"pause box\nunpause box\n"), r.stderr)


def _recv(stream) -> bytes:
    """What a socket or a pipe has (after select said it has something)."""
    import os

    if hasattr(stream, "recv"):
        return stream.recv(65536)
    return os.read(stream.fileno(), 65536)


def _read_until(sock, needle: bytes, got: bytes = b"") -> bytes:
    """Read ``sock`` until ``needle`` came (a guard, not a measure, against a
    stream that never brings it); :return: all read."""
    import select

    deadline = time.monotonic() + 60
    while needle not in got:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never came; got {got!r}")
        if select.select([sock], [], [], 0.5)[0]:
            data = _recv(sock)
            if not data:
                raise AssertionError(f"{needle!r} never came before EOF; got {got!r}")
            got += data
    return got


def _read_to_eof(sock) -> bytes:
    import select

    got = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([sock], [], [], 0.5)[0]:
            data = _recv(sock)
            if not data:
                return got
            got += data
    raise AssertionError(f"the stream never ended; got {got!r}")


class DetachKeysTests(DaemonTestCase):
    """The daemon's side of the detach keys, through docker-py's raw sockets
    (the docker CLI also watches for them itself on a terminal)."""

    def setUp(self):
        import docker

        self.d = self.start_daemon()
        self.client = docker.DockerClient(base_url=self.d.host)
        self.addCleanup(self.client.close)
        self.ct = self.client.containers.run("busybox", "sh", tty=True, stdin_open=True,
                                             detach=True, name="shell")
        self.addCleanup(self.ct.remove, force=True)

    def attach(self, **params):
        params = dict({"stdin": 1, "stdout": 1, "stream": 1}, **params)
        sock = self.client.api.attach_socket(self.ct.id, params=params)
        self.addCleanup(sock.close)
        return getattr(sock, "_sock", sock)

    def running(self) -> bool:
        self.ct.reload()
        return self.ct.attrs["State"]["Running"]

    def test_keys_end_the_attach_and_a_broken_sequence_reaches_the_shell(self):
        since = time.time() - 1
        raw = self.attach(detachKeys="x,y")
        raw.sendall(b"echo =a")
        raw.sendall(b"x")  # may begin the sequence: held back ...
        raw.sendall(b"b=\n")  # ... and passed on when it does not complete
        _read_until(raw, b"=axb=\r\n")
        raw.sendall(b"x")
        raw.sendall(b"y")
        _read_to_eof(raw)
        self.assertTrue(self.running())
        # The default, ctrl-p ctrl-q, also when both come in one write.
        raw = self.attach()
        raw.sendall(b"echo =again=\n")
        _read_until(raw, b"=again=\r\n")
        raw.sendall(b"\x10\x11")
        _read_to_eof(raw)
        self.assertTrue(self.running())
        events = self.client.api.events(since=since, until=time.time() + 1, decode=True,
                                        filters={"event": "detach"})
        self.assertEqual([e["Actor"]["Attributes"]["name"] for e in events],
                         ["shell", "shell"])

    def test_exec_detach_keys_leave_the_exec_running(self):
        api = self.client.api
        exec_id = api.exec_create(self.ct.id, "sh", stdin=True, tty=True,
                                  detach_keys="ctrl-a,x")["Id"]
        sock = api.exec_start(exec_id, tty=True, socket=True)
        self.addCleanup(sock.close)
        raw = getattr(sock, "_sock", sock)
        raw.sendall(b"echo =in exec=\n")
        _read_until(raw, b"=in exec=\r\n")
        raw.sendall(b"\x01x")
        _read_to_eof(raw)
        self.assertTrue(api.exec_inspect(exec_id)["Running"])

    def test_malformed_keys_are_refused_with_dockers_messages(self):
        status, _, body = self.d.request(
            "POST", "/containers/shell/attach?stream=1&stdin=1&detachKeys=ctrl-P")
        self.assertEqual((status, json.loads(body)["message"]),
                         (400, "Invalid detach keys (ctrl-P) provided"))
        status, body = self.d.json("POST", "/containers/shell/exec",
                                   {"Cmd": ["sh"], "DetachKeys": "ctrl-a,,x"})
        self.assertEqual((status, body["message"]),
                         (400, "Invalid escape keys (ctrl-a,,x) provided"))


class LogsFollowTests(DaemonTestCase):
    def follow(self, d, *args: str):
        import subprocess

        from dockerpy.test.daemon_fixture import DOCKER_CLI

        proc = subprocess.Popen([DOCKER_CLI, "logs", "-f", *args], env=d.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()

        self.addCleanup(stop)
        return proc

    def test_follow_goes_on_across_a_restart_and_ends_on_removal(self):
        d = self.start_daemon(cli=True)
        # Each run counts itself in a file that outlives the process.
        d.cli("run", "-d", "--name", "talker", "busybox", "sh", "-c",
              "n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; "
              "echo run-$n; exec sleep 300", check=True)
        self.addCleanup(d.cli, "rm", "-f", "talker")
        proc = self.follow(d, "talker")
        got = _read_until(proc.stdout, b"run-1\n")
        d.cli("restart", "-t", "0", "talker", check=True)
        got = _read_until(proc.stdout, b"run-2\n", got)
        self.assertEqual(proc.poll(), None)
        d.cli("rm", "-f", "talker", check=True)
        got += _read_to_eof(proc.stdout)
        self.assertEqual(proc.wait(60), 0)
        self.assertEqual(got, b"run-1\nrun-2\n")

    def test_follow_ends_when_the_container_stops(self):
        d = self.start_daemon(cli=True)
        d.cli("run", "-d", "-i", "--name", "brief", "busybox", "sh", "-c",
              "echo first; read x; echo last", check=True)
        self.addCleanup(d.cli, "rm", "-f", "brief")
        proc = self.follow(d, "brief")
        got = _read_until(proc.stdout, b"first\n")
        d.cli("stop", "-t", "0", "brief", check=True)
        got += _read_to_eof(proc.stdout)
        self.assertEqual(proc.wait(60), 0)
        self.assertEqual(got, b"first\n")
        # A stopped container's logs, followed: what there is, then the end.
        r = d.cli("logs", "-f", "brief", timeout=60)
        self.assertEqual((r.returncode, r.stdout), (0, b"first\n"))


class SlowClientTests(DaemonTestCase):
    def test_a_client_that_never_reads_neither_blocks_nor_bloats_the_daemon(self):
        import socket

        d = self.start_daemon(cli=True)
        d.cli("create", "--name", "chatty", "busybox", "sh", "-c",
              "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 100000000; echo; "
              "echo =done=", check=True)
        self.addCleanup(d.cli, "rm", "-f", "chatty")

        def peak_rss_kb() -> int:
            with open(f"/proc/{d.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
            raise AssertionError("no VmHWM")

        before = peak_rss_kb()
        stuck = socket.socket(socket.AF_UNIX)
        self.addCleanup(stuck.close)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(d.sock)
        stuck.sendall(b"POST /containers/chatty/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                      b"Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                      b"Content-Length: 0\r\n\r\n")
        _read_until(stuck, b"\r\n\r\n")  # the 101; then it never reads again
        # Another client gets all of it, and the container ends on its own.
        r = d.cli("start", "-a", "chatty", timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout), 100000000 + len(b"\n=done=\n"))
        self.assertTrue(r.stdout.endswith(b"\n=done=\n"))
        self.assertIn("a client is not reading its stream", d.read_log())
        # 100 MB went by; the stuck client holds about a megabyte of it.
        self.assertLess(peak_rss_kb() - before, 48 * 1024)


class ManyClientsTests(DaemonTestCase):
    def attach(self, d):
        import socket

        s = socket.socket(socket.AF_UNIX)
        self.addCleanup(s.close)
        s.connect(d.sock)
        s.sendall(b"POST /containers/ticker/attach?stream=1&stdout=1 HTTP/1.1\r\n"
                  b"Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
        _read_until(s, b"\r\n\r\n")
        return s

    def test_two_clients_attached_at_once_and_one_leaving_mid_stream(self):
        d = self.start_daemon(cli=True)
        d.cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
              "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done", check=True)
        self.addCleanup(d.cli, "rm", "-f", "ticker")
        first, second = self.attach(d), self.attach(d)
        # Both get the same live output.
        got1 = _read_until(first, b"tick-")
        got2 = _read_until(second, b"tick-")
        n = int(got1.split(b"tick-")[-1].split(b"\n")[0] or b"0") + 5
        _read_until(first, f"tick-{n}\n".encode(), got1)
        _read_until(second, f"tick-{n}\n".encode(), got2)
        # One leaves mid-stream: the other goes on, the container is unaffected.
        first.close()
        _read_until(second, f"tick-{n + 10}\n".encode())
        r = d.cli("inspect", "-f", "{{.State.Running}}", "ticker", check=True)
        self.assertEqual(r.stdout, b"true\n")
        # The one that left holds nothing in the daemon: stopping ends the other cleanly.
        d.cli("stop", "-t", "1", "ticker", check=True)
        _read_to_eof(second)
