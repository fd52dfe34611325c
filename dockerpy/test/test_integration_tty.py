# -*- test-case-name: dockerpy.test.test_integration_tty -*-
"""Real terminals: the docker CLI under a pseudo-terminal against a real
daemon, ``docker run -it`` and ``docker exec -it`` typing into a shell,
window sizes seen by ``stty size``, and exit codes."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time

from dockerpy.test.daemon_fixture import DOCKER_CLI, DaemonTestCase

#: A guard against a hung CLI, not a measure: every wait ends on output.
GUARD = 60.0


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A program on the slave side of a fresh pty whose size we choose."""

    def __init__(self, argv: list[str], env: dict, rows: int, cols: int,
                 daemon=None) -> None:
        self.daemon = daemon
        self.master, slave = os.openpty()
        _set_size(slave, rows, cols)
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                         env=env, start_new_session=True,
                                         preexec_fn=_controlling_tty)
        finally:
            os.close(slave)
        self.output = b""

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def resize(self, rows: int, cols: int) -> None:
        _set_size(self.master, rows, cols)  # the CLI gets SIGWINCH

    def _read(self, timeout: float) -> bool:
        """Read what comes within ``timeout``; :return: False at EOF."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the program and its children closed the slave
            return False
        self.output += data
        return bool(data)

    def expect(self, needle: bytes, since: int = 0) -> int:
        """Read until ``needle`` appears after offset ``since``;
        :return: the offset just after it."""
        deadline = time.monotonic() + GUARD
        while needle not in self.output[since:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never came; got {self.output!r}")
            if not self._read(0.2):
                raise AssertionError(f"{needle!r} never came before EOF; got {self.output!r}")
        return self.output.index(needle, since) + len(needle)

    def until_size(self, rows: int, cols: int) -> None:
        """Ask the shell for its size until it is the one expected (the
        resize reaches the container asynchronously)."""
        want = f"{rows} {cols}\r\n".encode()
        deadline = time.monotonic() + GUARD
        while True:
            start = len(self.output)
            # The quotes keep the terminal's echo of the line from matching.
            self.type(b"stty size; echo =do''ne=\r")
            end = self.expect(b"=done=\r\n", start)
            if want in self.output[start:end]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"size never became {want!r}: {self.output!r}")
            time.sleep(0.1)

    def context(self) -> str:
        """The daemon's last log lines, for failure messages."""
        if self.daemon is None:
            return ""
        return "\ndaemon log (end):\n" + self.daemon.read_log()[-3000:]

    def line_discipline(self) -> str:
        """How the program left its terminal, for failure messages: raw, or
        cooked with flow control (which would eat a ctrl-q)."""
        try:
            iflag, _, _, lflag = termios.tcgetattr(self.master)[:4]
        except termios.error as e:
            return f"terminal state unknown: {e}"
        return ("raw" if not lflag & termios.ICANON else "cooked") + \
            (", IXON on" if iflag & termios.IXON else "")

    def wait(self) -> int:
        """Wait for the program to end, keeping its output; :return: its code."""
        deadline = time.monotonic() + GUARD
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the CLI never exited ({self.line_discipline()}); "
                                     f"got {self.output!r}{self.context()}")
            if not self._read(0.2):
                break
        code = self.proc.wait(GUARD)
        while select.select([self.master], [], [], 0)[0] and self._read(0):
            pass
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


