# -*- test-case-name: dockerpy.test.test_build_units -*-
"""Dockerfile parsing, word expansion, .dockerignore and COPY planning."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial import unittest

from dockerpy.build import context as ctx
from dockerpy.build.builder import go_duration, go_quote_list, parse_duration
from dockerpy.build.cache import BuildCache, step_key
from dockerpy.build.parser import parse, parse_text
from dockerpy.build.shell import expand_word, expand_words
from dockerpy.errors import InvalidParameter, NotFound

ENV = {"A": "a", "EMPTY": "", "SP": "x  y"}


class ExpandWordTests(unittest.SynchronousTestCase):
    CASES = [
        ("$A", "a"), ("${A}", "a"), ("pre${A}post", "preapost"),
        ("$NOPE", ""), ("${NOPE:-def}", "def"), ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""), ("${A:-def}", "a"), ("${A:+alt}", "alt"),
        ("${NOPE:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${EMPTY:+alt}", ""),
        ("'$A'", "$A"), ('"$A"', "a"), ('"\\$A"', "$A"), ("\\$A", "$A"),
        ('"a\\b"', "a\\b"), ("a b", "a b"), ("$", "$"), ("$1", "$1"),
        ("${NOPE:-${A}}", "a"), ('"x y"', "x y"), ("\\\\", "\\"),
    ]

    def test_table(self):
        for text, want in self.CASES:
            self.assertEqual(expand_word(text, ENV), want, text)

    def test_backtick_escape(self):
        self.assertEqual(expand_word("`$A", ENV, "`"), "$A")
        self.assertEqual(expand_word("C:\\dir", ENV, "`"), "C:\\dir")

    def test_errors(self):
        for text in ("'open", '"open', "${A", "${NOPE:?must be set}", "${A%x}"):
            self.assertRaises(InvalidParameter, expand_word, text, ENV)


class ExpandWordsTests(unittest.SynchronousTestCase):
    CASES = [
        ("a b  c", ["a", "b", "c"]),
        ('"a b" c', ["a b", "c"]),
        ("$SP", ["x", "y"]),
        ('"$SP"', ["x  y"]),
        ("p$SP", ["px", "y"]),
        ("80/tcp $A", ["80/tcp", "a"]),
        ("$EMPTY", []),
    ]

    def test_table(self):
        for text, want in self.CASES:
            self.assertEqual(expand_words(text, ENV), want, text)


class ParserTests(unittest.SynchronousTestCase):
    def test_release_note_example_lowercase_tabs(self):
        df = parse("from\tbusybox\nrun\tmkdir -p /var/log/supervisor\n"
                   "add\tsupervisord.conf\t/etc/supervisor/conf.d/supervisord.conf\n")
        self.assertEqual(len(df.stages), 1)
        self.assertEqual(df.stages[0].base, "busybox")
        cmds = [(i.cmd, i.value) for i in df.stages[0].instructions]
        self.assertEqual(cmds, [
            ("run", ("mkdir -p /var/log/supervisor",)),
            ("add", ("supervisord.conf", "/etc/supervisor/conf.d/supervisord.conf"))])
        self.assertEqual(df.total_steps(), 3)

    def test_escape_directive_and_continuation(self):
        df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n# comment\nCMD [\"x\"]\n")
        self.assertEqual(df.escape, "`")
        run, cmd = df.stages[0].instructions
        self.assertEqual(run.value, ("echo a   b",))
        self.assertTrue(cmd.json)
        self.assertEqual(cmd.value, ("x",))

    def test_meta_args_and_stages(self):
        df = parse("ARG V=1\nFROM busybox AS Build\nRUN x\nFROM scratch\n"
                   "COPY --from=build /a /b\n")
        self.assertEqual([a.value for a in df.meta_args], [("V=1",)])
        self.assertEqual([s.name for s in df.stages], ["build", None])
        self.assertEqual(df.stages[1].instructions[0].flag("from"), "build")
        self.assertEqual(df.total_steps(), 5)

    def test_env_label_pairs(self):
        env, label = parse_text("ENV A=1 B=\"2 3\"\nLABEL x y\n")
        self.assertEqual(env.value, ("A", "1", "B", '"2 3"'))
        self.assertEqual(label.value, ("x", "y"))

    def test_errors(self):
        for text, message in [
                ("FROM busybox\nFOO bar\n", "unknown instruction: FOO"),
                ("RUN x\n", "from"),
                ("FROM a\nONBUILD FROM b\n", "isn't allowed as an ONBUILD trigger"),
                ("FROM a b\n", "FROM requires either one or three arguments")]:
            e = self.assertRaises(InvalidParameter, parse, text)
            self.assertIn(message, e.message)

    def test_heredoc(self):
        (run,) = parse_text("RUN <<EOF\necho hi\nEOF\n")
        self.assertEqual(run.heredocs[0].content, "echo hi\n")


class GoFormatTests(unittest.SynchronousTestCase):
    def test_quote_list_is_go_percent_q(self):
        self.assertEqual(go_quote_list(["/bin/sh", "-c", 'echo "hi"']),
                         '["/bin/sh" "-c" "echo \\"hi\\""]')

    def test_durations(self):
        self.assertEqual(parse_duration("1m30s", "x"), 90 * 10**9)
        self.assertEqual(go_duration(90 * 10**9), "1m30s")
        self.assertEqual(go_duration(5 * 10**9), "5s")
        self.assertEqual(go_duration(0), "0s")
        self.assertRaises(InvalidParameter, parse_duration, "5 parsecs", "x")


class IgnoreTests(unittest.SynchronousTestCase):
    CASES = [
        (["*.log"], "a.log", True), (["*.log"], "d/a.log", False),
        (["**/*.log"], "d/e/a.log", True), (["**/*.log"], "a.log", True),
        (["d"], "d/e/f", True), (["/d/"], "d/x", True),
        (["*.md", "!README.md"], "README.md", False), (["*.md", "!README.md"], "x.md", True),
        (["d", "!d/keep"], "d/keep", False), (["d", "!d/keep"], "d/other", True),
        (["a?c"], "abc", True), (["[a-c]x"], "bx", True), (["[!a]x"], "bx", False),
        (["# comment", ""], "# comment", False),
    ]

    def test_table(self):
        for lines, path, want in self.CASES:
            self.assertEqual(ctx.IgnoreMatcher(lines).matches(path), want, (lines, path))


class ContextTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root, True)
        self.outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.outside, True)
        with open(os.path.join(self.outside, "secret"), "w") as f:
            f.write("secret")
        os.makedirs(os.path.join(self.root, "dir", "sub"))
        for name in ("a.txt", "b.txt", "dir/c", "dir/sub/d"):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(name)
        os.symlink(os.path.join(self.outside, "secret"), os.path.join(self.root, "evil"))

    def test_dotdot_is_forbidden(self):
        e = self.assertRaises(InvalidParameter, ctx.resolve_sources, self.root, "../x", None)
        self.assertIn("outside the build context", e.message)

    def test_symlink_out_of_context_stays_inside(self):
        e = self.assertRaises(NotFound, ctx.resolve_sources, self.root, "evil", None)
        self.assertIn("file not found in build context", e.message)

    def test_glob_and_ignore(self):
        found = ctx.resolve_sources(self.root, "*.txt", ctx.IgnoreMatcher(["b.txt"]))
        self.assertEqual([s.rel for s in found], ["a.txt"])

    def test_plan_directory_contents_and_files(self):
        srcs = ctx.resolve_sources(self.root, "dir", None)
        entries = ctx.plan_copy(self.root, srcs, "/x", "/", None)
        self.assertEqual(sorted(e.arcname for e in entries),
                         ["x", "x/c", "x/sub", "x/sub/d"])
        srcs = ctx.resolve_sources(self.root, "a.txt", None)
        self.assertEqual([e.arcname for e in ctx.plan_copy(self.root, srcs, "rel/", "/w",
                                                            None)], ["w/rel/a.txt"])
        self.assertEqual([e.arcname for e in ctx.plan_copy(self.root, srcs, "/f", "/",
                                                            None)], ["f"])

    def test_several_sources_need_a_directory(self):
        srcs = ctx.resolve_sources(self.root, "*.txt", None)
        self.assertRaises(InvalidParameter, ctx.plan_copy, self.root, srcs, "/f", "/", None)

    def test_content_hash_ignores_mtime_but_not_content_or_mode(self):
        srcs = ctx.resolve_sources(self.root, "dir", None)
        plan = lambda: ctx.plan_copy(self.root, srcs, "/x", "/", None)  # noqa: E731
        h1 = ctx.content_hash(plan(), None, None)
        os.utime(os.path.join(self.root, "dir", "c"), (1, 1))
        self.assertEqual(ctx.content_hash(plan(), None, None), h1)
        self.assertNotEqual(ctx.content_hash(plan(), (1, 1), None), h1)
        os.chmod(os.path.join(self.root, "dir", "c"), 0o600)
        h2 = ctx.content_hash(plan(), None, None)
        self.assertNotEqual(h2, h1)
        with open(os.path.join(self.root, "dir", "c"), "w") as f:
            f.write("changed")
        self.assertNotEqual(ctx.content_hash(plan(), None, None), h2)


class CacheTests(unittest.SynchronousTestCase):
    def test_survives_reopen_and_ignores_gone_images(self):
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root, True)
        key = step_key("sha256:p", "RUN x", ["A=1"])
        self.assertNotEqual(key, step_key("sha256:p", "RUN x", ["A=2"]))
        BuildCache(root).put(key, "sha256:img")
        self.assertEqual(BuildCache(root).get(key, lambda i: True), "sha256:img")
        self.assertIsNone(BuildCache(root).get(key, lambda i: False))
        self.assertEqual(BuildCache(root).entries(), {})

    def test_an_entry_a_crash_left_empty_is_a_miss_and_is_dropped(self):
        # Entries are written without fsync: a crash may leave one empty.
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root, True)
        key = step_key("sha256:p", "RUN y")
        open(os.path.join(root, key), "w").close()
        self.assertIsNone(BuildCache(root).get(key, lambda i: True))
        self.assertEqual(os.listdir(root), [])
