# -*- test-case-name: dockerpy.test.test_exec -*-
"""Exec use-cases: more processes in a running container (``docker exec``).

This module owns exec sessions: their creation from Docker's ``ExecConfig``,
the OCI ``process`` each one runs (the container's environment, user and
capabilities, with the exec's own settings over them), starting one through
the runtime's ``exec``, its stdio for one attached client, its exit code, and
resizing its terminal.  It reads the container service's public state (records,
liveness, runtimes, the mounted root) and never changes a container.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from typing import Callable

from dockerpy import errors
from dockerpy.containers.monitor import ContainerProcess

#: Ended sessions kept for ``GET /exec/{id}/json`` (Docker keeps them until
#: the container goes; a bound keeps a busy daemon's memory flat).
MAX_ENDED_SESSIONS = 1000


class _NoLog:
    """An exec's output goes to its client only, never to the container's log."""

    def write(self, stream: str, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class ExecSession:
    """One exec instance: its config (as created) and what became of it."""

    id: str
    container_id: str
    cmd: list[str]
    env: list[str]
    workdir: str
    user: str
    privileged: bool
    tty: bool
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    detach_keys: str
    #: ``(height, width)`` of the terminal: the create's or start's
    #: ``ConsoleSize``, then the last resize.
    console_size: tuple[int, int] | None = None
    process: ContainerProcess | None = None
    pid: int = 0
    started: bool = False
    exit_code: int | None = None
    _end_callbacks: list[Callable[[], None]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.started and self.exit_code is None

    def inspect(self) -> dict:
        """Docker's ``GET /exec/{id}/json`` shape."""
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": self.cmd[0] if self.cmd else "",
                "arguments": self.cmd[1:],
                "privileged": self.privileged,
                "user": self.user,
            },
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        }


def _string_list(body: dict, key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.InvalidParameter(f"invalid JSON: {key} must be a list of strings")
    return list(value)


def console_size(value) -> tuple[int, int] | None:
    """Docker's ``ConsoleSize`` (``[height, width]``); ``None`` when unset or zero.

    :raises InvalidParameter: not a pair of non-negative integers.
    """
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in value)):
        raise errors.InvalidParameter("invalid JSON: ConsoleSize must be [height, width]")
    height, width = value
    return (height, width) if height and width else None


class _ExecProcess(ContainerProcess):
    """An exec's process: a terminal size asked for before the runtime was
    spawned (a resize racing the start) is applied once it is."""

    def __init__(self, session: "ExecSession") -> None:
        super().__init__(_NoLog())
        self._session = session

    def connectionMade(self) -> None:  # noqa: N802 (Twisted API)
        super().connectionMade()
        if self._session.tty and self._session.console_size is not None:
            from dockerpy.runtime.console import resize

            try:
                # Queued by the console until the runtime sent the terminal.
                resize(self.transport, *self._session.console_size)
            except OSError:
                pass


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """The container's environment with the exec's ``Env`` over it (same key wins)."""
    merged: dict[str, str] = {}
    for entry in base + extra:
        merged[entry.split("=", 1)[0]] = entry
    return list(merged.values())


def process_spec(rec, session: ExecSession, rootfs: str) -> dict:
    """Thread: the OCI ``process`` object of an exec in container ``rec``.

    The user is resolved in the container's own (mounted) root, as Docker
    does; capabilities are the container's, or all of them when privileged.
    """
    from dockerpy.runtime.spec import SpecInput, build_spec
    from dockerpy.runtime.users import resolve_user

    cfg, hc = rec.config, rec.host_config
    user = session.user or cfg.get("User") or ""
    uid, gid, groups = resolve_user(rootfs, user, hc.get("GroupAdd") or [])
    spec = build_spec(SpecInput(
        rootfs=rootfs, args=session.cmd, env=merge_env(cfg.get("Env") or [], session.env),
        cwd=session.workdir or cfg.get("WorkingDir") or "/",
        uid=uid, gid=gid, additional_gids=groups, tty=session.tty,
        cap_add=hc.get("CapAdd") or [], cap_drop=hc.get("CapDrop") or [],
        privileged=bool(hc.get("Privileged")) or session.privileged,
        devices=[]), sysctl_exists=lambda name: False)
    process = spec["process"]
    if session.tty and session.console_size is not None:
        # The runtime sizes the terminal when it makes it: no window at all
        # between the shell's start and the first resize.
        height, width = session.console_size
        process["consoleSize"] = {"height": height, "width": width}
    return process


