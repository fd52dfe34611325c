# -*- test-case-name: dockerpy.test.test_storage_vfs,dockerpy.test.test_storage_overlay2,dockerpy.test.test_archive,dockerpy.test.test_storage_layertar -*-
"""Layer tars: apply them safely into a directory, and write them back out.

This module owns the one piece of code that writes entries of an untrusted
tar into a directory tree (`SafeTree` + `extract`): every parent directory is
opened component by component relative to a root file descriptor with
``O_NOFOLLOW``, and a symlink met on the way is resolved *inside* the root (as
a chroot would), so no entry can land, or be written through a symlink,
outside the root.  Names that climb above the extraction directory after
cleaning are rejected with `InvalidParameter`.

Whiteouts are not interpreted here but by a strategy: `OverlayWhiteouts`
(character device 0/0 and ``trusted.overlay.opaque``) for overlay2,
`DeletingWhiteouts` (really delete) for vfs, or ``None`` (``.wh.`` files are
ordinary files: ``docker cp``).

The reverse direction, `LayerTarWriter`, writes PAX tars in a deterministic
order with numeric owners, reading every file through ``O_NOFOLLOW`` file
descriptors so a running container cannot swap a symlink under us.

Everything here is blocking: callers run it in the thread pool.
"""

from __future__ import annotations

import errno
import io
import json
import os
import posixpath
import shutil
import stat
import tarfile
from typing import BinaryIO, Iterable, Optional, Protocol

from dockerpy import atomic
from dockerpy.errors import InvalidParameter

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
PAX_XATTR_PREFIX = "SCHILY.xattr."

CHANGE_MODIFY = 0
CHANGE_ADD = 1
CHANGE_DELETE = 2

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 40
_FD_CACHE_SIZE = 64
_COPY_CHUNK = 1 << 20


