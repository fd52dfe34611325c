# -*- test-case-name: dockerpy.test.test_build_conformance -*-
"""``docker build`` conformance: each case of ``dockerpy/test/build_corpus``
built on dockerpy with the real docker CLI (legacy builder,
DOCKER_BUILDKIT=0) must give what Docker 20.10 gave for it
(``expected.json``): image config, history (``created_by``, empty layers),
the listed files of the exported root file system, and the step lines.

Ids, timestamps and the content hashes Docker writes into COPY/ADD
history entries (``file:<sha256>``, a tarsum of Docker's own) are not
compared; everything else is.
"""

from __future__ import annotations

import re
import shutil
import tempfile

from dockerpy.test import build_corpus
from dockerpy.test.daemon_fixture import DOCKER_CLI, DaemonTestCase

_HASH = re.compile(r"(file|dir|multi):[0-9a-f]{64}")


def normalize(result: dict) -> dict:
    """Drop what may legitimately differ between engines."""
    out = {k: v for k, v in result.items() if k != "generated_with"}
    if "history" in out:
        out["history"] = [dict(h, created_by=_HASH.sub(r"\1:<hash>", h["created_by"]))
                          for h in out["history"]]
    if "targets" in out:
        out["targets"] = {k: normalize(v) for k, v in out["targets"].items()}
    return out


class BuildConformanceTests(DaemonTestCase):
    """One test per corpus case; see the module docstring."""

    maxDiff = None

    def setUp(self) -> None:
        self.daemon = self.start_daemon(cli=True)
        config_dir = tempfile.mkdtemp(prefix="corpus-cli-")
        self.addCleanup(shutil.rmtree, config_dir, True)
        self.docker = build_corpus.cli(self.daemon.host, config_dir, DOCKER_CLI)

    def check(self, case: str, adjust=None) -> None:
        want = normalize(build_corpus.expected(case))
        if adjust is not None:
            adjust(want)
        got = normalize(build_corpus.run_case(self.docker, case))
        differ = [key for key in sorted(set(want) | set(got)) if got.get(key) != want.get(key)]
        for key in differ:
            # Report every differing part, not only the first.
            self.assertEqual(got.get(key), want.get(key),
                             f"{case}: {key} differs (also: {', '.join(differ)})")

    def test_add_tar(self) -> None:
        self.check("add_tar")

    def test_cmd_entrypoint(self) -> None:
        self.check("cmd_entrypoint")

    def test_copy_semantics(self) -> None:
        self.check("copy_semantics")

    def test_env_arg(self) -> None:
        self.check("env_arg")

    def test_escape_directive(self) -> None:
        self.check("escape_directive")

    def test_meta(self) -> None:
        self.check("meta")

    def test_multistage(self) -> None:
        """Docker 20.10's legacy builder also runs the stage nothing uses
        ("unused"); issue 3 asks that only the stages needed are built (as
        BuildKit does), so its two steps are dropped from the expected step
        lines and the rest renumbered; everything else must match."""
        skipped = ("FROM busybox AS unused", "RUN echo never > /never")

        def renumber(result: dict) -> None:
            steps = [s.split(" : ", 1)[1] for s in result["steps"] if s.startswith("Step ")]
            steps = [s for s in steps if s not in skipped]
            result["steps"] = [f"Step {i}/{len(steps)} : {s}" for i, s in enumerate(steps, 1)]

        def without_unused_stage(want: dict) -> None:
            renumber(want)
            for target in want.get("targets", {}).values():
                renumber(target)

        self.check("multistage", without_unused_stage)

    def test_run_layers(self) -> None:
        self.check("run_layers")

    def test_every_case_has_a_test(self) -> None:
        self.assertEqual(sorted(n[5:] for n in dir(self) if n.startswith("test_")
                                and n != "test_every_case_has_a_test"),
                         build_corpus.cases())
