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
import io
import mmap
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from dockerpy.archive import resolve_components, resolve_in_root
from dockerpy.errors import InvalidParameter, NotFound
from dockerpy.storage.layertar import stamp_checksum

_CHUNK = 1 << 20
_MAX_SYMLINKS = 255


# ---------------------------------------------------------------------------
# Trees: where sources are read from.  A `DiskTree` is a directory (a
# stage's mounted root); a `TarTree` is the build context tar itself,
# indexed by member offsets so that nothing is extracted to disk: a cached
# rebuild only hashes the bytes it needs, and a COPY that runs streams them
# from the tar into the container's root.  Handles are opaque: host paths
# for a DiskTree, root-relative paths for a TarTree.


@dataclass(frozen=True)
class Meta:
    """What the planner needs of one entry (``kind``: dir, file, symlink, other)."""

    kind: str
    mode: int
    size: int = 0
    mtime: float = 0
    link: str = ""


def _meta_of(st: os.stat_result, link: str = "") -> Meta:
    mode = st.st_mode
    kind = ("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode)
            else "symlink" if stat.S_ISLNK(mode) else "other")
    return Meta(kind, stat.S_IMODE(mode), st.st_size, st.st_mtime, link)


class DiskTree:
    """Sources in a host directory; handles are host paths."""

    def __init__(self, root: str) -> None:
        self.root = root

    def resolve(self, rel: str) -> str:
        return resolve_in_root(self.root, rel)

    def join(self, handle: str, name: str) -> str:
        return os.path.join(handle, name)

    def lstat(self, handle: str) -> Meta | None:
        try:
            st = os.lstat(handle)
        except OSError:
            return None
        return _meta_of(st, os.readlink(handle) if stat.S_ISLNK(st.st_mode) else "")

    def stat(self, handle: str) -> Meta | None:
        try:
            return _meta_of(os.stat(handle))
        except OSError:
            return None

    def listdir(self, handle: str) -> list[str]:
        return os.listdir(handle)

    def open(self, handle: str) -> BinaryIO:
        return open(handle, "rb")


class _Node:
    __slots__ = ("kind", "mode", "size", "mtime", "link", "offset", "reader", "children")

    def __init__(self, kind: str, mode: int, mtime: float, size: int = 0, link: str = "",
                 offset: int = 0, reader=None) -> None:
        self.kind = kind
        self.mode = mode
        self.mtime = mtime
        self.size = size
        self.link = link
        self.offset = offset
        #: ``read_at(offset, n)`` of the file holding the data; None: the tree's.
        self.reader = reader
        self.children: dict[str, _Node] | None = {} if kind == "dir" else None


class _Slice(io.RawIOBase):
    """``size`` bytes at ``offset`` of a file read with pread (thread safe:
    no shared file position)."""

    def __init__(self, read_at, offset: int, size: int) -> None:
        self._read_at = read_at
        self._pos = offset
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        if n <= 0:
            return b""
        data = self._read_at(self._pos, n)
        if not data:
            raise InvalidParameter("failed to read the build context: unexpected end of data")
        self._pos += len(data)
        self._left -= len(data)
        return data

    def readinto(self, b) -> int:
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        data = self._read_at(self._pos, n)
        if not data:
            raise InvalidParameter("failed to read the build context: unexpected end of data")
        b[:len(data)] = data
        self._pos += len(data)
        self._left -= len(data)
        return len(data)


def reader_of(body: BinaryIO):
    """``read_at(offset, n)`` over ``body``'s bytes: mapped when it is a
    file (slicing is cheaper than a pread per header or file), else a copy
    of its bytes.  The mapping lives as long as the function."""
    try:
        fd = body.fileno()
        size = os.fstat(fd).st_size
        if not size:
            return lambda off, n: b""
        view = memoryview(mmap.mmap(fd, size, prot=mmap.PROT_READ))
        return lambda off, n: view[off:off + n].tobytes()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        # A copy, never getbuffer(): an exported buffer would stop the
        # owner (Twisted's request) from closing its BytesIO.
        data = body.getvalue() if hasattr(body, "getvalue") else None
        if data is None:
            body.seek(0)
            data = body.read()
        buf = memoryview(data)
        return lambda off, n: buf[off:off + n].tobytes()


