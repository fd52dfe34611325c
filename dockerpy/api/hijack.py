# -*- test-case-name: dockerpy.test.test_api_hijack -*-
"""Taking over an HTTP connection for attach and exec (Docker's hijack).

Docker clients send ``Connection: Upgrade`` / ``Upgrade: tcp`` and expect
``HTTP/1.1 101 UPGRADED``; from then on the socket is a raw bidirectional
stream: stdin from the client, (stdcopy-framed) output to it, and a
half-close from the client means "stdin ended" while output keeps flowing.

twisted.web has no public upgrade API, so ``HijackableChannel`` is the one
place that touches ``HTTPChannel`` internals (``_dataBuffer``,
``_networkProducer``); setup.py pins the Twisted range it was checked with.
"""

from __future__ import annotations

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.web.http import HTTPChannel
from zope.interface import implementer


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
