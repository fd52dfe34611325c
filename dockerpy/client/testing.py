# -*- test-case-name: dockerpy.test.test_client_main -*-
"""A tiny fake Engine API on a unix socket, for the client's tests.

It records every request and answers from canned routes, including the
``101 UPGRADED`` hijack that attach uses.  Test support only: no command
imports this module.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socketserver
import tempfile
import threading
import urllib.parse
from typing import Any, Callable

from dockerpy.client.format import frame


class Request:
    """One recorded request.

    :ivar method: HTTP method.
    :ivar path: path without the query (version prefix included).
    :ivar query: query parameters, each a list of values.
    :ivar headers: request headers.
    :ivar body: request body (de-chunked).
    """

    def __init__(self, method: str, path: str, query: dict[str, list[str]],
                 headers: dict[str, str], body: bytes):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path} {self.query}>"


class Reply:
    """A canned answer: *body* may be bytes, a JSON value, or ``None``."""

    def __init__(self, status: int = 200, body: Any = None,
                 headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class Hijack:
    """Answer ``101 UPGRADED`` and hand the socket to *session*.

    ``session(sock_file_read, write)`` runs on the server thread; the
    connection closes when it returns.
    """

    def __init__(self, session: Callable[[Any, Callable[[bytes], None]], None],
                 status: int = 101):
        self.session = session
        self.status = status


Handler = Callable[[Request], "Reply | Hijack"]


class FakeEngine:
    """Serve canned Engine API routes on ``unix://<tmp>/docker.sock``.

    :param api_version: what ``/_ping`` announces in ``Api-Version``.
    """

    def __init__(self, api_version: str = "1.47"):
        self.api_version = api_version
        self.requests: list[Request] = []
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._dir = tempfile.mkdtemp(prefix="dockerpy-fake-")
        self.socket_path = os.path.join(self._dir, "docker.sock")
        self.host = f"unix://{self.socket_path}"
        engine = self

        class _Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                engine._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def get_request(self):  # type: ignore[no-untyped-def]
                sock, _ = super().get_request()
                return sock, ("local", 0)

        self._server = _Server(self.socket_path, _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01}, daemon=True)

    def start(self) -> "FakeEngine":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        shutil.rmtree(self._dir, ignore_errors=True)

    def route(self, method: str, pattern: str, handler: Handler | Reply | Any) -> None:
        """Answer ``method`` on paths matching *pattern* (after the
        ``/vX.Y`` prefix, anchored); a non-callable is a fixed reply."""
        if isinstance(handler, Reply) or not callable(handler):
            fixed = handler if isinstance(handler, (Reply, Hijack)) else Reply(200, handler)
            handler = lambda req: fixed  # noqa: E731
        self.routes.insert(0, (method, re.compile(pattern + r"$"), handler))

    def calls(self, method: str | None = None, pattern: str = "") -> list[Request]:
        """Recorded requests (``/_ping`` excluded), filtered."""
        return [r for r in self.requests
                if r.path != "/_ping" and (method is None or r.method == method)
                and re.search(pattern, r.path)]

    # -- serving
    def _dispatch(self, h: http.server.BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        body = b""
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    h.rfile.readline()
                    break
                body += h.rfile.read(size)
                h.rfile.readline()
        elif h.headers.get("Content-Length"):
            body = h.rfile.read(int(h.headers["Content-Length"]))
        req = Request(h.command, parsed.path, urllib.parse.parse_qs(parsed.query),
                      dict(h.headers), body)
        self.requests.append(req)
        if parsed.path == "/_ping":
            self._send(h, Reply(200, b"OK", {"Api-Version": self.api_version}))
            return
        m = re.match(r"^/v[0-9.]+(/.*)$", parsed.path)
        path = m.group(1) if m else parsed.path
        for method, pattern, handler in self.routes:
            if method == h.command and pattern.match(path):
                reply = handler(req)
                if isinstance(reply, Hijack):
                    self._hijack(h, reply)
                else:
                    self._send(h, reply)
                return
        self._send(h, Reply(404, {"message": "page not found"}))

    def _send(self, h: http.server.BaseHTTPRequestHandler, reply: Reply) -> None:
        body = reply.body
        headers = dict(reply.headers)
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        h.send_response(reply.status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            if data and h.command != "HEAD":
                h.wfile.write(data)
            h.wfile.flush()
        except BrokenPipeError:
            # The client had all it wanted (Content-Length 0 or HEAD).
            pass

    def _hijack(self, h: http.server.BaseHTTPRequestHandler, hijack: Hijack) -> None:
        if hijack.status == 101:
            h.send_response(101, "UPGRADED")
            h.send_header("Content-Type", "application/vnd.docker.raw-stream")
            h.send_header("Connection", "Upgrade")
            h.send_header("Upgrade", "tcp")
        else:
            h.send_response(hijack.status)
            h.send_header("Content-Type", "application/vnd.docker.raw-stream")
        h.end_headers()
        h.wfile.flush()

        def write(data: bytes) -> None:
            h.wfile.write(data)
            h.wfile.flush()

        hijack.session(h.rfile, write)
        h.close_connection = True


__all__ = ["FakeEngine", "Reply", "Hijack", "Request", "frame"]
