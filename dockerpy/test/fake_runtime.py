"""A fake OCI runtime for unit tests of the container service.

It provides ``IRuntime`` (checked with verifyObject), connects the caller's
ProcessProtocol to an in-memory process, and lets a test script what the
"container" prints and when it exits.  Signals 9 and 15 end the process
with 128+signal unless the test says the process ignores them.
"""

from __future__ import annotations

from twisted.internet import defer, error
from twisted.python.failure import Failure
from zope.interface import implementer

from dockerpy import errors
from dockerpy.interfaces import IRuntime


class FakeProcess:
    def __init__(self, runtime: "FakeRuntime", cid: str, protocol, pid: int):
        self.runtime, self.cid, self.protocol, self.pid = runtime, cid, protocol, pid
        self.stdin: list[bytes] = []
        self.stdin_closed = False
        self.signals: list[int] = []
        self.ignored: set[int] = set()
        self.exited = False

    # the transport side (what the protocol calls)
    def write(self, data: bytes) -> None:
        self.stdin.append(data)

    def closeStdin(self) -> None:  # noqa: N802
        self.stdin_closed = True

    def signalProcess(self, sig) -> None:  # noqa: N802
        raise AssertionError("the service signals through the runtime, not the transport")

    # the test side
    def output(self, fd: int, data: bytes) -> None:
        self.protocol.childDataReceived(fd, data)

    def exit(self, code: int) -> None:
        if self.exited:
            return
        self.exited = True
        self.runtime.running.pop(self.cid, None)
        reason = Failure(error.ProcessDone(0) if code == 0 else
                         error.ProcessTerminated(exitCode=code))
        self.protocol.processExited(reason)
        self.protocol.processEnded(reason)


@implementer(IRuntime)
class FakeRuntime:
    name = "fake"
    path = "/usr/bin/fake-runtime"

    def __init__(self, state_root: str = "/nonexistent/fake-runtime"):
        self.state_root = state_root
        self.running: dict[str, FakeProcess] = {}
        self.started: list[str] = []
        self.deleted: list[str] = []
        self.fail_start: errors.DockerError | None = None
        self.exit_at_once: int | None = None
        self.execs: list[tuple[str, dict, FakeProcess]] = []
        self.fail_exec: errors.DockerError | None = None
        self.paused: set[str] = set()
        self.held_exits: dict[str, int] = {}
        self._next_pid = 1000

    def version(self):
        return defer.succeed("fake 1.0")

    def run(self, container_id, bundle, protocol, stdin, pid_file):
        if self.fail_start is not None:
            return defer.fail(self.fail_start)
        self._next_pid += 1
        proc = FakeProcess(self, container_id, protocol, self._next_pid)
        self.running[container_id] = proc
        self.started.append(container_id)
        protocol.makeConnection(proc)
        if self.exit_at_once is not None:
            proc.exit(self.exit_at_once)
        return defer.succeed(proc.pid)

    def exec(self, container_id, process_spec, protocol, stdin, pid_file, tty=False):
        """Start a scripted exec process; tests find it in ``self.execs``
        (``(container id, process spec, FakeProcess)``)."""
        if container_id not in self.running:
            return defer.fail(errors.Conflict(f"Container {container_id} is not running"))
        if self.fail_exec is not None:
            return defer.fail(self.fail_exec)
        self._next_pid += 1
        proc = FakeProcess(self, "exec-%d" % self._next_pid, protocol, self._next_pid)
        self.execs.append((container_id, process_spec, proc))
        protocol.makeConnection(proc)
        return defer.succeed(proc.pid)

    def kill(self, container_id, signal):
        proc = self.running.get(container_id)
        if proc is None:
            return defer.fail(errors.Conflict(f"container {container_id} is not running"))
        proc.signals.append(signal)
        if signal in (9, 15) and signal not in proc.ignored or signal == 9:
            if container_id in self.paused:
                # A frozen process acts on a signal only once thawed.
                self.held_exits[container_id] = 128 + signal
            else:
                proc.exit(128 + signal)
        return defer.succeed(None)

    def delete(self, container_id, force=False):
        self.deleted.append(container_id)
        return defer.succeed(None)

    def settled(self, container_id):
        return defer.succeed(None)

    def prepare_spec(self, spec):
        pass

    def oom_killed(self, container_id):
        """Tests put ids in ``self.oom`` to fake an OOM kill."""
        oom = getattr(self, "oom", set())
        if container_id in oom:
            oom.discard(container_id)
            return True
        return False

    def pause(self, container_id):
        if container_id not in self.running:
            return defer.fail(errors.Conflict(f"Container {container_id} is not running"))
        self.paused.add(container_id)
        return defer.succeed(None)

    def resume(self, container_id):
        self.paused.discard(container_id)
        code = self.held_exits.pop(container_id, None)
        if code is not None and container_id in self.running:
            self.running[container_id].exit(code)
        return defer.succeed(None)

    def pids(self, container_id):
        proc = self.running.get(container_id)
        return defer.succeed([proc.pid] if proc else [])

    def list(self):
        return defer.succeed(sorted(self.running))
