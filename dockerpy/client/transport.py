# -*- test-case-name: dockerpy.test.test_client_main -*-
"""The client's connection to the Engine API: where the daemon is (``-H``,
``DOCKER_HOST``), TLS as the docker CLI configures it, API version
negotiation through ``/_ping``, JSON requests, streamed responses and the
``101 UPGRADED`` hijack that attach uses.

Standard library only: this is on every command's hot path.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.parse

from dockerpy.client import http11

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    import ssl
    from typing import Any, BinaryIO, Iterable, Iterator


CLIENT_API_VERSION = "1.47"
DEFAULT_HOST = "unix:///var/run/docker.sock"
_USER_AGENT = "Docker-Client/dockerpy (linux)"


class DaemonUnreachable(Exception):
    """The daemon's socket refused us or does not exist."""


class APIError(Exception):
    """The daemon answered with an error status.

    :ivar status: the HTTP status code.
    :ivar message: the ``message`` of Docker's JSON error body.
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"Error response from daemon: {self.message}"


class TLSConfig:
    """TLS settings as the docker CLI derives them from flags and env.

    :param verify: verify the server against *cafile* (``--tlsverify``).
    :param cafile: CA bundle; only used when verifying.
    :param certfile: client certificate, when it exists.
    :param keyfile: client key, when it exists.
    """

    def __init__(self, verify: bool, cafile: str | None, certfile: str | None,
                 keyfile: str | None):
        self.verify = verify
        self.cafile = cafile
        self.certfile = certfile
        self.keyfile = keyfile

    def context(self) -> "ssl.SSLContext":
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verify:
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
            if self.cafile:
                ctx.load_verify_locations(self.cafile)
            else:
                ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.certfile and self.keyfile:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx


def tls_config(tls: bool, tlsverify: bool | None, cacert: str | None,
               cert: str | None, key: str | None,
               environ: dict[str, str]) -> TLSConfig | None:
    """Resolve TLS options the way ``cli/flags`` does.

    ``--tlsverify`` (or ``DOCKER_TLS_VERIFY``) implies TLS; certificate
    paths default to ``$DOCKER_CERT_PATH`` (else ``~/.docker``) and default
    files that do not exist are ignored.

    :return: ``None`` when TLS is off.
    """
    if tlsverify is None:
        tlsverify = bool(environ.get("DOCKER_TLS_VERIFY"))
    if not (tls or tlsverify or environ.get("DOCKER_TLS")):
        return None
    cert_dir = environ.get("DOCKER_CERT_PATH") or os.path.join(
        os.path.expanduser("~"), ".docker")

    def pick(given: str | None, name: str) -> str | None:
        if given:
            return given
        default = os.path.join(cert_dir, name)
        return default if os.path.exists(default) else None

    return TLSConfig(
        verify=tlsverify,
        cafile=pick(cacert, "ca.pem") if tlsverify else None,
        certfile=pick(cert, "cert.pem"),
        keyfile=pick(key, "key.pem"),
    )


def _unix_socket(path: str, timeout: float | None):
    """A connector of :class:`http11.Connection` for a unix socket."""
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock
    return connect


def _tcp_socket(address: str, port: int, timeout: float | None, tls: "TLSConfig | None"):
    """A connector of :class:`http11.Connection` for TCP, TLS-wrapped when asked."""
    def connect() -> socket.socket:
        sock = socket.create_connection((address, port), timeout)
        if tls is None:
            return sock
        try:
            return tls.context().wrap_socket(sock, server_hostname=address)
        except BaseException:
            sock.close()
            raise
    return connect


def parse_host(host: str, tls: bool) -> tuple[str, str, int]:
    """Split a ``-H`` value into (scheme, address, port).

    :raises ValueError: for schemes we do not speak.
    """
    if host.startswith("unix://"):
        return "unix", host[len("unix://"):] or "/var/run/docker.sock", 0
    if host.startswith("/"):
        return "unix", host, 0
    if "://" not in host:
        host = "tcp://" + host
    scheme, rest = host.split("://", 1)
    if scheme not in ("tcp", "http", "https"):
        raise ValueError(f"Invalid bind address format: {host}")
    rest = rest.split("/", 1)[0]
    parsed = urllib.parse.urlsplit("//" + rest)
    port = parsed.port or (2376 if tls or scheme == "https" else 2375)
    return "tcp", parsed.hostname or "localhost", port


class Response:
    """A response whose body the caller reads (streams) or decodes.

    :ivar status: HTTP status.
    :ivar headers: the response's headers.
    """

    def __init__(self, raw: http11.Response, conn: http11.Connection):
        self.raw = raw
        self.status = raw.status
        self.headers = raw.headers
        self._conn = conn

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            return self.raw.read()
        return self.raw.read1(n) if n else b""

    def json(self) -> Any:
        body = self.raw.read()
        self.close()
        return json.loads(body) if body.strip() else None

    def json_lines(self) -> Iterator[Any]:
        """Decode a stream of concatenated JSON values (progress messages)."""
        decoder = json.JSONDecoder()
        buf = ""
        while True:
            chunk = self.raw.read1(65536)
            if not chunk:
                break
            buf += chunk.decode("utf-8", "replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    obj, end = decoder.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                yield obj
        self.close()

    def close(self) -> None:
        self.raw.close()
        self._conn.close()


class Hijacked:
    """A connection taken over after ``101 UPGRADED`` (or a raw 200).

    :param conn: the connection, its response head read.
    :param read1: reads the stream (at most n bytes, ``b""`` at its end):
        the raw socket after a 101, the response's body after a 200
        (chunked or ended by the close).
    :ivar sock: the socket, for writing stdin and half-closing.
    """

    def __init__(self, conn: http11.Connection, read1):
        self._conn = conn
        self.sock = conn.sock
        self._read1 = read1

    def read(self, n: int = 65536) -> bytes:
        """Up to *n* bytes of the stream; ``b""`` at EOF (or when the
        connection breaks)."""
        try:
            return self._read1(n)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: the daemon sees stdin's EOF, we keep reading."""
        try:
            # Bypass SSLSocket.shutdown, which would drop the TLS layer
            # while output is still to be read.
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._conn.close()


