# -*- test-case-name: dockerpy.test.test_runtime_oci -*-
"""runc and crun driven through their command lines (:class:`IRuntime`).

This module owns the runtime's command lines, the foreground ``run`` of a
container as a child of the daemon (the caller's ``ProcessProtocol`` gets the
container's streams and exit), the detection of a container's start, the
wording of start failures as Docker words them, probing which runtime works
on this host, and choosing the default one.

Every program runs through ``reactor.spawnProcess``; nothing here blocks the
reactor except tiny file operations (a pid file, a runtime log).  It does not
write ``config.json`` (see :mod:`dockerpy.runtime.spec`) nor manage cgroup
parents (:mod:`dockerpy.runtime.cgroups`).
"""

import functools
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from typing import Any, Optional, Sequence

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from dockerpy import atomic, syscalls
from dockerpy.errors import (
    Conflict, DockerError, InvalidParameter, NotFound, SystemError_, Unavailable)
from dockerpy.interfaces import IRuntime
from dockerpy.runtime import cgroups, console
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: How often ``run`` looks for the pid file while the runtime starts the
#: container (seconds); the runtime needs ~40 ms, so this bounds the delay
#: we add to the start of every container.
PID_POLL_INTERVAL = 0.002
#: After this long the polling slows down (a runtime stuck in a hook).
PID_POLL_FAST_FOR = 5.0
PID_POLL_SLOW_INTERVAL = 0.05

RUNTIME_LOG = "runtime.log"

# Docker's exit codes for containers that could not start.
EXIT_CMD_NOT_FOUND = 127
EXIT_CANNOT_INVOKE = 126
EXIT_UNKNOWN = 128


class StartError(InvalidParameter):
    """The container's process could not be started: a bad command or mount.

    ``exit_code`` is what Docker records as the container's exit code (127
    not found, 126 cannot invoke).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RuntimeStartError(SystemError_):
    """The runtime failed to start the container for another reason (500)."""

    def __init__(self, message: str, exit_code: int = EXIT_UNKNOWN) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RuntimeCommandError(SystemError_):
    """A runtime command (kill, delete, ...) failed; the message is the runtime's."""


_CRUN_NOT_FOUND = re.compile(r"executable file `(.*)` not found in \$PATH(: .*)?$")
_CRUN_CANNOT_OPEN = re.compile(r"open executable: (permission denied|operation not permitted)$",
                               re.IGNORECASE)


def runc_wording(message: str, cmd: str) -> str:
    """crun's messages for a command it cannot run, worded as runc words
    them (what Docker users and their scripts see); others unchanged.

    :param cmd: the command (``args[0]``), or ``""`` when not known.
    """
    found = _CRUN_NOT_FOUND.match(message)
    if found:
        name = found.group(1)
        reason = (f"stat {name}: no such file or directory" if "/" in name
                  else "executable file not found in $PATH")
        return f'unable to start container process: exec: "{name}": {reason}'
    if cmd and _CRUN_CANNOT_OPEN.match(message):
        return f'unable to start container process: exec: "{cmd}": permission denied'
    return message


def translate_start_error(runtime: str, message: str, cmd: str) -> DockerError:
    """Word a start failure as Docker does (moby ``translateContainerdStartErr``).

    :param runtime: ``runc`` or ``crun``.
    :param message: the runtime's own message, prefix ``<rt> run failed:`` removed.
    :param cmd: the container's command (``args[0]``).
    """
    message = runc_wording(message, cmd)
    text = f"OCI runtime create failed: {runtime} create failed: {message}: unknown"
    low = message.lower()
    if cmd and cmd.lower() in low and (
            "executable file not found" in low or "no such file or directory" in low):
        return StartError(text, EXIT_CMD_NOT_FOUND)
    if "permission denied" in low:
        return StartError(text, EXIT_CANNOT_INVOKE)
    if "not a directory" in low:
        return StartError(
            text + ": Are you trying to mount a directory onto a file (or vice-versa)?"
            " Check if the specified host path exists and is the expected type",
            EXIT_CMD_NOT_FOUND)
    return RuntimeStartError(text)


def _log_messages(data: bytes) -> list[str]:
    """Error messages from a runtime's JSON log (or plain text lines)."""
    messages = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            messages.append(line)
            continue
        if isinstance(entry, dict):
            if entry.get("level", "error") in ("error", "fatal", "panic"):
                messages.append(str(entry.get("msg", "")))
        else:
            messages.append(line)
    return messages


