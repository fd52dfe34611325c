"""The attach hijack: 101 UPGRADED, pipelined stdin, half-close (no root)."""

from __future__ import annotations

from klein import Klein
from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface import implementer

from dockerpy.api.app import make_app, make_site
from dockerpy.api.hijack import hijack_request


@implementer(IHalfCloseableProtocol)
class Recorder(Protocol):
    def __init__(self):
        self.received = b""
        self.read_closed = False
        self.lost = False

    def connectionMade(self):
        self.transport.write(b"hello from server")

    def dataReceived(self, data):
        self.received += data

    def readConnectionLost(self):
        self.read_closed = True
        self.transport.write(b" after eof")

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason=None):
        self.lost = True


class HijackTests(unittest.TestCase):
    def setUp(self):
        self.proto = Recorder()

        def routes(app: Klein):
            @app.route("/attach", methods=["POST"])
            def attach(request):
                hijack_request(request, self.proto, b"application/vnd.docker.raw-stream")
                return defer.Deferred()

        site = make_site(make_app([routes]))
        self.channel = site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def test_upgrade_answers_101_and_hands_over_pipelined_bytes(self):
        self.channel.dataReceived(
            b"POST /v1.47/attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            b"Upgrade: tcp\r\nContent-Length: 0\r\n\r\nstdin-bytes")
        written = self.transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 101 UPGRADED\r\n"), written)
        self.assertIn(b"Upgrade: tcp\r\n", written)
        self.assertTrue(written.endswith(b"\r\n\r\nhello from server"), written)
        self.assertEqual(self.proto.received, b"stdin-bytes")
        self.channel.dataReceived(b" more")
        self.assertEqual(self.proto.received, b"stdin-bytes more")

    def test_without_upgrade_header_answers_200_raw_stream(self):
        self.channel.dataReceived(b"POST /attach HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 0\r\n\r\n")
        written = self.transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 200 OK\r\n"), written)
        self.assertNotIn(b"chunked", written.lower())

    def test_half_close_reaches_stream_and_output_still_flows(self):
        self.channel.dataReceived(
            b"POST /attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            b"Content-Length: 0\r\n\r\n")
        self.channel.readConnectionLost()
        self.assertTrue(self.proto.read_closed)
        self.assertFalse(self.transport.disconnecting)
        self.assertTrue(self.transport.value().endswith(b"after eof"))

    def test_connection_lost_reaches_stream(self):
        self.channel.dataReceived(
            b"POST /attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            b"Content-Length: 0\r\n\r\n")
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.proto.lost)
