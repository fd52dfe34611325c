# -*- test-case-name: dockerpy.test.test_detach -*-
"""Detach keys: the key sequence that ends an attach (or an exec's
attached stream) while the process keeps running.

Docker's format is a comma-separated list of single characters and
``ctrl-<c>`` names (``ctrl-@``, ``ctrl-a`` ... ``ctrl-z``, ``ctrl-[``,
``ctrl-\\``, ``ctrl-]``, ``ctrl-^``, ``ctrl-_``) or ``DEL``, exactly as
``moby/term.ToBytes`` reads it; the default is ``ctrl-p,ctrl-q``.

This module owns the parsing and the matching on stdin bytes.  It is
stdlib only: bin/docker watches for the keys on a terminal, and the daemon
(:mod:`dockerpy.containers.detach`) on the attached streams.
"""

from __future__ import annotations

#: ``ctrl-p`` ``ctrl-q``: Docker's sequence when none is given.
DEFAULT_DETACH_KEYS = b"\x10\x11"

_CTRL_NAMES = ["ctrl-@"] + [f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)] + [
    "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]


def to_bytes(keys: str) -> bytes:
    """The bytes of a key sequence in Docker's format (``"ctrl-p,ctrl-q"``).

    :raises ValueError: an unknown key name (the message is term.ToBytes').
    """
    codes = bytearray()
    for key in keys.split(","):
        raw = key.encode("utf-8")
        if len(raw) == 1:  # Go's len: bytes, so "é" is no single key
            codes += raw
        elif key in _CTRL_NAMES:
            codes.append(_CTRL_NAMES.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


def detach_keys(keys: str | None) -> bytes:
    """The sequence for a request's or an exec's ``DetachKeys`` (empty or
    ``None``: Docker's default).

    :raises ValueError: ``keys`` is malformed.
    """
    if not keys:
        return DEFAULT_DETACH_KEYS
    return to_bytes(keys)


class EscapeFilter:
    """Watches a byte stream for the detach sequence.

    Bytes that could still begin the sequence are held back; when the
    sequence does not complete they are passed on, in order, with what came
    after them.  Unlike Docker's reader, which only recognises the keys when
    each arrives in a read of its own (keystrokes from a raw terminal), the
    sequence is found wherever it falls in the stream, also split across
    writes or inside one (a client that sends ``b"\\x10\\x11"`` at once).
    """

    def __init__(self, keys: bytes) -> None:
        if not keys:
            raise ValueError("empty detach sequence")
        self.keys = keys
        self._held = b""

    @property
    def held(self) -> bytes:
        """Bytes kept back as a possible start of the sequence."""
        return self._held

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Take the next bytes from the client.

        :return: ``(to_pass_on, detached)``: what the process gets now, and
            whether the sequence completed (what followed it is dropped, as
            the attach ends there).
        """
        out = bytearray()
        keys = self.keys
        held = self._held
        for i in range(len(data)):
            held += data[i:i + 1]
            while held and not keys.startswith(held):
                out += held[:1]
                held = held[1:]
            if held == keys:
                self._held = b""
                return bytes(out), True
        self._held = held
        return bytes(out), False

    def flush(self) -> bytes:
        """The held bytes, given up on (stdin ended mid-sequence)."""
        held, self._held = self._held, b""
        return held