def _strip_prefix(runtime: str, message: str) -> str:
    for prefix in (f"{runtime} run failed: ", f"{runtime} create failed: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _is_missing(message: str) -> bool:
    low = message.lower()
    return "does not exist" in low or "not found" in low or "no such" in low


class _CommandProtocol(ProcessProtocol):
    """Collect a short command's output; fire with ``(code, stdout, stderr)``."""

    def __init__(self, done: Deferred) -> None:
        self.done = done
        self.out: list[bytes] = []
        self.err: list[bytes] = []

    def connectionMade(self) -> None:
        self.transport.closeStdin()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        (self.out if fd == 1 else self.err).append(data)

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        code = value.exitCode if isinstance(value, ProcessTerminated) else 0
        if code is None:
            code = 128 + (value.signal or 0)
        self.done.callback((code, b"".join(self.out), b"".join(self.err)))


class _StartWatcher(ProcessProtocol):
    """Stand between the runtime process and the caller's protocol.

    Forwards everything to the caller's protocol, and tells ``started`` when
    the container runs (its pid file appears) or why it never did.  Until
    then the runtime's stderr is held back: it carries the runtime's own
    error text, which must not end up in the container's log.  On a start
    failure the runtime's state is deleted, then ``started`` fails, and only
    then does the caller's protocol see ``processExited``/``processEnded``.
    """

    def __init__(self, runtime: "OCIRuntime", container_id: str, bundle: str,
                 pid_file: str, inner: ProcessProtocol, started: Deferred) -> None:
        self.runtime = runtime
        self.container_id = container_id
        self.bundle = bundle
        self.pid_file = pid_file
        self.inner = inner
        self.started = started
        self.pid: Optional[int] = None
        self._state = "starting"  # -> "running" | "failed"
        self._held_stderr: list[bytes] = []
        self._held_events: list[tuple[str, Any]] = []
        self._poll_call = None
        self._polling_since = runtime.reactor.seconds()

    # -- transport side ---------------------------------------------------

    def makeConnection(self, transport) -> None:
        self.transport = transport
        self.inner.makeConnection(transport)
        self._schedule_poll()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if self._state == "starting":
            # Output may be the container's own, written before the next poll:
            # look now, so held stderr is never delivered after later stdout.
            self._check_started()
        if fd == 2 and self._state != "running":
            self._held_stderr.append(data)
            return
        self.inner.childDataReceived(fd, data)

    def childConnectionLost(self, fd: int) -> None:
        if self._state == "running" or fd != 2:
            self.inner.childConnectionLost(fd)
        else:
            self._held_events.append(("childConnectionLost", fd))

    def processExited(self, reason: Failure) -> None:
        if self._state == "starting":
            self._check_started()
        if self._state == "starting":
            self._fail_start(reason)
        if self._state == "running":
            self.inner.processExited(reason)
        else:
            self._held_events.append(("processExited", reason))

    def processEnded(self, reason: Failure) -> None:
        if self._state == "running":
            self.inner.processEnded(reason)
        else:
            self._held_events.append(("processEnded", reason))

    # -- start detection --------------------------------------------------

    def _schedule_poll(self) -> None:
        reactor = self.runtime.reactor
        fast = reactor.seconds() - self._polling_since < PID_POLL_FAST_FOR
        delay = PID_POLL_INTERVAL if fast else PID_POLL_SLOW_INTERVAL
        self._poll_call = reactor.callLater(delay, self._poll)

    def _poll(self) -> None:
        self._poll_call = None
        if self._state != "starting":
            return
        self._check_started()
        if self._state == "starting":
            self._schedule_poll()

    def _check_started(self) -> None:
        try:
            with open(self.pid_file, "rb") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return
        try:
            pid = int(text)
        except ValueError:
            return  # written but not yet complete (crun writes in place)
        self.pid = pid
        self._state = "running"
        self._pid_known(pid)
        self._stop_polling()
        held, self._held_stderr = self._held_stderr, []
        self.started.callback(pid)
        for data in held:
            self.inner.childDataReceived(2, data)
        self._replay()

    def _pid_known(self, pid: int) -> None:
        """The container's init is ``pid`` (before ``started`` says so)."""

    def _stop_polling(self) -> None:
        if self._poll_call is not None and self._poll_call.active():
            self._poll_call.cancel()
        self._poll_call = None

    def _replay(self) -> None:
        events, self._held_events = self._held_events, []
        for name, arg in events:
            getattr(self.inner, name)(arg)

    def _fail_start(self, reason: Failure) -> None:
        self._state = "failed"
        self._stop_polling()
        error = self._start_error(reason)

        def report(_: object) -> None:
            self._state = "running"  # from now on, forward as is
            self._held_stderr = []  # the runtime's error text, not output
            self.started.errback(error)
            self._replay()

        d = self.runtime.delete(self.container_id, True)
        d.addErrback(lambda f: log.failure(
            "cleaning up after failed start of {id}", f, id=self.container_id))
        d.addBoth(report)

    def _start_error(self, reason: Failure) -> DockerError:
        name = self.runtime.name
        messages: list[str] = []
        try:
            with open(os.path.join(self.bundle, RUNTIME_LOG), "rb") as f:
                messages = _log_messages(f.read())
        except OSError:
            pass
        if not messages:
            messages = _log_messages(b"".join(self._held_stderr))
        if messages:
            message = _strip_prefix(name, messages[-1])
        else:
            code = getattr(reason.value, "exitCode", None)
            message = f"{name} exited with status {code} before starting the container"
        cmd = ""
        try:
            spec = atomic.read_json(os.path.join(self.bundle, "config.json"))
            cmd = spec["process"]["args"][0]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            pass
        return translate_start_error(name, message, cmd)


PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


@functools.cache
def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants, so that a
    container started with ``run --detach`` becomes our child when the
    runtime exits.  :return: whether it worked."""
    return _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def is_subreaper() -> bool:
    """Asked at every start (loading libc anew each time cost ~1 ms)."""
    import ctypes

    value = ctypes.c_int(0)
    if _libc().prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
        return False
    return bool(value.value)


def _wait_reason(status: int) -> Failure:
    """A container init's ``waitpid`` status as the Failure a foreground
    runtime's exit gives ``processEnded``: a signal ``n`` is exit code
    ``128 + n``, as runc and crun report it."""
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return Failure(ProcessDone(status))
    return Failure(ProcessTerminated(128 - code if code < 0 else code, None, status))


class _DetachedWatcher(_StartWatcher):
    """:class:`_StartWatcher` for ``run --detach`` under a subreaper daemon.

    The runtime exits as soon as the container runs, and the container's
    init, orphaned, becomes the daemon's child: its exit status comes from
    Twisted's child reaping (``registerReapProcessHandler``), not from the
    runtime.  The caller's protocol sees ``processExited``/``processEnded``
    with the container's status once the init exited *and* its pipes closed
    (all output delivered).  No runtime process stays behind per container.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_reason: Optional[Failure] = None
        self._pipes_closed = False
        self.cgroups_path = ""  # the spec's, for forgetting the stopped container

    def _pid_known(self, pid: int) -> None:
        # Nobody reaps the init but us (the detached runtime never waits for
        # it), so until we do its pid is its own: signals can go straight to it.
        self.runtime.children[self.container_id] = pid

    def _schedule_poll(self) -> None:
        # No polling for the pid file: ``run --detach`` writes it before it
        # exits, and its exit (or the container's first output) looks.
        pass

    def processExited(self, reason: Failure) -> None:
        if self._state == "starting":
            self._check_started()
        if self._state != "running":
            super().processExited(reason)
            return
        # The runtime is gone, so the init is our child now, or will be as
        # soon as the runtime's last process exits (see _InitReaper).
        _InitReaper(self.pid, self.container_id, self._init_ended).register()

    def processEnded(self, reason: Failure) -> None:
        if self._state != "running" or self.pid is None:
            super().processEnded(reason)
            return
        self._pipes_closed = True
        self._maybe_end()

    def _init_ended(self, status: int) -> None:
        """The init exited: report it, and forget the stopped container as
        ``<rt> delete`` would (its cgroup, its state directory) without
        spawning the runtime again."""
        self.runtime.children.pop(self.container_id, None)
        self.runtime.forget_stopped(self.container_id, self.cgroups_path)
        # Reported at once: the caller cleans up (unmounts) meanwhile, and
        # waits for settled() before it touches the runtime's state again.
        self._init_reason = _wait_reason(status)
        self._maybe_end()

    def _maybe_end(self) -> None:
        if self._init_reason is None or not self._pipes_closed:
            return
        reason, self._init_reason = self._init_reason, None
        self._pipes_closed = False
        self.inner.processExited(reason)
        self.inner.processEnded(reason)


def _forget_stopped(state_root: str, container_id: str, cgroups_path: str) -> int:
    """Blocking: what ``<rt> delete`` does for a stopped container with no
    hooks: remove its cgroup (the spec's ``cgroupsPath``, read at start: the
    bundle may be gone by now; left alone if something still runs in it)
    and its state directory.

    :return: how many processes the OOM killer ended in the cgroup, read
        before it goes (``State.OOMKilled``)."""
    oom = 0
    if cgroups_path and ":" not in cgroups_path:  # a cgroupfs path, not systemd's
        oom = cgroups.oom_kills(cgroups_path)
        busy = cgroups.remove_cgroup_parent(cgroups_path)
        if busy:
            log.warn("cgroups still busy after {id} stopped: {busy}", id=container_id,
                     busy=busy)
            return oom  # keep the state: a later delete retries
    shutil.rmtree(os.path.join(state_root, container_id), ignore_errors=True)
    return oom


#: Set by :meth:`OCIRuntime.prepare_spec` on a spec whose profile crun is
#: to compile: the profile's key, under which the result is kept.
_PROFILE_KEY_ANNOTATION = "io.dockerpy.seccomp-profile"


def _profile_key(profile: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()


def _read_bpf(path: str) -> Optional[str]:
    """A compiled filter from crun's state, base64, if it looks like one
    (whole ``sock_filter`` entries of 8 bytes, at least one)."""
    import base64

    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return None
    if not data or len(data) % 8:
        return None
    return base64.b64encode(data).decode()


def _parent_of(pid: int) -> Optional[int]:
    """The parent pid of ``pid`` (a zombie's too), or None if there is no
    such process."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class _InitReaper:
    """What Twisted's child reaping calls for a container's init: it reaps
    the pid on SIGCHLD (``reapProcess``), or at once if it had already exited
    when registered (:meth:`register`).

    The init becomes our child only when the runtime's last process is
    gone: crun's ``run --detach`` exits while the intermediate process that
    cloned the init may still run for a moment, and a container that exits
    at once is that process's zombie until then.  Until the init is ours,
    ``waitpid`` fails with ECHILD; the reaper then waits for the SIGCHLD the
    kernel sends us when the zombie (or the running init) is handed over.
    """

    def __init__(self, pid: int, container_id: str, on_exit) -> None:
        self.pid = pid
        self.container_id = container_id
        self.on_exit = on_exit

    def register(self) -> None:
        """Reap now if the init already exited as our child, else wait for
        SIGCHLD (what ``registerReapProcessHandler`` does, without its
        error log for an init that is still the runtime's child)."""
        from twisted.internet import process as twisted_process

        status = self._try_wait()
        if status is not None:
            self.on_exit(status)
            return
        if self.pid in twisted_process.reapProcessHandlers:
            raise RuntimeError(f"container {self.container_id}: init {self.pid} "
                               f"registered twice")
        twisted_process.reapProcessHandlers[self.pid] = self

    def _try_wait(self) -> Optional[int]:
        """:return: the init's wait status if it was reaped now; None while
            it runs or is still another process's child."""
        # Twice at most: the handover can fall between the ECHILD and the
        # look at the parent, which then is us.
        for _ in range(2):
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                parent = _parent_of(self.pid)
                if parent == os.getpid():
                    continue  # ours since the waitpid: wait again
                if parent is not None:
                    return None  # still the runtime's; handed to us with a SIGCHLD
                break
            return status if pid else None
        log.error("container {id}: its init {pid} is not our child",
                  id=self.container_id, pid=self.pid)
        return 255 << 8

    def reapProcess(self) -> None:  # noqa: N802 (Twisted's name)
        from twisted.internet import process as twisted_process

        status = self._try_wait()
        if status is not None:
            twisted_process.unregisterReapProcessHandler(self.pid, self)
            self.on_exit(status)


@implementer(IRuntime)
class OCIRuntime:
    """An OCI runtime binary with its own state directory.

    :param reactor: provides ``IReactorProcess`` and ``IReactorTime``.
    :param name: ``runc`` or ``crun`` (also the prefix of its error messages).
    :param path: absolute path of the binary.
    :param state_root: the runtime's ``--root``; one per daemon.
    :param env: environment of the runtime processes (default: ``PATH`` only).
    :param launcher: a command-line prefix the runtime runs under (see
        :func:`make_runtime`); empty: the runtime runs directly.
    """

    def __init__(self, reactor, name: str, path: str, state_root: str,
                 env: Optional[dict[str, str]] = None,
                 launcher: Sequence[str] = ()) -> None:
        self.reactor = reactor
        self.name = name
        self.path = path
        self.state_root = state_root
        self.launcher = list(launcher)
        self.env = dict(env) if env is not None else {
            "PATH": os.environ.get("PATH") or DEFAULT_PATH}
        #: Container id -> pid of its init, for the inits that are our
        #: children (``run --detach`` under a subreaper) and not reaped yet.
        self.children: dict[str, int] = {}
        #: Container id -> the forgetting of its stopped state, in flight.
        self._forgetting: dict[str, Deferred] = {}
        self._state_root_spread = False
        self._oom_killed: set[str] = set()
        #: sha256 of a seccomp profile -> the filter crun compiled for it
        #: (base64), for :meth:`prepare_spec`.
        self._seccomp_bpf: dict[str, str] = {}
        #: Whether this runtime takes compiled filters (crun >= 1.0, learnt
        #: at start by :func:`choose_default`).
        self.compiled_seccomp = False

    def __repr__(self) -> str:
        return f"OCIRuntime({self.name!r}, {self.path!r}, {self.state_root!r})"

    def _base_args(self) -> list[str]:
        return self.launcher + [self.path, "--root", self.state_root]

    @property
    def executable(self) -> str:
        """What is spawned: the launcher's program, else the runtime."""
        return self.launcher[0] if self.launcher else self.path

    def verb_index(self, argv: list[str], verb: str) -> int:
        """Where the runtime's sub-command ``verb`` is in ``argv`` (a
        command line made from :meth:`_base_args`)."""
        return argv.index(verb, len(self.launcher) + 1)

    # -- short commands ---------------------------------------------------

    def _command(self, args: list[str]) -> Deferred:
        """Run ``<rt> --root R --log-format json <args>``.

        :return: Deferred firing with ``(exit code, stdout, stderr)``.
        """
        done: Deferred = Deferred()
        argv = self._base_args() + ["--log-format", "json"] + args
        self.reactor.spawnProcess(
            _CommandProtocol(done), self.executable, argv, env=self.env,
            childFDs={0: "w", 1: "r", 2: "r"})
        return done

    def _checked(self, args: list[str], container_id: str = "",
                 missing_ok: bool = False) -> Deferred:
        """Run a command; fire with its stdout, or fail with the runtime's
        message as a domain error."""

        def check(result: tuple[int, bytes, bytes]) -> bytes:
            code, out, err = result
            if code == 0:
                return out
            messages = _log_messages(err)
            message = messages[-1] if messages else f"{self.name} exited with status {code}"
            if _is_missing(message):
                if missing_ok:
                    return b""
                raise NotFound(f"No such container: {container_id}")
            if "not running" in message.lower() or "is stopped" in message.lower():
                raise Conflict(f"Container {container_id} is not running")
            if "paused" in message.lower():
                raise Conflict(f"Container {container_id} is paused")
            raise RuntimeCommandError(f"{self.name}: {message}")

        return self._command(args).addCallback(check)

    def version(self) -> Deferred:
        def parse(out: bytes) -> str:
            first = out.decode("utf-8", "replace").splitlines()[0] if out else ""
            # "runc version 1.1.5+ds1", "crun version 1.8.1"
            return first.split("version", 1)[-1].strip()
        done: Deferred = Deferred()
        self.reactor.spawnProcess(
            _CommandProtocol(done), self.path, [self.path, "--version"],
            env=self.env, childFDs={0: "w", 1: "r", 2: "r"})
        return done.addCallback(lambda r: parse(r[1]))

    def forget_stopped(self, container_id: str, cgroups_path: str) -> None:
        """In the thread pool: what ``<rt> delete`` does for a container
        whose init we reaped (see :func:`_forget_stopped`)."""
        from twisted.internet.threads import deferToThreadPool

        d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), _forget_stopped,
                              self.state_root, container_id, cgroups_path)

        def note_oom(kills: int) -> None:
            if kills:
                self._oom_killed.add(container_id)
        d.addCallback(note_oom)
        d.addErrback(lambda f: log.failure("forgetting the stopped container {id}", f,
                                           id=container_id))
        self._forgetting[container_id] = d

        def done(_: object) -> None:
            if self._forgetting.get(container_id) is d:
                del self._forgetting[container_id]
        d.addBoth(done)

    #: crun's annotation for a compiled filter, used instead of the spec's
    #: ``linux.seccomp`` (used from crun 1.0 on, see :attr:`compiled_seccomp`;
    #: runc has no such thing).
    SECCOMP_BPF_ANNOTATION = "run.oci.seccomp_bpf_data"

    def prepare_spec(self, spec: dict) -> None:
        """crun compiles a spec's seccomp profile with libseccomp at every
        start: ~20 ms for Docker's default, as much as the rest of the start.
        The filter it compiled for a container is in its state directory
        (``seccomp.bpf``, kept for ``exec``); once read back, later
        containers with the same profile get it as ``run.oci.seccomp_bpf_data``
        and no ``linux.seccomp`` to compile.  runc compiles each time."""
        profile = (spec.get("linux") or {}).get("seccomp")
        if not self.compiled_seccomp or not profile:
            return
        key = _profile_key(profile)
        bpf = self._seccomp_bpf.get(key)
        if bpf is None:
            spec.setdefault("annotations", {})[_PROFILE_KEY_ANNOTATION] = key
            return
        del spec["linux"]["seccomp"]
        spec.setdefault("annotations", {})[self.SECCOMP_BPF_ANNOTATION] = bpf

    def _keep_compiled_seccomp(self, container_id: str, spec: dict) -> None:
        """After a start with a profile not compiled yet: read the filter
        crun wrote (in the thread pool) and keep it for the next start."""
        # The key is there only if prepare_spec found the runtime able to
        # take compiled filters and had none for this profile.
        key = (spec.get("annotations") or {}).get(_PROFILE_KEY_ANNOTATION)
        if not key or key in self._seccomp_bpf:
            return
        from twisted.internet.threads import deferToThreadPool

        path = os.path.join(self.state_root, container_id, "seccomp.bpf")
        d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), _read_bpf, path)

        def keep(bpf: Optional[str]) -> None:
            if bpf:
                self._seccomp_bpf[key] = bpf
        d.addCallback(keep)
        d.addErrback(lambda f: None)  # a miss: the next start compiles again

    def oom_killed(self, container_id: str) -> bool:
        """Whether the OOM killer ended a process of the container's last run
        (known once :meth:`settled` fired; asking forgets it)."""
        if container_id in self._oom_killed:
            self._oom_killed.discard(container_id)
            return True
        return False

    def settled(self, container_id: str) -> Deferred:
        pending = self._forgetting.get(container_id)
        if pending is None:
            return succeed(None)
        done: Deferred = Deferred()

        def fire(result):
            done.callback(None)
            return result
        pending.addBoth(fire)
        return done

    def kill(self, container_id: str, signal: int) -> Deferred:
        pid = self.children.get(container_id)
        if pid is not None:
            # Our child, not reaped yet, so its pid cannot have been reused:
            # signal it as ``<rt> kill`` would, without a runtime process.
            os.kill(pid, signal)
            return succeed(None)
        return self._checked(["kill", container_id, str(int(signal))],
                             container_id).addCallback(lambda _: None)

    def delete(self, container_id: str, force: bool = False) -> Deferred:
        args = ["delete"] + (["--force"] if force else []) + [container_id]
        return self._checked(args, container_id, missing_ok=True).addCallback(
            lambda _: None)

    def pause(self, container_id: str) -> Deferred:
        return self._checked(["pause", container_id], container_id).addCallback(
            lambda _: None)

    def resume(self, container_id: str) -> Deferred:
        return self._checked(["resume", container_id], container_id).addCallback(
            lambda _: None)

    def pids(self, container_id: str) -> Deferred:
        def parse(out: bytes) -> list[int]:
            value = json.loads(out or b"null")
            return [int(p) for p in value or []]
        return self._checked(["ps", "--format", "json", container_id],
                             container_id).addCallback(parse)

    def state(self, container_id: str) -> Deferred:
        """Deferred firing with the runtime's ``state`` document (a dict:
        ``status`` is ``created``, ``running``, ``paused`` or ``stopped``)."""
        return self._checked(["state", container_id], container_id).addCallback(
            json.loads)

    def list(self) -> Deferred:
        if not os.path.isdir(self.state_root):
            return succeed([])

        def parse(out: bytes) -> list[str]:
            value = json.loads(out or b"null")
            return sorted(entry["id"] for entry in value or [])
        return self._checked(["list", "--format", "json"]).addCallback(parse)

    # -- run --------------------------------------------------------------

    def run(self, container_id: str, bundle: str, protocol: ProcessProtocol,
            stdin: bool, pid_file: str) -> Deferred:
        """Run the container (see :meth:`IRuntime.run`): in the foreground,
        or, when this process is a child subreaper (the daemon makes itself
        one), with ``--detach`` so that no runtime process stays per container.

        The runtime's own stderr is held back until the container started
        (it is the runtime's error text otherwise).  If the bundle's
        ``process.terminal`` is true the container gets a real terminal
        through the runtime's console socket (:mod:`dockerpy.runtime.console`):
        output arrives on fd 1, ``protocol.transport.resize(h, w)`` (or
        ``TIOCSWINSZ`` on ``protocol.transport.fileno()``) resizes it.

        :return: Deferred firing with the container's host pid, or failing
            with :class:`StartError` (bad command, exit code 127/126) or
            :class:`RuntimeStartError`, after the runtime's state for the
            container was deleted.  On failure the protocol still receives
            ``processExited``/``processEnded``, after the Deferred failed.
        """
        os.makedirs(self.state_root, mode=0o700, exist_ok=True)
        if not self._state_root_spread:
            # The runtime's directory per container in a quiet block group
            # (ext4; see syscalls.spread_subdirectories).  Tried once.
            syscalls.spread_subdirectories(self.state_root)
            self._state_root_spread = True
        for stale in (pid_file, os.path.join(bundle, RUNTIME_LOG)):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        terminal, cgroups_path = False, ""
        spec: dict = {}
        try:
            spec = atomic.read_json(os.path.join(bundle, "config.json"))
            terminal = bool(spec["process"].get("terminal"))
            cgroups_path = spec["linux"].get("cgroupsPath") or ""
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        argv = self._base_args() + [
            "--log", os.path.join(bundle, RUNTIME_LOG), "--log-format", "json",
            "run", "--bundle", bundle, "--pid-file", pid_file, container_id]
        started: Deferred = Deferred()

        def keep_seccomp(pid):
            self._keep_compiled_seccomp(container_id, spec)
            return pid
        started.addCallback(keep_seccomp)
        if terminal:
            return _spawn_with_console(
                self, argv, "run", container_id, pid_file, protocol, started,
                lambda inner: _StartWatcher(self, container_id, bundle, pid_file, inner,
                                            started))
        if is_subreaper():
            # The runtime exits once the container runs; the container is
            # then our child (see _DetachedWatcher).
            at = self.verb_index(argv, "run") + 1
            argv = argv[:at] + ["--detach"] + argv[at:]
            watcher = _DetachedWatcher(self, container_id, bundle, pid_file, protocol, started)
            watcher.cgroups_path = cgroups_path
        else:
            watcher = _StartWatcher(self, container_id, bundle, pid_file, protocol, started)
        return _spawn_piped(self, watcher, argv, stdin, started)

    def exec(self, container_id: str, process_spec: dict, protocol: ProcessProtocol,
             stdin: bool, pid_file: str, tty: bool = False) -> Deferred:
        """Run another process in a running container, in the foreground
        (``<rt> exec --process <pid_file>.process.json``); see
        :meth:`IRuntime.exec`.  The runtime's log goes to ``<pid_file>.log``.
        """
        return _exec(self, container_id, process_spec, protocol, stdin, pid_file, tty)