def _quote(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _skip_xattr(name: str) -> bool:
    """Xattrs never taken from, or written to, a tar.

    ``trusted.overlay.*`` would let a layer forge overlay metadata (redirects,
    origins) in an upper directory; SELinux labels belong to the host.
    """
    return name.startswith("trusted.overlay.") or name == "security.selinux"


def clean_relative(name: str) -> str:
    """Clean a tar member name the way Docker does.

    A leading ``/`` is dropped (``/a`` is ``a``) after cleaning, so ``/../a``
    is ``a``; a relative name that climbs out (``../a``, ``a/../../b``) is
    returned as is for the caller to reject.

    :return: the cleaned relative path, ``"."`` for the root.
    """
    cleaned = posixpath.normpath(name).lstrip("/")
    return cleaned or "."


def escapes(cleaned: str) -> bool:
    """:return: whether a cleaned relative path climbs above its base."""
    return cleaned == ".." or cleaned.startswith("../")


class SafeTree:
    """A directory tree written to only through file descriptors.

    :param root: the directory that symlinks resolve against (``/`` of the
        container or layer).
    :param base: components, relative to ``root``, of the directory that
        relative names are taken from (``docker cp`` into a subdirectory).
        They are resolved inside the root like any other path.
    """

    def __init__(self, root: str, base: Iterable[str] = ()) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._cache: dict[tuple[str, ...], tuple[int, tuple[str, ...]]] = {}
        self._stale = False
        #: Resolved paths of directories this tree created implicitly.
        self.created: set[str] = set()
        self.base: tuple[str, ...] = ()
        base = list(base)
        if base:
            try:
                _fd, self.base = self.open_dir(base, create=False)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        self.invalidate()
        os.close(self.root_fd)

    def invalidate(self) -> None:
        """Forget cached directory descriptors.

        Called whenever an existing entry is removed or replaced: a cached
        descriptor could otherwise stand for a directory that no longer has
        the name it was cached under.
        """
        for fd, _ in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def trim(self) -> None:
        """Drop stale or surplus cached descriptors (call between entries only:
        descriptors handed out for the current entry stay valid until then)."""
        if self._stale or len(self._cache) > _FD_CACHE_SIZE:
            self.invalidate()
            self._stale = False

    def open_dir(self, parts: list[str], create: bool,
                 relative: bool = True) -> tuple[int, tuple[str, ...]]:
        """Open the directory ``parts`` (relative to the base) inside the root.

        Symlinks met on the way are resolved inside the root; with ``create``
        missing directories are made (0755, like Docker's ``MkdirAll``).

        :return: a descriptor owned by the cache (do not close it) and the
            resolved components relative to the root.
        :raises NotADirectoryError: a component is not a directory.
        :raises FileNotFoundError: a component is missing and not ``create``.
        """
        if relative and self.base:
            key = self.base + tuple(parts)
        else:
            key = tuple(parts)
        # Start from the longest cached prefix: entries of a tar come grouped
        # by directory.
        for i in range(len(key), 0, -1):
            hit = self._cache.get(key[:i])
            if hit is not None:
                if i == len(key):
                    return hit
                start_fd, start_resolved = hit
                remaining = list(key[i:])
                break
        else:
            start_fd, start_resolved = self.root_fd, ()
            remaining = list(key)
        fd, resolved = self._walk(start_fd, start_resolved, remaining, create)
        self._cache[key] = (fd, resolved)
        return fd, resolved

    def _walk(self, start_fd: int, start_resolved: tuple[str, ...],
              remaining: list[str], create: bool) -> tuple[int, tuple[str, ...]]:
        # fds[i] is the directory named by resolved[:i]; fds[0] is never
        # closed here (the root or a cached descriptor).
        fds = [start_fd]
        resolved = list(start_resolved)
        todo = list(reversed(remaining))
        links = 0
        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if len(fds) > 1:
                        os.close(fds.pop())
                        resolved.pop()
                    elif resolved:
                        # Above the cached start: restart from the root.
                        todo.extend(reversed(resolved[:-1]))
                        resolved, fds = [], [self.root_fd]
                    continue
                cur = fds[-1]
                try:
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=cur)
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                    self.created.add("/".join(resolved + [comp]))
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise NotADirectoryError(
                            errno.ENOTDIR, "not a directory",
                            "/" + "/".join(resolved + [comp])) from None
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, "too many levels of symbolic links",
                                      "/" + "/".join(resolved + [comp])) from None
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith("/"):
                        for extra in fds[1:]:
                            os.close(extra)
                        fds, resolved = [self.root_fd], []
                    todo.extend(reversed(target.split("/")))
                    continue
                fds.append(fd)
                resolved.append(comp)
        except BaseException:
            for extra in fds[1:]:
                os.close(extra)
            raise
        for extra in fds[1:-1]:
            os.close(extra)
        if len(fds) == 1:
            # Resolved to the start itself: hand out a descriptor of our own.
            return os.dup(fds[0]), tuple(resolved)
        return fds[-1], tuple(resolved)

    def remove_entry(self, dir_fd: int, name: str) -> None:
        """Remove ``name`` (whatever it is, recursively) from a directory."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        # Cached descriptors may now name the wrong thing; they are dropped
        # at the next `trim`, the current entry only uses its parent's.
        self._stale = True
        if stat.S_ISDIR(st.st_mode):
            # The fd-based rmtree never follows symlinks.
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)


class Whiteouts(Protocol):
    """How a layer's deletions are represented in the target directory."""

    def whiteout(self, tree: "Extraction", parent_fd: int, parent: tuple[str, ...],
                 name: str, member: tarfile.TarInfo) -> None:
        """``.wh.<name>`` was found in directory ``parent``."""

    def opaque(self, tree: "Extraction", dir_fd: int, directory: tuple[str, ...],
               member: tarfile.TarInfo) -> None:
        """``.wh..wh..opq`` was found in ``directory``."""


class OverlayWhiteouts:
    """overlayfs representation: a 0/0 character device, an opaque xattr."""

    def whiteout(self, tree, parent_fd, parent, name, member):
        tree.tree.remove_entry(parent_fd, name)
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent_fd)
        os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)

    def opaque(self, tree, dir_fd, directory, member):
        os.setxattr(dir_fd, OVERLAY_OPAQUE_XATTR, b"y")


class DeletingWhiteouts:
    """Full-copy representation (vfs): delete what the whiteout names."""

    def whiteout(self, tree, parent_fd, parent, name, member):
        tree.tree.remove_entry(parent_fd, name)

    def opaque(self, tree, dir_fd, directory, member):
        # Keep only what this layer itself put in the directory.
        prefix = "/".join(directory)
        stack = [(dir_fd, prefix, False)]
        while stack:
            fd, rel, owned = stack.pop()
            try:
                for name in os.listdir(fd):
                    path = f"{rel}/{name}" if rel else name
                    if path in tree.unpacked or path in tree.tree.created:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        if stat.S_ISDIR(st.st_mode):
                            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                            stack.append((sub, path, True))
                    else:
                        tree.tree.remove_entry(fd, name)
            finally:
                if owned:
                    os.close(fd)


