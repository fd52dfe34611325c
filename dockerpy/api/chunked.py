# -*- test-case-name: dockerpy.test.test_api_chunked -*-
"""A decoder of chunked request bodies that costs per read, not per chunk.

The docker CLI sends a build context as a chunked body and writes the tar
as it makes it, so a context of 2,000 small files arrives as ~4,000 chunks
of a few hundred bytes.  twisted.web's ``_ChunkedTransferDecoder`` trims its
buffer from the front at every step (a copy of the rest of the read each
time) and hands every chunk to the request on its own (one write to the
request's spool file per chunk).  Profiled on a cached rebuild, receiving
the body was ~60 % of the daemon's time.

:class:`FastChunkedDecoder` parses the same grammar with one pass over each
read and delivers one piece of data per read.  It keeps Twisted's checks
(chunk-size line length and digits, extension characters, trailer size)
and raises Twisted's own errors, so the channel answers malformed bodies as
before.  :func:`faster` swaps it in for Twisted's decoder; if a Twisted
release renames the private names used here, the channel keeps Twisted's
decoder (slower, still correct).
"""

from __future__ import annotations

try:
    from twisted.web._abnf import _hexint
    from twisted.web.http import (
        _chunkExtChars, _ChunkedTransferDecoder, _MalformedChunkedDataError,
        maxChunkSizeLineLength)
except ImportError:  # pragma: no cover - a Twisted that moved them
    _ChunkedTransferDecoder = None

#: Trailer bytes accepted after the last chunk (Twisted's limit).
MAX_TRAILER = 1 << 16


if _ChunkedTransferDecoder is not None:

    class FastChunkedDecoder(_ChunkedTransferDecoder):
        """Twisted's decoder with a one-pass :meth:`dataReceived`.

        ``state`` and ``length`` keep Twisted's meanings (``noMoreData`` is
        inherited); ``_buffer`` holds only an incomplete size line, CRLF or
        trailer line between reads.
        """

        def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
            if self.state == "FINISHED":
                raise RuntimeError("FastChunkedDecoder.dataReceived called after the "
                                   "last chunk was processed")
            buf = bytes(self._buffer) + data if self._buffer else data
            self._buffer = bytearray()
            pieces: list[bytes] = []
            pos, end = 0, len(buf)
            try:
                pos = self._parse(buf, pos, end, pieces)
            finally:
                if pieces:
                    self.dataCallback(b"".join(pieces))
            if pos < end and self.state != "FINISHED":
                self._buffer = bytearray(buf[pos:])

        def _parse(self, buf: bytes, pos: int, end: int, pieces: list[bytes]) -> int:
            """Consume ``buf[pos:end]``; :return: where the unconsumed tail starts."""
            while pos < end:
                state = self.state
                if state == "BODY":
                    take = min(self.length, end - pos)
                    pieces.append(buf[pos:pos + take])
                    pos += take
                    self.length -= take
                    if self.length == 0:
                        self.state = "CRLF"
                elif state == "CRLF":
                    if end - pos < 2:
                        if buf[pos:end] != b"\r":
                            raise _MalformedChunkedDataError("Chunk did not end with CRLF")
                        return pos
                    if buf[pos:pos + 2] != b"\r\n":
                        raise _MalformedChunkedDataError("Chunk did not end with CRLF")
                    pos += 2
                    self.state = "CHUNK_LENGTH"
                elif state == "CHUNK_LENGTH":
                    eol = buf.find(b"\r\n", pos, pos + maxChunkSizeLineLength + 1)
                    if eol == -1:
                        if end - pos > maxChunkSizeLineLength:
                            raise _MalformedChunkedDataError(
                                f"Chunk size line exceeds maximum of "
                                f"{maxChunkSizeLineLength} bytes.")
                        return pos
                    if eol - pos >= maxChunkSizeLineLength:
                        raise _MalformedChunkedDataError(
                            f"Chunk size line exceeds maximum of "
                            f"{maxChunkSizeLineLength} bytes.")
                    size, _, ext = buf[pos:eol].partition(b";")
                    try:
                        length = _hexint(size)
                    except ValueError:
                        raise _MalformedChunkedDataError(
                            "Chunk-size must be an integer.") from None
                    if ext and ext.translate(None, _chunkExtChars) != b"":
                        raise _MalformedChunkedDataError(
                            f"Invalid characters in chunk extensions: {ext!r}.")
                    pos = eol + 2
                    self.length = length
                    self.state = "BODY" if length else "TRAILER"
                elif state == "TRAILER":
                    eol = buf.find(b"\r\n", pos)
                    if eol == -1:
                        if self._receivedTrailerHeadersSize + end - pos + 1 > MAX_TRAILER:
                            raise _MalformedChunkedDataError(
                                "Trailer headers data is too long.")
                        return pos
                    if eol > pos:
                        self._trailerHeaders.append(bytearray(buf[pos:eol]))
                        self._receivedTrailerHeadersSize += eol - pos + 2
                        if self._receivedTrailerHeadersSize > MAX_TRAILER:
                            raise _MalformedChunkedDataError(
                                "Trailer headers data is too long.")
                        pos = eol + 2
                        continue
                    self.state = "FINISHED"
                    if pieces:
                        self.dataCallback(b"".join(pieces))
                        pieces.clear()
                    self.finishCallback(buf[eol + 2:end])
                    return end
                else:
                    raise RuntimeError(f"unexpected decoder state {state!r}")
            return pos

else:  # pragma: no cover
    FastChunkedDecoder = None


def faster(decoder):
    """:return: a :class:`FastChunkedDecoder` doing ``decoder``'s job if it
    is Twisted's chunked decoder that has seen no data yet, else ``decoder``."""
    if (FastChunkedDecoder is None or type(decoder) is not _ChunkedTransferDecoder
            or decoder.state != "CHUNK_LENGTH" or decoder._buffer):
        return decoder
    return FastChunkedDecoder(decoder.dataCallback, decoder.finishCallback)
