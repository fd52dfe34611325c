"""Detach keys: Docker's format and the matching on stdin (no root)."""

from __future__ import annotations

from twisted.trial import unittest

from dockerpy import errors
from dockerpy.client.detachkeys import DEFAULT_DETACH_KEYS, EscapeFilter, detach_keys, to_bytes
from dockerpy.containers.detach import attach_keys, exec_keys


class FormatTests(unittest.SynchronousTestCase):
    def test_ctrl_names_letters_and_del(self):
        self.assertEqual(to_bytes("ctrl-p,ctrl-q"), b"\x10\x11")
        self.assertEqual(to_bytes("ctrl-a,x"), b"\x01x")
        self.assertEqual(to_bytes("ctrl-@"), b"\x00")
        self.assertEqual(to_bytes("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_"),
                         b"\x1b\x1c\x1d\x1e\x1f")
        self.assertEqual(to_bytes("DEL,a"), b"\x7fa")

    def test_unknown_names_are_refused_as_moby_term_does(self):
        for bad in ("ctrl-P", "ctrl-", "ctrl-1", "ab", "", "a,,b", "ctrl-p, ctrl-q", "é"):
            self.assertRaises(ValueError, to_bytes, bad)

    def test_empty_means_the_default(self):
        self.assertEqual(detach_keys(""), DEFAULT_DETACH_KEYS)
        self.assertEqual(detach_keys(None), b"\x10\x11")

    def test_errors_carry_dockers_messages(self):
        e = self.assertRaises(errors.InvalidParameter, attach_keys, "ctrl-Z")
        self.assertEqual(e.message, "Invalid detach keys (ctrl-Z) provided")
        e = self.assertRaises(errors.InvalidParameter, exec_keys, "nope")
        self.assertEqual(e.message, "Invalid escape keys (nope) provided")


class EscapeFilterTests(unittest.SynchronousTestCase):
    def test_sequence_in_one_write_detaches_and_passes_what_came_before(self):
        f = EscapeFilter(b"\x10\x11")
        self.assertEqual(f.feed(b"ls\r\x10\x11after"), (b"ls\r", True))

    def test_sequence_split_across_writes(self):
        f = EscapeFilter(b"\x10\x11")
        self.assertEqual(f.feed(b"a\x10"), (b"a", False))
        self.assertEqual(f.held, b"\x10")
        self.assertEqual(f.feed(b"\x11"), (b"", True))

    def test_partial_sequence_is_passed_through_when_it_does_not_complete(self):
        f = EscapeFilter(b"\x10\x11")
        self.assertEqual(f.feed(b"\x10"), (b"", False))
        self.assertEqual(f.feed(b"x"), (b"\x10x", False))
        self.assertEqual(f.feed(b"\x10\x10"), (b"\x10", False))
        self.assertEqual(f.feed(b"\x11"), (b"", True))

    def test_overlapping_prefixes_are_found(self):
        f = EscapeFilter(b"aab")
        self.assertEqual(f.feed(b"xaaab"), (b"xa", True))

    def test_flush_gives_back_the_held_bytes(self):
        f = EscapeFilter(b"\x01x")
        self.assertEqual(f.feed(b"q\x01"), (b"q", False))
        self.assertEqual(f.flush(), b"\x01")
        self.assertEqual(f.held, b"")

    def test_single_key_sequence(self):
        f = EscapeFilter(b"\x1d")
        self.assertEqual(f.feed(b"abc\x1d"), (b"abc", True))
