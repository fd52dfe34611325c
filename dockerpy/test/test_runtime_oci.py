# -*- test-case-name: dockerpy.test.test_runtime_oci -*-
"""runc (and crun where it works) run busybox containers through ``OCIRuntime``.

Integration tests: root, the real reactor, real runtimes.  Each test has its
own runtime state root and cgroup parent, removed in cleanups.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import uuid
from typing import Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from dockerpy import atomic
from dockerpy.errors import InvalidParameter, NotFound
from dockerpy.interfaces import IRuntime
from dockerpy.runtime import cgroups
from dockerpy.runtime.oci import (
    OCIRuntime, RuntimeStartError, StartError, choose_default, make_runtime, probe_runtime,
    translate_start_error)
from dockerpy.runtime.spec import SpecInput, build_spec
from dockerpy.tools.busybox_rootfs import rootfs_tar_bytes

_ROOTFS_TAR: Optional[bytes] = None
_PROBES: dict[str, tuple[bool, str]] = {}


def rootfs_tar() -> bytes:
    global _ROOTFS_TAR
    if _ROOTFS_TAR is None:
        _ROOTFS_TAR = rootfs_tar_bytes()
    return _ROOTFS_TAR


class Recorder(ProcessProtocol):
    """Records what a container's protocol receives, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.out = b""
        self.err = b""
        self.exited: Optional[BaseException] = None
        self.ended: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.events.append("connectionMade")

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.out += data
        else:
            self.err += data

    def childConnectionLost(self, fd: int) -> None:
        self.events.append(f"childConnectionLost {fd}")

    def processExited(self, reason) -> None:
        self.events.append("processExited")
        self.exited = reason.value

    def processEnded(self, reason) -> None:
        self.events.append("processEnded")
        self.ended.callback(reason.value)


def exit_code(value: BaseException) -> int:
    if isinstance(value, ProcessDone):
        return 0
    assert isinstance(value, ProcessTerminated), value
    return value.exitCode


