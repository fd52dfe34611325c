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


class _Flow:
    def __init__(self):
        self.events = []

    def hold(self):
        self.events.append("hold")

    def release(self):
        self.events.append("release")


class _Attachment:
    def __init__(self):
        self.stdin = b""
        self.closed = False
        self.detached = 0

    def write_stdin(self, data):
        self.stdin += data

    def close_stdin(self):
        self.closed = True

    def detach(self):
        self.detached += 1


class AttachStreamTests(unittest.SynchronousTestCase):
    def stream(self, tty=True, keys=b"\x10\x11", max_pending=1 << 20):
        from dockerpy.api.hijack import AttachStream

        self.detaches = []
        proto = AttachStream(tty, True, keys, lambda: self.detaches.append(True),
                             max_pending=max_pending)
        proto.attachment = self.att = _Attachment()
        self.transport = StringTransport()
        proto.makeConnection(self.transport)
        return proto

    def test_detach_keys_end_the_stream_and_leave_the_process(self):
        proto = self.stream()
        proto.dataReceived(b"ls\r\x10")
        self.assertEqual(self.att.stdin, b"ls\r")
        self.assertFalse(self.transport.disconnecting)
        proto.dataReceived(b"\x11echo lost\r")
        self.assertEqual(self.att.stdin, b"ls\r")
        self.assertEqual(self.detaches, [True])
        self.assertEqual(self.att.detached, 1)
        self.assertFalse(self.att.closed)  # detaching is no EOF for the process
        self.assertTrue(self.transport.disconnecting)
        proto.dataReceived(b"more")
        proto.readConnectionLost()
        self.assertEqual((self.att.stdin, self.att.closed), (b"ls\r", False))

    def test_an_incomplete_sequence_reaches_the_process(self):
        proto = self.stream()
        proto.dataReceived(b"\x10")
        proto.dataReceived(b"x\x10")
        self.assertEqual(self.att.stdin, b"\x10x")
        proto.readConnectionLost()  # stdin ended mid-sequence: it is passed on
        self.assertEqual(self.att.stdin, b"\x10x\x10")
        # On a terminal the container's stdin stays open (dockerd's rule).
        self.assertFalse(self.att.closed)
        self.assertEqual(self.detaches, [])

    def test_the_end_of_the_clients_stdin_closes_the_containers_only_without_a_tty(self):
        proto = self.stream(tty=False, keys=None)
        proto.readConnectionLost()
        self.assertTrue(self.att.closed)

    def test_without_keys_every_byte_is_stdin(self):
        proto = self.stream(tty=False, keys=None)
        proto.dataReceived(b"a\x10\x11b")
        self.assertEqual(self.att.stdin, b"a\x10\x11b")
        self.assertFalse(self.transport.disconnecting)

    def test_output_of_a_client_that_does_not_read_is_bounded(self):
        from dockerpy.api import stdcopy

        proto = self.stream(tty=False, keys=None, max_pending=100)
        proto.output("stdout", b"a" * 32)
        self.assertEqual(self.transport.value(), stdcopy.frame("stdout", b"a" * 32))
        self.transport.clear()
        # The transport's buffer is full: it pauses its producer.
        self.transport.producer.pauseProducing()
        for i in range(5):
            proto.output("stderr", bytes([65 + i]) * 32)  # 40-byte frames
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(proto.dropped, 3 * 40)
        self.transport.producer.resumeProducing()
        self.assertEqual(self.transport.value(), stdcopy.frame("stderr", b"A" * 32)
                         + stdcopy.frame("stderr", b"B" * 32))
        proto.output("stdout", b"z")
        self.assertTrue(self.transport.value().endswith(stdcopy.frame("stdout", b"z")))

    def test_a_slow_client_holds_the_source_and_loses_nothing(self):
        from twisted.internet.task import Clock

        from dockerpy.api.hijack import BoundedOutput

        flow, clock, consumer = _Flow(), Clock(), StringTransport()
        out = BoundedOutput(consumer, 100, flow=flow, clock=clock, stall=5)
        out.register()
        out.pauseProducing()  # the client's socket is full
        for i in range(4):
            out.write(bytes([65 + i]) * 40)
        self.assertEqual(flow.events, ["hold"])  # past 100 bytes: the source waits
        clock.advance(4)
        out.resumeProducing()  # it reads: slow, not gone
        self.assertEqual(consumer.value(), b"A" * 40 + b"B" * 40 + b"C" * 40 + b"D" * 40)
        self.assertEqual((flow.events, out.dropped), (["hold", "release"], 0))

    def test_a_client_that_reads_nothing_for_a_while_is_dropped_and_frees_the_source(self):
        from twisted.internet.task import Clock

        from dockerpy.api.hijack import BoundedOutput

        flow, clock, consumer = _Flow(), Clock(), StringTransport()
        out = BoundedOutput(consumer, 100, flow=flow, clock=clock, stall=5)
        out.register()
        out.pauseProducing()
        for i in range(4):
            out.write(bytes([65 + i]) * 40)
        clock.advance(5)
        self.assertEqual(flow.events, ["hold", "release"])
        out.write(b"E" * 40)
        self.assertEqual(out.dropped, 40)
        out.resumeProducing()  # back: it gets what was kept, then the rest again
        out.write(b"F" * 10)
        self.assertTrue(consumer.value().endswith(b"D" * 40 + b"F" * 10))

    def test_end_while_paused_sends_what_is_held_then_closes(self):
        proto = self.stream(tty=True, keys=None)
        self.transport.producer.pauseProducing()
        proto.output("stdout", b"tail")
        proto.end()
        self.assertEqual(self.transport.value(), b"tail")
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(self.transport.producer)

    def test_the_stream_is_the_producer_after_a_real_hijack(self):
        from dockerpy.api.hijack import AttachStream

        proto = AttachStream(True, True)

        def routes(app: Klein):
            @app.route("/attach", methods=["POST"])
            def attach(request):
                hijack_request(request, proto, b"application/vnd.docker.raw-stream")
                return defer.Deferred()

        channel = make_site(make_app([routes])).buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"POST /attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                             b"Upgrade: tcp\r\nContent-Length: 0\r\n\r\n")
        self.assertIsNotNone(transport.producer)
        self.assertTrue(transport.streaming)
        proto.output("stdout", b"hi")
        self.assertTrue(transport.value().endswith(b"\r\n\r\nhi"))
        proto.end()
        self.assertTrue(transport.disconnecting)