class TarTree:
    """The build context as an index of its (plain) tar: every member's
    metadata and data offset, laid out as `dockerpy.storage.layertar`
    would extract it (later members replace earlier ones, parents made
    0755, symlinked parents followed inside the tree, hard links share
    their target's data).

    :param body: a seekable file holding the plain tar (kept open by the
        caller for the tree's life).
    """

    def __init__(self, body: BinaryIO, now: float = 0) -> None:
        self.body = body
        self.root = _Node("dir", 0o755, now)
        self._now = now
        self._read_at = reader_of(body)
        #: Directory nodes placed by add_entry, by clean name ("" the root).
        self._dirs_by_name: dict[str, _Node] = {"": self.root}

    @classmethod
    def single_file(cls, body: BinaryIO, name: str, size: int, now: float) -> "TarTree":
        """A context that is one file (a bare Dockerfile sent as the body)."""
        tree = cls(body, now)
        tree.root.children[name] = _Node("file", 0o644, now, size, offset=0)
        return tree

    @classmethod
    def index(cls, body: BinaryIO, now: float) -> "TarTree":
        """Index the plain tar in ``body``.

        :raises InvalidParameter: not a tar, a member climbing out, a member
            below a non-directory.
        """
        tree = cls(body, now)
        try:
            for member in _scan(tree._read_at):
                tree._add(member)
            return tree
        except _Unusual:
            pass
        # Something the fast scanner leaves to tarfile (sparse files, odd
        # headers, a bad checksum to report): start over with tarfile.
        tree = cls(body, now)
        body.seek(0)
        try:
            tar = tarfile.open(fileobj=body, mode="r:", errorlevel=2)
        except tarfile.ReadError as e:
            if str(e) == "empty file":
                return tree
            raise InvalidParameter(f"failed to read the build context: {e}") from None
        try:
            while True:
                member = tar.next()
                if member is None:
                    break
                tar.members.clear()
                tree._add(member)
        except (tarfile.TarError, EOFError) as e:
            raise InvalidParameter(f"failed to read the build context: {e}") from None
        return tree

    # -- building ---------------------------------------------------------------

    def _dir(self, parts: list[str], create: bool) -> tuple[_Node, list[str]]:
        """The directory ``parts`` (symlinks followed inside the tree)."""
        todo = list(reversed(parts))
        stack = [self.root]
        resolved: list[str] = []
        links = 0
        while todo:
            comp = todo.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(stack) > 1:
                    stack.pop()
                    resolved.pop()
                continue
            node = stack[-1].children.get(comp)
            if node is None:
                if not create:
                    raise FileNotFoundError(comp)
                node = _Node("dir", 0o755, self._now)
                stack[-1].children[comp] = node
            elif node.kind == "symlink":
                links += 1
                if links > _MAX_SYMLINKS:
                    raise InvalidParameter("failed to read the build context: too many "
                                           "levels of symbolic links")
                if node.link.startswith("/"):
                    stack, resolved = [self.root], []
                todo.extend(reversed(node.link.split("/")))
                continue
            elif node.kind != "dir":
                raise NotADirectoryError("/" + "/".join(resolved + [comp]))
            stack.append(node)
            resolved.append(comp)
        return stack[-1], resolved

    def _parent_of(self, name: str) -> tuple[_Node, str] | None:
        """The directory node a member ``name`` goes in (made as needed) and
        its last component; None for the root itself.

        :raises InvalidParameter: ``name`` climbs out, or a parent is no directory.
        """
        cleaned = posixpath.normpath(name).lstrip("/") or "."
        if cleaned == ".." or cleaned.startswith("../"):
            raise InvalidParameter(f'failed to read the build context: "{name}" is '
                                   'outside of "/"')
        if cleaned == ".":
            return None
        parts = cleaned.split("/")
        try:
            parent, _ = self._dir(parts[:-1], create=True)
        except NotADirectoryError as e:
            raise InvalidParameter(f"failed to read the build context: {e}: not a "
                                   "directory") from None
        return parent, parts[-1]

    def _add(self, member: tarfile.TarInfo) -> None:
        place = self._parent_of(member.name)
        if place is None:
            return
        parent, name = place
        existing = parent.children.get(name)
        mode = member.mode & 0o7777
        if member.isdir():
            if existing is not None and existing.kind == "dir":
                existing.mode, existing.mtime = mode, member.mtime
                return
            node = _Node("dir", mode, member.mtime)
        elif member.isreg():
            node = _Node("file", mode, member.mtime, member.size, offset=member.offset_data)
        elif member.issym():
            node = _Node("symlink", 0o777, member.mtime, link=member.linkname)
        elif member.islnk():
            target = posixpath.normpath(member.linkname.lstrip("/") or ".")
            tnode = None
            if target not in (".", "..") and not target.startswith("../"):
                tparts = target.split("/")
                try:
                    tdir, _ = self._dir(tparts[:-1], create=False)
                    tnode = tdir.children.get(tparts[-1])
                except (FileNotFoundError, NotADirectoryError):
                    tnode = None
            if tnode is None or tnode.kind == "dir":
                raise InvalidParameter(
                    f'failed to read the build context: invalid hardlink "{member.name}" -> '
                    f'"{member.linkname}"')
            node = _Node(tnode.kind, tnode.mode, tnode.mtime, tnode.size, tnode.link,
                         tnode.offset, tnode.reader)
        else:
            node = _Node("other", mode, member.mtime)
        parent.children[name] = node

    def add_entry(self, name: str, kind: str, mode: int, mtime: float, size: int = 0,
                  link: str = "", offset: int = 0, reader=None) -> None:
        """Place one entry described by its metadata (a context session's
        manifest, `dockerpy.build.sessions`), as `_add` places a member:
        same path checks; a file's data is ``size`` bytes at ``offset`` of
        ``reader`` (the tree's own data when None).

        :raises InvalidParameter: a bad name or kind.
        """
        # Manifests list parents first with clean names: their directory
        # nodes are remembered by name (no walk from the root per entry).
        dirs = self._dirs_by_name
        head, _, base = name.rpartition("/")
        parent = dirs.get(head) if posixpath.normpath(name) == name and base not in (
            "", ".", "..") and not name.startswith("/") else None
        if parent is None:
            place = self._parent_of(name)
            if place is None:
                return
            parent, base = place
        mode &= 0o7777
        if kind == "dir":
            existing = parent.children.get(base)
            if existing is not None and existing.kind == "dir":
                existing.mode, existing.mtime = mode, mtime
                return
            node = _Node("dir", mode, mtime)
            dirs[name] = node
        elif kind == "file":
            node = _Node("file", mode, mtime, size, offset=offset, reader=reader)
        elif kind == "symlink":
            node = _Node("symlink", 0o777, mtime, link=link)
        else:
            raise InvalidParameter(f"failed to read the build context: {name!r}: unknown "
                                   f"kind {kind!r}")
        if kind != "dir":
            dirs.pop(name, None)
        parent.children[base] = node

    def file_at(self, name: str) -> tuple[int, int] | None:
        """``(offset, size)`` of the regular file member ``name`` (no symlink
        followed), or None."""
        cleaned = posixpath.normpath(name).lstrip("/")
        node = self._lookup(cleaned) if cleaned not in ("", ".") else None
        if node is None or node.kind != "file" or node.reader is not None:
            return None
        return node.offset, node.size

    # -- reading ------------------------------------------------------------------

    def _lookup(self, handle: str) -> _Node | None:
        node = self.root
        if not handle:
            return node
        for comp in handle.split("/"):
            if node.children is None:
                return None
            node = node.children.get(comp)
            if node is None:
                return None
        return node

    def resolve(self, rel: str) -> str:
        """As `dockerpy.archive.resolve_in_root`: symlinks followed inside
        the tree, missing components kept."""
        def readlink(parts: list[str]) -> str | None:
            node = self._lookup("/".join(parts))
            return node.link if node is not None and node.kind == "symlink" else None

        return "/".join(resolve_components(rel, readlink))

    def join(self, handle: str, name: str) -> str:
        return f"{handle}/{name}" if handle else name

    def lstat(self, handle: str) -> Meta | None:
        node = self._lookup(handle)
        if node is None:
            return None
        return Meta(node.kind, node.mode, node.size, node.mtime, node.link)

    def stat(self, handle: str) -> Meta | None:
        node = self._lookup(self.resolve(handle))
        if node is None or node.kind == "symlink":
            return None
        return Meta(node.kind, node.mode, node.size, node.mtime, node.link)

    def listdir(self, handle: str) -> list[str]:
        node = self._lookup(handle)
        if node is None or node.children is None:
            raise NotADirectoryError(handle)
        return list(node.children)

    def open(self, handle: str) -> BinaryIO:
        node = self._lookup(self.resolve(handle))
        if node is None or node.kind != "file":
            raise FileNotFoundError(handle)
        return _Slice(node.reader or self._read_at, node.offset, node.size)