class RuntimeTestsMixin:
    """The same tests for every runtime; subclasses set ``runtime_name``."""

    runtime_name = ""
    runtime_path = ""

    async def setUp(self) -> None:
        path = shutil.which(self.runtime_path) or shutil.which(self.runtime_name)
        if path is None:
            raise SkipTest(f"{self.runtime_name} is not installed")
        if os.geteuid() != 0:
            raise SkipTest("needs root")
        self.tmp = tempfile.mkdtemp(prefix=f"rt-{self.runtime_name}-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state_root = os.path.join(self.tmp, "state")
        if self.runtime_name not in _PROBES:
            _PROBES[self.runtime_name] = await probe_runtime(
                reactor, self.runtime_name, path, os.path.join(self.tmp, "probe"))
        ok, reason = _PROBES[self.runtime_name]
        if not ok:
            raise SkipTest(f"{self.runtime_name} does not work here: {reason}")
        self.runtime = make_runtime(reactor, self.runtime_name, path, self.state_root)
        self.cgroup_parent = "/dockerpy-test-" + uuid.uuid4().hex[:8]
        self.addCleanup(cgroups.remove_cgroup_parent, self.cgroup_parent)
        self.rootfs = os.path.join(self.tmp, "rootfs")
        os.mkdir(self.rootfs)
        with tarfile.open(fileobj=io.BytesIO(rootfs_tar())) as tar:
            tar.extractall(self.rootfs)

    def bundle(self, args: list[str], **kwargs) -> tuple[str, str]:
        """Write a bundle for a new container; :return: (id, bundle)."""
        container_id = uuid.uuid4().hex
        bundle = os.path.join(self.tmp, container_id)
        os.mkdir(bundle)
        spec = build_spec(SpecInput(
            rootfs=self.rootfs, args=args, env=["PATH=/bin:/usr/bin"],
            hostname=container_id[:12],
            cgroups_path=cgroups.cgroups_path(self.cgroup_parent, container_id),
            **kwargs))
        atomic.write_json(os.path.join(bundle, "config.json"), spec)
        self.addCleanup(self.runtime.delete, container_id, True)
        return container_id, bundle

    async def start(self, args: list[str], stdin: bool = False,
                    **kwargs) -> tuple[str, Recorder, int]:
        container_id, bundle = self.bundle(args, **kwargs)
        self._last_id = container_id
        proto = Recorder()
        pid = await self.runtime.run(container_id, bundle, proto, stdin,
                                     os.path.join(bundle, "pid"))
        self.addCleanup(self._reap, container_id, proto)
        return container_id, proto, pid

    async def until_output(self, proto: Recorder, text: bytes) -> None:
        """Wait until the container wrote ``text`` (e.g. that its signal
        handler is in place: a signal sent before would be ignored by its
        pid 1)."""
        for _ in range(1000):
            if text in proto.out:
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"{text!r} never came: {proto.out!r}")

    async def _reap(self, container_id: str, proto: Recorder) -> None:
        if not proto.ended.called:
            try:
                await self.runtime.kill(container_id, signal.SIGKILL)
            except Exception:
                pass
            await proto.ended

    def test_provides_interface(self) -> None:
        verifyObject(IRuntime, self.runtime)

    async def test_version(self) -> None:
        version = await self.runtime.version()
        self.assertRegex(version, r"^\d+\.\d+")

    async def test_output_and_exit_code(self) -> None:
        _, proto, pid = await self.start(
            ["sh", "-c", "echo out; echo err >&2; exit 3"])
        self.assertGreater(pid, 1)
        value = await proto.ended
        self.assertEqual(exit_code(value), 3)
        self.assertEqual((proto.out, proto.err), (b"out\n", b"err\n"))
        self.assertEqual(proto.events[0], "connectionMade")
        self.assertEqual(proto.events[-2:], ["processExited", "processEnded"])

    async def test_exit_zero(self) -> None:
        _, proto, _ = await self.start(["true"])
        self.assertEqual(exit_code(await proto.ended), 0)

    async def test_container_sees_its_spec(self) -> None:
        _, proto, _ = await self.start(
            ["sh", "-c", "hostname; id -u; echo $$; ls /proc/asound 2>&1 | wc -l"])
        await proto.ended
        lines = proto.out.decode().split()
        self.assertEqual(len(lines[0]), 12)
        self.assertEqual(lines[1:3], ["0", "1"])  # root, pid 1 of its namespace

    async def test_stdin_piped(self) -> None:
        _, proto, _ = await self.start(["cat"], stdin=True)
        proto.transport.write(b"hello\n")
        proto.transport.closeStdin()
        self.assertEqual(exit_code(await proto.ended), 0)
        self.assertEqual(proto.out, b"hello\n")

    async def test_stdin_closed_without_pipe(self) -> None:
        _, proto, _ = await self.start(["cat"])
        self.assertEqual(exit_code(await proto.ended), 0)
        self.assertEqual(proto.out, b"")

    async def test_tty_runs_on_a_terminal(self) -> None:
        _, proto, _ = await self.start(["sh", "-c", "tty; read x; echo got $x; exit 5"],
                                       stdin=True, tty=True)
        proto.transport.write(b"abc\n")
        self.assertEqual(exit_code(await proto.ended), 5)
        self.assertIn(b"/dev/pts/0\r\n", proto.out)
        self.assertIn(b"got abc\r\n", proto.out)

    async def test_missing_runtime_binary_fails_start(self) -> None:
        container_id, bundle = self.bundle(["true"])
        broken = OCIRuntime(reactor, self.runtime_name, "/nonexistent/rt", self.state_root)
        with self.assertRaises(RuntimeStartError):
            await broken.run(container_id, bundle, Recorder(), False,
                             os.path.join(bundle, "pid"))

    async def test_missing_executable_fails_start(self) -> None:
        container_id, bundle = self.bundle(["nope"])
        proto = Recorder()
        d = self.runtime.run(container_id, bundle, proto, False,
                             os.path.join(bundle, "pid"))
        try:
            await d
        except StartError as e:
            error = e
        else:
            self.fail("run() succeeded")
        self.assertIsInstance(error, InvalidParameter)
        self.assertEqual(error.exit_code, 127)
        # crun's own words are reworded as runc's (runc_wording).
        self.assertIn('exec: "nope": executable file not found in $PATH', str(error))
        await proto.ended
        # The runtime's error text is not container output.
        self.assertEqual((proto.out, proto.err), (b"", b""))
        self.assertEqual(await self.runtime.list(), [])

    async def test_kill_sigkill(self) -> None:
        container_id, proto, _ = await self.start(["sleep", "1000"])
        await self.runtime.kill(container_id, signal.SIGKILL)
        self.assertEqual(exit_code(await proto.ended), 128 + 9)

    async def test_kill_sigterm_reaches_handler(self) -> None:
        container_id, proto, _ = await self.start(
            ["sh", "-c", "trap 'exit 42' TERM; echo ready; "
                         "while true; do sleep 0.05; done"])
        await self.until_output(proto, b"ready")
        await self.runtime.kill(container_id, signal.SIGTERM)
        self.assertEqual(exit_code(await proto.ended), 42)

    async def test_kill_unknown_container(self) -> None:
        os.makedirs(self.state_root, exist_ok=True)
        with self.assertRaises(NotFound):
            await self.runtime.kill("nosuchcontainer", signal.SIGTERM)

    async def test_pause_resume_pids(self) -> None:
        container_id, proto, pid = await self.start(["sleep", "1000"])
        self.assertEqual(await self.runtime.pids(container_id), [pid])
        self.assertEqual(await self.runtime.list(), [container_id])
        await self.runtime.pause(container_id)
        self.assertEqual((await self.runtime.state(container_id))["status"], "paused")
        await self.runtime.resume(container_id)
        self.assertEqual((await self.runtime.state(container_id))["status"], "running")
        await self.runtime.kill(container_id, signal.SIGKILL)
        await proto.ended
        await self.runtime.settled(container_id)
        self.assertEqual(await self.runtime.list(), [])

    async def test_container_cgroup_under_parent_then_removed(self) -> None:
        container_id, proto, pid = await self.start(["sleep", "1000"])
        with open(f"/proc/{pid}/cgroup") as f:
            self.assertIn(cgroups.cgroups_path(self.cgroup_parent, container_id), f.read())
        self.assertNotEqual(cgroups.remove_cgroup_parent(self.cgroup_parent), [])
        await self.runtime.kill(container_id, signal.SIGKILL)
        await proto.ended
        await self.runtime.settled(container_id)
        self.assertEqual(cgroups.remove_cgroup_parent(self.cgroup_parent), [])
        for mountpoint in cgroups.cgroup_mountpoints():
            self.assertFalse(os.path.exists(mountpoint + self.cgroup_parent))

    async def test_delete_missing_is_fine(self) -> None:
        os.makedirs(self.state_root, exist_ok=True)
        self.assertIsNone(await self.runtime.delete("nosuchcontainer", True))

    async def test_list_without_state_root(self) -> None:
        self.assertEqual(await self.runtime.list(), [])


