"""Chunked request bodies: the one-pass decoder decodes what Twisted's does,
rejects what Twisted's rejects, and the API's channel uses it (no root)."""

from __future__ import annotations

import random

from klein import Klein
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web.http import _ChunkedTransferDecoder, _DataLoss, _MalformedChunkedDataError

from dockerpy.api.app import make_app, make_site
from dockerpy.api.chunked import FastChunkedDecoder, faster


def chunked(body: bytes, sizes: list[int], trailer: bytes = b"") -> bytes:
    out, pos = [], 0
    for size in sizes:
        piece = body[pos:pos + size]
        if not piece:
            break
        out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        pos += len(piece)
    if pos < len(body):
        out.append(b"%x\r\n" % (len(body) - pos) + body[pos:] + b"\r\n")
    return b"".join(out) + b"0\r\n" + trailer + b"\r\n"


def decode(cls, wire: bytes, reads: list[int]) -> tuple[bytes, list[bytes], int, str]:
    """Feed ``wire`` in reads of the given sizes; :return: (data, extra after
    the last chunk, number of data callbacks, final state)."""
    data, extra, calls = [], [], []

    def on_data(b):
        data.append(b)
        calls.append(1)

    decoder = cls(on_data, extra.append)
    pos = 0
    for size in reads:
        if pos >= len(wire):
            break
        decoder.dataReceived(wire[pos:pos + size])
        pos += size
    if pos < len(wire):
        decoder.dataReceived(wire[pos:])
    return b"".join(data), extra, len(calls), decoder.state


class FastChunkedDecoderTests(unittest.SynchronousTestCase):

    def test_decodes_as_twisted_does_however_the_bytes_arrive(self):
        rng = random.Random(7)
        body = bytes(rng.getrandbits(8) for _ in range(20000))
        for trial in range(40):
            sizes = [rng.choice([1, 2, 17, 512, 4096]) for _ in range(200)]
            trailer = b"X-Checksum: 1\r\n" if trial % 3 == 0 else b""
            wire = chunked(body, sizes, trailer) + b"NEXT REQUEST"
            reads = [rng.choice([1, 2, 3, 100, 1000, 65536]) for _ in range(5000)]
            ours = decode(FastChunkedDecoder, wire, reads)
            theirs = decode(_ChunkedTransferDecoder, wire, reads)
            self.assertEqual(ours[0], body)
            self.assertEqual((ours[0], b"".join(ours[1]), ours[3]),
                             (theirs[0], b"".join(theirs[1]), theirs[3]))
            self.assertEqual(ours[3], "FINISHED")

    def test_one_data_callback_per_read_of_many_chunks(self):
        body = b"x" * 512 * 200
        wire = chunked(body, [512] * 200)
        data, extra, calls, state = decode(FastChunkedDecoder, wire, [len(wire)])
        self.assertEqual((data, state, extra), (body, "FINISHED", [b""]))
        self.assertEqual(calls, 1)
        # Twisted's makes one per chunk.
        self.assertEqual(decode(_ChunkedTransferDecoder, wire, [len(wire)])[2], 200)

    def test_rejects_what_twisted_rejects(self):
        bad = {
            "bad size": b"zz\r\nabc\r\n0\r\n\r\n",
            "signed size": b"+3\r\nabc\r\n0\r\n\r\n",
            "no CRLF after data": b"3\r\nabcX\r\n0\r\n\r\n",
            "long size line": b"3" + b" " * 2000 + b"\r\nabc\r\n0\r\n\r\n",
            "long size line, no end yet": b"1" * 2000,
            "extension characters": b"3;a\x00b\r\nabc\r\n0\r\n\r\n",
            "huge trailer": b"0\r\n" + b"X: " + b"y" * 70000 + b"\r\n\r\n",
        }
        for name, wire in bad.items():
            for cls in (FastChunkedDecoder, _ChunkedTransferDecoder):
                with self.assertRaises(_MalformedChunkedDataError, msg=f"{cls.__name__}: {name}"):
                    decode(cls, wire, [len(wire)])
                with self.assertRaises(_MalformedChunkedDataError, msg=f"{cls.__name__}: {name}"):
                    decode(cls, wire, [1] * len(wire))

    def test_extensions_are_allowed_and_ignored(self):
        self.assertEqual(decode(FastChunkedDecoder, b"3;name=value\r\nabc\r\n0\r\n\r\n",
                                [1] * 40)[0], b"abc")

    def test_a_body_that_stops_early_is_data_loss(self):
        decoder = FastChunkedDecoder(lambda b: None, lambda b: None)
        decoder.dataReceived(b"5\r\nab")
        self.assertRaises(_DataLoss, decoder.noMoreData)

    def test_data_after_the_end_is_a_programming_error(self):
        decoder = FastChunkedDecoder(lambda b: None, lambda b: None)
        decoder.dataReceived(b"0\r\n\r\n")
        decoder.noMoreData()
        self.assertRaises(RuntimeError, decoder.dataReceived, b"more")

    def test_faster_replaces_only_a_fresh_twisted_decoder(self):
        fresh = _ChunkedTransferDecoder(len, len)
        self.assertIsInstance(faster(fresh), FastChunkedDecoder)
        started = _ChunkedTransferDecoder(len, len)
        started.dataReceived(b"5\r\nab")
        self.assertIs(faster(started), started)
        other = object()
        self.assertIs(faster(other), other)


class ChannelTests(unittest.TestCase):

    def channel(self, seen: dict):
        """The API's channel on a string transport, with a POST /build
        route that keeps the body in ``seen``."""
        def routes(app: Klein):
            @app.route("/build", methods=["POST"])
            def build(request):
                seen["body"] = request.content.read()
                return b"ok"

        channel = make_site(make_app([routes])).buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.setTimeout(None)
        return channel, transport

    def test_the_api_channel_decodes_chunked_bodies_with_the_fast_decoder(self):
        seen: dict = {}
        channel, transport = self.channel(seen)
        channel.dataReceived(b"POST /build HTTP/1.1\r\nHost: x\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
        self.assertIsInstance(channel._transferDecoder, FastChunkedDecoder)
        body = bytes(range(256)) * 40
        wire = chunked(body, [100] * 200)
        for i in range(0, len(wire), 333):
            channel.dataReceived(wire[i:i + 333])
        self.assertEqual(seen.get("body"), body)
        self.assertIn(b"200 OK", transport.value())

    def test_a_malformed_chunked_body_is_a_400(self):
        seen: dict = {}
        channel, transport = self.channel(seen)
        channel.dataReceived(b"POST /build HTTP/1.1\r\nHost: x\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400"), transport.value())
        self.assertEqual(seen, {}, "the route never ran")