class _ExecWatcher(_StartWatcher):
    """:class:`_StartWatcher` for ``runc exec``: a failed exec leaves the
    container alone, and its error is worded as Docker words exec failures."""

    #: The process's command (``args[0]``), for the error's wording.
    cmd = ""

    def _fail_start(self, reason: Failure) -> None:
        self._state = "failed"
        self._stop_polling()
        error = self._start_error(reason)
        self._state = "running"
        self._held_stderr = []
        self.started.errback(error)
        self._replay()

    def _start_error(self, reason: Failure) -> DockerError:
        messages: list[str] = []
        try:
            with open(self.pid_file + ".log", "rb") as f:
                messages = _log_messages(f.read())
        except OSError:
            pass
        if not messages:
            messages = _log_messages(b"".join(self._held_stderr))
        message = messages[-1] if messages else (
            f"{self.runtime.name} exited with status "
            f"{getattr(reason.value, 'exitCode', None)} before starting the process")
        for prefix in (f"{self.runtime.name} exec failed: ", "exec failed: "):
            if message.startswith(prefix):
                message = message[len(prefix):]
        message = runc_wording(message, self.cmd)
        text = f"OCI runtime exec failed: exec failed: {message}: unknown"
        low = message.lower()
        if "executable file not found" in low or "no such file or directory" in low:
            return StartError(text, EXIT_CMD_NOT_FOUND)
        if "permission denied" in low:
            return StartError(text, EXIT_CANNOT_INVOKE)
        return RuntimeStartError(text, EXIT_CANNOT_INVOKE)