class RuncTests(RuntimeTestsMixin, TestCase):
    runtime_name = "runc"
    runtime_path = "runc"


class DetachedRuncTests(RuncTests):
    """The same, with this process a child subreaper, as the daemon is: the
    runtime runs ``--detach`` and the container's init becomes our child."""

    async def setUp(self) -> None:
        await super().setUp()
        from dockerpy.runtime.oci import PR_SET_CHILD_SUBREAPER, become_subreaper

        self.assertTrue(become_subreaper())
        self.addCleanup(lambda: __import__("ctypes").CDLL(None).prctl(
            PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0))

    async def test_no_runtime_process_stays_and_the_init_is_our_child(self) -> None:
        _, proto, pid = await self.start(["sleep", "30"])
        for _ in range(500):
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid == os.getpid():
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(ppid, os.getpid())
        await self.runtime.kill(self._last_id, signal.SIGKILL)
        self.assertEqual(exit_code(await proto.ended), 128 + signal.SIGKILL)

    async def test_settled_once_the_stopped_container_is_forgotten(self) -> None:
        """The exit is reported at once; the cgroup and the runtime's state
        go meanwhile, and settled() says when they are gone."""
        container_id, proto, pid = await self.start(["true"])
        await proto.ended
        await self.runtime.settled(container_id)
        self.assertFalse(os.path.exists(os.path.join(self.state_root, container_id)))
        for mountpoint in cgroups.cgroup_mountpoints():
            self.assertFalse(os.path.exists(os.path.join(
                mountpoint, cgroups.cgroups_path(self.cgroup_parent, container_id).lstrip("/"))))
        self.assertEqual(self.runtime.children, {})
        # Nothing pending: settled() answers at once.
        self.assertTrue(self.runtime.settled(container_id).called)

    async def test_kill_signals_our_init_without_a_runtime_process(self) -> None:
        container_id, proto, pid = await self.start(
            ["sh", "-c", "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done"])
        self.assertEqual(self.runtime.children, {container_id: pid})
        await self.until_output(proto, b"ready")
        path, self.runtime.path = self.runtime.path, "/nonexistent/runtime"
        try:
            await self.runtime.kill(container_id, signal.SIGTERM)
        finally:
            self.runtime.path = path
        self.assertEqual(exit_code(await proto.ended), 42)
        # Reaped: from now on its pid may be anyone's, and is forgotten.
        self.assertEqual(self.runtime.children, {})


class CrunTests(RuntimeTestsMixin, TestCase):
    runtime_name = "crun"
    runtime_path = "crun"


