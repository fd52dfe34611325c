# -*- test-case-name: dockerpy.test.test_api_stdcopy -*-
"""Docker's stdcopy framing for non-TTY streams: an 8-byte header (stream
byte: 0 stdin, 1 stdout, 2 stderr; three zero bytes; big-endian uint32
length) before each chunk (moby api/pkg/stdcopy)."""

import struct

STREAMS = {"stdin": 0, "stdout": 1, "stderr": 2}
MAX_FRAME = 32 * 1024 * 1024


def frame(stream: str, data: bytes) -> bytes:
    return struct.pack(">BxxxL", STREAMS[stream], len(data)) + data


def deframe(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split as many whole frames as ``buf`` holds; return them and the rest."""
    out = []
    while len(buf) >= 8:
        kind, length = struct.unpack(">BxxxL", buf[:8])
        if len(buf) < 8 + length:
            break
        out.append((kind, buf[8:8 + length]))
        buf = buf[8 + length:]
    return out, buf