class TTYTests(DaemonTestCase):
    #: The client under test: the docker CLI here, bin/docker in the subclass.
    client_argv = [DOCKER_CLI]

    def terminal(self, daemon, *args: str, rows: int = 24, cols: int = 80) -> Terminal:
        term = Terminal([*self.client_argv, *args], daemon.env, rows, cols, daemon)
        self.addCleanup(term.close)
        return term

    def test_run_it_is_a_shell_on_a_terminal_of_the_clients_size(self):
        daemon = self.start_daemon(cli=True)
        term = self.terminal(daemon, "run", "-it", "--rm", "busybox", "sh",
                             rows=30, cols=101)
        term.expect(b"# ")
        term.until_size(30, 101)
        start = len(term.output)
        term.type(b"tty\r")
        term.expect(b"/dev/pts/0\r\n", start)
        # The client follows its own terminal (SIGWINCH -> resize).
        term.resize(41, 123)
        term.until_size(41, 123)
        term.type(b"exit 3\r")
        self.assertEqual(term.wait(), 3)
        self.assertNotIn(b"\x00", term.output)
        self.assertNotIn(b"^@", term.output)

    def test_ctrl_c_reaches_the_process_on_the_terminal(self):
        daemon = self.start_daemon(cli=True)
        term = self.terminal(daemon, "run", "-it", "--rm", "busybox", "sh")
        term.expect(b"# ")
        start = len(term.output)
        # Only once the command runs is it the terminal's foreground job.
        term.type(b"sh -c 'echo =run''ning=; exec sleep 1000'\r")
        term.expect(b"=running=", start)
        term.type(b"\x03")
        term.type(b"echo =after=$?\r")
        term.expect(b"=after=130", start)
        term.type(b"exit\r")
        self.assertEqual(term.wait(), 0)

    def test_exec_it_gets_its_own_terminal_and_exit_code(self):
        daemon = self.start_daemon(cli=True)
        daemon.cli("run", "-d", "-t", "--name", "shell", "busybox", "sh", check=True)
        self.addCleanup(daemon.cli, "rm", "-f", "shell")
        term = self.terminal(daemon, "exec", "-it", "shell", "sh", rows=25, cols=90)
        term.expect(b"# ")
        term.until_size(25, 90)
        term.type(b"exit 7\r")
        self.assertEqual(term.wait(), 7)
        self.assertNotIn(b"\x00", term.output)

    def test_detach_keys_end_attach_and_leave_the_container_running(self):
        daemon = self.start_daemon(cli=True)
        daemon.cli("run", "-d", "-it", "--name", "shell", "busybox", "sh", check=True)
        self.addCleanup(daemon.cli, "rm", "-f", "shell")
        term = self.terminal(daemon, "attach", "shell")
        term.type(b"echo =at''tached=\r")
        term.expect(b"=attached=")
        term.type(b"\x10")
        term.type(b"\x11")
        # The docker CLI's own answer to its escape sequence on `attach`
        # (`run -it` returns 0 silently).
        self.assertEqual(term.wait(), 1, term.output)
        self.assertTrue(term.output.endswith(b"read escape sequence\r\n"), term.output)
        r = daemon.cli("inspect", "-f", "{{.State.Running}}", "shell", check=True)
        self.assertEqual(r.stdout, b"true\n")
        # Still the same shell, with what was typed before: attach again.
        term = self.terminal(daemon, "attach", "--detach-keys", "ctrl-a,x", "shell")
        term.type(b"echo =ag''ain=\r")
        term.expect(b"=again=")
        term.type(b"\x01x")
        self.assertEqual(term.wait(), 1, term.output)
        r = daemon.cli("inspect", "-f", "{{.State.Running}}", "shell", check=True)
        self.assertEqual(r.stdout, b"true\n")

    def test_run_it_detaches_with_the_keys(self):
        daemon = self.start_daemon(cli=True)
        term = self.terminal(daemon, "run", "-it", "--name", "shell", "busybox", "sh")
        self.addCleanup(daemon.cli, "rm", "-f", "shell")
        term.expect(b"# ")
        term.type(b"\x10\x11")
        self.assertEqual(term.wait(), 0, term.output)
        r = daemon.cli("inspect", "-f", "{{.State.Running}}", "shell", check=True)
        self.assertEqual(r.stdout, b"true\n")
        # The same shell still reads its terminal: its stdin was not closed.
        term = self.terminal(daemon, "attach", "shell")
        term.type(b"echo =st''ill=\r")
        term.expect(b"=still=")
        term.type(b"\x10\x11")
        self.assertEqual(term.wait(), 1, term.output)

    def test_run_t_without_i_prints_through_a_terminal(self):
        daemon = self.start_daemon(cli=True)
        result = daemon.cli("run", "--rm", "-t", "busybox", "sh", "-c", "tty; exit 4")
        self.assertEqual((result.returncode, result.stdout), (4, b"/dev/pts/0\r\n"))

    def test_resize_api_changes_the_containers_terminal(self):
        daemon = self.start_daemon(cli=True)
        daemon.cli("run", "-d", "-t", "--name", "shell", "busybox", "sh", check=True)
        self.addCleanup(daemon.cli, "rm", "-f", "shell")
        status, _, body = daemon.request("POST", "/containers/shell/resize?h=37&w=111")
        self.assertEqual(status, 200, body)
        result = daemon.cli("exec", "shell", "stty", "-F", "/dev/pts/0", "size", check=True)
        self.assertEqual(result.stdout, b"37 111\n")

    def test_resize_of_a_stopped_container_is_a_conflict(self):
        daemon = self.start_daemon(cli=True)
        daemon.cli("create", "-t", "--name", "idle", "busybox", "sh", check=True)
        status, _, body = daemon.request("POST", "/containers/idle/resize?h=10&w=10")
        self.assertEqual(status, 409, body)
        status, _, body = daemon.request("POST", "/containers/idle/resize?h=x&w=10")
        self.assertEqual(status, 400, body)