class ChooseDefaultTests(TestCase):

    def setUp(self) -> None:
        if shutil.which("runc") is None or os.geteuid() != 0:
            raise SkipTest("needs root and runc")
        self.tmp = tempfile.mkdtemp(prefix="rt-choose-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    async def test_prefers_a_working_runtime(self) -> None:
        name, runtimes = await choose_default(reactor, self.tmp)
        self.assertIn(name, runtimes)
        ok, reason = await probe_runtime(
            reactor, name, runtimes[name].path, os.path.join(self.tmp, "again"))
        self.assertTrue(ok, reason)
        self.assertEqual(runtimes[name].state_root,
                         os.path.join(self.tmp, f"runtime-{name}"))

    async def test_explicit_default_is_honoured(self) -> None:
        name, runtimes = await choose_default(
            reactor, self.tmp, "runc", paths={"runc": shutil.which("runc"),
                                              "crun": "/nonexistent/crun"})
        self.assertEqual(name, "runc")
        self.assertEqual(sorted(runtimes), ["crun", "runc"])

    async def test_unknown_explicit_default(self) -> None:
        with self.assertRaises(InvalidParameter):
            await choose_default(reactor, self.tmp, "kata",
                                 paths={"runc": shutil.which("runc")})

    async def test_broken_runtime_probe_reports_reason(self) -> None:
        ok, reason = await probe_runtime(reactor, "runc", "/nonexistent/runc",
                                         os.path.join(self.tmp, "broken"))
        self.assertFalse(ok)
        self.assertTrue(reason)


MOUNTINFO_HYBRID = """\
25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
28 25 0:26 / /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpu
"""
MOUNTINFO_UNIFIED = "25 1 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
MOUNTINFO_LEGACY = "27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"


class CgroupsTests(SynchronousTestCase):

    def mountinfo(self, text: str) -> str:
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def test_modes_and_versions(self) -> None:
        for text, mode, version, cgroupns in [
                (MOUNTINFO_HYBRID, "hybrid", "1", "host"),
                (MOUNTINFO_UNIFIED, "unified", "2", "private"),
                (MOUNTINFO_LEGACY, "legacy", "1", "host")]:
            got = cgroups.cgroup_mode(mountinfo=self.mountinfo(text))
            self.assertEqual((got, cgroups.cgroup_version(got),
                              cgroups.default_cgroupns_mode(got)),
                             (mode, version, cgroupns))

    def test_mountpoints_unescaped(self) -> None:
        self.assertEqual(cgroups.cgroup_mountpoints(self.mountinfo(MOUNTINFO_HYBRID)),
                         ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory",
                          "/sys/fs/cgroup/cpu x"])

    def test_parent_per_data_root(self) -> None:
        a = cgroups.cgroup_parent_for("/var/lib/dockerpy")
        self.assertRegex(a, r"^/dockerpy-[0-9a-f]{8}$")
        self.assertEqual(a, cgroups.cgroup_parent_for("/var/lib/dockerpy/"))
        self.assertNotEqual(a, cgroups.cgroup_parent_for("/tmp/other"))
        self.assertEqual(cgroups.cgroups_path(a, "abc"), a + "/abc")
        self.assertEqual(cgroups.cgroup_driver(), "cgroupfs")

    def test_launcher_detaches_a_shared_v2_tree_before_unmounting_it(self) -> None:
        """A umount of a shared v2 tree in the runtime's namespace would
        reach the host's: the launcher makes it private first, and skips
        that step (a process) when it is private already."""
        shared = MOUNTINFO_HYBRID.replace("cgroup/unified rw -", "cgroup/unified rw shared:7 -")
        slave = MOUNTINFO_HYBRID.replace("cgroup/unified rw -", "cgroup/unified rw master:3 -")
        scripts = {}
        for name, text in [("private", MOUNTINFO_HYBRID), ("shared", shared), ("slave", slave)]:
            argv = cgroups.legacy_view_argv(mountinfo=self.mountinfo(text))
            if argv is None:
                raise SkipTest("no unshare or static busybox")
            self.assertEqual(argv[1:5], ["--mount", "--propagation", "unchanged", "--"])
            scripts[name] = argv[-1]
        self.assertEqual(scripts["private"],
                         'umount /sys/fs/cgroup/unified && exec "$0" "$@"')
        for name in ("shared", "slave"):
            self.assertEqual(scripts[name], "mount --make-private /sys/fs/cgroup/unified && "
                                            'umount /sys/fs/cgroup/unified && exec "$0" "$@"')

    def test_remove_refuses_root(self) -> None:
        for parent in ("/", "", "/a/../.."):
            self.assertRaises(ValueError, cgroups.remove_cgroup_parent, parent)