def _exec_watcher(runtime: "OCIRuntime", container_id: str, pid_file: str,
                  protocol: ProcessProtocol, started: Deferred, cmd: str) -> _ExecWatcher:
    watcher = _ExecWatcher(runtime, container_id, os.path.dirname(pid_file), pid_file,
                           protocol, started)
    watcher.cmd = cmd
    return watcher


def _exec(runtime: "OCIRuntime", container_id: str, process_spec: dict,
          protocol: ProcessProtocol, stdin: bool, pid_file: str, tty: bool) -> Deferred:
    """:meth:`OCIRuntime.exec` (kept beside the watcher it needs)."""
    process_file, log_file = pid_file + ".process.json", pid_file + ".log"
    args = process_spec.get("args") or [""]
    cmd = str(args[0])
    for stale in (pid_file, log_file):
        try:
            os.unlink(stale)
        except FileNotFoundError:
            pass
    atomic.write_bytes(process_file, json.dumps(process_spec).encode(), 0o600, durable=False)
    argv = runtime._base_args() + [
        "--log", log_file, "--log-format", "json", "exec", "--process", process_file,
        "--pid-file", pid_file, container_id]
    started: Deferred = Deferred()
    if tty:
        return _spawn_with_console(
            runtime, argv, "exec", container_id, pid_file, protocol, started,
            lambda inner: _exec_watcher(runtime, container_id, pid_file, inner, started, cmd))
    watcher = _exec_watcher(runtime, container_id, pid_file, protocol, started, cmd)
    return _spawn_piped(runtime, watcher, argv, stdin, started)


