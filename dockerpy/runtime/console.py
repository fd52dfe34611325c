# -*- test-case-name: dockerpy.test.test_console -*-
"""Real terminals for ``Tty: true`` containers and execs, through the OCI
runtime's console socket.

runc 1.1 hands out the pseudo-terminal master over ``--console-socket``
only when it detaches (``run --detach``, ``exec --detach``); in the
foreground it keeps the master and proxies it to its own stdio, which is
what gave us a pty behind a pty.  So, like containerd's shim, a tiny
*console shim* (a few lines of Python, :data:`SHIM_SOURCE`) is our child:
it makes itself a child subreaper, runs the detaching runtime command,
adopts the container's process when the runtime exits, waits for it and
exits with its code (``128 + signal`` when signalled).  The daemon listens
on a unix socket of its own (:class:`ConsoleSession`), receives the master
over ``SCM_RIGHTS`` (``IFileDescriptorReceiver``) and drives it from the
reactor (:class:`PtyMaster`).

The caller's ``ProcessProtocol`` sees the same shape as without a terminal:
output arrives as fd 1, ``transport.write`` goes to the terminal,
``transport.fileno()`` is the master (``TIOCSWINSZ`` resizes), and
``processExited``/``processEnded`` carry the process's exit status, after
the last byte of output.

This module owns the shim, the console socket and the master's I/O.  It
does not build runtime command lines (:mod:`dockerpy.runtime.oci` does).
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import struct
import sys
import termios
from typing import Any, Optional

from twisted.internet import abstract, error, interfaces
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

#: The console shim, run as ``python -I -S -c SHIM_SOURCE <pid file> <argv...>``.
#: It exits 255 when it cannot learn the container's status, and with the
#: runtime's own code when the runtime failed (its stderr and log say why).
SHIM_SOURCE = r"""
import ctypes, os, signal, sys
# PR_SET_CHILD_SUBREAPER: the process the runtime detaches is re-parented to us.
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
pid_file, argv = sys.argv[1], sys.argv[2:]
runtime = os.posix_spawn(argv[0], argv, os.environ)
seen = {}
while runtime not in seen:
    pid, status = os.waitpid(-1, 0)
    seen[pid] = status
code = os.waitstatus_to_exitcode(seen.pop(runtime))
if code != 0:
    os._exit(code if code > 0 else 128 - code)
try:
    with open(pid_file) as f:
        child = int(f.read().strip())
except (OSError, ValueError):
    os._exit(255)
while child not in seen:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        os._exit(255)
    seen[pid] = status
code = os.waitstatus_to_exitcode(seen[child])
os._exit(code if code >= 0 else 128 - code)
"""

#: The byte a terminal reads as end of input (VEOF, ctrl-d): a pty has no
#: half-close, so closing the container's stdin means typing it.
EOF_CHAR = b"\x04"

_READ_SIZE = 65536


def shim_argv(pid_file: str, runtime_argv: list[str]) -> list[str]:
    """The command line running ``runtime_argv`` under the console shim.

    :param pid_file: where the runtime writes the container process's pid.
    :param runtime_argv: the full runtime command (``--detach`` and
        ``--console-socket`` included).
    """
    return [sys.executable, "-I", "-S", "-c", SHIM_SOURCE, pid_file] + list(runtime_argv)


def socket_path(state_root: str, container_id: str) -> str:
    """A fresh console socket path for one process of ``container_id``.

    Beside the runtime's state directory rather than in the bundle: a unix
    socket path must stay under 108 bytes, and ``<exec-root>/containers/<64
    hex>/...`` does not.
    """
    return os.path.join(os.path.dirname(state_root.rstrip("/")), "console",
                        f"{container_id[:12]}-{secrets.token_hex(4)}.sock")


def set_window_size(fd: int, height: int, width: int) -> None:
    """``TIOCSWINSZ`` on a terminal: the process behind it gets ``SIGWINCH``.

    :raises OSError: ``fd`` is not a terminal.
    """
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def get_window_size(fd: int) -> tuple[int, int]:
    """:return: ``(rows, columns)`` of the terminal ``fd``."""
    rows, cols, _, _ = struct.unpack(
        "HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def resize(transport: Any, height: int, width: int) -> bool:
    """Resize the terminal behind a process transport.

    :param transport: the ``transport`` of a protocol given to
        ``IRuntime.run``/``exec`` (a :class:`ConsoleTransport` for a
        terminal; for anything else nothing happens).
    :return: whether the transport has a terminal.
    :raises OSError: the ioctl failed.
    """
    method = getattr(transport, "resize", None)
    if method is None:
        return False
    method(height, width)
    return True


class PtyMaster(abstract.FileDescriptor):
    """The master side of the container's terminal, read and written from
    the reactor.  Writes are buffered by ``FileDescriptor`` (it is a
    producer/consumer like a socket).
    """

    def __init__(self, fd: int, session: "ConsoleSession", reactor: Any) -> None:
        super().__init__(reactor)
        os.set_blocking(fd, False)
        self.fd = fd
        self.session = session
        self.connected = 1

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> Any:  # noqa: N802
        try:
            data = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return None
        except OSError as e:
            # EIO: every holder of the slave side closed it.
            return error.ConnectionDone() if e.errno == errno.EIO else e
        if not data:
            return error.ConnectionDone()
        self.session.output(data)
        return None

    def writeSomeData(self, data: bytes) -> Any:  # noqa: N802
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno == errno.EIO:
                return error.ConnectionDone()
            return e

    def drain(self) -> None:
        """Deliver what is left in the terminal's buffer, without waiting."""
        while self.fd >= 0:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except OSError:
                return
            if not data:
                return
            self.session.output(data)

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        super().connectionLost(reason)
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        self.session.master_lost()


