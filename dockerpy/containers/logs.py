# -*- test-case-name: dockerpy.test.test_container_logs -*-
"""The json-file log driver: what a container printed, on disk, as Docker
stores it (one JSON object per line: ``log``, ``stream``, ``time``).

Writes happen on the reactor thread as output arrives (small appends to an
open file, as dockerd's copier does); reads for ``docker logs`` without
``follow`` are cheap enough for the reactor at the sizes we keep, and a
follower subscribes to live output right after reading, in the same turn
of the reactor, so no line is lost or doubled between the two.

A follower (:func:`follow`) ends when the container stops, as dockerd's
does, except across ``docker restart``: it then goes on with the next run
(subscribed before that run's process exists, so its first line is not
missed) and ends when the container stops for good or is removed.
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Callable, Iterator

from twisted.internet import defer, task

from dockerpy import errors
from dockerpy.timeutil import parse_rfc3339, rfc3339

# dockerd splits lines longer than this into partial messages.
MAX_LINE = 16 * 1024

# The bytes json.dumps(..., ensure_ascii=False) escapes, but for "\n" (the
# line ends) and "\r" (every line of a terminal's output; escaped apart).
_ESCAPED = bytes(range(0x0a)) + bytes(range(0x0b, 0x0d)) + bytes(range(0x0e, 0x20)) + b'"\\'


class JSONFileWriter:
    def __init__(self, path: str, clock):
        self.path = path
        self._clock = clock
        self._file = open(path, "ab", buffering=0)
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._partial[stream] + data
        cut = buf.rfind(b"\n") + 1
        whole, rest = buf[:cut], buf[cut:]
        out = []
        now = rfc3339(self._clock.seconds())
        if whole:
            # One decode for all the lines, and one join when there is nothing
            # to escape: json.dumps of a dict per line made the log the
            # bottleneck of a chatty container (3 MB/s).  "\n" never occurs
            # inside a UTF-8 sequence, so the one decode equals per-line ones.
            tail = '\\n","stream":"' + stream + '","time":"' + now + '"}\n'
            text = whole.decode("utf-8", "replace")
            if len(whole.translate(None, _ESCAPED)) == len(whole):
                lines = text.replace("\r", "\\r").split("\n")
                lines.pop()
                out.append(('{"log":"' + (tail + '{"log":"').join(lines) + tail)
                           .encode("utf-8"))
            else:
                lines = text.split("\n")
                lines.pop()
                enc = json.encoder.encode_basestring
                out.append("".join(['{"log":' + enc(line)[:-1] + tail
                                    for line in lines]).encode("utf-8"))
        while len(rest) >= MAX_LINE:
            out.append(_entry(rest[:MAX_LINE], stream, now))
            rest = rest[MAX_LINE:]
        self._partial[stream] = rest
        if out:
            self._file.write(b"".join(out))

    def close(self) -> None:
        if self._file.closed:
            return
        now = rfc3339(self._clock.seconds())
        tail = [_entry(rest, stream, now) for stream, rest in self._partial.items() if rest]
        if tail:
            self._file.write(b"".join(tail))
        self._file.close()


def _entry(data: bytes, stream: str, now: str) -> bytes:
    text = data.decode("utf-8", "replace")
    return (json.dumps({"log": text, "stream": stream, "time": now},
                       ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def read_log(path: str, stdout: bool = True, stderr: bool = True, since: float = 0.0,
             until: float | None = None, tail: int | None = None
             ) -> Iterator[tuple[str, bytes, str]]:
    """Yield ``(stream, data, time)`` entries of a json-file log, filtered.

    :param tail: keep only the last ``tail`` entries (``None``: all).
    """
    if not os.path.exists(path):
        return iter(())
    entries: deque | list
    entries = deque(maxlen=tail) if tail is not None and tail >= 0 else []
    with open(path, "rb") as f:
        for raw in f:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue  # a line cut by a crash
            stream = obj.get("stream")
            if (stream == "stdout" and not stdout) or (stream == "stderr" and not stderr):
                continue
            t = obj.get("time", "")
            if since or until is not None:
                ts = parse_rfc3339(t) if t else 0.0
                if ts < since or (until is not None and ts > until):
                    continue
            entries.append((stream, obj.get("log", "").encode("utf-8"), t))
    if tail == 0:
        return iter(())
    return iter(list(entries))


async def follow(containers, reactor, cid: str, stdout: bool, stderr: bool,
                 emit: Callable[[str, bytes], None]) -> None:
    """Deliver the live output of container ``cid`` to ``emit(stream, data)``
    until it stops (not for a restart) or is removed.

    Cancelling the Deferred of this coroutine (the client went away) stops it.

    :param containers: the :class:`~dockerpy.containers.service.ContainerService`.
    """
    while True:
        ended: defer.Deferred = defer.Deferred()
        att = containers.attach(cid, False, stdout, stderr, emit,
                                lambda: ended.called or ended.callback(None))
        try:
            await ended
        finally:
            att.detach()
        # The end of the process reaches us before the service has taken it
        # off its live containers: look at the container a turn later.
        await task.deferLater(reactor, 0, lambda: None)
        try:
            containers.get(cid)
        except errors.NotFound:
            return
        if not containers.is_restarting(cid):
            return
