# -*- test-case-name: dockerpy.test.test_api_hijack -*-
"""Taking over an HTTP connection for attach and exec (Docker's hijack),
and the attach stream that runs on it.

Docker clients send ``Connection: Upgrade`` / ``Upgrade: tcp`` and expect
``HTTP/1.1 101 UPGRADED``; from then on the socket is a raw bidirectional
stream: stdin from the client, (stdcopy-framed) output to it, and a
half-close from the client means "stdin ended" while output keeps flowing.

twisted.web has no public upgrade API, so ``HijackableChannel`` is the one
place that touches ``HTTPChannel`` internals (``_dataBuffer``,
``_networkProducer``); setup.py pins the Twisted range it was checked with.

:class:`AttachStream` is the protocol of an attach or exec connection: it
watches stdin for the detach keys (with a TTY, as Docker), and it is the
producer of its transport's writes, so that a client that does not read
costs a bounded amount of memory (:class:`BoundedOutput`) and never slows
the container or the reactor: past the bound its output is dropped, whole
frames at a time, until it reads again.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from zope.interface import implementer

from dockerpy.api import stdcopy
from dockerpy.client.detachkeys import EscapeFilter
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

#: Output held for one client that is not reading, beyond what its transport
#: already buffers (64 KiB).  Docker blocks the container's output copier on
#: such a client; we keep this much and drop the rest.
MAX_PENDING = 1 << 20
#: How long an attached client may read nothing while it holds the
#: container's output before it is taken as gone (and loses output instead).
STALL_SECONDS = 5.0


@implementer(IHalfCloseableProtocol)
class HijackableChannel(HTTPChannel):
    """An ``HTTPChannel`` that can hand its transport to another protocol.

    It is declared half-closeable so that a client's ``CloseWrite`` after
    stdin does not tear down the connection while output is still owed.
    """

    _hijacked: Protocol | None = None
    # Go's net/http (and so dockerd) accepts up to 1 MiB of headers; build and
    # registry auth headers can exceed twisted.web's 16 KiB default.
    MAX_LENGTH = 1 << 20
    totalHeadersSize = 1 << 20

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802 (Twisted API)
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n\r\n"
            b'{"message":"request header fields too large"}\n')
        self.transport.loseConnection()

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:  # noqa: N802
        # A chunked body (a build context from the docker CLI) goes through
        # dockerpy.api.chunked's one-pass decoder.
        ok = super()._maybeChooseTransferDecoder(header, data)
        if ok and self._transferDecoder is not None:
            from dockerpy.api.chunked import faster

            self._transferDecoder = faster(self._transferDecoder)
        return ok

    @property
    def hijacked(self) -> bool:
        return self._hijacked is not None

    def hijack(self, proto: Protocol, status: bytes,
               headers: list[tuple[bytes, bytes]]) -> None:
        """Send ``status`` and ``headers`` raw, then give the connection to ``proto``.

        :param status: e.g. ``b"101 UPGRADED"`` or ``b"200 OK"``.
        """
        transport = self.transport
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        head.append(b"\r\n")
        transport.writeSequence(head)
        self.setTimeout(None)
        self.persistent = False
        # The channel registered itself as the producer of this transport's
        # writes; the stream owns writing now, and a producer left registered
        # keeps the TLS layer from ever closing (it waits for unregister).
        transport.unregisterProducer()
        # Bytes the client pipelined after the request (stdin written before
        # it saw our 101) are owed to the new protocol, in order.
        leftover = b"".join(self._dataBuffer)
        self._dataBuffer = []
        self._hijacked = proto
        proto.makeConnection(transport)
        if leftover:
            proto.dataReceived(leftover)
        self._networkProducer.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self._hijacked is not None:
            self._hijacked.dataReceived(data)
        else:
            super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        # LineReceiver hands bytes that arrived in the same read as the request
        # head to rawDataReceived *after* the route ran: they are stdin too.
        if self._hijacked is not None:
            self._hijacked.dataReceived(data)
        else:
            super().rawDataReceived(data)

    def readConnectionLost(self) -> None:
        if self._hijacked is not None:
            half = IHalfCloseableProtocol(self._hijacked, None)
            if half is not None:
                half.readConnectionLost()
            else:
                self.transport.loseConnection()
        else:
            # A plain HTTP client that half-closes: finish what we owe, then close.
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        if self._hijacked is not None:
            half = IHalfCloseableProtocol(self._hijacked, None)
            if half is not None:
                half.writeConnectionLost()
                return
        self.transport.loseConnection()

    def connectionLost(self, reason) -> None:
        proto, self._hijacked = self._hijacked, None
        if proto is not None:
            proto.connectionLost(reason)
        super().connectionLost(reason)


def upgrade_requested(request) -> bool:
    upgrade = request.getHeader(b"upgrade") or b""
    connection = request.getHeader(b"connection") or b""
    return upgrade.lower() == b"tcp" and b"upgrade" in connection.lower()


def hijack_request(request, proto: Protocol, content_type: bytes) -> None:
    """Answer ``request`` as Docker does for attach/exec and hand over the socket:
    ``101 UPGRADED`` when the client asked to upgrade, else ``200 OK`` followed
    by the raw stream (the pre-1.x behaviour docker-py still relies on)."""
    headers = [(b"Content-Type", content_type)]
    if upgrade_requested(request):
        status = b"101 UPGRADED"
        headers += [(b"Connection", b"Upgrade"), (b"Upgrade", b"tcp")]
    else:
        status = b"200 OK"
    # Keep twisted.web from ever writing its own response on this request.
    request.startedWriting = True
    request.channel.hijack(proto, status, headers)


@implementer(IPushProducer)
class BoundedOutput:
    """Writes to a consumer that may stop reading, keeping at most
    ``max_pending`` bytes while it is paused.

    It registers itself as the consumer's streaming producer: the consumer
    (a transport, or a ``Request`` of twisted.web) pauses it when its own
    buffer is full and resumes it once drained.  Each ``write`` is kept or
    dropped whole, so stdcopy frames stay whole for the client.

    Past ``max_pending``, with a ``flow`` (the source's ``hold()`` and
    ``release()``: an attached container's output), the source is held until
    the client drains what is kept, so a slow client loses nothing; a client
    that reads nothing for ``stall`` seconds is taken as gone, the source is
    released and its output dropped until it reads again.  Without a flow
    (log followers, which the json-file log serves anyway) output past the
    bound is dropped at once.

    :param consumer: an ``IConsumer`` (``write``, ``registerProducer``).
    :param on_drop: called with the size of each write dropped.
    :param flow: holds and releases the source.
    :param clock: an ``IReactorTime`` for the stall timer (needed with ``flow``).
    """

    def __init__(self, consumer, max_pending: int = MAX_PENDING,
                 on_drop: Callable[[int], None] | None = None, flow=None, clock=None,
                 stall: float = STALL_SECONDS) -> None:
        self._consumer = consumer
        self.max_pending = max_pending
        self._on_drop = on_drop
        self._flow = flow if clock is not None else None
        self._clock = clock
        self._stall = stall
        self._stall_call = None
        self.holding = False
        self.gave_up = False
        self._pending: deque[bytes] = deque()
        self.pending_size = 0
        self.dropped = 0
        self.paused = False
        self._registered = False

    def register(self) -> None:
        """Become the consumer's producer (at most once)."""
        if not self._registered:
            self._registered = True
            self._consumer.registerProducer(self, True)

    def unregister(self) -> None:
        if self._registered:
            self._registered = False
            self._consumer.unregisterProducer()

    def write(self, data: bytes) -> None:
        if self.paused or self._pending:
            if self.pending_size + len(data) > self.max_pending:
                if self._flow is not None and not self.gave_up:
                    # Keep it (what the source had in flight) and hold the source.
                    self._pending.append(data)
                    self.pending_size += len(data)
                    self._hold()
                    return
                if not self.dropped:
                    log.info("a client is not reading its stream: dropping output")
                self.dropped += len(data)
                if self._on_drop is not None:
                    self._on_drop(len(data))
                return
            self._pending.append(data)
            self.pending_size += len(data)
            return
        self._consumer.write(data)

    def _hold(self) -> None:
        if not self.holding:
            self.holding = True
            self._flow.hold()
        self._restart_stall_timer()

    def _restart_stall_timer(self) -> None:
        if self._stall_call is not None and self._stall_call.active():
            self._stall_call.cancel()
        self._stall_call = self._clock.callLater(self._stall, self._stalled)

    def _release(self) -> None:
        if self._stall_call is not None and self._stall_call.active():
            self._stall_call.cancel()
        self._stall_call = None
        if self.holding:
            self.holding = False
            self._flow.release()

    def _stalled(self) -> None:
        self._stall_call = None
        log.info("a client is not reading its stream: dropping output")
        self.gave_up = True
        self._release()

    def flush_then(self, done: Callable[[], None]) -> None:
        """Hand everything held to the consumer, then call ``done`` (the
        consumer buffers it, so this never waits for the client)."""
        self._release()
        while self._pending:
            data = self._pending.popleft()
            self.pending_size -= len(data)
            self._consumer.write(data)
        self.unregister()
        done()

    # -- IPushProducer ----------------------------------------------------

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted API)
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        while self._pending and not self.paused:
            data = self._pending.popleft()
            self.pending_size -= len(data)
            # May pause us again, synchronously, when the buffer fills.
            self._consumer.write(data)
        # The client reads: it is slow, not gone.
        self.gave_up = False
        if self.holding:
            if self.pending_size <= self.max_pending // 2:
                self._release()
            else:
                self._restart_stall_timer()

    def stopProducing(self) -> None:  # noqa: N802
        self.paused = True
        self._release()
        self._pending.clear()
        self.pending_size = 0