def _spawn_piped(runtime: "OCIRuntime", watcher: ProcessProtocol, argv: list[str],
                 stdin: bool, started: Deferred) -> Deferred:
    """Spawn the runtime with piped stdout/stderr (and stdin, or /dev/null)."""
    devnull = None
    try:
        if not stdin:
            devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        runtime.reactor.spawnProcess(
            watcher, runtime.executable, argv, env=runtime.env,
            childFDs={0: "w" if stdin else devnull, 1: "r", 2: "r"})
    except OSError as e:
        return fail(RuntimeStartError(f"cannot run {runtime.path}: {e}"))
    finally:
        if devnull is not None:
            os.close(devnull)
    return started


def _spawn_with_console(runtime: "OCIRuntime", argv: list[str], verb: str, container_id: str,
                        pid_file: str, protocol: ProcessProtocol, started: Deferred,
                        make_watcher) -> Deferred:
    """Run ``argv`` (a ``run`` or ``exec`` command line) detached, with its
    terminal's master sent to us over a console socket, under the console
    shim (see :mod:`dockerpy.runtime.console`).

    :param verb: ``run`` or ``exec``: the options go after it.
    :param make_watcher: builds the start watcher around the given protocol.
    """
    session = console.ConsoleSession(
        runtime.reactor, console.socket_path(runtime.state_root, container_id), protocol)
    at = runtime.verb_index(argv, verb) + 1
    argv = argv[:at] + ["--detach", "--console-socket", session.path] + argv[at:]
    watcher = make_watcher(session)
    devnull = None
    try:
        session.listen()
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        runtime.reactor.spawnProcess(
            watcher, sys.executable, console.shim_argv(pid_file, argv), env=runtime.env,
            childFDs={0: devnull, 1: "r", 2: "r"})
    except OSError as e:
        session.close()
        return fail(RuntimeStartError(f"cannot run {runtime.path}: {e}"))
    finally:
        if devnull is not None:
            os.close(devnull)
    return started