class BinDockerTTYTests(TTYTests):
    """The same terminals through dockerpy's own bin/docker: raw mode, the
    size at start and on SIGWINCH, ctrl-c, detach keys, exit codes."""

    client_argv = [sys.executable, os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "bin", "docker")]

    def test_detach_keys_end_attach_and_leave_the_container_running(self):
        # bin/docker attach answers the keys as the docker CLI does (status 1).
        super().test_detach_keys_end_attach_and_leave_the_container_running()


class InitTests(DaemonTestCase):
    def orphan_state(self, daemon, name: str, init: bool) -> str:
        """Run a container whose pid 1 never waits and which leaves an
        orphan behind; :return: ``"reaped"`` or ``"zombie"``, whichever the
        orphan becomes."""
        daemon.cli("run", "-d", *(["--init"] if init else []), "--name", name, "busybox",
                   "sh", "-c", "(sleep 0.1 &); exec sleep 1000", check=True)
        self.addCleanup(daemon.cli, "rm", "-f", name)
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            ps = daemon.cli("exec", name, "ps", "-o", "stat,args", check=True).stdout
            lines = [line for line in ps.decode().splitlines()[1:] if "ps -o" not in line]
            if len(lines) == (2 if init else 1):
                return "reaped"
            if any(line.startswith("Z") for line in lines):
                return "zombie"
            time.sleep(0.1)
        raise AssertionError(f"the orphan neither ended nor became a zombie: {ps!r}")

    def test_init_is_pid_1_and_runs_the_command(self):
        daemon = self.start_daemon(cli=True)
        result = daemon.cli("run", "--rm", "--init", "busybox", "ps", "-o", "pid,args",
                            check=True)
        first = result.stdout.decode().splitlines()[1].split(None, 1)
        self.assertEqual(first, ["1", "/sbin/docker-init -- ps -o pid,args"])
        result = daemon.cli("run", "--rm", "--init", "busybox", "sh", "-c", "exit 5")
        self.assertEqual(result.returncode, 5)

    def test_init_reaps_orphans_that_pid_1_would_leave_as_zombies(self):
        daemon = self.start_daemon(cli=True)
        self.assertEqual(self.orphan_state(daemon, "noinit", init=False), "zombie")
        self.assertEqual(self.orphan_state(daemon, "withinit", init=True), "reaped")
