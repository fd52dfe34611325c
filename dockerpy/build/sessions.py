# -*- test-case-name: dockerpy.test.test_build_sessions -*-
"""Build-context sessions: the daemon keeps the last context a client sent,
so that the next build of the same directory sends only what changed.

This is dockerpy's own extension of the classic ``POST /build`` protocol
(doc/api.md, "Context sessions"), used by bin/docker.  Every other client
sends the whole context as before.

1. ``POST /dockerpy/build/context`` with a manifest: every entry of the
   context as the client would tar it (name, kind, mode, mtime, size, link
   target) plus a *stamp* of the client's choosing that changes whenever
   the file may have (bin/docker: inode, size, mtime and ctime in ns).
   :meth:`ContextStore.begin` answers with a token and the regular files
   whose content it lacks.
2. ``POST /build`` with the header ``X-Dockerpy-Context: <token>`` and, as
   the body, a plain tar of just those files.  :meth:`ContextStore.assemble`
   builds the context tree (`dockerpy.build.context.TarTree`) from the
   manifest: directories and symlinks from their metadata, files from the
   upload or from what the store kept.

Store layout, per client key (``<root>/<key>/``): ``index.json`` maps each
kept file to ``[pack, offset, size, mode, stamp]``; a pack is the body of
one upload, kept verbatim (``<pack>.tar``, fsynced before the index names
it), so offsets are those of its tar.  Packs no file refers to any more are
deleted; when a key has :data:`MAX_PACKS` packs the next session asks for
every file again, which leaves one pack.  At most :data:`MAX_KEYS` keys are
kept, the least recently used go first.  An entry whose pack is missing or
too short (a crash) is simply asked for again.

Everything here blocks: call it in the thread pool.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from dockerpy import atomic
from dockerpy.build.context import TarTree, reader_of
from dockerpy.errors import Conflict, InvalidParameter

#: Client keys kept (directories under the store's root).
MAX_KEYS = 16
#: Packs per key before the next session asks for everything again.
MAX_PACKS = 8
#: Seconds a token waits for its POST /build.
TOKEN_TTL = 600.0
#: Entries one manifest may hold.
MAX_ENTRIES = 1_000_000
#: The error a client answers by sending the whole context the classic way.
EXPIRED = "build context session expired or changed: send the whole context"

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PACK = re.compile(r"^[0-9a-f]{32}\.tar$")
_KINDS = ("dir", "file", "symlink")


class Entry(NamedTuple):
    """One manifest entry (see the module docstring)."""

    name: str
    kind: str
    mode: int
    mtime: int
    size: int
    link: str
    stamp: str


@dataclass
class _Session:
    key: str
    entries: list[Entry]
    created: float


def parse_manifest(doc: object) -> tuple[str, list[Entry]]:
    """The key and entries of a ``POST /dockerpy/build/context`` body.

    :raises InvalidParameter: anything but ``{"Key": str, "Entries":
        [[name, kind, mode, mtime, size, link, stamp], ...]}`` with sane values.
    """
    if not isinstance(doc, dict):
        raise InvalidParameter("context manifest: not an object")
    key = doc.get("Key")
    raw = doc.get("Entries")
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidParameter("context manifest: Key must be 1-64 of [A-Za-z0-9_-]")
    if not isinstance(raw, list) or len(raw) > MAX_ENTRIES:
        raise InvalidParameter("context manifest: Entries must be a list")
    entries = []
    make = Entry._make
    for item in raw:
        if type(item) is not list or len(item) != 7:
            raise InvalidParameter("context manifest: an entry is "
                                   "[name, kind, mode, mtime, size, link, stamp]")
        name, kind, mode, mtime, size, link, stamp = item
        if not (type(name) is str and name and kind in _KINDS
                and type(mode) is int and 0 <= mode <= 0o7777
                and type(mtime) is int and type(size) is int and size >= 0
                and type(link) is str and type(stamp) is str and len(stamp) <= 256
                and "\0" not in name):
            raise InvalidParameter(f"context manifest: bad entry {item!r:.200}")
        entries.append(make(item))
    return key, entries


class ContextStore:
    """The kept contexts under ``root`` (``<data-root>/build/contexts``).

    :param clock: ``time.time``-like, for token expiry.
    """

    def __init__(self, root: str, clock=time.time) -> None:
        self.root = root
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        #: key -> ((inode, size, mtime) of its index.json, the parsed index).
        self._indexes: dict[str, tuple[tuple, dict]] = {}

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._key_locks.setdefault(key, threading.Lock())

    def _load(self, key: str) -> dict[str, list]:
        """The key's index, without entries whose pack is gone or too short
        (parsed once per version of the file)."""
        directory = os.path.join(self.root, key)
        path = os.path.join(directory, "index.json")
        try:
            st = os.stat(path)
            version = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._indexes.get(key)
            if cached is not None and cached[0] == version:
                index = cached[1]
            else:
                index = atomic.read_json(path)
                self._indexes[key] = (version, index)
        except (OSError, ValueError):
            return {}
        if not isinstance(index, dict):
            return {}
        sizes: dict[str, int] = {}
        kept = {}
        for name, rec in index.items():
            if not (isinstance(rec, list) and len(rec) == 5 and isinstance(rec[0], str)
                    and _PACK.match(rec[0])):
                continue
            pack = rec[0]
            if pack not in sizes:
                try:
                    sizes[pack] = os.stat(os.path.join(directory, pack)).st_size
                except OSError:
                    sizes[pack] = -1
            if rec[1] + rec[2] <= sizes[pack]:
                kept[name] = rec
        return kept

    # -- step 1 ---------------------------------------------------------------

    def begin(self, key: str, entries: list[Entry]) -> tuple[str, list[str]]:
        """Remember a manifest; :return: its token and the names of the
        regular files whose content the store lacks."""
        with self._lock(key):
            index = self._load(key)
        packs = {rec[0] for rec in index.values()}
        files = [e for e in entries if e.kind == "file"]
        if len(packs) >= MAX_PACKS:
            need = [e.name for e in files]
        else:
            need = [e.name for e in files if not _same(index.get(e.name), e)]
        token = secrets.token_hex(16)
        now = self._clock()
        with self._guard:
            for old in [t for t, s in self._sessions.items() if now - s.created > TOKEN_TTL]:
                del self._sessions[old]
            self._sessions[token] = _Session(key, entries, now)
        return token, need

    # -- step 2 ---------------------------------------------------------------

    def assemble(self, token: str, body, now: float) -> TarTree:
        """The context of session ``token``: the manifest's entries, files
        from ``body`` (a plain tar of the files step 1 asked for, maybe more)
        or from the store.  The upload becomes a pack of the key.

        :raises Conflict: (:data:`EXPIRED`) unknown or expired token, or a
            file neither uploaded nor kept as the manifest says.
        :raises InvalidParameter: a bad upload or a bad name in the manifest.
        """
        with self._guard:
            session = self._sessions.pop(token, None)
        if session is None or self._clock() - session.created > TOKEN_TTL:
            raise Conflict(EXPIRED)
        key = session.key
        directory = os.path.join(self.root, key)
        body.seek(0, os.SEEK_END)
        uploaded = body.tell() > 0
        body.seek(0)
        upload = TarTree.index(body, now) if uploaded else None
        with self._lock(key):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            index = self._load(key)
            pack = ""  # the upload, kept once a file of the manifest comes from it
            readers: dict[str, object] = {}
            tree = TarTree(io.BytesIO(), now)
            new_index: dict[str, list] = {}
            try:
                for e in session.entries:
                    if e.kind != "file":
                        tree.add_entry(e.name, e.kind, e.mode, e.mtime, link=e.link)
                        continue
                    at = upload.file_at(e.name) if upload is not None else None
                    if at is not None:
                        if not pack:
                            pack = uuid.uuid4().hex + ".tar"
                            self._write_pack(os.path.join(directory, pack), body)
                        rec = [pack, at[0], at[1], e.mode, e.stamp]
                    else:
                        rec = index.get(e.name)
                        if not _same(rec, e):
                            raise Conflict(EXPIRED)
                    if rec[0] not in readers:
                        readers[rec[0]] = _open_pack(os.path.join(directory, rec[0]))
                    tree.add_entry(e.name, "file", e.mode, e.mtime, rec[2], offset=rec[1],
                                   reader=readers[rec[0]])
                    new_index[e.name] = rec
            except BaseException:
                if pack:
                    atomic.discard(os.path.join(directory, pack))
                raise
            if new_index != index or not os.path.exists(os.path.join(directory, "index.json")):
                atomic.write_json(os.path.join(directory, "index.json"), new_index, 0o600)
            live = {rec[0] for rec in new_index.values()}
            for name in os.listdir(directory):
                if _PACK.match(name) and name not in live:
                    atomic.discard(os.path.join(directory, name))
        self._trim(keep=key)
        return tree

    @staticmethod
    def _write_pack(path: str, body) -> None:
        body.seek(0)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(body, out, 1 << 20)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            atomic.discard(path)
            raise
        os.close(fd)

    # -- housekeeping -----------------------------------------------------------

    def _trim(self, keep: str) -> None:
        """Drop the least recently used keys beyond :data:`MAX_KEYS`."""
        try:
            os.utime(os.path.join(self.root, keep))
            names = [n for n in os.listdir(self.root) if _KEY.match(n)]
        except OSError:
            return
        if len(names) <= MAX_KEYS:
            return
        by_age = sorted(names, key=lambda n: _mtime(os.path.join(self.root, n)))
        for name in by_age[:len(names) - MAX_KEYS]:
            if name != keep:
                self.forget(name)

    def forget(self, key: str) -> None:
        """Remove what is kept for ``key``."""
        with self._lock(key):
            self._indexes.pop(key, None)
            shutil.rmtree(os.path.join(self.root, key), ignore_errors=True)

    def prune(self) -> int:
        """Remove every kept context (``docker builder prune``); :return: bytes freed."""
        freed = 0
        try:
            names = [n for n in os.listdir(self.root) if _KEY.match(n)]
        except OSError:
            return 0
        for name in names:
            directory = os.path.join(self.root, name)
            for f in os.listdir(directory):
                try:
                    freed += os.lstat(os.path.join(directory, f)).st_size
                except OSError:
                    pass
            self.forget(name)
        return freed


def _same(rec: list | None, e: Entry) -> bool:
    return rec is not None and rec[2] == e.size and rec[3] == e.mode and rec[4] == e.stamp


def _open_pack(path: str):
    try:
        with open(path, "rb") as f:
            return reader_of(f)
    except FileNotFoundError:
        raise Conflict(EXPIRED) from None




def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