def _probe_spec(rootfs: str, cgroups_path: str, binary: str) -> dict:
    from dockerpy.runtime.spec import SpecInput, build_spec
    return build_spec(SpecInput(
        rootfs=rootfs, args=["/true"], env=[f"PATH={DEFAULT_PATH}"],
        readonly_rootfs=True, hostname="probe", cgroups_path=cgroups_path,
        mounts=[{"destination": "/true", "type": "bind", "source": binary,
                 "options": ["bind", "ro"]}]))


def _probe_binary() -> Optional[str]:
    # A static binary that exits 0 when called "true": the probe's rootfs
    # is an empty directory (the host's / cannot be pivoted into).
    from dockerpy.tools.busybox_rootfs import find_busybox
    try:
        return find_busybox()
    except RuntimeError:
        return None


class _Discard(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value)


def make_runtime(reactor, name: str, path: str, state_root: str) -> OCIRuntime:
    """The :class:`OCIRuntime` for runtime ``name`` on this host.

    crun on a hybrid host whose v2 tree holds controllers runs under
    :func:`cgroups.legacy_view_argv`: it then manages the v1 hierarchies, as
    runc does on such a host, instead of refusing the host.  That costs
    ~3 ms per command; crun still starts a container in ~17 ms against
    runc's ~45 ms.
    """
    launcher: Sequence[str] = ()
    if name == "crun" and cgroups.v2_controllers_on_hybrid():
        launcher = cgroups.legacy_view_argv() or ()
    return OCIRuntime(reactor, name, path, state_root, launcher=launcher)


