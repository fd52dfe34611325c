# -*- test-case-name: dockerpy.test.test_exec_api -*-
"""Exec routes (``/containers/{id}/exec``, ``/exec/...``) and the JSON
shapes Docker sends for exec instances.

``POST /exec/{id}/start`` without ``Detach`` takes over the connection the
way attach does (``101 UPGRADED`` or the old ``200 OK`` raw stream): client
bytes are the process's stdin, its output goes back stdcopy-framed (raw with
a TTY), and the connection closes once the process ended and its exit code
can be read from ``GET /exec/{id}/json``, or when the client typed the
exec's detach keys (with a TTY; the process keeps running).
"""

from __future__ import annotations

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger

from dockerpy import errors
from dockerpy.api.app import api_version, query_int, read_json, write_json
from dockerpy.api.containers import MULTIPLEXED_STREAM, RAW_STREAM
from dockerpy.api.hijack import AttachStream, hijack_request
from dockerpy.containers.detach import exec_keys, publish_detach
from dockerpy.containers.exec import console_size
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)


class _ExecAttachment:
    """What :class:`AttachStream` drives: one client's stdin into an exec; a
    client that goes away stops its output, never the process (as Docker)."""

    def __init__(self, execs, session) -> None:
        self._execs, self._session = execs, session
        self.gone = False

    def write_stdin(self, data: bytes) -> None:
        self._execs.write_stdin(self._session, data)

    def close_stdin(self) -> None:
        # With a TTY Docker ends the client's stream, not the process's stdin.
        if not self._session.tty:
            self._execs.close_stdin(self._session)

    def detach(self) -> None:
        self.gone = True


def install(app: Klein, daemon=None) -> None:
    execs = lambda: daemon.execs  # noqa: E731 (built after start-up)

    @app.route("/containers/<string:cid>/exec", methods=["POST"])
    def post_containers_exec(request, cid):
        body = read_json(request, required=True)
        session = execs().create(cid, body)
        return write_json(request, {"Id": session.id}, 201)

    @app.route("/exec/<string:id>/json", methods=["GET"])
    def get_exec_json(request, id):  # noqa: A002 (swagger's name)
        eid = id
        return write_json(request, execs().get(eid).inspect())

    @app.route("/exec/<string:id>/resize", methods=["POST"])
    def post_exec_resize(request, id):  # noqa: A002
        eid = id
        height, width = query_int(request, "h", 0), query_int(request, "w", 0)
        if height is None or width is None or height < 0 or width < 0:
            raise errors.InvalidParameter("invalid resize dimensions")
        execs().resize(eid, height, width)
        request.setResponseCode(200)
        return b""

    @app.route("/exec/<string:id>/start", methods=["POST"])
    def post_exec_start(request, id):  # noqa: A002
        eid = id
        body = read_json(request)
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: exec start config must be an object")
        tty = body.get("Tty")
        session = execs().check_startable(eid)
        size = console_size(body.get("ConsoleSize"))
        if body.get("Detach"):
            async def detached():
                await execs().start(eid, tty, size=size)
                request.setResponseCode(200)
                return b""
            return defer.ensureDeferred(detached())
        is_tty = session.tty or bool(tty)

        def detached() -> None:
            try:
                rec = execs().containers.get(session.container_id)
            except errors.NotFound:
                return
            publish_detach(getattr(daemon, "events", None), rec, "exec_detach",
                           execID=session.id)

        proto = AttachStream(is_tty, True, exec_keys(session.detach_keys) if is_tty else None,
                             detached)
        att = _ExecAttachment(execs(), session)
        proto.attachment = att

        def output(stream: str, data: bytes) -> None:
            if not att.gone:
                proto.output(stream, data)

        content_type = RAW_STREAM if is_tty or api_version(request) < (1, 42) \
            else MULTIPLEXED_STREAM
        hijack_request(request, proto, content_type)
        d = defer.ensureDeferred(execs().start(eid, tty, output, proto.end, size))

        def failed(f):
            # Docker writes why the exec could not start into the stream (the
            # CLI shows it) and records 126/127 as the exit code.
            message = f.value.message if isinstance(f.value, errors.DockerError) \
                else str(f.value)
            if not isinstance(f.value, errors.DockerError):
                log.failure("exec start of {eid} failed", f, eid=eid)
            output("stdout", (message + "\r\n").encode())
            proto.end()

        d.addErrback(failed)
        return defer.Deferred()  # never fires: the connection is the stream's now