class Client:
    """A small Engine API client with lazy version negotiation.

    :param host: ``unix:///path`` or ``tcp://host:port``.
    :param tls: TLS settings or ``None``.
    :param version: force this API version (``DOCKER_API_VERSION``).
    """

    def __init__(self, host: str = DEFAULT_HOST, tls: TLSConfig | None = None,
                 version: str | None = None):
        self.host = host
        self.tls = tls
        self.scheme, self.address, self.port = parse_host(host, tls is not None)
        self._version = version
        self.server_version: str | None = None

    # -- connections
    def _connection(self, timeout: float | None = None) -> http11.Connection:
        if self.scheme == "unix":
            return http11.Connection(_unix_socket(self.address, timeout))
        return http11.Connection(_tcp_socket(self.address, self.port, timeout, self.tls))

    def _host_header(self) -> str:
        return "api.moby.localhost" if self.scheme == "unix" else f"{self.address}:{self.port}"

    @property
    def version(self) -> str:
        """The negotiated API version (pings the daemon the first time)."""
        if self._version is None:
            self._version = self._negotiate()
        return self._version

    def _negotiate(self) -> str:
        api = None
        for method in ("HEAD", "GET"):
            conn = self._connection()
            try:
                conn.request(method, "/_ping", headers=self._headers())
                raw = conn.getresponse()
                raw.read()
            except OSError as e:
                conn.close()
                raise DaemonUnreachable(str(e)) from e
            conn.close()
            api = raw.headers.get("Api-Version")
            if raw.status < 400 or api:
                break
        self.server_version = api or "1.24"
        return _min_version(CLIENT_API_VERSION, self.server_version)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Host": self._host_header(), "User-Agent": _USER_AGENT}
        if extra:
            headers.update(extra)
        return headers

    def url(self, path: str, query: dict[str, Any] | Iterable[tuple[str, Any]] | None = None) -> str:
        """``/v<version><path>?<query>``; ``None`` values are left out,
        booleans become ``1``/``0`` and lists repeat the key."""
        url = f"/v{self.version}{path}"
        if query:
            pairs = []
            items = query.items() if isinstance(query, dict) else query
            for key, value in items:
                if value is None:
                    continue
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if isinstance(v, bool):
                        v = "1" if v else "0"
                    pairs.append((key, str(v)))
            if pairs:
                # Go's url.Values.Encode sorts by key; keep the wire identical.
                pairs.sort(key=lambda kv: kv[0])
                url += "?" + urllib.parse.urlencode(pairs)
        return url

    # -- requests
    def request(self, method: str, path: str, query: Any = None, body: Any = None,
                headers: dict[str, str] | None = None, stream: bool = False,
                ok: Iterable[int] = ()) -> Response:
        """Send a request; fail with :class:`APIError` on an error status.

        :param body: ``bytes``, a binary file (streamed chunked) or a JSON
            value (sent as ``application/json``).
        :param stream: the caller reads the body (kept for readability at
            call sites: bodies are never read eagerly).
        :raises APIError: the daemon answered >= 400 (unless listed in *ok*).
        :raises DaemonUnreachable: no daemon at :attr:`host`.
        """
        return self.finish(self.begin(method, path, query, body, headers), ok)

    def begin(self, method: str, path: str, query: Any = None, body: Any = None,
              headers: dict[str, str] | None = None) -> "_Pending":
        """Send a request without waiting for the reply (see :meth:`finish`).

        ``run`` sends ``wait`` this way before ``start``: some daemons only
        answer it when the container exits.
        """
        url = self.url(path, query)
        hdrs = self._headers(headers)
        data: Any = None
        chunked = False
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            elif hasattr(body, "read"):
                data = _file_chunks(body)
                chunked = True
            else:
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
        elif method in ("POST", "PUT"):
            data = b""
        conn = self._connection()
        try:
            conn.request(method, url, body=data, headers=hdrs, encode_chunked=chunked)
        except OSError as e:
            conn.close()
            raise DaemonUnreachable(str(e)) from e
        return _Pending(conn, method, url)

    def finish(self, pending: "_Pending", ok: Iterable[int] = ()) -> Response:
        """Read the reply to a request sent with :meth:`begin`."""
        try:
            raw = pending.conn.getresponse()
        except OSError as e:
            pending.conn.close()
            raise DaemonUnreachable(str(e)) from e
        resp = Response(raw, pending.conn)
        if raw.status >= 400 and raw.status not in ok:
            raise _api_error(resp, pending.method, pending.url)
        return resp

    def get_json(self, path: str, query: Any = None) -> Any:
        return self.request("GET", path, query).json()

    def post_json(self, path: str, query: Any = None, body: Any = None) -> Any:
        return self.request("POST", path, query, body).json()

    def send(self, method: str, path: str, query: Any = None, body: Any = None) -> None:
        """A request whose reply body we do not need."""
        self.request(method, path, query, body).close()

    def hijack(self, path: str, query: Any = None) -> Hijacked:
        """POST *path* asking to upgrade; return the raw stream.

        Accepts ``101 Switching Protocols`` or a ``200`` raw stream (old
        daemons), as the docker CLI does.

        :raises APIError: for an error status.
        """
        url = self.url(path, query)
        conn = self._connection()
        try:
            conn.request("POST", url, body=b"", headers=self._headers(
                {"Content-Type": "text/plain", "Connection": "Upgrade", "Upgrade": "tcp"}))
            resp = conn.getresponse()
        except http11.ProtocolError as e:
            conn.close()
            raise APIError(500, f"malformed response from daemon: {e}") from None
        except OSError as e:
            conn.close()
            raise DaemonUnreachable(str(e)) from e
        if resp.status >= 400:
            try:
                body = resp.read()
            finally:
                conn.close()
            raise APIError(resp.status, _error_message(
                body, resp.headers.get("content-type", ""), resp.status, url))
        # After a 101 the socket is the stream (what came with the head is
        # in the response's buffer); a 200 frames it as its body.
        return Hijacked(conn, resp.fp.read1 if resp.status == 101 else resp.read1)


