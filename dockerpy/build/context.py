# -*- test-case-name: dockerpy.test.test_build_context -*-
"""The build context on the daemon's side: ``.dockerignore``, COPY/ADD
sources (globs, ``..``, symlinks kept inside the context), their content
hash for the cache, and the tar of what a COPY writes.

The context is a directory the API extracted safely; nothing here reads
outside it: every source path is cleaned and resolved with symlinks
followed *inside* the context (as Docker's ``FollowSymlinkInScope``).
Blocking (file-system work): run it in the thread pool.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from dockerpy.archive import resolve_in_root
from dockerpy.errors import InvalidParameter, NotFound

_CHUNK = 1 << 20


# ---------------------------------------------------------------------------
# Go's filepath.Match, and moby's patternmatcher for .dockerignore


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
    def from_context(cls, context: str) -> "IgnoreMatcher":
        path = os.path.join(context, ".dockerignore")
        if os.path.islink(path) or not os.path.isfile(path):
            return cls([])
        with open(path, encoding="utf-8", errors="replace") as f:
            return cls(f.read().splitlines())

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


# ---------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class Source:
    """One COPY source inside the context (or a stage's root)."""

    rel: str          # as matched, relative to the root ("." for the root)
    path: str         # host path (symlinks of the parents resolved in the root)
    is_dir: bool


def _clean_source(src: str) -> str:
    cleaned = posixpath.normpath("/" + src).lstrip("/") or "."
    rel = posixpath.normpath(src.lstrip("/")) if not src.startswith("/") else cleaned
    if rel == ".." or rel.startswith("../"):
        raise InvalidParameter(f"forbidden path outside the build context: {src} ()")
    return cleaned


def _walk(root: str, ignore: IgnoreMatcher | None) -> Iterable[str]:
    """Every context-relative path, parents first (ignored ones left out)."""
    stack = [""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        try:
            names = sorted(os.listdir(full), reverse=True)
        except OSError:
            continue
        for name in names:
            child = f"{rel}/{name}" if rel else name
            if ignore is not None and ignore.can_skip_dir(child):
                continue
            yield child
            if os.path.isdir(os.path.join(root, child)) and not os.path.islink(
                    os.path.join(root, child)):
                stack.append(child)


def resolve_sources(root: str, src: str, ignore: IgnoreMatcher | None,
                    what: str = "build context") -> list[Source]:
    """The sources a COPY/ADD argument names: a path or a Go glob.

    :raises InvalidParameter: ``..`` climbing out of the context.
    :raises NotFound: nothing matches, worded as Docker words it.
    """
    cleaned = _clean_source(src)
    out: list[Source] = []
    if has_glob(cleaned):
        regex = go_match_regex(cleaned)
        for rel in _walk(root, ignore):
            if regex.match(rel) and not (ignore and ignore.matches(rel)):
                host = resolve_in_root(root, rel)
                if os.path.exists(host):
                    out.append(Source(rel, host, os.path.isdir(host)))
        if not out:
            raise NotFound("COPY failed: no source files were specified")
        return out
    host = resolve_in_root(root, cleaned)
    if (ignore is not None and cleaned != "." and ignore.matches(cleaned)) or \
            not os.path.lexists(host):
        raise NotFound(f"COPY failed: file not found in {what} or excluded by "
                       f".dockerignore: stat {src}: file does not exist")
    return [Source(cleaned, host, os.path.isdir(host))]


# ---------------------------------------------------------------------------
# What a COPY writes


@dataclass(frozen=True)
class Entry:
    """One file system entry a COPY creates, relative to the destination root."""

    arcname: str
    host: str
    kind: str          # "dir", "file", "symlink"
    mode: int
    link: str = ""


def _entries_of(source: Source, target: str, root: str,
                ignore: IgnoreMatcher | None) -> list[Entry]:
    """Entries for one source copied to ``target`` (a path below ``/``,
    without leading slash): a directory's *contents* go to ``target``."""
    out: list[Entry] = []
    if not source.is_dir:
        st = os.stat(source.path)
        out.append(Entry(target, source.path, "file", stat.S_IMODE(st.st_mode)))
        return out
    # Docker makes the destination directory itself 0755 (the source
    # directory's own mode is not copied, only its contents').
    out.append(Entry(target, source.path, "dir", 0o755))
    base_rel = "" if source.rel == "." else source.rel
    stack = [(source.path, target, base_rel)]
    while stack:
        host_dir, arc_dir, rel_dir = stack.pop()
        for name in sorted(os.listdir(host_dir)):
            host = os.path.join(host_dir, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if ignore is not None and ignore.matches(rel):
                if os.path.isdir(host) and not os.path.islink(host) and any(
                        ex for _, ex in ignore.patterns):
                    stack.append((host, f"{arc_dir}/{name}", rel))  # a ! rule may apply below
                continue
            arc = f"{arc_dir}/{name}" if arc_dir else name
            lst = os.lstat(host)
            if stat.S_ISLNK(lst.st_mode):
                out.append(Entry(arc, host, "symlink", 0o777, os.readlink(host)))
            elif stat.S_ISDIR(lst.st_mode):
                out.append(Entry(arc, host, "dir", stat.S_IMODE(lst.st_mode)))
                stack.append((host, arc, rel))
            elif stat.S_ISREG(lst.st_mode):
                out.append(Entry(arc, host, "file", stat.S_IMODE(lst.st_mode)))
    return out


def plan_copy(root: str, sources: list[Source], dest: str, workdir: str,
              ignore: IgnoreMatcher | None) -> list[Entry]:
    """Docker's destination rules: a destination ending in ``/`` (or several
    sources) is a directory; a file source to a plain path is that file; a
    directory source copies its contents.  ``dest`` relative to ``workdir``.

    :return: entries named relative to ``/`` (no leading slash).
    :raises InvalidParameter: several sources without a directory destination.
    """
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    dest_is_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "/")
    target = posixpath.normpath(dest).lstrip("/")
    if len(sources) > 1 and not dest_is_dir:
        raise InvalidParameter(
            "When using COPY with more than one source file, the destination must be a "
            "directory and end with a /")
    entries: list[Entry] = []
    for source in sources:
        if source.is_dir:
            entries.extend(_entries_of(source, target, root, ignore))
        else:
            name = posixpath.basename(source.rel) if source.rel != "." else ""
            arc = posixpath.join(target, name) if dest_is_dir else target
            entries.extend(_entries_of(source, arc, root, ignore))
    return entries


def content_hash(entries: list[Entry], owner: tuple[int, int] | None,
                 chmod: int | None) -> str:
    """Names, kinds, modes, ownership and content of what a COPY writes
    (never times): the cache key's view of the files."""
    h = hashlib.sha256()
    h.update(repr((owner, chmod)).encode())
    for e in entries:
        h.update(f"\0{e.arcname}\0{e.kind}\0{e.mode:o}\0{e.link}\0".encode(
            "utf-8", "surrogateescape"))
        if e.kind == "file":
            with open(e.host, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
    return h.hexdigest()


def write_entries_tar(entries: list[Entry], out: BinaryIO, owner: tuple[int, int] | None,
                      chmod: int | None, skip_dirs: set[str] = frozenset()) -> None:
    """A plain tar of ``entries`` (root-relative names), owned by ``owner``
    (root by default), modes replaced by ``chmod`` when given."""
    uid, gid = owner or (0, 0)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            if e.kind == "dir" and e.arcname in skip_dirs:
                continue
            if not e.arcname:
                continue
            info = tarfile.TarInfo(e.arcname)
            info.uid, info.gid = uid, gid
            info.uname = info.gname = ""
            st = os.stat(e.host, follow_symlinks=e.kind != "symlink")
            info.mtime = int(st.st_mtime)
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = chmod if chmod is not None else e.mode
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e.link
                info.mode = 0o777
                tar.addfile(info)
            else:
                info.mode = chmod if chmod is not None else e.mode
                with open(e.host, "rb") as f:
                    info.size = os.fstat(f.fileno()).st_size
                    tar.addfile(info, f)


def is_archive(path: str) -> bool:
    """ADD's test for a local archive to extract: a tar, maybe compressed."""
    from dockerpy.images.store import open_decompressed

    try:
        with open(path, "rb") as raw:
            stream = open_decompressed(raw)
            head = stream.read(tarfile.BLOCKSIZE)
    except Exception:
        return False
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