@implementer(IHalfCloseableProtocol)
class AttachStream(Protocol):
    """The server side of a hijacked attach or exec: client bytes are stdin,
    output goes back raw (TTY) or stdcopy-framed; the process's end closes
    the connection; the client's half-close ends stdin when ``stdin_once``.

    With ``detach_keys`` (given for a TTY, as Docker does) the sequence on
    stdin ends the stream: ``on_detach`` is called, the connection closes,
    the process keeps running.  Bytes of a sequence that does not complete
    reach the process.

    :ivar attachment: what receives stdin: ``write_stdin``, ``close_stdin``,
        ``detach`` (the client is gone: stop delivering, never touch the
        process).
    """

    def __init__(self, tty: bool, stdin_once: bool, detach_keys: bytes | None = None,
                 on_detach: Callable[[], None] | None = None,
                 max_pending: int = MAX_PENDING, clock=None) -> None:
        self.tty, self.stdin_once = tty, stdin_once
        self.attachment = None
        self._escape = EscapeFilter(detach_keys) if detach_keys else None
        self._on_detach = on_detach
        self._max_pending = max_pending
        self._clock = clock
        self._out: BoundedOutput | None = None
        self._early: list[bytes] = []
        self._ended = False
        self.detached = False

    @property
    def dropped(self) -> int:
        """Bytes of output dropped because the client did not read."""
        return self._out.dropped if self._out is not None else 0

    def output(self, stream: str, data: bytes) -> None:
        if self._ended:
            return
        chunk = data if self.tty else stdcopy.frame(stream, data)
        if self._out is None:
            # Before the hijack: the log replay of attach?logs=1, kept whole.
            self._early.append(chunk)
            return
        self._out.write(chunk)

    def end(self) -> None:
        """The process ended (or the stream has nothing more): send what is
        held, then close."""
        if self._ended:
            return
        self._ended = True
        if self._out is not None:
            self._out.flush_then(self.transport.loseConnection)

    def connectionMade(self) -> None:  # noqa: N802
        # An attachment that can hold its source (a container's output) makes
        # a slow client slow the container rather than lose output.
        flow = self.attachment if hasattr(self.attachment, "hold") else None
        self._out = BoundedOutput(self.transport, self._max_pending, flow=flow,
                                  clock=self._clock)
        self._out.register()
        early, self._early = self._early, []
        for chunk in early:
            self.transport.write(chunk)
        if self._ended:
            self._out.flush_then(self.transport.loseConnection)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.detached:
            return
        if self._escape is not None:
            data, detach = self._escape.feed(data)
            if detach:
                if data and self.attachment is not None:
                    self.attachment.write_stdin(data)
                self._detach()
                return
        if data and self.attachment is not None:
            self.attachment.write_stdin(data)

    def _detach(self) -> None:
        self.detached = True
        if self.attachment is not None:
            self.attachment.detach()
        if self._on_detach is not None:
            self._on_detach()
        self.end()

    def readConnectionLost(self) -> None:  # noqa: N802
        if self.detached:
            return
        held = self._escape.flush() if self._escape is not None else b""
        if held and self.attachment is not None:
            self.attachment.write_stdin(held)
        # As dockerd: StdinOnce closes the container's stdin when the client's
        # ends, but never on a terminal, where the client leaving (the docker
        # CLI half-closes after its detach keys) must not end the shell.
        if self.attachment is not None and self.stdin_once and not self.tty:
            self.attachment.close_stdin()

    def writeConnectionLost(self) -> None:  # noqa: N802
        pass

    def connectionLost(self, reason=None) -> None:  # noqa: N802
        if self._out is not None:
            self._out.stopProducing()
        if self.attachment is not None:
            self.attachment.detach()
