# -*- test-case-name: dockerpy.test.test_container_monitor -*-
"""The live side of a running container: the ProcessProtocol of its
``runc run``/``crun run`` process.

It writes output to the json-file log first, then fans it out to attached
clients and log followers; it feeds stdin from an attached client, and it
records how the process ended.  It knows nothing of HTTP.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer, error
from twisted.internet.protocol import ProcessProtocol

from dockerpy.containers.logs import JSONFileWriter

Subscriber = Callable[[str, bytes], None]
_FD_STREAM = {1: "stdout", 2: "stderr"}


def exit_status(reason) -> int:
    """Docker's exit code: the status, or 128 + signal for a signalled process."""
    value = reason.value
    if isinstance(value, error.ProcessDone):
        return 0
    if isinstance(value, error.ProcessTerminated):
        if value.exitCode is not None:
            return value.exitCode
        if value.signal is not None:
            return 128 + value.signal
    return 255


class ContainerProcess(ProcessProtocol):
    def __init__(self, log: JSONFileWriter):
        self.log = log
        self.subscribers: list[Subscriber] = []
        self.enders: list[Callable[[], None]] = []
        self.ended: defer.Deferred[int] = defer.Deferred()
        self.exit_code: int | None = None
        self.stdin_open = True
        # Attached clients that cannot keep up hold the output: the container
        # then blocks on its pipe (as it would on a slow terminal) until they
        # drained.  The json-file log is written as output is read, so it waits too.
        self._holders: set[object] = set()

    def subscribe(self, on_data: Subscriber, on_end: Callable[[], None]) -> Callable[[], None]:
        """Receive output as it comes; :return: a function that unsubscribes."""
        self.subscribers.append(on_data)
        self.enders.append(on_end)

        def unsubscribe() -> None:
            if on_data in self.subscribers:
                self.subscribers.remove(on_data)
            if on_end in self.enders:
                self.enders.remove(on_end)

        return unsubscribe

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802
        stream = _FD_STREAM.get(fd)
        if stream is None:
            return
        self.log.write(stream, data)
        for sub in list(self.subscribers):
            sub(stream, data)

    # Clients attach before start (docker run does), so stdin can arrive, and
    # even end, before the process exists: keep it until the process is there.
    _early_stdin: list[bytes] | None = None
    _close_when_connected = False

    def connectionMade(self) -> None:  # noqa: N802
        early, self._early_stdin = self._early_stdin, None
        for data in early or ():
            self.transport.write(data)
        if self._close_when_connected:
            self.transport.closeStdin()

    def write_stdin(self, data: bytes) -> None:
        if not self.stdin_open:
            return
        if self.transport is None:
            self._early_stdin = (self._early_stdin or []) + [data]
        else:
            self.transport.write(data)

    def close_stdin(self) -> None:
        if not self.stdin_open:
            return
        self.stdin_open = False
        if self.transport is None:
            self._close_when_connected = True
        else:
            self.transport.closeStdin()

    def hold(self, holder: object) -> None:
        first = not self._holders
        self._holders.add(holder)
        pause = getattr(self.transport, "pauseProducing", None)
        if first and pause is not None:
            pause()

    def release(self, holder: object) -> None:
        if holder not in self._holders:
            return
        self._holders.discard(holder)
        resume = getattr(self.transport, "resumeProducing", None)
        if not self._holders and resume is not None:
            resume()

    def processExited(self, reason) -> None:  # noqa: N802
        self.exit_code = exit_status(reason)

    def processEnded(self, reason) -> None:  # noqa: N802
        if self.exit_code is None:
            self.exit_code = exit_status(reason)
        self.log.close()
        enders, self.enders, self.subscribers = self.enders, [], []
        for end in enders:
            end()
        self.ended.callback(self.exit_code)