class ExecService:
    """Exec sessions of the containers of one :class:`ContainerService`.

    :param containers: the container service (its public state only).
    :param in_thread: runs a blocking function in the thread pool (Deferred).
    :param events: the event bus (:class:`dockerpy.events.EventBus`) or ``None``.
    """

    def __init__(self, reactor, in_thread, containers, events=None) -> None:
        self._reactor = reactor
        self._in_thread = in_thread
        self.containers = containers
        self._events = events
        self._sessions: dict[str, ExecSession] = {}

    def _emit(self, action: str, rec, **extra: str) -> None:
        if self._events is not None:
            attrs = {"name": rec.name, "image": rec.image_name}
            attrs.update(rec.config.get("Labels") or {})
            attrs.update(extra)
            self._events.publish("container", action, rec.id, attrs)

    # -- lookup -----------------------------------------------------------

    def get(self, exec_id: str) -> ExecSession:
        session = self._sessions.get(exec_id)
        if session is None:
            raise errors.NotFound(f"No such exec instance: {exec_id}")
        return session

    def sessions_of(self, cid: str) -> list[ExecSession]:
        return [s for s in self._sessions.values() if s.container_id == cid]

    def _check_runnable(self, rec) -> None:
        if rec.state.paused or rec.state.status == "paused":
            raise errors.Conflict(
                f"Container {rec.id} is paused, unpause the container before exec")
        if not self.containers.is_running(rec.id):
            raise errors.Conflict(f"Container {rec.id} is not running")

    def _forget_stale(self) -> None:
        """Drop sessions of removed containers, and the oldest ended ones."""
        for sid, s in list(self._sessions.items()):
            try:
                self.containers.get(s.container_id)
            except errors.NotFound:
                del self._sessions[sid]
        ended = [sid for sid, s in self._sessions.items() if s.exit_code is not None]
        for sid in ended[:max(0, len(ended) - MAX_ENDED_SESSIONS)]:
            del self._sessions[sid]

    # -- create -----------------------------------------------------------

    def create(self, ref: str, body: dict) -> ExecSession:
        """``POST /containers/{id}/exec``.

        :raises Conflict: the container is not running, or is paused.
        :raises InvalidParameter: no command, or a malformed field.
        """
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: exec config must be an object")
        rec = self.containers.get(ref)
        self._check_runnable(rec)
        cmd = _string_list(body, "Cmd")
        if not cmd:
            raise errors.InvalidParameter("No exec command specified")
        workdir = body.get("WorkingDir") or ""
        if workdir and not workdir.startswith("/"):
            raise errors.InvalidParameter(
                f"the working directory '{workdir}' is invalid, it needs to be an absolute "
                "path")
        from dockerpy.containers.detach import exec_keys

        # Go's JSON decoding ignores case: docker-py sends "detachKeys".
        keys = next((v for k, v in body.items() if k.lower() == "detachkeys" and v), "")
        exec_keys(keys)  # refused now, as Docker, not at start
        self._forget_stale()
        session = ExecSession(
            id=secrets.token_hex(32), container_id=rec.id, cmd=cmd,
            env=_string_list(body, "Env"), workdir=workdir, user=body.get("User") or "",
            privileged=bool(body.get("Privileged")), tty=bool(body.get("Tty")),
            attach_stdin=bool(body.get("AttachStdin")),
            attach_stdout=bool(body.get("AttachStdout")),
            attach_stderr=bool(body.get("AttachStderr")),
            detach_keys=keys,
            console_size=console_size(body.get("ConsoleSize")))
        self._sessions[session.id] = session
        self._emit("exec_create: " + " ".join(cmd), rec, execID=session.id)
        return session

    # -- start --------------------------------------------------------------

    def check_startable(self, exec_id: str) -> ExecSession:
        """The checks Docker makes before it hijacks the connection."""
        session = self.get(exec_id)
        if session.started:
            raise errors.Conflict(f"Error: Exec command {exec_id} is already running"
                                  if session.running else
                                  f"Error: Exec command {exec_id} has already run")
        self._check_runnable(self.containers.get(session.container_id))
        return session

    async def start(self, exec_id: str, tty: bool | None = None,
                    on_output: Callable[[str, bytes], None] | None = None,
                    on_end: Callable[[], None] | None = None,
                    size: tuple[int, int] | None = None) -> ExecSession:
        """Start the session's process.

        :param tty: the start request's ``Tty`` (overrides the create's when given).
        :param on_output: receives ``(stream, data)`` of the attached streams.
        :param on_end: called once the process ended and its exit code is known.
        :param size: the start request's ``ConsoleSize`` (see :func:`console_size`).
        :return: the session, once its process runs.
        :raises Conflict: already started, container not running or paused.
        :raises dockerpy.runtime.oci.StartError: the command cannot run
            (the session's exit code is then 126 or 127).
        """
        session = self.check_startable(exec_id)
        rec = self.containers.get(session.container_id)
        session.started = True
        if tty is not None:
            session.tty = session.tty or bool(tty)
        if size is not None:
            session.console_size = size
        runtime = self.containers.runtime_of(rec)
        workdir = os.path.join(self.containers.exec_root, "containers", rec.id,
                               "exec-" + session.id[:16])
        proc = _ExecProcess(session)
        session.process = proc

        def deliver(stream: str, data: bytes) -> None:
            if on_output is not None and (
                    (stream == "stdout" and session.attach_stdout)
                    or (stream == "stderr" and session.attach_stderr)):
                on_output(stream, data)

        def ended() -> None:
            if session.exit_code is not None:
                return  # it never started: the start failure set the code
            session.exit_code = proc.exit_code if proc.exit_code is not None else 255
            shutil.rmtree(workdir, ignore_errors=True)
            self._emit("exec_die", rec, execID=session.id, exitCode=str(session.exit_code))
            if on_end is not None:
                on_end()

        proc.subscribe(deliver, ended)
        try:
            spec = await self.containers.with_rootfs(
                rec.id, lambda root: process_spec(rec, session, root))
            os.makedirs(workdir, mode=0o700, exist_ok=True)
            session.pid = await runtime.exec(rec.id, spec, proc, session.attach_stdin,
                                             os.path.join(workdir, "pid"), session.tty)
        except BaseException as e:
            session.exit_code = getattr(e, "exit_code", 126)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        self._emit("exec_start: " + " ".join(session.cmd), rec, execID=session.id)
        return session

    def write_stdin(self, session: ExecSession, data: bytes) -> None:
        if session.attach_stdin and session.process is not None:
            session.process.write_stdin(data)

    def close_stdin(self, session: ExecSession) -> None:
        if session.attach_stdin and session.process is not None:
            if session.tty:
                # A pty has no half-close: EOF is the terminal's ^D.
                session.process.write_stdin(b"\x04")
            else:
                session.process.close_stdin()

    # -- resize ---------------------------------------------------------------

    def resize(self, exec_id: str, height: int, width: int) -> None:
        """``POST /exec/{id}/resize``: the terminal's window size (TIOCSWINSZ on
        the runtime's pty; the runtime passes it on to the container's)."""
        session = self.get(exec_id)
        if not session.running:
            raise errors.Conflict(f"Exec {exec_id} is not running")
        if not session.tty:
            return
        from dockerpy.runtime.console import resize

        # Kept for a process not spawned yet (the start is still preparing
        # its spec in a thread): it gets the size when it is.  This was the
        # race behind `docker exec -it` shells without a window size.
        session.console_size = (height, width)
        try:
            # Queued by the console if the runtime has not handed over the
            # terminal yet.
            resize(getattr(session.process, "transport", None), height, width)
        except OSError as e:
            raise errors.SystemError_(f"cannot resize exec {exec_id}: {e}") from e


def exec_ids(service: ExecService | None, cid: str) -> list[str] | None:
    """Running exec ids of a container, for inspect's ``ExecIDs`` (``None``: none)."""
    if service is None:
        return None
    ids = [s.id for s in service.sessions_of(cid) if s.running]
    return ids or None