def _pax_xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in member.pax_headers.items():
        if key.startswith(PAX_XATTR_PREFIX):
            name = key[len(PAX_XATTR_PREFIX):]
            if not _skip_xattr(name):
                out[name] = value.encode("utf-8", "surrogateescape")
    return out


def _set_xattr(target, name: str, value: bytes, follow: bool = True) -> None:
    try:
        os.setxattr(target, name, value, follow_symlinks=follow)
    except OSError as e:
        # Docker ignores these too: not every file system takes every
        # namespace (e.g. trusted.* through an overlay mount).
        if e.errno not in (errno.ENOTSUP, errno.EPERM):
            raise


class Extraction:
    """One pass of extracting a tar stream into a `SafeTree`.

    :param layer: layer semantics (ApplyLayer): the root entry's metadata is
        applied and AUFS metadata directories are skipped; otherwise
        (``docker cp``) the root entry is ignored.
    :param chown: force every entry's owner (``docker cp -a``).
    """

    def __init__(self, tree: SafeTree, whiteouts: Optional[Whiteouts], layer: bool,
                 no_overwrite_dir_non_dir: bool = False,
                 chown: Optional[tuple[int, int]] = None) -> None:
        self.tree = tree
        self.whiteouts = whiteouts
        self.layer = layer
        self.no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
        self.chown = chown
        #: Resolved root-relative paths written by this extraction.
        self.unpacked: set[str] = set()
        self.size = 0
        self._dir_times: list[tuple[tuple[str, ...], float]] = []

    def run(self, stream: BinaryIO) -> int:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|", errorlevel=2, tarinfo=FastTarInfo)
        except tarfile.ReadError as e:
            if str(e) == "empty file":
                return 0  # Docker takes an empty stream as an empty layer.
            raise InvalidParameter(f"invalid tar: {e}") from None
        try:
            while True:
                try:
                    member = tar.next()
                except tarfile.ReadError as e:
                    raise InvalidParameter(f"invalid tar: {e}") from None
                if member is None:
                    break
                # Stream mode remembers every member; we never look back.
                tar.members.clear()
                self.tree.trim()
                self._entry(tar, member)
            self._set_dir_times()
        finally:
            tar.close()
        # Read the padding after the end-of-archive marker too, so that a
        # caller hashing the stream as it is read sees all of it.
        while stream.read(_COPY_CHUNK):
            pass
        return self.size

    def _owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        return self.chown if self.chown is not None else (member.uid, member.gid)

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        cleaned = clean_relative(member.name)
        if escapes(cleaned):
            raise InvalidParameter(f'{_quote(member.name)} is outside of "/"')
        parts = [] if cleaned == "." else cleaned.split("/")
        if self.layer and cleaned.startswith(WHITEOUT_META_PREFIX) and cleaned != WHITEOUT_OPAQUE:
            # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never content.
            return
        if not parts:
            if self.layer and member.isdir():
                self._dir_metadata(self.tree.root_fd, member)
                self._dir_times.append(((), member.mtime))
            return
        base = parts[-1]
        if self.whiteouts is not None and base.startswith(WHITEOUT_PREFIX):
            parent_fd, parent = self.tree.open_dir(parts[:-1], create=True)
            if base == WHITEOUT_OPAQUE:
                self.whiteouts.opaque(self, parent_fd, parent, member)
            else:
                name = base[len(WHITEOUT_PREFIX):]
                if name in ("", ".", ".."):
                    raise InvalidParameter(f"invalid whiteout {_quote(member.name)}")
                self.whiteouts.whiteout(self, parent_fd, parent, name, member)
            return
        parent_fd, parent = self.tree.open_dir(parts[:-1], create=True)
        try:
            existing = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if self.no_overwrite_dir_non_dir:
                shown = "/" + "/".join(parent + (base,))
                if is_dir and not member.isdir():
                    raise InvalidParameter(
                        f"cannot overwrite directory {_quote(shown)} with non-directory "
                        f"{_quote(member.name)}")
                if not is_dir and member.isdir():
                    raise InvalidParameter(
                        f"cannot overwrite non-directory {_quote(shown)} with directory "
                        f"{_quote(member.name)}")
            if not (is_dir and member.isdir()):
                self.tree.remove_entry(parent_fd, base)
                existing = None
        self._create(tar, member, parent_fd, parent, base, existing is not None)
        self.unpacked.add("/".join(parent + (base,)))

    def _create(self, tar, member, parent_fd, parent, name, existed) -> None:
        uid, gid = self._owner(member)
        mode = member.mode & 0o7777
        if member.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=parent_fd)
            try:
                source = tar.extractfile(member)
                remaining = member.size
                while remaining > 0:
                    chunk = source.read(min(remaining, _COPY_CHUNK))
                    if not chunk:
                        raise InvalidParameter("invalid tar: unexpected end of data")
                    atomic.write_all(fd, chunk)
                    remaining -= len(chunk)
                self.size += member.size
                # Owner first: chown clears setuid bits and file capabilities.
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
                for key, value in _pax_xattrs(member).items():
                    _set_xattr(fd, key, value)
                os.utime(fd, (member.mtime, member.mtime))
            finally:
                os.close(fd)
        elif member.isdir():
            if not existed:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            try:
                self._dir_metadata(fd, member)
            finally:
                os.close(fd)
            self._dir_times.append((parent + (name,), member.mtime))
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent_fd)
            os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
            self._path_xattrs(parent_fd, name, member)
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent_fd,
                     follow_symlinks=False)
        elif member.islnk():
            self._hardlink(member, parent_fd, name)
        elif member.ischr() or member.isblk() or member.isfifo():
            if member.isfifo():
                os.mkfifo(name, 0o600, dir_fd=parent_fd)
            else:
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                         dir_fd=parent_fd)
            # We just made this entry, so following it cannot leave the tree.
            os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
            os.chmod(name, mode, dir_fd=parent_fd)
            self._path_xattrs(parent_fd, name, member)
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent_fd,
                     follow_symlinks=False)
        # Other types (GNU volume headers and the like) carry no content.

    def _dir_metadata(self, fd: int, member: tarfile.TarInfo) -> None:
        uid, gid = self._owner(member)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, member.mode & 0o7777)
        for key, value in _pax_xattrs(member).items():
            _set_xattr(fd, key, value)

    def _path_xattrs(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        xattrs = _pax_xattrs(member)
        if xattrs:
            path = f"/proc/self/fd/{parent_fd}/{name}"
            for key, value in xattrs.items():
                _set_xattr(path, key, value, follow=False)

    def _hardlink(self, member: tarfile.TarInfo, parent_fd: int, name: str) -> None:
        target = posixpath.normpath(member.linkname.lstrip("/") or ".")
        if escapes(target) or target == ".":
            raise InvalidParameter(
                f"invalid hardlink {_quote(member.name)} -> {_quote(member.linkname)}")
        tparts = target.split("/")
        try:
            target_fd, _ = self.tree.open_dir(tparts[:-1], create=False)
            os.link(tparts[-1], name, src_dir_fd=target_fd, dst_dir_fd=parent_fd,
                    follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise InvalidParameter(
                f"invalid hardlink {_quote(member.name)} -> {_quote(member.linkname)}: "
                "no such file in the archive") from None

    def _set_dir_times(self) -> None:
        # Done last: creating children would bump the directories' mtimes.
        for parts, mtime in self._dir_times:
            try:
                if not parts:
                    fd = self.tree.open_dir([], create=False, relative=False)[0]
                    os.utime(fd, (mtime, mtime))
                    continue
                fd, _ = self.tree.open_dir(list(parts[:-1]), create=False, relative=False)
                os.utime(parts[-1], (mtime, mtime), dir_fd=fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                # Removed again later in the same tar.
                continue
            finally:
                self.tree.trim()


def apply_layer(stream: BinaryIO, target: str, whiteouts: Whiteouts) -> int:
    """Apply a layer tar (uncompressed) into ``target``.

    The caller removes ``target`` when this raises.

    :return: the bytes of regular-file content applied.
    :raises InvalidParameter: a name or hard link escapes, or the tar is bad.
    """
    tree = SafeTree(target)
    try:
        return Extraction(tree, whiteouts, layer=True).run(stream)
    finally:
        tree.close()


def extract_tar(stream: BinaryIO, root: str, dest: str,
                no_overwrite_dir_non_dir: bool = False,
                chown: Optional[tuple[int, int]] = None) -> None:
    """Extract a plain tar (no whiteouts) into ``dest``, a directory inside ``root``.

    ``dest`` (a root-relative path) and all entries are resolved inside
    ``root``; names climbing above ``dest`` are rejected.
    """
    base = [p for p in dest.split("/") if p]
    tree = SafeTree(root, base)
    try:
        Extraction(tree, None, layer=False,
                   no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown=chown).run(stream)
    finally:
        tree.close()


class _ExactReader(io.RawIOBase):
    """Exactly ``size`` bytes of a file: padded with zeros if the file
    shrank while we read it, cut if it grew (a running container may write)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        chunks = []
        want = n
        while want > 0:
            data = os.read(self._fd, want)
            if not data:
                chunks.append(b"\0" * want)
                break
            chunks.append(data)
            want -= len(data)
        self._left -= n
        return b"".join(chunks)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


class FastTarInfo(tarfile.TarInfo):
    """``tarfile.TarInfo`` whose ``frombuf`` reads a plain octal ustar
    header ~3x faster (layers of many small files are mostly headers).
    Anything else (base-256 numbers, GNU sparse headers, a checksum that
    only a signed sum matches, a bad block) goes to ``tarfile``'s own, so
    the result and the errors are the same."""

    __slots__ = ()

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        if (len(buf) != tarfile.BLOCKSIZE or buf[257:263] != b"ustar\x00"
                or buf[156:157] == tarfile.GNUTYPE_SPARSE):
            return super().frombuf(buf, encoding, errors)
        try:
            numbers = [_octal_field(buf[a:b]) for a, b in _NUMBER_FIELDS]
        except ValueError:
            return super().frombuf(buf, encoding, errors)
        chksum = numbers[0]
        if chksum != sum(buf) - sum(buf[148:156]) + 256:
            return super().frombuf(buf, encoding, errors)
        obj = cls()
        obj.name = _string_field(buf[0:100], encoding, errors)
        obj.chksum = chksum
        obj.mode, obj.uid, obj.gid, obj.size, obj.mtime, obj.devmajor, obj.devminor = \
            numbers[1:]
        obj.type = buf[156:157]
        obj.linkname = _string_field(buf[157:257], encoding, errors)
        obj.uname = _string_field(buf[265:297], encoding, errors)
        obj.gname = _string_field(buf[297:329], encoding, errors)
        prefix = _string_field(buf[345:500], encoding, errors)
        if obj.type == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix and obj.type not in tarfile.GNU_TYPES:
            obj.name = prefix + "/" + obj.name
        return obj


#: (start, end) of the checksum, then mode, uid, gid, size, mtime, devmajor
#: and devminor fields of a ustar header.
_NUMBER_FIELDS = ((148, 156), (100, 108), (108, 116), (116, 124), (124, 136), (136, 148),
                  (329, 337), (337, 345))


def _octal_field(field: bytes) -> int:
    """tarfile's ``nti`` for a plain octal field (ValueError otherwise)."""
    if field[:1] in (b"\x80", b"\xff"):
        raise ValueError("base-256")
    end = field.find(b"\0")
    text = (field if end == -1 else field[:end]).decode("ascii").strip()
    return int(text or "0", 8)


def _string_field(field: bytes, encoding: str, errors: str) -> str:
    end = field.find(b"\0")
    return (field if end == -1 else field[:end]).decode(encoding, errors)


class GoTarInfo(tarfile.TarInfo):
    """A tar header whose mode field keeps the file-type bits (``S_IFREG``,
    ``S_IFDIR``, ...), as moby's ``FileInfoHeader`` writes them (Go 1.8's
    archive/tar did, and moby keeps it: ``fillGo18FileTypeBits``):
    ``0o100644``, not ``0o644``.  Python's ``tarfile`` masks the mode to
    ``0o7777`` in two places; both are undone here."""

    def get_info(self):
        info = super().get_info()
        info["mode"] = self.mode
        return info

    @staticmethod
    def _create_header(info, format, encoding, errors):
        mode = info.get("mode") or 0
        buf = tarfile.TarInfo._create_header(info, format, encoding, errors)
        if mode <= 0o7777:
            return buf
        block = bytearray(buf)
        block[100:108] = tarfile.itn(mode, 8, format)
        stamp_checksum(block)
        return bytes(block)


def stamp_checksum(block: bytearray) -> None:
    """Write a ustar header's checksum into ``block`` (512 bytes) as
    ``tarfile`` does: the unsigned sum with the field taken as spaces, six
    octal digits, a NUL, and the field's last space kept."""
    block[148:156] = b"        "
    block[148:155] = b"%06o\0" % sum(block)


class LayerTarWriter:
    """Write a PAX tar: deterministic, numeric owners, whiteouts on request.

    :param overlay: convert overlay whiteouts (0/0 character devices, opaque
        directories) to ``.wh.`` entries, as for an overlay upper directory.
    """

    def __init__(self, out: BinaryIO, overlay: bool = False) -> None:
        self._tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                                 bufsize=64 * 1024)
        self._overlay = overlay
        self._links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> "LayerTarWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _info(self, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
        info = GoTarInfo(arcname)
        info.mode = st.st_mode
        info.uid = st.st_uid
        info.gid = st.st_gid
        info.uname = info.gname = ""
        # Whole seconds, like Docker: no PAX mtime records, stable digests.
        info.mtime = int(st.st_mtime)
        return info

    def add_whiteout(self, arcname: str, mode: int = 0o600, uid: int = 0, gid: int = 0,
                     mtime: int = 0) -> None:
        """Add an empty regular ``.wh.`` entry with the given (full) name."""
        info = tarfile.TarInfo(arcname)
        info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
        info.uname = info.gname = ""
        self._tar.addfile(info)

    def add(self, dir_fd: int, name: str, arcname: str,
            st: Optional[os.stat_result] = None) -> Optional[os.stat_result]:
        """Add one entry (not its children) named ``name`` in ``dir_fd``.

        :return: its stat, or ``None`` if it vanished or is a socket.
        """
        if st is None:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return None
        if self._overlay and stat.S_ISCHR(mode) and st.st_rdev == 0:
            head, _, tail = arcname.rpartition("/")
            self.add_whiteout((head + "/" if head else "") + WHITEOUT_PREFIX + tail,
                              0o600, st.st_uid, st.st_gid, int(st.st_mtime))
            return st
        info = self._info(arcname, st)
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                info.type = tarfile.LNKTYPE
                info.linkname = self._links[key]
                self._tar.addfile(info)
                return st
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                             | os.O_NONBLOCK, dir_fd=dir_fd)
            except (FileNotFoundError, OSError) as e:
                if isinstance(e, FileNotFoundError) or e.errno == errno.ELOOP:
                    return None
                raise
            try:
                fst = os.fstat(fd)
                if not stat.S_ISREG(fst.st_mode):
                    return None
                info.size = fst.st_size
                self._pax_xattrs(info, fd)
                self._tar.addfile(info, _ExactReader(fd, fst.st_size))
            finally:
                os.close(fd)
            if st.st_nlink > 1:
                self._links[key] = arcname
            return st
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            opaque = False
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                return None
            try:
                self._pax_xattrs(info, fd)
                if self._overlay:
                    try:
                        opaque = os.getxattr(fd, OVERLAY_OPAQUE_XATTR) == b"y"
                    except OSError:
                        opaque = False
            finally:
                os.close(fd)
            self._tar.addfile(info)
            if opaque:
                self.add_whiteout(arcname.rstrip("/") + "/" + WHITEOUT_OPAQUE,
                                  info.mode & 0o777, info.uid, info.gid, info.mtime)
            return st
        if stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(name, dir_fd=dir_fd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return None
        self._pax_xattrs(info, f"/proc/self/fd/{dir_fd}/{name}", follow=False)
        self._tar.addfile(info)
        return st

    def _pax_xattrs(self, info: tarfile.TarInfo, target, follow: bool = True) -> None:
        try:
            names = os.listxattr(target, follow_symlinks=follow)
        except OSError:
            return
        for key in sorted(names):
            if _skip_xattr(key):
                continue
            try:
                value = os.getxattr(target, key, follow_symlinks=follow)
            except OSError:
                continue
            info.pax_headers[PAX_XATTR_PREFIX + key] = value.decode("utf-8", "surrogateescape")

    def add_tree(self, dir_fd: int, arc_prefix: str) -> None:
        """Add everything below the directory ``dir_fd``, depth first, sorted.

        :param arc_prefix: prefix of the children's names (``""`` or ending
            with ``/``).
        """
        stack = [(os.dup(dir_fd), arc_prefix, iter(sorted(os.listdir(dir_fd))))]
        try:
            while stack:
                fd, prefix, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(fd)
                    stack.pop()
                    continue
                st = self.add(fd, name, prefix + name)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    try:
                        sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError:
                        continue
                    stack.append((sub, prefix + name + "/", iter(sorted(os.listdir(sub)))))
        finally:
            for fd, _, _ in stack:
                os.close(fd)


def write_upper_tar(upper: str, out: BinaryIO) -> None:
    """Write an overlay upper directory as a layer tar (whiteouts converted)."""
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with LayerTarWriter(out, overlay=True) as writer:
            writer.add_tree(fd, "")
    finally:
        os.close(fd)


def write_changes_tar(root: str, changes: list[tuple[str, int]], out: BinaryIO) -> None:
    """Write ``changes`` (``(path, kind)``, as `changes_dirs` returns them)
    of the tree ``root`` as a layer tar, deletions as ``.wh.`` entries.

    Only the changed entries themselves are written: an added directory's
    children are changes of their own.
    """
    tree = SafeTree(root)
    try:
        with LayerTarWriter(out) as writer:
            for path, kind in sorted(changes):
                rel = path.lstrip("/")
                head, _, tail = rel.rpartition("/")
                if kind == CHANGE_DELETE:
                    writer.add_whiteout((head + "/" if head else "") + WHITEOUT_PREFIX + tail)
                    continue
                tree.trim()
                try:
                    fd, _ = tree.open_dir(head.split("/") if head else [], create=False)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                writer.add(fd, tail, rel)
    finally:
        tree.close()


def _stat_different(old: os.stat_result, new: os.stat_result) -> bool:
    if (old.st_mode != new.st_mode or old.st_uid != new.st_uid
            or old.st_gid != new.st_gid or old.st_rdev != new.st_rdev):
        return True
    # Directory sizes and mtimes say nothing about a change (moby#9874).
    if not stat.S_ISDIR(new.st_mode):
        return old.st_mtime_ns != new.st_mtime_ns or old.st_size != new.st_size
    return False


def _scan(path: str) -> dict[str, os.stat_result]:
    try:
        with os.scandir(path) as it:
            return {e.name: e.stat(follow_symlinks=False) for e in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def changes_dirs(new: str, old: Optional[str]) -> list[tuple[str, int]]:
    """Docker's ``ChangesDirs``: what ``new`` changed against ``old``.

    Directories count as modified when their owner or mode changed, or when
    anything below them changed; a deleted directory is reported alone.

    :return: sorted ``(path, kind)`` with absolute paths.
    """
    changes: list[tuple[str, int]] = []

    def walk(rel: str, new_dir: str, old_dir: Optional[str]) -> None:
        new_entries = _scan(new_dir)
        old_entries = _scan(old_dir) if old_dir is not None else {}
        for name in sorted(new_entries):
            nst = new_entries[name]
            path = f"{rel}/{name}"
            ost = old_entries.pop(name, None)
            mark = len(changes)
            added = True
            if ost is None:
                changes.append((path, CHANGE_ADD))
            elif _stat_different(ost, nst) or (
                    stat.S_ISLNK(nst.st_mode)
                    and os.readlink(os.path.join(new_dir, name))
                    != os.readlink(os.path.join(old_dir, name))):
                changes.append((path, CHANGE_MODIFY))
            else:
                added = False
            if stat.S_ISDIR(nst.st_mode):
                old_sub = (os.path.join(old_dir, name)
                           if ost is not None and stat.S_ISDIR(ost.st_mode) else None)
                walk(path, os.path.join(new_dir, name), old_sub)
                if len(changes) > mark and not added:
                    changes.insert(mark, (path, CHANGE_MODIFY))
        for name in old_entries:
            changes.append((f"{rel}/{name}", CHANGE_DELETE))

    walk("", new, old)
    return sorted(changes)


def _sum_sizes(paths) -> int:
    """Bytes of the non-directories among ``paths``, each hard-linked file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        total += st.st_size
    return total


def changes_size(root: str, changes: list[tuple[str, int]]) -> int:
    """Bytes of the added or modified non-directories (hard links once)."""
    return _sum_sizes(os.path.join(root, path.lstrip("/"))
                      for path, kind in changes if kind != CHANGE_DELETE)


def directory_size(root: str) -> int:
    """Bytes of the non-directories below ``root`` (hard links once);
    symlinks to directories count, as Docker's walk counts them."""
    return _sum_sizes(os.path.join(dirpath, name)
                      for dirpath, dirnames, filenames in os.walk(root)
                      for name in filenames + dirnames)
