# -*- test-case-name: dockerpy.test.test_build_units -*-
"""``.dockerignore`` rules (moby's patternmatcher) and Go's ``filepath.Match``
as regular expressions.  Standard library only: bin/docker imports it to
walk a context, and must start fast.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat

from dockerpy.errors import InvalidParameter

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Iterable


def _class(pattern: str, i: int) -> tuple[str, int]:
    j = i + 1
    neg = False
    if j < len(pattern) and pattern[j] == "^":
        neg, j = True, j + 1
    out = []
    first = True
    while j < len(pattern) and (pattern[j] != "]" or first):
        c = pattern[j]
        first = False
        if c == "\\" and j + 1 < len(pattern):
            out.append(re.escape(pattern[j + 1]))
            j += 2
            continue
        out.append(c if c == "-" else re.escape(c))
        j += 1
    if j >= len(pattern):
        raise InvalidParameter(f"syntax error in pattern {pattern!r}")
    return ("[^" if neg else "[") + "".join(out) + "]", j + 1


def go_match_regex(pattern: str, double_star: bool = False) -> re.Pattern:
    """Go's ``filepath.Match`` as a regex; with ``double_star`` moby's
    patternmatcher extension (``**`` spans directories)."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if double_star and pattern[i:i + 2] == "**":
                i += 2
                while i < len(pattern) and pattern[i] == "*":
                    i += 1
                if i >= len(pattern):
                    out.append(".*")
                else:
                    if pattern[i] == "/":
                        i += 1
                    out.append("(.*/)?")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            cls, i = _class(pattern, i)
            out.append(cls)
            continue
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


def has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


class IgnoreMatcher:
    """``.dockerignore`` rules: patterns in order, ``!`` re-includes, a
    pattern matching a parent directory matches everything below it."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.patterns: list[tuple[re.Pattern, bool]] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = posixpath.normpath(line).lstrip("/") if line not in ("", "/") else "."
            if not line:
                continue
            self.patterns.append((go_match_regex(line, double_star=True), exclusion))

    @classmethod
    def from_context(cls, context) -> "IgnoreMatcher":
        """The rules of the context's ``.dockerignore``: ``context`` is a
        directory path or a tree of `dockerpy.build.context`."""
        if isinstance(context, str):
            try:
                with open(os.path.join(context, ".dockerignore"), "rb") as f:
                    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                        return cls([])
                    data = f.read()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return cls([])
            return cls(data.decode("utf-8", "replace").splitlines())
        tree = context
        handle = tree.join(tree.resolve(""), ".dockerignore")
        meta = tree.lstat(handle)
        if meta is None or meta.kind != "file":
            return cls([])
        with tree.open(handle) as f:
            return cls(f.read().decode("utf-8", "replace").splitlines())

    def matches(self, rel: str) -> bool:
        """Whether the context-relative path ``rel`` is excluded."""
        if not self.patterns:
            return False
        parts = rel.split("/")
        matched = False
        for regex, exclusion in self.patterns:
            if exclusion != matched:
                continue
            hit = bool(regex.match(rel))
            if not hit and len(parts) > 1:
                for i in range(1, len(parts)):
                    if regex.match("/".join(parts[:i])):
                        hit = True
                        break
            if hit:
                matched = not exclusion
        return matched

    def can_skip_dir(self, rel: str) -> bool:
        """A directory that is excluded with no ``!`` rule able to bring back
        something below it."""
        return self.matches(rel) and not any(ex for _, ex in self.patterns)