@implementer(interfaces.IFileDescriptorReceiver)
class _ReceiveMaster(Protocol):
    """One connection from the runtime: the master fd, and its name as data."""

    def __init__(self, session: "ConsoleSession") -> None:
        self.session = session

    def fileDescriptorReceived(self, descriptor: int) -> None:  # noqa: N802
        self.session.master_received(descriptor)
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        pass  # "/dev/ptmx": the name runc sends along with the fd


class _ReceiveFactory(Factory):
    def __init__(self, session: "ConsoleSession") -> None:
        self.session = session

    def buildProtocol(self, addr: Any) -> Protocol:  # noqa: N802
        return _ReceiveMaster(self.session)


class ConsoleTransport:
    """What the caller's protocol gets as ``transport`` for a terminal
    process: writes go to the terminal, process control to the shim."""

    def __init__(self, session: "ConsoleSession", process: Any) -> None:
        self._session = session
        self._process = process

    @property
    def pid(self) -> Optional[int]:
        return getattr(self._process, "pid", None)

    def write(self, data: bytes) -> None:
        self._session.write(data)

    def writeSequence(self, seq: list[bytes]) -> None:  # noqa: N802
        self._session.write(b"".join(seq))

    def closeStdin(self) -> None:  # noqa: N802
        self._session.write(EOF_CHAR)

    def closeChildFD(self, fd: int) -> None:  # noqa: N802
        if fd == 0:
            self.closeStdin()

    def fileno(self) -> int:
        """The master's fd (``-1`` until the runtime handed it over)."""
        return self._session.master_fd()

    def resize(self, height: int, width: int) -> None:
        """Set the window size now, or as soon as the terminal exists."""
        self._session.resize(height, width)

    def signalProcess(self, signal: Any) -> None:  # noqa: N802
        self._process.signalProcess(signal)

    def loseConnection(self) -> None:  # noqa: N802
        self._session.close_master()
        self._process.loseConnection()

    def getPeer(self) -> Any:  # noqa: N802
        return self._process.getPeer() if hasattr(self._process, "getPeer") else None

    def getHost(self) -> Any:  # noqa: N802
        return self._process.getHost() if hasattr(self._process, "getHost") else None


class ConsoleSession(ProcessProtocol):
    """The console of one container process: the socket the runtime sends
    the master to, the master, and the protocol between the shim process
    and the caller's protocol ``inner``.

    :param reactor: provides ``IReactorUNIX`` and ``IReactorFDSet``.
    :param path: where to listen (see :func:`socket_path`).
    :param inner: the caller's ``ProcessProtocol``.
    """

    def __init__(self, reactor: Any, path: str, inner: ProcessProtocol) -> None:
        self.reactor = reactor
        self.path = path
        self.inner = inner
        self._port: Any = None
        self._master: Optional[PtyMaster] = None
        self._pending_input: list[bytes] = []
        self._pending_size: Optional[tuple[int, int]] = None
        self._ended = False
        self._runtime_stderr: list[bytes] = []

    # -- the socket ---------------------------------------------------------

    def listen(self) -> None:
        """Listen on :attr:`path` (mode 0600, in a 0700 directory).

        :raises OSError: the socket could not be made.
        """
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._port = self.reactor.listenUNIX(self.path, _ReceiveFactory(self), mode=0o600)

    def close(self) -> None:
        """Give up: the process never ran (the caller's protocol is not told)."""
        self._ended = True
        self._stop_listening()
        self.close_master()

    def _stop_listening(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.stopListening()  # Twisted unlinks the socket file

    def master_received(self, fd: int) -> None:
        if self._master is not None or self._ended:
            os.close(fd)  # a second sender, or too late: not ours to keep
            return
        self._stop_listening()
        self._master = PtyMaster(fd, self, self.reactor)
        if self._pending_size is not None:
            self._apply_size(*self._pending_size)
        self._master.startReading()
        pending, self._pending_input = self._pending_input, []
        for data in pending:
            self._master.write(data)

    def master_fd(self) -> int:
        return self._master.fd if self._master is not None else -1

    # -- terminal I/O -------------------------------------------------------

    def output(self, data: bytes) -> None:
        self.inner.childDataReceived(1, data)

    def write(self, data: bytes) -> None:
        if self._master is None:
            if not self._ended:
                self._pending_input.append(data)
        elif self._master.fd >= 0:
            self._master.write(data)

    def resize(self, height: int, width: int) -> None:
        if self._master is None or self._master.fd < 0:
            self._pending_size = (height, width)
        else:
            self._apply_size(height, width)

    def _apply_size(self, height: int, width: int) -> None:
        assert self._master is not None
        set_window_size(self._master.fd, height, width)

    def master_lost(self) -> None:
        pass  # the end of the process is what ends the session

    def close_master(self) -> None:
        master = self._master
        if master is not None and master.fd >= 0:
            master.drain()
            master.stopReading()
            master.stopWriting()
            master.connectionLost(Failure(error.ConnectionDone()))

    # -- the shim process ---------------------------------------------------

    def makeConnection(self, transport: Any) -> None:  # noqa: N802
        self.transport = transport
        self.inner.makeConnection(ConsoleTransport(self, transport))

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802
        # Only the runtime and the shim write here (the container has the
        # terminal); keep it for the log, not for the container's output.
        if fd == 2:
            self._runtime_stderr.append(data)

    def childConnectionLost(self, fd: int) -> None:  # noqa: N802
        pass

    def processExited(self, reason: Failure) -> None:  # noqa: N802
        self.inner.processExited(reason)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        self._ended = True
        self._stop_listening()
        self.close_master()
        text = b"".join(self._runtime_stderr).decode("utf-8", "replace").strip()
        if text:
            log.info("console shim said: {text}", text=text)
        self.inner.processEnded(reason)
