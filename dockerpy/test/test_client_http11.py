"""bin/docker's HTTP/1.1: requests framed right, responses of every framing
read right, malformed answers refused (a canned server on a socket pair)."""

from __future__ import annotations

import socket
import threading

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.client.http11 import Connection, ProtocolError
from dockerpy.client.testing import Hijack, Reply
from dockerpy.client.transport import APIError, Client


class Canned:
    """The server side of a socket pair: records the request bytes, sends
    ``answer`` (a list of pieces, sent one by one), then closes."""

    def __init__(self, answer: list[bytes]) -> None:
        self.client, self.server = socket.socketpair()
        self.request = b""
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(10)
        while b"\r\n\r\n" not in self.request:
            data = self.server.recv(65536)
            if not data:
                break
            self.request += data
        head, _, body = self.request.partition(b"\r\n\r\n")
        if b"chunked" in head.lower():
            while not self.request.endswith(b"0\r\n\r\n"):
                data = self.server.recv(65536)
                if not data:
                    break
                self.request += data
        elif b"content-length" in head.lower():
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                data = self.server.recv(65536)
                if not data:
                    break
                body += data
                self.request += data
        for piece in self.answer:
            self.server.sendall(piece)
        self.server.close()


def exchange(answer: list[bytes], method: str = "GET", body=None, chunked: bool = False):
    canned = Canned(answer)
    conn = Connection(lambda: canned.client)
    conn.request(method, "/v1.47/x", body=body, headers={"Host": "h"}, encode_chunked=chunked)
    return canned, conn, conn.getresponse()


class ResponseTests(SynchronousTestCase):

    def test_content_length_body(self):
        _, conn, resp = exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                  b"Content-Type: application/json\r\n\r\nhello"])
        self.assertEqual((resp.status, resp.reason), (200, "OK"))
        self.assertEqual(resp.headers.get("content-TYPE"), "application/json")
        self.assertIn("Content-Length", resp.headers)
        self.assertEqual(resp.read(), b"hello")
        self.assertEqual(resp.read1(10), b"")
        conn.close()

    def test_chunked_body_in_pieces_with_extensions_and_trailers(self):
        _, conn, resp = exchange([
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
            b"lo\r\n", b"6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"])
        self.assertEqual(resp.read(), b"hello world")
        conn.close()

    def test_read1_returns_what_has_come(self):
        _, conn, resp = exchange([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"])
        self.assertEqual(resp.read1(65536), b"abc")
        self.assertEqual(resp.read1(2), b"de")
        self.assertEqual(resp.read(), b"f")
        conn.close()

    def test_body_until_close_and_bounded_reads(self):
        _, conn, resp = exchange([b"HTTP/1.1 200 OK\r\n\r\nstream ", b"of bytes"])
        self.assertEqual(resp.read(3), b"str")
        self.assertEqual(resp.read(), b"eam of bytes")
        conn.close()

    def test_head_and_no_content_have_no_body(self):
        _, conn, resp = exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n"
                                  b"Api-Version: 1.47\r\n\r\n"], method="HEAD")
        self.assertEqual((resp.read(), resp.headers.get("api-version")), (b"", "1.47"))
        conn.close()
        _, conn, resp = exchange([b"HTTP/1.1 204 No Content\r\n\r\n"], method="POST", body=b"")
        self.assertEqual((resp.status, resp.read()), (204, b""))
        conn.close()

    def test_informational_answers_are_skipped(self):
        _, conn, resp = exchange([b"HTTP/1.1 100 Continue\r\n\r\n"
                                  b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"])
        self.assertEqual((resp.status, resp.read()), (201, b"ok"))
        conn.close()

    def test_malformed_and_truncated_answers_are_protocol_errors(self):
        for answer in ([b"SSH-2.0-OpenSSH\r\n\r\n"], [b""],
                       [b"HTTP/1.1 abc OK\r\n\r\n"],
                       [b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"]):
            canned = Canned(answer)
            conn = Connection(lambda: canned.client)
            conn.request("GET", "/", headers={})
            self.assertRaises(ProtocolError, conn.getresponse)
            conn.close()
        _, conn, resp = exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
        self.assertRaises(ProtocolError, resp.read)
        conn.close()
        _, conn, resp = exchange([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"zz\r\n"])
        self.assertRaises(ProtocolError, resp.read)
        conn.close()
        self.assertTrue(issubclass(ProtocolError, OSError), "callers treat it as unreachable")


class RequestTests(SynchronousTestCase):

    def test_bytes_body_is_sent_with_its_length(self):
        canned, conn, resp = exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
                                      method="POST", body=b'{"a": 1}')
        resp.read()
        conn.close()
        canned.thread.join(10)
        head, _, body = canned.request.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"POST /v1.47/x HTTP/1.1\r\n"), head)
        self.assertIn(b"\r\nContent-Length: 8", head)
        self.assertEqual(body, b'{"a": 1}')

    def test_an_iterable_body_is_sent_chunked(self):
        canned, conn, resp = exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
                                      method="POST", body=iter([b"abc", b"", b"de"]),
                                      chunked=True)
        resp.read()
        conn.close()
        canned.thread.join(10)
        head, _, body = canned.request.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertEqual(body, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")


class HijackTests(SynchronousTestCase):
    """Client.hijack over this HTTP: the stream after a 101 (bytes that came
    with the head included), a 200 raw stream, and an error status."""

    def setUp(self) -> None:
        from dockerpy.client.testing import FakeEngine

        self.engine = FakeEngine().start()
        self.addCleanup(self.engine.stop)
        self.client = Client(self.engine.host)

    def stream(self, status: int) -> bytes:
        def session(read, write):
            write(b"first ")
            write(b"second")
        self.engine.route("POST", "/containers/c/attach", Hijack(session, status=status))
        hijacked = self.client.hijack("/containers/c/attach", {"stream": 1})
        try:
            got = b""
            while True:
                data = hijacked.read()
                if not data:
                    return got
                got += data
        finally:
            hijacked.close()

    def test_the_stream_after_101_and_after_a_raw_200(self):
        self.assertEqual(self.stream(101), b"first second")
        self.assertEqual(self.stream(200), b"first second")
        request = self.engine.calls("POST", "/attach")[0]
        self.assertEqual((request.headers["Upgrade"], request.headers["Content-Length"]),
                         ("tcp", "0"))

    def test_an_error_status_is_an_api_error_with_the_daemons_message(self):
        self.engine.route("POST", "/containers/c/attach",
                          Reply(404, {"message": "No such container: c"}))
        with self.assertRaises(APIError) as e:
            self.client.hijack("/containers/c/attach")
        self.assertEqual((e.exception.status, e.exception.message),
                         (404, "No such container: c"))
