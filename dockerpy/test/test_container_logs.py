"""The json-file log writer and reader (no root)."""

from __future__ import annotations

import json
import os

from twisted.internet.task import Clock
from twisted.trial import unittest

from dockerpy.containers.logs import MAX_LINE, JSONFileWriter, read_log


class JSONFileWriterTests(unittest.TestCase):
    def writer(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000.5)
        path = os.path.join(self.mktemp())
        w = JSONFileWriter(path, self.clock)
        self.addCleanup(w.close)
        return w, path

    def entries(self, path):
        with open(path, "rb") as f:
            return [json.loads(line) for line in f]

    def test_each_line_is_one_entry_as_json_dumps_would_write_it(self):
        w, path = self.writer()
        odd = 'quote " back \\ tab \t bell \x07 é 漢 \U0001f600 <&>'
        w.write("stdout", b"a\nb")
        w.write("stdout", ("c\n" + odd + "\n").encode())
        w.write("stderr", b"\xff\xfebad utf-8\n")
        w.close()
        got = self.entries(path)
        self.assertEqual([(e["stream"], e["log"]) for e in got],
                         [("stdout", "a\n"), ("stdout", "bc\n"), ("stdout", odd + "\n"),
                          ("stderr", "\ufffd\ufffdbad utf-8\n")])
        with open(path, "rb") as f:
            raw = f.read().splitlines()
        expected = json.dumps({"log": odd + "\n", "stream": "stdout", "time": got[2]["time"]},
                              ensure_ascii=False, separators=(",", ":")).encode()
        self.assertEqual(raw[2], expected)

    def test_terminal_lines_keep_their_carriage_returns(self):
        w, path = self.writer()
        w.write("stdout", b"one\r\ntwo \xc3\xa9\r\n")
        w.write("stdout", b'three "q"\r\n')
        w.close()
        self.assertEqual([e["log"] for e in self.entries(path)],
                         ["one\r\n", "two \u00e9\r\n", 'three "q"\r\n'])
        with open(path, "rb") as f:
            first = f.readline()
        self.assertTrue(first.startswith(b'{"log":"one\\r\\n","stream":"stdout","time":"'),
                        first)

    def test_long_lines_are_split_and_the_tail_is_kept_at_close(self):
        w, path = self.writer()
        w.write("stdout", b"x" * (MAX_LINE + 10))
        w.write("stdout", b"y\nz")
        w.close()
        logs = [e["log"] for e in self.entries(path)]
        self.assertEqual(logs, ["x" * MAX_LINE, "x" * 10 + "y\n", "z"])
        self.assertEqual([d for _, d, _ in read_log(path)],
                         [b"x" * MAX_LINE, b"x" * 10 + b"y\n", b"z"])