class TranslateStartErrorTests(SynchronousTestCase):

    def test_not_found_is_127(self) -> None:
        e = translate_start_error(
            "runc", 'unable to start container process: exec: "nope": '
            "executable file not found in $PATH", "nope")
        self.assertEqual((type(e), e.exit_code), (StartError, 127))

    def test_permission_denied_is_126(self) -> None:
        e = translate_start_error(
            "runc", 'exec: "/etc/passwd": permission denied', "/etc/passwd")
        self.assertEqual(e.exit_code, 126)

    def test_crun_not_found_is_worded_as_runc_words_it(self) -> None:
        e = translate_start_error(
            "crun", "executable file `nope` not found in $PATH: No such file or directory",
            "nope")
        self.assertEqual((type(e), e.exit_code), (StartError, 127))
        self.assertIn('exec: "nope": executable file not found in $PATH', str(e))
        e = translate_start_error(
            "crun", "executable file `/nope` not found in $PATH: No such file or directory",
            "/nope")
        self.assertEqual(e.exit_code, 127)
        self.assertIn('exec: "/nope": stat /nope: no such file or directory', str(e))

    def test_crun_cannot_open_is_126(self) -> None:
        for message in ("open executable: Permission denied",
                        "open executable: Operation not permitted"):
            e = translate_start_error("crun", message, "/etc")
            self.assertEqual(e.exit_code, 126, message)
            self.assertIn('exec: "/etc": permission denied', str(e))

    def test_other_errors_are_500(self) -> None:
        e = translate_start_error("crun", "cgroups in hybrid mode not supported", "sh")
        self.assertIsInstance(e, RuntimeStartError)
        self.assertEqual(e.status, 500)


# A subreaper interpreter: an "intermediate" process forks an "init" that
# exits 7 at once and lingers without reaping it, as crun's intermediate
# process may after `run --detach` returned.  The reaper registered then
# must wait for the zombie to be handed over, not report it lost (255).
_HANDOVER_SCRIPT = r"""
import ctypes, json, os, subprocess, sys, time
from twisted.internet import process as twisted_process
from dockerpy.runtime.oci import _InitReaper

assert ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0
code = "import os, time\npid = os.fork()\nif pid == 0:\n    os._exit(7)\nprint(pid, flush=True)\ntime.sleep(0.5)\n"
middle = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
init = int(middle.stdout.readline())
deadline = time.monotonic() + 10
while "State:\tZ" not in open(f"/proc/{init}/status").read() and time.monotonic() < deadline:
    time.sleep(0.01)
seen = []
reaper = _InitReaper(init, "c0ffee", seen.append)
reaper.register()
while_theirs = list(seen)
registered = twisted_process.reapProcessHandlers.get(init) is reaper
middle.wait()  # its exit hands the zombie to us, with a SIGCHLD
reaper.reapProcess()  # what that SIGCHLD runs
gone = _InitReaper(middle.pid, "dead", seen.append)
gone.register()  # reaped already, by us: lost for good
print(json.dumps({"while_theirs": while_theirs, "registered": registered, "seen": seen,
                  "left": init in twisted_process.reapProcessHandlers}))
"""


class InitReaperTests(SynchronousTestCase):

    def test_handover_between_waitpid_and_the_parent_look(self) -> None:
        """The init's waitpid fails (still the runtime's child), then the
        runtime's last process exits before the reaper reads the parent,
        which is now us: the reaper waits again instead of losing it."""
        from dockerpy.runtime import oci as oci_module

        calls = []

        def waitpid(pid, options):
            calls.append(pid)
            if len(calls) == 1:
                raise ChildProcessError(10, "No child processes")
            return pid, 3 << 8
        self.patch(oci_module.os, "waitpid", waitpid)
        self.patch(oci_module, "_parent_of", lambda pid: os.getpid())
        seen = []
        oci_module._InitReaper(424242, "c0ffee", seen.append).register()
        self.assertEqual((seen, calls), ([3 << 8], [424242, 424242]))

    def test_init_still_the_runtimes_zombie_is_waited_for(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out = subprocess.run([sys.executable, "-c", _HANDOVER_SCRIPT], capture_output=True,
                             text=True, cwd=root, timeout=60,
                             env={**os.environ, "PYTHONPATH": root})
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual(result["while_theirs"], [])
        self.assertTrue(result["registered"])
        self.assertEqual(result["seen"], [7 << 8, 255 << 8])
        self.assertFalse(result["left"])