class _Pending:
    def __init__(self, conn: http11.Connection, method: str, url: str):
        self.conn = conn
        self.method = method
        self.url = url


def _file_chunks(f: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = f.read(65536)
        if not chunk:
            return
        yield chunk


def _api_error(resp: Response, method: str, url: str) -> APIError:
    body = b"" if method == "HEAD" else resp.raw.read()
    resp.close()
    return APIError(resp.status, _error_message(
        body, resp.headers.get("Content-Type", ""), resp.status, url))


def _error_message(body: bytes, content_type: str, status: int, url: str) -> str:
    if not body.strip():
        from http import HTTPStatus

        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = str(status)
        return (f"request returned {reason} for API route and version {url}, "
                "check if the server supports the requested API version")
    # Like the docker CLI, only a JSON content type is decoded: a server that
    # forgets the header shows its raw body, as it would to docker.
    if "json" in content_type:
        try:
            decoded = json.loads(body)
            if isinstance(decoded, dict) and "message" in decoded:
                return str(decoded["message"])
        except ValueError:
            pass
    return body.decode("utf-8", "replace").strip()


def _min_version(a: str, b: str) -> str:
    def key(v: str) -> tuple[int, ...]:
        try:
            return tuple(int(p) for p in v.split("."))
        except ValueError:
            return (0,)
    return a if key(a) <= key(b) else b


def decode_path_stat(header: str | None) -> dict[str, Any] | None:
    """Decode ``X-Docker-Container-Path-Stat`` (base64 JSON)."""
    if not header:
        return None
    try:
        return json.loads(base64.b64decode(header))
    except ValueError:
        return None