Tree = DiskTree | TarTree


# ---------------------------------------------------------------------------
# A fast tar header scanner: the build context of a cached rebuild is mostly
# headers, and tarfile spends ~70 us on each; this reads the fields the
# index needs (ustar, GNU long names, pax path/linkpath/size/mtime) and
# leaves anything else to tarfile.


class _Unusual(Exception):
    """A header the fast scanner does not handle: use tarfile instead."""


class _Member:
    """The part of `tarfile.TarInfo` that `TarTree._add` reads."""

    __slots__ = ("name", "type", "mode", "mtime", "size", "linkname", "offset_data")

    def __init__(self, name: str, type: bytes, mode: int, mtime: float, size: int,
                 linkname: str, offset_data: int) -> None:
        self.name = name
        self.type = type
        self.mode = mode
        self.mtime = mtime
        self.size = size
        self.linkname = linkname
        self.offset_data = offset_data

    def isdir(self) -> bool:
        return self.type == b"5"

    def isreg(self) -> bool:
        return self.type in (b"0", b"\0", b"7")

    def issym(self) -> bool:
        return self.type == b"2"

    def islnk(self) -> bool:
        return self.type == b"1"


_ZERO_BLOCK = bytes(512)


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        raise _Unusual()  # base-256: rare, tarfile knows it
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise _Unusual() from None


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        space = data.find(b" ", pos)
        if space < 0:
            raise _Unusual()
        try:
            length = int(data[pos:space])
        except ValueError:
            raise _Unusual() from None
        if length <= 0:
            raise _Unusual()
        record = data[space + 1:pos + length - 1]
        key, eq, value = record.partition(b"=")
        if not eq:
            raise _Unusual()
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _scan(read_at) -> Iterable[_Member]:
    """The members of a plain tar read with ``read_at(offset, n)``."""
    off = 0
    pending: dict[str, str] = {}
    while True:
        hdr = read_at(off, 512)
        if not hdr or hdr == _ZERO_BLOCK:
            if pending:
                raise _Unusual()
            return
        if len(hdr) < 512:
            raise _Unusual()
        chk = _number(hdr[148:156])
        if chk != sum(hdr[:148]) + 256 + sum(hdr[156:]):
            raise _Unusual()
        typ = hdr[156:157]
        size = _number(hdr[124:136])
        data_off = off + 512
        if typ in (b"x", b"g", b"L", b"K"):
            if size > 1 << 20:
                raise _Unusual()
            data = read_at(data_off, size)
            if len(data) < size:
                raise _Unusual()
            off = data_off + (size + 511) // 512 * 512
            if typ == b"x":
                pending.update(_pax_records(data))
            elif typ == b"L":
                pending["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif typ == b"K":
                pending["linkpath"] = data.split(b"\0", 1)[0].decode("utf-8",
                                                                       "surrogateescape")
            elif _pax_records(data):
                raise _Unusual()  # global pax headers: leave them to tarfile
            continue
        if typ not in (b"0", b"\0", b"7", b"1", b"2", b"3", b"4", b"5", b"6"):
            raise _Unusual()
        if any(k.startswith("GNU.sparse") for k in pending):
            raise _Unusual()
        raw_name = hdr[0:100].split(b"\0", 1)[0]
        if hdr[257:263] == b"ustar\0":
            prefix = hdr[345:500].split(b"\0", 1)[0]
            if prefix:
                raw_name = prefix + b"/" + raw_name
        name = pending.get("path") or raw_name.decode("utf-8", "surrogateescape")
        link = pending.get("linkpath") or hdr[157:257].split(b"\0", 1)[0].decode(
            "utf-8", "surrogateescape")
        if "size" in pending:
            try:
                size = int(pending["size"])
            except ValueError:
                raise _Unusual() from None
        mtime: float = _number(hdr[136:148])
        if "mtime" in pending:
            try:
                mtime = float(pending["mtime"])
            except ValueError:
                raise _Unusual() from None
        if typ in (b"0", b"\0") and name.endswith("/"):
            typ = b"5"  # an old-style directory
        if typ in (b"1", b"2", b"3", b"4", b"5", b"6"):
            data_size = 0
        else:
            data_size = size
        yield _Member(name, typ, _number(hdr[100:108]), mtime, size if data_size else 0,
                      link, data_off)
        pending = {}
        off = data_off + (data_size + 511) // 512 * 512


def as_tree(root: "str | Tree") -> Tree:
    """A directory path as a `DiskTree`; a tree as itself."""
    return DiskTree(root) if isinstance(root, str) else root


# .dockerignore rules and Go's filepath.Match live in dockerpy.build.ignore
# (light enough for the client); re-exported here.
from dockerpy.build.ignore import IgnoreMatcher, go_match_regex, has_glob  # noqa: E402,F401


# ---------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class Source:
    """One COPY source inside the context (or a stage's root)."""

    rel: str          # as matched, relative to the root ("." for the root)
    path: str         # the tree's handle (symlinks of the parents resolved in the root)
    is_dir: bool


def _clean_source(src: str) -> str:
    cleaned = posixpath.normpath("/" + src).lstrip("/") or "."
    rel = posixpath.normpath(src.lstrip("/")) if not src.startswith("/") else cleaned
    if rel == ".." or rel.startswith("../"):
        raise InvalidParameter(f"forbidden path outside the build context: {src} ()")
    return cleaned


def _walk(tree: Tree, ignore: IgnoreMatcher | None) -> Iterable[str]:
    """Every context-relative path, parents first (ignored ones left out)."""
    top = tree.resolve("")
    stack = [("", top)]
    while stack:
        rel, handle = stack.pop()
        try:
            names = sorted(tree.listdir(handle), reverse=True)
        except OSError:
            continue
        for name in names:
            child = f"{rel}/{name}" if rel else name
            if ignore is not None and ignore.can_skip_dir(child):
                continue
            yield child
            child_handle = tree.join(handle, name)
            meta = tree.lstat(child_handle)
            if meta is not None and meta.kind == "dir":
                stack.append((child, child_handle))


def resolve_sources(root: "str | Tree", src: str, ignore: IgnoreMatcher | None,
                    what: str = "build context") -> list[Source]:
    """The sources a COPY/ADD argument names: a path or a Go glob.

    :raises InvalidParameter: ``..`` climbing out of the context.
    :raises NotFound: nothing matches, worded as Docker words it.
    """
    tree = as_tree(root)
    cleaned = _clean_source(src)
    out: list[Source] = []
    if has_glob(cleaned):
        regex = go_match_regex(cleaned)
        for rel in _walk(tree, ignore):
            if regex.match(rel) and not (ignore and ignore.matches(rel)):
                host = tree.resolve(rel)
                meta = tree.stat(host)
                if meta is not None:
                    out.append(Source(rel, host, meta.kind == "dir"))
        if not out:
            raise NotFound("COPY failed: no source files were specified")
        return out
    host = tree.resolve(cleaned)
    meta = tree.lstat(host)
    if (ignore is not None and cleaned != "." and ignore.matches(cleaned)) or meta is None:
        raise NotFound(f"COPY failed: file not found in {what} or excluded by "
                       f".dockerignore: stat {src}: file does not exist")
    full = tree.stat(host)
    return [Source(cleaned, host, full is not None and full.kind == "dir")]


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


def _entries_of(source: Source, target: str, tree: Tree,
                ignore: IgnoreMatcher | None) -> list[Entry]:
    """Entries for one source copied to ``target`` (a path below ``/``,
    without leading slash): a directory's *contents* go to ``target``."""
    out: list[Entry] = []
    if not source.is_dir:
        st = tree.stat(source.path)
        if st is None:
            raise NotFound(f"COPY failed: stat {source.rel}: file does not exist")
        out.append(Entry(target, source.path, "file", st.mode))
        return out
    # Docker makes the destination directory itself 0755 (the source
    # directory's own mode is not copied, only its contents').
    out.append(Entry(target, source.path, "dir", 0o755))
    base_rel = "" if source.rel == "." else source.rel
    stack = [(source.path, target, base_rel)]
    while stack:
        host_dir, arc_dir, rel_dir = stack.pop()
        for name in sorted(tree.listdir(host_dir)):
            host = tree.join(host_dir, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            lst = tree.lstat(host)
            if lst is None:
                continue
            if ignore is not None and ignore.matches(rel):
                if lst.kind == "dir" and any(ex for _, ex in ignore.patterns):
                    stack.append((host, f"{arc_dir}/{name}", rel))  # a ! rule may apply below
                continue
            arc = f"{arc_dir}/{name}" if arc_dir else name
            if lst.kind == "symlink":
                out.append(Entry(arc, host, "symlink", 0o777, lst.link))
            elif lst.kind == "dir":
                out.append(Entry(arc, host, "dir", lst.mode))
                stack.append((host, arc, rel))
            elif lst.kind == "file":
                out.append(Entry(arc, host, "file", lst.mode))
    return out


def plan_copy(root: "str | Tree", sources: list[Source], dest: str, workdir: str,
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
    tree = as_tree(root)
    entries: list[Entry] = []
    for source in sources:
        if source.is_dir:
            entries.extend(_entries_of(source, target, tree, ignore))
        else:
            name = posixpath.basename(source.rel) if source.rel != "." else ""
            arc = posixpath.join(target, name) if dest_is_dir else target
            entries.extend(_entries_of(source, arc, tree, ignore))
    return entries


def content_hash(entries: list[Entry], owner: tuple[int, int] | None,
                 chmod: int | None, tree: "Tree | None" = None) -> str:
    """Names, kinds, modes, ownership and content of what a COPY writes
    (never times): the cache key's view of the files.  ``tree`` is where
    the entries' handles point (host paths when not given)."""
    tree = tree if tree is not None else DiskTree("/")
    h = hashlib.sha256()
    h.update(repr((owner, chmod)).encode())
    for e in entries:
        h.update(f"\0{e.arcname}\0{e.kind}\0{e.mode:o}\0{e.link}\0".encode(
            "utf-8", "surrogateescape"))
        if e.kind == "file":
            with tree.open(e.host) as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
    return h.hexdigest()


class _TarOut:
    """Writes a plain tar with the bytes ``tarfile`` (``PAX_FORMAT``) would
    write, ~10x faster for the members a COPY makes: a ustar header built
    directly when every field fits (ASCII names up to 100 bytes, no user or
    group names, whole-second times), ``tarfile``'s own header otherwise.
    The layer's digest, and so every image id after it, stays the same."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def member(self, name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: float,
               size: int = 0, linkname: str = "", data: BinaryIO | None = None) -> None:
        header = _ustar_header(name, kind, mode, uid, gid, mtime, size, linkname)
        if header is None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
            info.mtime, info.size, info.linkname = mtime, size, linkname
            info.uname = info.gname = ""
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._write(header)
        if data is not None and size:
            left = size
            while left:
                chunk = data.read(min(left, _CHUNK))
                if not chunk:
                    raise OSError(f"{name}: file shrank while being copied")
                self._write(chunk)
                left -= len(chunk)
            if size % 512:
                self._write(b"\0" * (512 - size % 512))

    def close(self) -> None:
        self._write(b"\0" * 1024)
        remainder = self.offset % tarfile.RECORDSIZE
        if remainder:
            self._write(b"\0" * (tarfile.RECORDSIZE - remainder))


def _octal(value: int, digits: int) -> bytes | None:
    if not 0 <= value < 8 ** (digits - 1):
        return None
    return b"%0*o\0" % (digits - 1, value)


def _ustar_header(name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: float,
                  size: int, linkname: str) -> bytes | None:
    """``tarfile``'s ustar header for these fields, or None when it would
    need a pax header (or anything else this does not build)."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    if not (name.isascii() and linkname.isascii() and type(mtime) is int):
        return None
    bname, blink = name.encode(), linkname.encode()
    if len(bname) > 100 or len(blink) > 100:
        return None
    fields = [_octal(mode & 0o7777, 8), _octal(uid, 8), _octal(gid, 8),
              _octal(size, 12), _octal(mtime, 12)]
    if None in fields:
        return None
    buf = bytearray(bname.ljust(100, b"\0") + b"".join(fields) + b"\0" * 8 + kind
                    + blink.ljust(100, b"\0") + tarfile.POSIX_MAGIC
                    + b"\0" * (64 + 16 + 155))  # user/group names, device numbers, prefix
    buf += b"\0" * (512 - len(buf))
    stamp_checksum(buf)
    return bytes(buf)


def write_entries_tar(entries: list[Entry], out: BinaryIO, owner: tuple[int, int] | None,
                      chmod: int | None, skip_dirs: set[str] = frozenset(),
                      tree: "Tree | None" = None,
                      prefix_dirs: Iterable[tuple[str, int, int, int, int]] = ()) -> None:
    """A plain tar of ``entries`` (root-relative names), owned by ``owner``
    (root by default), modes replaced by ``chmod`` when given; ``tree`` is
    where the entries' handles point (host paths when not given).
    ``prefix_dirs`` (``(name, mode, uid, gid, mtime)``) come first: the
    ancestor directories a layer must carry."""
    tree = tree if tree is not None else DiskTree("/")
    uid, gid = owner or (0, 0)
    tar = _TarOut(out)
    for name, mode, duid, dgid, mtime in prefix_dirs:
        tar.member(name, tarfile.DIRTYPE, mode, duid, dgid, mtime)
    for e in entries:
        if e.kind == "dir" and e.arcname in skip_dirs:
            continue
        if not e.arcname:
            continue
        st = tree.lstat(e.host) if e.kind == "symlink" else tree.stat(e.host)
        mtime = int(st.mtime) if st is not None else 0
        if e.kind == "dir":
            tar.member(e.arcname, tarfile.DIRTYPE, chmod if chmod is not None else e.mode,
                       uid, gid, mtime)
        elif e.kind == "symlink":
            tar.member(e.arcname, tarfile.SYMTYPE, 0o777, uid, gid, mtime, linkname=e.link)
        else:
            with tree.open(e.host) as f:
                size = os.fstat(f.fileno()).st_size if isinstance(tree, DiskTree) else st.size
                tar.member(e.arcname, tarfile.REGTYPE,
                           chmod if chmod is not None else e.mode, uid, gid, mtime, size,
                           data=f)
    tar.close()


def is_archive(path: str, tree: "Tree | None" = None) -> bool:
    """ADD's test for a local archive to extract: a tar, maybe compressed."""
    from dockerpy.images.store import open_decompressed

    tree = tree if tree is not None else DiskTree("/")
    try:
        with tree.open(path) as raw:
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