def probe_runtime(reactor, name: str, path: str, state_root: str) -> Deferred:
    """Run a tiny container (the host's ``/`` read-only, ``/bin/true``, new
    namespaces) to learn whether the runtime works on this host.

    :return: Deferred firing with ``(True, "")`` or ``(False, reason)``,
        reason being the runtime's message (crun 1.8 on a hybrid cgroup
        host: ``cgroups in hybrid mode not supported, ...``).  Never fails.
    """
    runtime = make_runtime(reactor, name, path, state_root)
    container_id = "dockerpy-probe-" + uuid.uuid4().hex[:12]
    # Like a real container, in a cgroup of its own parent, removed after.
    cgroup_parent = "/" + container_id
    try:
        os.makedirs(state_root, mode=0o700, exist_ok=True)
        binary = _probe_binary()
        if binary is None:
            return succeed((False, "cannot probe: busybox-static is not installed"))
        bundle = tempfile.mkdtemp(prefix="probe-", dir=state_root)
        rootfs = os.path.join(bundle, "rootfs")
        os.mkdir(rootfs)
        with open(os.path.join(rootfs, "true"), "wb"):
            pass
        atomic.write_json(os.path.join(bundle, "config.json"), _probe_spec(
            rootfs, cgroups.cgroups_path(cgroup_parent, container_id), binary))
    except Exception as e:
        return succeed((False, f"cannot prepare the probe: {e}"))
    pid_file = os.path.join(bundle, "pid")
    proto = _Discard()

    def cleanup(result: Any) -> Any:
        shutil.rmtree(bundle, ignore_errors=True)
        cgroups.remove_cgroup_parent(cgroup_parent)
        return result

    def started(_: int) -> Deferred:
        def exited(value: BaseException) -> tuple[bool, str]:
            if isinstance(value, ProcessDone):
                return True, ""
            return False, f"{name}: the probe container exited with {value}"
        return proto.ended.addCallback(exited)

    def failed(f: Failure) -> Any:
        message = f.getErrorMessage()
        if not proto.connected:  # the runtime never ran
            return False, message
        return proto.ended.addCallback(lambda _: (False, message))

    try:
        d = runtime.run(container_id, bundle, proto, False, pid_file)
    except Exception as e:
        return succeed(cleanup((False, str(e))))
    d.addCallbacks(started, failed)
    return d.addBoth(cleanup)


