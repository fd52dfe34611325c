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
