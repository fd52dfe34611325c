# -*- test-case-name: dockerpy.test.test_client_http11 -*-
"""The HTTP/1.1 that bin/docker speaks to a daemon: one request per
connection, bodies framed by ``Content-Length``, chunked or ended by the
close.  ``http.client`` would do, but it imports the ``email`` package
(~25 ms of every bin/docker run); this is all the client needs.
"""

from __future__ import annotations

import socket

#: Longest status or header line accepted from a daemon.
MAX_LINE = 1 << 16
#: Most header lines accepted in one response.
MAX_HEADERS = 1000


class ProtocolError(OSError):
    """The daemon's answer is not HTTP/1.x as we know it."""


class Headers(dict):
    """Response headers, looked up case-insensitively (names kept in lower
    case; a repeated header keeps its last value)."""

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class Response:
    """A response being read: ``status``, ``reason``, ``headers``, and the
    body through :meth:`read` (all, or at most n bytes) and :meth:`read1`
    (what one receive brings, at most n bytes; ``b""`` at the end)."""

    def __init__(self, fp, status: int, reason: str, headers: Headers, method: str) -> None:
        self.fp = fp
        self.status = status
        self.reason = reason
        self.headers = headers
        self._chunked = False
        self._left: int | None = None  # bytes owed (Content-Length or chunk)
        self._done = False
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._done = True
        elif "chunked" in (headers.get("transfer-encoding") or "").lower():
            self._chunked = True
            self._left = 0
        elif headers.get("content-length") is not None:
            try:
                self._left = int(headers["content-length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            if self._left < 0:
                raise ProtocolError("bad Content-Length")
            self._done = self._left == 0

    def _next_chunk(self) -> bool:
        """Start the next chunk; :return: False at the last one."""
        line = self.fp.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise ProtocolError("truncated chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
        if size < 0:
            raise ProtocolError("bad chunk size")
        if size == 0:
            while True:  # trailers, then the empty line
                trailer = self.fp.readline(MAX_LINE)
                if trailer in (b"\r\n", b"\n", b""):
                    break
            self._done = True
            return False
        self._left = size
        return True

    def read1(self, n: int = 65536) -> bytes:
        if self._done or n <= 0:
            return b""
        if self._chunked and self._left == 0 and not self._next_chunk():
            return b""
        want = n if self._left is None else min(n, self._left)
        data = self.fp.read1(want)
        if not data:
            if self._left is not None:
                raise ProtocolError("the daemon closed the connection mid-body")
            self._done = True
            return b""
        if self._left is not None:
            self._left -= len(data)
            if self._left == 0:
                if self._chunked:
                    self.fp.readline(MAX_LINE)  # the CRLF after the chunk
                else:
                    self._done = True
        return data

    def read(self, n: int = -1) -> bytes:
        if n is not None and n >= 0:
            out = []
            while n > 0:
                data = self.read1(n)
                if not data:
                    break
                out.append(data)
                n -= len(data)
            return b"".join(out)
        out = []
        while True:
            data = self.read1(1 << 20)
            if not data:
                return b"".join(out)
            out.append(data)

    def close(self) -> None:
        self._done = True
        _close_quietly(self.fp)


class Connection:
    """One connection to the daemon.

    :param connect: makes the connected socket (unix, TCP, or TLS-wrapped).
    """

    def __init__(self, connect) -> None:
        self._connect = connect
        self.sock: socket.socket | None = None
        self._method = "GET"
        self._fp = None

    def connect(self) -> None:
        if self.sock is None:
            self.sock = self._connect()

    def request(self, method: str, url: str, body=None, headers: dict | None = None,
                encode_chunked: bool = False) -> None:
        """Send a request.  ``body``: ``bytes`` (sent with its length), an
        iterable of ``bytes`` with ``encode_chunked`` (sent chunked), or None."""
        self.connect()
        self._method = method
        lines = [f"{method} {url} HTTP/1.1"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if isinstance(body, (bytes, bytearray)):
            lines.append(f"Content-Length: {len(body)}")
        elif body is not None and encode_chunked:
            lines.append("Transfer-Encoding: chunked")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock = self.sock
        if isinstance(body, (bytes, bytearray)):
            sock.sendall(head + bytes(body))
        elif body is not None and encode_chunked:
            sock.sendall(head)
            for chunk in body:
                if chunk:
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(head)

    def getresponse(self) -> Response:
        """Read the status line and headers of the answer (1xx but 101 skipped)."""
        if self.sock is None:
            raise ProtocolError("no request was sent")
        fp = self._fp = self.sock.makefile("rb")
        while True:
            line = fp.readline(MAX_LINE + 1)
            if not line:
                raise ProtocolError("the daemon closed the connection without an answer")
            parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise ProtocolError(f"malformed status line {line[:80]!r}")
            try:
                status = int(parts[1])
            except ValueError:
                raise ProtocolError(f"malformed status line {line[:80]!r}") from None
            headers = Headers()
            for _ in range(MAX_HEADERS + 1):
                h = fp.readline(MAX_LINE + 1)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, sep, value = h.decode("latin-1").partition(":")
                if not sep:
                    raise ProtocolError(f"malformed header line {h[:80]!r}")
                headers[name.strip().lower()] = value.strip()
            else:
                raise ProtocolError("too many headers")
            if 100 <= status < 200 and status != 101:
                continue
            return Response(fp, status, parts[2] if len(parts) > 2 else "", headers,
                            self._method)

    def close(self) -> None:
        _close_quietly(self._fp)
        _close_quietly(self.sock)
        self._fp = self.sock = None


def _close_quietly(closable) -> None:
    """Close a file or socket (None: nothing); an error on close is moot."""
    if closable is not None:
        try:
            closable.close()
        except OSError:
            pass