KNOWN_RUNTIMES = ("crun", "runc")


def _learn_compiled_seccomp(runtime: "OCIRuntime") -> Deferred:
    """Let crun take compiled seccomp filters (``run.oci.seccomp_bpf_data``)
    only where its version has them for sure (1.0 and later): a crun that
    ignored the annotation would run the container unfiltered."""
    def check(version: str) -> None:
        major_minor = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
        runtime.compiled_seccomp = len(major_minor) == 2 and major_minor >= (1, 0)
    from twisted.internet.defer import maybeDeferred

    return maybeDeferred(runtime.version).addCallbacks(check, lambda _: None)


def choose_default(reactor, exec_root: str, preferred: Optional[str] = None,
                   paths: Optional[dict[str, str]] = None) -> Deferred:
    """Find the installed runtimes, probe them, and pick the default.

    crun is preferred where it works (it starts containers faster), else
    runc; ``preferred`` (``--default-runtime``) wins whenever it is
    installed, even if its probe failed (its error then shows at start).

    :param exec_root: the daemon's exec-root; runtime ``X`` keeps its state
        in ``<exec_root>/runtime-X``.
    :param paths: ``{name: binary}`` instead of looking in ``PATH``.
    :return: Deferred firing with ``(default name, {name: OCIRuntime})``,
        or failing with ``InvalidParameter`` (unknown ``preferred``) or
        ``Unavailable`` (no runtime works).
    """
    if paths is None:
        paths = {}
        for name in KNOWN_RUNTIMES:
            found = shutil.which(name)
            if found:
                paths[name] = found
    if preferred is not None and preferred not in paths:
        raise_ = InvalidParameter(f"default runtime {preferred} not found")
        d: Deferred = Deferred()
        d.errback(raise_)
        return d
    names = sorted(paths)
    runtimes = {name: make_runtime(reactor, name, paths[name],
                                   os.path.join(exec_root, f"runtime-{name}"))
                for name in names}
    probes = [probe_runtime(reactor, name, paths[name], runtimes[name].state_root)
              for name in names]
    if "crun" in runtimes:
        probes.append(_learn_compiled_seccomp(runtimes["crun"]))

    def pick(results: list) -> tuple[str, dict]:
        working = {}
        for name, (ok, value) in zip(names, results[:len(names)]):
            status = value if ok else (False, value.getErrorMessage())
            working[name] = status[0]
            if not status[0]:
                log.warn("OCI runtime {name} does not work here: {reason}",
                         name=name, reason=status[1])
        if preferred is not None:
            return preferred, runtimes
        for name in ("crun", "runc"):
            if working.get(name):
                return name, runtimes
        raise Unavailable("no working OCI runtime (runc or crun) found")

    return DeferredList(probes, consumeErrors=True).addCallback(pick)
