# -*- test-case-name: dockerpy.test.test_image_store -*-
"""The image store: image configs, layers and references, on disk and indexed.

This module owns ``<data-root>/image``::

    blobs/sha256/<hex>              image configs, byte for byte (hex = image id)
    layers/sha256/<chain hex>/      one image layer: ``diff`` (diff id),
                                    ``parent`` (parent chain id, absent for a
                                    base layer), ``size``, ``cache-id`` (the
                                    storage driver's layer id, random hex),
                                    the kept blob (``layer.tar``, or
                                    ``layer.tar.gz``/``.bz2``/``.xz``/``.zst``
                                    as it came) and ``tar-size``
    metadata/sha256/<hex>.json      per image: parent image id, last tag time
    layer-refs/<owner>              chain id held by an owner (a container)
    repositories.json               references -> image id (tags and digests)
    tmp/                            spool space for load/commit; emptied at start

Why the blob is kept: an image id is the digest of a config that lists diff
ids, and ``docker save`` must produce layer tars with exactly those digests.
Without Docker's tar-split metadata a driver cannot reproduce the original
bytes, so the layer's blob is kept beside it, as it came: a pulled or loaded
blob is hard-linked (the download or spool file, no copy at all), a streamed
one (import) is copied while it is read.  ``open_layer_tar`` decompresses it
again for save; push uploads a kept gzip blob as it is.

A layer is made in one pass over its blob: decompressed, hashed (diff id)
and applied into the driver as it is read, so that a pull extracts while it
downloads.  On overlay2 the layers of one image are applied side by side
(``MAX_PARALLEL_LAYERS``), each into its own driver layer, and registered
in chain order.  A chain being made is claimed, so a second pull of the same
layers waits for that work instead of repeating it.

Crash safety: a layer directory is built under ``.tmp-<random>`` (its
``cache-id`` written before the driver layer is created) and renamed into
place when complete; a removed layer is first renamed to ``.trash-<random>``.
At start-up both kinds are destroyed (driver layer included), configs whose
layers are missing are dropped, and layers no image or owner references are
collected.  Every file that matters is written with ``dockerpy.atomic``.
A layer's kept blob and applied files are not fsynced (Docker syncs neither;
``kill -9`` loses nothing the page cache holds): its records are, before the
directory is renamed into place, and a layer is registered only once its
parent is.

Threads: lookups (``resolve``, ``images``, views) read an immutable snapshot
and never block, so the reactor may call them.  Writers (everything that
touches layers) are blocking and run in the thread pool; they hold the writer
lock only to publish, never while applying or hashing a layer.
"""

from __future__ import annotations

import bz2
import collections
import datetime
import gzip
import hashlib
import io
import json
import logging
import lzma
import os
import platform
import posixpath
import re
import secrets
import shutil
import signal
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field, replace
from typing import IO, Any, Callable, Iterable, Sequence

from zlib import error as zlibError

from dockerpy import atomic, syscalls
from dockerpy.errors import (Conflict, InvalidParameter, NotFound, SystemError_,
                             no_such_image)
from dockerpy.filters import label_match
from dockerpy.images import reference as refs
from dockerpy.images.reference import Reference

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Layers of one image decompressed and applied at once (overlay2 only); as
# many as the downloads running at once.
MAX_PARALLEL_LAYERS = 3
DOCKER_VERSION = "28.0.4"
# sha256 of a tar holding nothing but its end-of-archive marker (Go's layout).
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
ZERO_TIME = "0001-01-01T00:00:00Z"

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_HEX_RE = re.compile(r"^[a-f0-9]+$")
# The kept blob of a layer, named by its compression.
_KEPT_BLOB = {None: "layer.tar", "gzip": "layer.tar.gz", "bzip2": "layer.tar.bz2",
              "xz": "layer.tar.xz", "zstd": "layer.tar.zst"}
_GO_TIME_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")

# Field order of Go's container.Config, so configs we write read like Docker's.
_CONFIG_ORDER = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
    "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
    "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell")
_IMAGE_ORDER = (
    "id", "comment", "created", "container", "container_config", "docker_version",
    "author", "config", "architecture", "variant", "os", "parent", "rootfs", "history",
    "os.version", "os.features")
_HISTORY_ORDER = ("created", "author", "created_by", "comment", "empty_layer")


# ---------------------------------------------------------------------------
# Ids, times, encodings


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_id(parent: str | None, diff_id: str) -> str:
    """``ChainID(L1) = DiffID1``; ``ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffIDn)``."""
    if parent is None:
        return diff_id
    return sha256_digest(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    out: list[str] = []
    for d in diff_ids:
        out.append(chain_id(out[-1] if out else None, d))
    return out


def short_id(image_id: str) -> str:
    """Docker's ``stringid.TruncateID``: drop the algorithm, keep 12 characters."""
    return image_id.split(":", 1)[-1][:12]


def format_go_time(when: datetime.datetime) -> str:
    """RFC 3339 with nanoseconds as Go prints it (UTC, trailing zeros trimmed)."""
    when = when.astimezone(datetime.timezone.utc)
    s = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        s += ("." + f"{when.microsecond:06d}").rstrip("0")
    return s + "Z"


def parse_go_time(s: Any) -> datetime.datetime:
    """Parse an RFC 3339 time (any fraction length); unparsable -> the epoch."""
    m = _GO_TIME_RE.match(s) if isinstance(s, str) else None
    if m is None:
        return datetime.datetime.fromtimestamp(0, datetime.timezone.utc)
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if tz in ("Z", "z"):
        tzinfo = datetime.timezone.utc
    else:
        sign = 1 if tz[0] == "+" else -1
        offset = datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        tzinfo = datetime.timezone(sign * offset)
    try:
        return datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), micro, tzinfo)
    except ValueError:
        return datetime.datetime.fromtimestamp(0, datetime.timezone.utc)


def host_architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def _ordered(d: dict, order: Sequence[str]) -> dict:
    out = {k: d[k] for k in order if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def empty_container_config() -> dict:
    """A ``container.Config`` with Go's zero values (omitempty fields absent)."""
    return {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
        "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
    }


def encode_image_config(config: dict) -> bytes:
    """Compact JSON in Go's field order: the bytes whose digest is the image id."""
    c = _ordered(config, _IMAGE_ORDER)
    for key in ("config", "container_config"):
        if isinstance(c.get(key), dict):
            c[key] = _ordered(c[key], _CONFIG_ORDER)
    if isinstance(c.get("history"), list):
        c["history"] = [_ordered(h, _HISTORY_ORDER) for h in c["history"]]
    return json.dumps(c, separators=(",", ":"), ensure_ascii=False).encode()


def _go_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------
# Streams


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class _PrefixedReader(io.RawIOBase):
    """Replays the bytes sniffed for magic numbers, then the rest of the stream."""

    def __init__(self, prefix: bytes, stream: IO[bytes]) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(b))
        n = len(data)
        b[:n] = data
        return n


def compression_of(head: bytes) -> str | None:
    """Docker's ``DetectCompression`` on the first bytes of a stream."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return None


def open_decompressed(stream: IO[bytes]) -> IO[bytes]:
    """Wrap a plain, gzip, bzip2, xz or zstd stream so that reading it yields the tar."""
    head = _read_exact(stream, 6)
    return _decompressor(compression_of(head), io.BufferedReader(_PrefixedReader(head, stream),
                                                                CHUNK))


def _decompressor(kind: str | None, raw: IO[bytes]) -> IO[bytes]:
    """The decompressed view of ``raw`` (Docker's ``DecompressStream``)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    if kind == "zstd":
        return _ZstdReader(raw)
    return raw


class _ZstdReader(io.RawIOBase):
    """A zstd stream decompressed as it is read; several frames (as parallel
    compressors write them) make one stream, and bytes after the last frame
    are an error, as with Docker."""

    def __init__(self, raw: IO[bytes]) -> None:
        try:
            import zstandard
        except ImportError:
            raise InvalidParameter("unsupported compression format zstd") from None
        self._raw = raw
        self._error = zstandard.ZstdError
        self._z = zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=CHUNK, read_across_frames=True, closefd=False)
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._eof:
            return 0
        try:
            n = self._z.readinto(b)
        except self._error as e:
            raise InvalidParameter(f"zstd: {e}") from None
        if n:
            return n
        if self._raw.read(1):
            raise InvalidParameter("zstd: trailing data after the last frame")
        self._eof = True
        return 0


class _Owning(io.RawIOBase):
    """A decompressor that closes the file under it when closed (theirs
    leave a file object they were given open)."""

    def __init__(self, stream: IO[bytes], owned: IO[bytes]) -> None:
        self._stream = stream
        self._owned = owned

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return self._stream.readinto(b) or 0

    def close(self) -> None:
        if not self.closed:
            try:
                self._stream.close()
            finally:
                self._owned.close()
        super().close()


class _Aborted(Exception):
    """Another layer of the same operation failed: stop reading this one."""


class _TeeReader(io.RawIOBase):
    """Replays sniffed bytes, then the stream, copying all of it to ``copy``
    (``None``: no copy) as it is read."""

    def __init__(self, prefix: bytes, stream: IO[bytes], copy: IO[bytes] | None,
                 abort: threading.Event | None = None) -> None:
        self._prefix = prefix
        self._stream = stream
        self._copy = copy
        self._abort = abort

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._abort is not None and self._abort.is_set():
            raise _Aborted()
        if self._prefix:
            data, self._prefix = self._prefix[:len(b)], self._prefix[len(b):]
        else:
            data = self._stream.read(len(b))
        n = len(data)
        b[:n] = data
        if self._copy is not None and n:
            self._copy.write(data)
        return n


class _HashingReader(io.RawIOBase):
    """Counts and hashes what is read through it (the layer's diff id);
    a decompressor's complaint becomes ``InvalidParameter``."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            n = self._stream.readinto(b) or 0
        except (EOFError, lzma.LZMAError, zlibError) as e:
            raise InvalidParameter(f"invalid tar stream: {e}") from None
        except OSError as e:
            if e.errno is not None:
                raise  # the disk, not the data
            # gzip and bzip2 report bad data as OSError without an errno.
            raise InvalidParameter(f"invalid tar stream: {e}") from None
        self._hash.update(memoryview(b)[:n])
        self.count += n
        return n

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _is_empty_tar(path: str) -> bool:
    """A tar with no entries: only zero blocks (Go writes 1 KiB, Python 10 KiB)."""
    size = os.path.getsize(path)
    if size > 64 * 1024:
        return False
    with open(path, "rb") as f:
        return f.read().count(0) == size


def _write_small(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _link_or_copy(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError:
        # Another file system (or one without hard links): copy it.
        shutil.copyfile(src, dest)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


# ---------------------------------------------------------------------------
# Dockerfile-like changes (docker import --change, docker commit --change)

_CHANGE_COMMANDS = {"cmd", "entrypoint", "healthcheck", "env", "expose", "label",
                    "onbuild", "stopsignal", "user", "volume", "workdir"}


def _logical_lines(changes: Sequence[str]) -> list[str]:
    lines: list[str] = []
    cur = ""
    for raw in "\n".join(changes).split("\n"):
        if not cur and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        stripped = raw.rstrip()
        if stripped.endswith("\\"):
            cur += stripped[:-1]
            continue
        cur += raw
        lines.append(cur.strip())
        cur = ""
    if cur.strip():
        lines.append(cur.strip())
    return lines


def _expand_var(s: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    """Expand ``$name``, ``${name}``, ``${name:-word}``, ``${name:+word}`` at ``s[i]``."""
    if i + 1 < len(s) and s[i + 1] == "{":
        end = s.find("}", i + 2)
        if end < 0:
            raise InvalidParameter("missing '}' in variable substitution")
        body = s[i + 2:end]
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?::([-+])(.*))?$", body, re.S)
        if m is None:
            raise InvalidParameter(f"bad substitution: ${{{body}}}")
        name, op, word = m.groups()
        value = env.get(name, "")
        if op == "-":
            value = value or word
        elif op == "+":
            value = word if value else ""
        return value, end + 1
    m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(s, i + 1)
    if m is None:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()


def _shell_words(s: str, env: dict[str, str], split: bool = True) -> list[str]:
    """Quote removal and variable expansion as Docker's shell lexer does them.

    With ``split`` false the whole string is one word (whitespace kept).
    """
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    i = 0
    while i < len(s):
        c = s[i]
        if split and c in " \t\r\n":
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
            i += 1
            continue
        in_word = True
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i + 1])
            i += 2
        elif c == "'":
            j = s.find("'", i + 1)
            if j < 0:
                raise InvalidParameter(
                    "unexpected end of statement while looking for matching single-quote")
            cur.append(s[i + 1:j])
            i = j + 1
        elif c == '"':
            i += 1
            while i < len(s) and s[i] != '"':
                if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in '"\\$':
                    cur.append(s[i + 1])
                    i += 2
                elif s[i] == "$":
                    value, i = _expand_var(s, i, env)
                    cur.append(value)
                else:
                    cur.append(s[i])
                    i += 1
            if i >= len(s):
                raise InvalidParameter(
                    "unexpected end of statement while looking for matching double-quote")
            i += 1
        elif c == "$":
            value, i = _expand_var(s, i, env)
            cur.append(value)
        else:
            cur.append(c)
            i += 1
    if in_word:
        words.append("".join(cur))
    return words


def _raw_words(s: str) -> list[str]:
    """Split on blanks outside quotes, keeping quotes and escapes for later."""
    words, cur, quote, i = [], [], None, 0
    while i < len(s):
        c = s[i]
        if quote is None and c in " \t":
            if cur:
                words.append("".join(cur))
                cur = []
        elif c == "\\" and i + 1 < len(s) and quote != "'":
            cur.append(s[i:i + 2])
            i += 1
        else:
            if quote is None and c in "'\"":
                quote = c
            elif c == quote:
                quote = None
            cur.append(c)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def _maybe_json(rest: str) -> list[str] | None:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return None


def _go_duration_ns(s: str) -> int:
    units = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise InvalidParameter(f'time: invalid duration "{s}"')
    return int(sum(float(a) * units[b] for a, b in parts))


def _env_dict(config: dict) -> dict[str, str]:
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in config.get("Env") or [])


def _name_values(cmd: str, rest: str, env: dict[str, str]) -> list[tuple[str, str]]:
    words = _raw_words(rest)
    if not words:
        raise InvalidParameter(f"{cmd} requires at least one argument")
    if "=" not in words[0]:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidParameter(f"{cmd} must have two arguments")
        return [(parts[0], _shell_words(parts[1].strip(), env, split=False)[0])]
    pairs = []
    for w in words:
        if "=" not in w:
            raise InvalidParameter(
                f'Syntax error - can\'t find = in "{w}". Must be of the form: name=value')
        k, v = w.split("=", 1)
        if not k:
            raise InvalidParameter(f"{cmd} names can not be blank")
        key = _shell_words(k, env, split=False)
        value = _shell_words(v, env, split=False)
        pairs.append((key[0] if key else "", value[0] if value else ""))
    return pairs


def _expose(ports: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for spec in ports:
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        lo, _, hi = port.partition("-")
        try:
            start, end = int(lo), int(hi or lo)
        except ValueError:
            raise InvalidParameter(f"invalid containerPort: {port}") from None
        if proto not in ("tcp", "udp", "sctp") or not 0 < start <= end <= 65535:
            raise InvalidParameter(f"invalid containerPort: {port}")
        for p in range(start, end + 1):
            out[f"{p}/{proto}"] = {}
    return out


def _check_signal(s: str) -> str:
    name = s.upper()
    if s.isdigit() or hasattr(signal, name) or hasattr(signal, "SIG" + name) or \
            re.match(r"^(SIG)?RTM(IN|AX)([+-]\d+)?$", name):
        return s
    raise InvalidParameter(f"Invalid signal: {s}")


def _healthcheck(rest: str) -> dict:
    m = re.match(r"^((?:--\S+\s+)*)(\S*)\s*(.*)$", rest, re.S)
    flags, kind, cmdline = m.group(1).split(), m.group(2).upper(), m.group(3).strip()
    opts: dict[str, Any] = {}
    keys = {"--interval": "Interval", "--timeout": "Timeout",
            "--start-period": "StartPeriod", "--start-interval": "StartInterval"}
    for word in flags:
        flag, _, value = word.partition("=")
        if flag == "--retries":
            try:
                opts["Retries"] = int(value)
            except ValueError:
                raise InvalidParameter(f"invalid value for retries: {value}") from None
        elif flag in keys:
            opts[keys[flag]] = _go_duration_ns(value)
        else:
            raise InvalidParameter(f"Unknown flag: {flag.lstrip('-')}")
    if kind == "NONE":
        if cmdline or opts:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if not cmdline:
        raise InvalidParameter("Missing command after HEALTHCHECK CMD")
    exec_form = _maybe_json(cmdline)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", cmdline]
    return _ordered({"Test": test, **opts},
                    ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"))


def apply_changes(config: dict | None, changes: Sequence[str]) -> dict:
    """Apply ``--change`` lines (a Dockerfile subset) to a container config.

    Accepts CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD,
    STOPSIGNAL, USER, VOLUME and WORKDIR, in JSON (exec) and shell forms, with
    ``$VAR`` expansion from the config's environment.

    :return: a new config (the input is not modified).
    :raises InvalidParameter: ``<cmd> is not a valid change command`` or a
        syntax error, worded as Docker words it.
    """
    cfg = dict(config) if config else empty_container_config()
    cmd_set = False
    for line in _logical_lines(changes):
        parts = line.split(None, 1)
        cmd = parts[0].lower()
        rest = parts[1].strip() if len(parts) > 1 else ""
        if cmd not in _CHANGE_COMMANDS:
            raise InvalidParameter(f"{cmd} is not a valid change command")
        env = _env_dict(cfg)
        if cmd in ("cmd", "entrypoint"):
            exec_form = _maybe_json(rest)
            value = exec_form if exec_form is not None else ["/bin/sh", "-c", rest]
            if cmd == "cmd":
                cfg["Cmd"] = value
                cmd_set = True
            else:
                cfg["Entrypoint"] = value if (exec_form is not None or rest) else None
                if not cmd_set:
                    cfg["Cmd"] = None
        elif cmd == "env":
            current = list(cfg.get("Env") or [])
            for k, v in _name_values("ENV", rest, env):
                entry = f"{k}={v}"
                for i, e in enumerate(current):
                    if e.split("=", 1)[0] == k:
                        current[i] = entry
                        break
                else:
                    current.append(entry)
                env[k] = v
            cfg["Env"] = current
        elif cmd == "label":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_name_values("LABEL", rest, env))
            cfg["Labels"] = labels
        elif cmd == "expose":
            ports = _shell_words(rest, env)
            if not ports:
                raise InvalidParameter("EXPOSE requires at least one argument")
            exposed = dict(cfg.get("ExposedPorts") or {})
            exposed.update(_expose(ports))
            cfg["ExposedPorts"] = exposed
        elif cmd == "volume":
            vols = _maybe_json(rest)
            if vols is None:
                vols = _shell_words(rest, env)
            if not vols:
                raise InvalidParameter("VOLUME requires at least one argument")
            volumes = dict(cfg.get("Volumes") or {})
            for v in vols:
                if not v.strip():
                    raise InvalidParameter("VOLUME specified can not be an empty string")
                volumes[v.strip()] = {}
            cfg["Volumes"] = volumes
        elif cmd in ("user", "stopsignal", "workdir"):
            words = _shell_words(rest, env, split=False)
            if not rest or not words:
                raise InvalidParameter(f"{cmd.upper()} requires exactly one argument")
            value = words[0]
            if cmd == "user":
                cfg["User"] = value
            elif cmd == "stopsignal":
                cfg["StopSignal"] = _check_signal(value)
            else:
                if not value.startswith("/"):
                    value = posixpath.join("/", cfg.get("WorkingDir") or "/", value)
                cfg["WorkingDir"] = posixpath.normpath(value).replace("//", "/")
        elif cmd == "healthcheck":
            cfg["Healthcheck"] = _healthcheck(rest)
        elif cmd == "onbuild":
            trigger = rest.split(None, 1)
            if not trigger:
                raise InvalidParameter("ONBUILD requires at least one argument")
            if trigger[0].upper() in ("ONBUILD", "FROM", "MAINTAINER"):
                raise InvalidParameter(
                    f"{trigger[0].upper()} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), rest]
    return _ordered(cfg, _CONFIG_ORDER)


# ---------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Image:
    """An image as the store knows it (immutable; a new one replaces it)."""

    id: str
    config: dict = field(compare=False, repr=False)
    raw_config: bytes = field(repr=False)
    layers: tuple[str, ...] = ()
    diff_ids: tuple[str, ...] = ()
    size: int = 0
    created: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.fromtimestamp(0, datetime.timezone.utc))
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    parent: str = ""
    last_tag_time: str = ""

    @property
    def short_id(self) -> str:
        return short_id(self.id)


@dataclass(frozen=True)
class Layer:
    """An image layer: content-addressed by chain id, stored under ``cache_id``."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    cache_id: str


@dataclass(frozen=True)
class _Snapshot:
    images: dict[str, Image]
    refs: dict[str, str]
    layers: dict[str, Layer]


class _Txn:
    """Chain ids an operation in progress needs kept (not collected)."""

    def __init__(self) -> None:
        self.held: list[str] = []


class _LayerSource:
    """Where a layer blob (plain or compressed) comes from during load/add."""

    def open(self) -> tuple[IO[bytes], str | None]:
        """:return: the blob's stream, and the path of a file that holds the
        same bytes once the stream has been read to its end (linked as the
        layer's kept blob instead of writing a copy), or ``None``."""
        raise NotImplementedError


class _StreamLayer(_LayerSource):
    """A blob from an opener; a stream with a ``path`` attribute (a
    download) names the file it reads."""

    def __init__(self, opener: Callable[[], IO[bytes]]) -> None:
        self._opener = opener

    def open(self) -> tuple[IO[bytes], str | None]:
        stream = self._opener()
        return stream, getattr(stream, "path", None)


class _SpooledLayer(_LayerSource):
    def __init__(self, path: str, raw_digest: str, compressed: bool) -> None:
        self.path, self.raw_digest, self.compressed = path, raw_digest, compressed

    def open(self) -> tuple[IO[bytes], str | None]:
        return open(self.path, "rb"), self.path


@dataclass(eq=False)
class _LayerJob:
    """One layer being made by ``ImageStore._add_layers``."""

    index: int
    chain: str
    parent: str | None
    diff_id: str
    source: _LayerSource
    tmpdir: str = ""
    cache_id: str = ""
    thread: threading.Thread | None = None
    layer: Layer | None = None
    error: BaseException | None = None


@dataclass
class _Entry:
    """One image to add: its config, layer sources and names."""

    raw: bytes
    config: dict
    sources: list[_LayerSource]
    tags: list[Reference]
    parent: str = ""
    digests: list[Reference] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Archives (docker load)


class _Archive:
    """A docker-archive or OCI layout tar, spooled member by member to disk."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.files: dict[str, tuple[str, str, bool]] = {}  # name -> path, digest, compressed
        self.links: dict[str, str] = {}

    @staticmethod
    def _clean(name: str) -> str:
        norm = posixpath.normpath("/" + name).lstrip("/")
        if ".." in posixpath.normpath(name).split("/"):
            raise InvalidParameter(f"invalid archive: {name!r} points outside the archive")
        return norm

    def spool(self, stream: IO[bytes]) -> None:
        counter = 0
        try:
            tar = tarfile.open(fileobj=stream, mode="r|*")
        except tarfile.TarError as e:
            raise InvalidParameter(f"invalid archive: {e}") from None
        with tar:
            try:
                for member in tar:
                    name = self._clean(member.name)
                    if member.isreg():
                        counter += 1
                        path = os.path.join(self.dir, str(counter))
                        src = tar.extractfile(member)
                        with open(path, "wb") as out:
                            head = src.read(6)
                            out.write(head)
                            h = hashlib.sha256(head)
                            while chunk := src.read(CHUNK):
                                h.update(chunk)
                                out.write(chunk)
                        self.files[name] = (path, "sha256:" + h.hexdigest(),
                                            compression_of(head) is not None)
                    elif member.issym():
                        target = member.linkname
                        base = posixpath.dirname(name) if not target.startswith("/") else ""
                        self.links[name] = self._clean(posixpath.join(base, target))
                    elif member.islnk():
                        self.links[name] = self._clean(member.linkname)
            except (tarfile.TarError, EOFError, OSError, zlibError) as e:
                raise InvalidParameter(f"invalid archive: {e}") from None

    def lookup(self, name: str) -> tuple[str, str, bool]:
        name = self._clean(name)
        for _ in range(40):
            if name in self.files:
                return self.files[name]
            if name not in self.links:
                break
            name = self.links[name]
        raise InvalidParameter(f"invalid archive: file {name} not found in archive")

    def has(self, name: str) -> bool:
        return name in self.files or name in self.links

    def read(self, name: str, digest: str | None = None) -> bytes:
        path, actual, _ = self.lookup(name)
        if digest is not None and actual != digest:
            raise InvalidParameter(
                f"invalid archive: digest mismatch for {name}: expected {digest}, got {actual}")
        with open(path, "rb") as f:
            return f.read()

    def read_json(self, name: str, digest: str | None = None) -> Any:
        try:
            return json.loads(self.read(name, digest))
        except ValueError as e:
            raise InvalidParameter(f"invalid archive: {name}: {e}") from None

    def blob_name(self, digest: Any) -> str:
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise InvalidParameter(f"invalid archive: invalid digest {digest!r}")
        return "blobs/sha256/" + digest[7:]


def _parse_config(raw: bytes, where: str) -> dict:
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid image config {where}: {e}") from None
    if not isinstance(config, dict):
        raise InvalidParameter(f"invalid image config {where}")
    os_name = config.get("os") or "linux"
    if os_name != "linux":
        raise InvalidParameter(f"cannot load {os_name} image on linux")
    rootfs = config.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(
            isinstance(d, str) and _DIGEST_RE.match(d) for d in diff_ids):
        raise InvalidParameter(f"invalid image config {where}: bad rootfs.diff_ids")
    return config


def _valid_parent(config: dict, parent: dict | None) -> bool:
    """Docker's ``checkValidParent``: the child adds one history entry."""
    if parent is None:
        return False
    ch, ph = config.get("history") or [], parent.get("history") or []
    if not ch and not ph:
        return True
    return len(ch) - len(ph) == 1 and ch[:len(ph)] == ph


def _tagged(name: Any) -> Reference:
    if not isinstance(name, str):
        raise InvalidParameter(f"invalid tag {name!r}")
    ref = refs.parse_normalized_named(name)
    if ref.tag is None or ref.digest is not None:
        raise InvalidParameter(f'invalid tag "{name}"')
    return ref


def _platform_matches(p: dict | None) -> bool:
    if not p:
        return True
    return p.get("os", "linux") == "linux" and p.get("architecture") in (None, host_architecture())


def _docker_archive_entries(archive: _Archive) -> list[_Entry]:
    manifest = archive.read_json("manifest.json")
    if manifest is None:
        raise InvalidParameter("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(manifest, list):
        raise InvalidParameter("invalid manifest: not a list")
    entries = []
    for item in manifest:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise InvalidParameter("invalid manifest: entry without Config")
        raw = archive.read(item["Config"])
        config = _parse_config(raw, item["Config"])
        diff_ids = config.get("rootfs", {}).get("diff_ids") or []
        layers = item.get("Layers") or []
        if len(layers) != len(diff_ids):
            raise InvalidParameter(
                f"invalid manifest, layers length mismatch: expected {len(layers)}, "
                f"got {len(diff_ids)}")
        sources: list[_LayerSource] = []
        for name in layers:
            if not isinstance(name, str):
                raise InvalidParameter("invalid manifest: bad layer path")
            sources.append(_SpooledLayer(*archive.lookup(name)))
        tags = [_tagged(t) for t in item.get("RepoTags") or []]
        parent = item.get("Parent") or ""
        parent = parent if isinstance(parent, str) else ""
        entries.append(_Entry(raw, config, sources, tags, parent))
    return entries


def _oci_entries(archive: _Archive) -> list[_Entry]:
    index = archive.read_json("index.json")
    by_manifest: dict[str, _Entry] = {}
    order: list[str] = []

    def visit(desc: Any, names: list[Reference], depth: int) -> None:
        if not isinstance(desc, dict) or depth > 8:
            raise InvalidParameter("invalid archive: bad descriptor in index")
        digest = desc.get("digest")
        doc = archive.read_json(archive.blob_name(digest), digest)
        if not isinstance(doc, dict):
            raise InvalidParameter(f"invalid archive: blob {digest} is not a manifest")
        media = desc.get("mediaType") or doc.get("mediaType")
        if media in (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST) or "manifests" in doc:
            children = [d for d in doc.get("manifests") or []
                        if isinstance(d, dict) and _platform_matches(d.get("platform"))]
            if not children:
                raise InvalidParameter(
                    f"no matching manifest for linux/{host_architecture()} "
                    "in the manifest list entries")
            visit(children[0], names, depth + 1)
            return
        if digest not in by_manifest:
            cdesc = doc.get("config") or {}
            raw = archive.read(archive.blob_name(cdesc.get("digest")), cdesc.get("digest"))
            config = _parse_config(raw, cdesc.get("digest", ""))
            sources: list[_LayerSource] = []
            for ldesc in doc.get("layers") or []:
                ldigest = ldesc.get("digest") if isinstance(ldesc, dict) else None
                path, actual, compressed = archive.lookup(archive.blob_name(ldigest))
                if actual != ldigest:
                    raise InvalidParameter(
                        f"invalid archive: digest mismatch for layer: expected {ldigest}, "
                        f"got {actual}")
                sources.append(_SpooledLayer(path, actual, compressed))
            diff_ids = config.get("rootfs", {}).get("diff_ids") or []
            if len(sources) != len(diff_ids):
                raise InvalidParameter(
                    f"invalid manifest, layers length mismatch: expected {len(sources)}, "
                    f"got {len(diff_ids)}")
            by_manifest[digest] = _Entry(raw, config, sources, [])
            order.append(digest)
        entry = by_manifest[digest]
        for n in names:
            if n not in entry.tags:
                entry.tags.append(n)

    if not isinstance(index, dict):
        raise InvalidParameter("invalid archive: bad index.json")
    for desc in index.get("manifests") or []:
        names: list[Reference] = []
        annotations = (desc.get("annotations") or {}) if isinstance(desc, dict) else {}
        name = annotations.get(ANNOTATION_IMAGE_NAME)
        ref_name = annotations.get(ANNOTATION_REF_NAME)
        if not name and ref_name and ("/" in ref_name or ":" in ref_name):
            name = ref_name
        if name:
            ref = refs.parse_normalized_named(name)
            if ref.digest is None:
                names.append(refs.tag_name_only(ref))
        visit(desc, names, 0)
    return [by_manifest[d] for d in order]


# ---------------------------------------------------------------------------
# The store


class ImageStore:
    """Images, layers and references under ``root`` (``<data-root>/image``).

    :param root: directory owned by the store (created if missing).
    :param driver: the ``IStorageDriver`` holding unpacked layers.
    :param docker_version: written as ``docker_version`` in configs we create.
    """

    def __init__(self, root: str, driver, docker_version: str = DOCKER_VERSION) -> None:
        self.root = root
        self.driver = driver
        self.docker_version = docker_version
        self._blobs = os.path.join(root, "blobs", "sha256")
        self._layers_dir = os.path.join(root, "layers", "sha256")
        self._meta_dir = os.path.join(root, "metadata", "sha256")
        self._owners_dir = os.path.join(root, "layer-refs")
        self._tmp = os.path.join(root, "tmp")
        self._refs_path = os.path.join(root, "repositories.json")
        self._lock = threading.RLock()
        self._holds: collections.Counter[str] = collections.Counter()
        # Writer-side state, changed under the lock and published as snapshots.
        self._records: dict[str, Image] = {}
        self._refs: dict[str, str] = {}
        self._layers: dict[str, Layer] = {}
        self._owners: dict[str, str] = {}
        self._making: dict[str, threading.Event] = {}  # chain -> claimed, being made
        self._snap = _Snapshot({}, {}, {})
        self._recover()

    # -- start-up ----------------------------------------------------------

    def _recover(self) -> None:
        for d in (self._blobs, self._layers_dir, self._meta_dir, self._owners_dir, self._tmp):
            os.makedirs(d, exist_ok=True)
        syscalls.spread_subdirectories(self._layers_dir)
        for name in os.listdir(self._tmp):
            path = os.path.join(self._tmp, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
        for name in os.listdir(self._layers_dir):
            path = os.path.join(self._layers_dir, name)
            if name.startswith("."):
                self._destroy_layer_dir(path)
                continue
            try:
                diff = _read_text(os.path.join(path, "diff"))
                cache_id = _read_text(os.path.join(path, "cache-id"))
                size = int(_read_text(os.path.join(path, "size")))
                ppath = os.path.join(path, "parent")
                parent = _read_text(ppath) if os.path.exists(ppath) else None
            except (OSError, ValueError):
                log.warning("image store: dropping incomplete layer %s", name)
                self._destroy_layer_dir(path)
                continue
            cid = "sha256:" + name
            self._layers[cid] = Layer(cid, diff, parent, size, cache_id)
        for name in os.listdir(self._blobs):
            path = os.path.join(self._blobs, name)
            if name.startswith("."):
                os.unlink(path)
                continue
            with open(path, "rb") as f:
                raw = f.read()
            image_id = "sha256:" + name
            try:
                if sha256_digest(raw) != image_id:
                    raise ValueError("digest mismatch")
                record = self._record(image_id, raw, json.loads(raw))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("image store: dropping image %s: %s", name, e)
                os.unlink(path)
                continue
            meta = self._read_meta(image_id)
            self._records[image_id] = replace(
                record, parent=meta.get("parent", ""), last_tag_time=meta.get("last_tag_time", ""))
        for name in os.listdir(self._meta_dir):
            if name.startswith(".") or "sha256:" + name.removesuffix(".json") not in self._records:
                os.unlink(os.path.join(self._meta_dir, name))
        try:
            stored = atomic.read_json(self._refs_path).get("Repositories", {})
        except FileNotFoundError:
            stored = {}
        for repo in stored.values():
            for name, image_id in repo.items():
                if image_id in self._records:
                    try:
                        ref = refs.parse_normalized_named(name)
                    except InvalidParameter:
                        continue
                    self._refs[str(ref)] = image_id
        for name in os.listdir(self._owners_dir):
            path = os.path.join(self._owners_dir, name)
            if name.startswith("."):
                os.unlink(path)
                continue
            chain = _read_text(path)
            if chain in self._layers:
                self._owners[name] = chain
            else:
                os.unlink(path)
        self._publish()
        self._destroy(self._collect_locked())

    def _read_meta(self, image_id: str) -> dict:
        try:
            return atomic.read_json(os.path.join(self._meta_dir, image_id[7:] + ".json"))
        except (FileNotFoundError, ValueError):
            return {}

    def _record(self, image_id: str, raw: bytes, config: dict) -> Image:
        """Build an Image from a config whose layers must all exist."""
        diff_ids = tuple((config.get("rootfs") or {}).get("diff_ids") or [])
        layers = tuple(chain_ids(diff_ids))
        missing = [c for c in layers if c not in self._layers]
        if missing:
            raise KeyError(f"layer {missing[0]} missing")
        return Image(
            id=image_id, config=config, raw_config=raw, layers=layers, diff_ids=diff_ids,
            size=sum(self._layers[c].size for c in layers),
            created=parse_go_time(config.get("created")))

    # -- snapshots -----------------------------------------------------------

    def _publish(self) -> None:
        tags: dict[str, list[str]] = collections.defaultdict(list)
        digests: dict[str, list[str]] = collections.defaultdict(list)
        for name, image_id in self._refs.items():
            ref = refs.parse(name)
            (digests if ref.digest else tags)[image_id].append(refs.familiar(ref))
        images = {
            i: replace(r, repo_tags=tuple(sorted(tags.get(i, ()))),
                       repo_digests=tuple(sorted(digests.get(i, ()))))
            for i, r in self._records.items()}
        self._snap = _Snapshot(images, dict(self._refs), dict(self._layers))

    def _save_refs_locked(self) -> None:
        repos: dict[str, dict[str, str]] = {}
        for name, image_id in sorted(self._refs.items()):
            ref = refs.parse(name)
            repos.setdefault(refs.familiar_name(ref), {})[refs.familiar(ref)] = image_id
        atomic.write_bytes(self._refs_path, _go_json({"Repositories": repos}))

    def _save_meta_locked(self, image: Image) -> None:
        path = os.path.join(self._meta_dir, image.id[7:] + ".json")
        meta = {k: v for k, v in (("parent", image.parent),
                                  ("last_tag_time", image.last_tag_time)) if v}
        if meta:
            atomic.write_json(path, meta)
        elif os.path.exists(path):
            os.unlink(path)

    # -- lookups (cheap, any thread) ----------------------------------------

    def images(self) -> list[Image]:
        return list(self._snap.images.values())

    def get(self, image_id: str) -> Image:
        """An image by full id (``sha256:<hex>``)."""
        image = self._snap.images.get(image_id)
        if image is None:
            raise no_such_image(image_id)
        return image

    def resolve(self, ref: str) -> Image:
        """Find an image by name[:tag], name@digest, id, or unique id prefix.

        :raises InvalidParameter: ``ref`` is not a valid reference.
        :raises NotFound: ``No such image: <ref>`` (as Docker words it).
        """
        snap = self._snap
        parsed = refs.parse_any_reference(ref)
        if parsed.is_digest_only:
            image = snap.images.get(parsed.digest or "")
            if image is not None:
                return image
            raise NotFound(f"No such image: {parsed.digest}")
        image_id = snap.refs.get(self._ref_key(parsed))
        if image_id is not None and image_id in snap.images:
            return snap.images[image_id]
        found = self._search(snap, ref)
        if found is not None:
            return snap.images[found]
        raise NotFound(f"No such image: {refs.familiar(refs.tag_name_only(parsed))}")

    @staticmethod
    def _ref_key(ref: Reference) -> str:
        if ref.digest is not None:
            return str(Reference(ref.domain, ref.path, None, ref.digest))
        return str(refs.tag_name_only(ref))

    @staticmethod
    def _search(snap: _Snapshot, term: str) -> str | None:
        """Docker's id-prefix search: unique match or nothing."""
        hex_part = term[7:] if term.startswith("sha256:") else term
        if not hex_part or not _HEX_RE.match(hex_part):
            return None
        matches = [i for i in snap.images if i[7:].startswith(hex_part)]
        return matches[0] if len(matches) == 1 else None

    def top_layer(self, image: Image) -> str | None:
        """The driver's id of the image's top layer (``None``: no layers)."""
        if not image.layers:
            return None
        return self._snap.layers[image.layers[-1]].cache_id

    def layer(self, chain: str) -> Layer:
        return self._snap.layers[chain]

    def children(self, image_id: str) -> list[Image]:
        return [i for i in self._snap.images.values() if i.parent == image_id]

    def references(self, image_id: str) -> list[str]:
        """Full reference strings (``docker.io/library/busybox:latest``) of an image."""
        return sorted(n for n, i in self._snap.refs.items() if i == image_id)

    # -- layer holds (containers) -------------------------------------------

    def acquire_layer(self, owner: str, image: Image) -> str | None:
        """Keep the image's layers while ``owner`` (a container id) uses them.

        Persisted, so a container keeps its base layers even after its image
        is removed with ``--force``, and across restarts.

        :return: the driver id of the image's top layer (the parent for the
            owner's read-write layer), or ``None`` for an image with no layers.
        """
        if not image.layers:
            return None
        chain = image.layers[-1]
        with self._lock:
            if chain not in self._layers:
                raise no_such_image(image.id)
            path = os.path.join(self._owners_dir, owner)
            if owner in self._owners:
                atomic.write_bytes(path, chain.encode())
            else:
                # A new owner's file needs no temporary name: a torn one (a
                # crash) names no layer, and loading drops it.  Its directory
                # is not fsynced: the owner's own record (a container's,
                # RecordStore.create) is written durably right after, and
                # that journal commit carries this entry too.
                atomic.write_new(path, chain.encode())
            self._owners[owner] = chain
            return self._layers[chain].cache_id

    def release_layer(self, owner: str) -> None:
        """Drop ``owner``'s hold (after its read-write layer is removed)."""
        with self._lock:
            if self._owners.pop(owner, None) is None:
                return
            try:
                os.unlink(os.path.join(self._owners_dir, owner))
            except FileNotFoundError:
                pass
            garbage = self._collect_locked()
        self._destroy(garbage)

    # -- layer machinery -----------------------------------------------------

    def _hold_locked(self, txn: _Txn, chain: str) -> None:
        self._holds[chain] += 1
        txn.held.append(chain)

    def _end(self, txn: _Txn) -> list[Layer]:
        """Release a transaction's holds and destroy what became garbage."""
        with self._lock:
            for chain in txn.held:
                self._holds[chain] -= 1
                if self._holds[chain] <= 0:
                    del self._holds[chain]
            txn.held.clear()
            garbage = self._collect_locked()
        return self._destroy(garbage)

    def _collect_locked(self) -> list[tuple[Layer, str]]:
        keep: set[str] = set()
        for record in self._records.values():
            keep.update(record.layers)
        for chain in (*self._holds, *self._owners.values()):
            while chain is not None and chain not in keep and chain in self._layers:
                keep.add(chain)
                chain = self._layers[chain].parent
        garbage = [layer for c, layer in self._layers.items() if c not in keep]
        if not garbage:
            return []

        def depth(layer: Layer) -> int:
            n = 0
            while layer.parent is not None and layer.parent in self._layers:
                layer, n = self._layers[layer.parent], n + 1
            return n

        garbage.sort(key=depth, reverse=True)
        out = []
        for layer in garbage:
            trash = os.path.join(self._layers_dir, ".trash-" + secrets.token_hex(8))
            try:
                os.rename(os.path.join(self._layers_dir, layer.chain_id[7:]), trash)
            except FileNotFoundError:
                log.warning("image store: layer directory of %s vanished", layer.chain_id)
            del self._layers[layer.chain_id]
            out.append((layer, trash))
        atomic.fsync_dir(self._layers_dir)
        self._publish()
        return out

    def _destroy(self, garbage: list[tuple[Layer, str]]) -> list[Layer]:
        """Remove collected layers (children first) from the driver and disk."""
        for layer, trash in garbage:
            self.driver.remove(layer.cache_id)
            shutil.rmtree(trash, ignore_errors=True)
        return [layer for layer, _ in garbage]

    def _destroy_layer_dir(self, path: str) -> None:
        try:
            cache_id = _read_text(os.path.join(path, "cache-id"))
        except OSError:
            cache_id = ""
        if cache_id:
            self.driver.remove(cache_id)
        shutil.rmtree(path, ignore_errors=True)

    def _hold_existing(self, txn: _Txn, chain: str) -> bool:
        with self._lock:
            if chain in self._layers:
                self._hold_locked(txn, chain)
                return True
            return False

    def _new_layer_dir(self) -> str:
        return tempfile.mkdtemp(prefix=".tmp-", dir=self._layers_dir)

    def _register_layer(self, txn: _Txn, parent: str | None, tmpdir: str, diff_id: str) -> str:
        """Turn a temp layer directory holding ``layer.tar`` into a layer.

        The parent must be held by ``txn``.  Consumes ``tmpdir`` whatever happens.
        """
        chain = chain_id(parent, diff_id)
        if self._hold_existing(txn, chain):
            shutil.rmtree(tmpdir, ignore_errors=True)
            return chain
        cache_id = secrets.token_hex(32)
        try:
            self._create_driver_layer(tmpdir, cache_id, self._cache_of(parent))
            with open(os.path.join(tmpdir, "layer.tar"), "rb") as f:
                try:
                    size = int(self.driver.apply_diff(cache_id, f) or 0)
                except tarfile.TarError as e:
                    raise InvalidParameter(f"invalid tar stream: {e}") from None
            self._write_layer_records(tmpdir, diff_id, parent, size)
        except BaseException:
            self._destroy_layer_dir(tmpdir)
            raise
        if self._publish_layer(txn, tmpdir, Layer(chain, diff_id, parent, size, cache_id)):
            self._destroy_layer_dir(tmpdir)
        return chain

    def _stream_layer(self, txn: _Txn, parent: str | None, source: _LayerSource,
                      expected: str | None = None, index: int = 0) -> tuple[str, str]:
        """Make a layer straight from its blob: decompress, hash and apply in
        one pass, keeping the blob (linked when it is already a file, copied
        as it is read otherwise) so that save and push can give the exact
        tar back.

        The parent must be held by ``txn``.  Nothing is registered unless the
        diff id matches ``expected`` (``None``: any) and the whole blob was
        read (a download reports its end only once its digest matched).

        :return: (chain id, diff id).
        :raises InvalidParameter: bad compression, tar or diff id.
        """
        tmpdir = self._new_layer_dir()
        cache_id = secrets.token_hex(32)
        try:
            self._create_driver_layer(tmpdir, cache_id, self._cache_of(parent))
            diff_id, tar_size, size = self._fill_layer(tmpdir, cache_id, source)
            if expected is not None and diff_id != expected:
                raise InvalidParameter(
                    f'invalid diffID for layer {index}: expected "{expected}", '
                    f'got "{diff_id}"')
            chain = chain_id(parent, diff_id)
            self._write_layer_records(tmpdir, diff_id, parent, size, tar_size)
        except BaseException:
            self._destroy_layer_dir(tmpdir)
            raise
        if self._publish_layer(txn, tmpdir, Layer(chain, diff_id, parent, size, cache_id)):
            self._destroy_layer_dir(tmpdir)
        return chain, diff_id

    def _cache_of(self, chain: str | None) -> str | None:
        """The driver layer of a registered layer (``None`` for none)."""
        with self._lock:
            return self._layers[chain].cache_id if chain else None

    def _create_driver_layer(self, tmpdir: str, cache_id: str,
                             parent_cache: str | None) -> None:
        """Record ``cache_id`` in the new layer's directory, then make the
        driver layer on ``parent_cache``.  The record comes first: start-up
        recovery reads it to remove a driver layer left behind by a crash."""
        _write_small(os.path.join(tmpdir, "cache-id"), cache_id.encode())
        self.driver.create(cache_id, parent_cache)

    @staticmethod
    def _write_layer_records(tmpdir: str, diff_id: str, parent: str | None, size: int,
                             tar_size: int | None = None) -> None:
        """The new layer's records (``tar-size`` for a kept blob), fsynced.

        No fsync of a kept blob or of the applied files (Docker does not sync
        them either): the records are what must be durable, and they are
        published only once everything below them is complete."""
        if tar_size is not None:
            with open(os.path.join(tmpdir, "tar-size"), "wb") as f:
                f.write(str(tar_size).encode())
        _write_small(os.path.join(tmpdir, "diff"), diff_id.encode())
        _write_small(os.path.join(tmpdir, "size"), str(size).encode())
        if parent:
            _write_small(os.path.join(tmpdir, "parent"), parent.encode())
        atomic.fsync_dir(tmpdir)

    def _fill_layer(self, tmpdir: str, cache_id: str, source: _LayerSource,
                    abort: threading.Event | None = None) -> tuple[str, int, int]:
        """Apply ``source`` into the driver layer ``cache_id`` and keep its
        blob in ``tmpdir``.  :return: (diff id, tar size, layer size)."""
        stream, path = source.open()
        copy = None
        try:
            head = _read_exact(stream, 6)
            kind = compression_of(head)
            kept = os.path.join(tmpdir, _KEPT_BLOB[kind])
            if path is None:
                copy = open(kept, "wb")
            raw = io.BufferedReader(_TeeReader(head, stream, copy, abort), CHUNK)
            hashing = _HashingReader(_decompressor(kind, raw))
            tar = io.BufferedReader(hashing, CHUNK)
            try:
                size = int(self.driver.apply_diff(cache_id, tar) or 0)
            except tarfile.TarError as e:
                raise InvalidParameter(f"invalid tar stream: {e}") from None
            # The tar may end before the stream does (padding), and a download
            # reports its end only once its digest matched: read both to their
            # ends before anything is registered.
            while tar.read(CHUNK):
                pass
            while raw.read(CHUNK):
                pass
        finally:
            if copy is not None:
                copy.close()
            stream.close()
        if path is not None:
            _link_or_copy(path, kept)
        return hashing.digest, hashing.count, size

    def _publish_layer(self, txn: _Txn, tmpdir: str, layer: Layer) -> bool:
        """Rename a complete temp layer directory into place and hold it.

        :return: whether another operation made the same chain meanwhile
            (the existing layer is held then, and the caller destroys
            ``tmpdir``).
        """
        chain = layer.chain_id
        with self._lock:
            lost_race = chain in self._layers
            if not lost_race:
                os.rename(tmpdir, os.path.join(self._layers_dir, chain[7:]))
                atomic.fsync_dir(self._layers_dir)
                self._layers[chain] = layer
                self._publish()
            self._hold_locked(txn, chain)
        return lost_race

    def _parallel_apply(self) -> bool:
        """Whether layers may be applied side by side: an overlay2 layer is
        its own diff directory (its parent matters only for the lower links,
        written at create), whereas vfs copies the parent's tree."""
        return bool(getattr(self.driver, "parallel_apply", self.driver.name == "overlay2"))

    def _claim(self, txn: _Txn, chain: str) -> bool | threading.Event:
        """Hold ``chain`` if it exists (``True``), else claim its making for
        the caller (``False``), else return the event of whoever is making it.

        Claims make concurrent pulls of the same layers share one extraction,
        and keep a layer applied on top of one of ours from being built on a
        copy that could lose a race."""
        with self._lock:
            if chain in self._layers:
                self._hold_locked(txn, chain)
                return True
            event = self._making.get(chain)
            if event is not None:
                return event
            self._making[chain] = threading.Event()
            return False

    def _unclaim(self, chain: str) -> None:
        with self._lock:
            event = self._making.pop(chain, None)
        if event is not None:
            event.set()

    def _add_layers(self, txn: _Txn, diff_ids: Sequence[str], sources: Sequence[_LayerSource],
                    on_layer: Callable[[int], None] | None = None) -> list[str]:
        """Make the missing layers of one image, in chain order, and hold them.

        On overlay2 up to ``MAX_PARALLEL_LAYERS`` layers are decompressed and
        applied at once, each into its own driver layer (created in chain
        order, so each one's lower links exist); they are registered one after
        the other, each only once its parent is, so no record ever names a
        missing parent.  ``on_layer(i)`` is called once layer ``i`` (made
        here) is registered.
        """
        chains = chain_ids(diff_ids)
        start = 0
        while start < len(chains):
            start = self._add_layer_run(txn, chains, diff_ids, sources, start, on_layer)
        return chains

    def _add_layer_run(self, txn: _Txn, chains: list[str], diff_ids: Sequence[str],
                       sources: Sequence[_LayerSource], start: int,
                       on_layer: Callable[[int], None] | None) -> int:
        """Layers from ``start`` on.  :return: ``len(chains)`` when done, or
        the index to go on from when one of ours lost a race (the layers made
        on top of it were dropped)."""
        parallel = self._parallel_apply()
        slots = threading.BoundedSemaphore(MAX_PARALLEL_LAYERS)
        abort = threading.Event()
        jobs: list[_LayerJob] = []
        try:
            i = start
            while i < len(chains):
                if any(job.error is not None for job in jobs):
                    break  # reported by _finish below
                state = self._claim(txn, chains[i])
                if state is True:
                    i += 1
                    continue
                if isinstance(state, threading.Event):
                    # Someone else makes this one: finish ours, wait, look again.
                    while jobs:
                        restart = self._finish_job(txn, jobs, abort, on_layer)
                        if restart is not None:
                            return restart
                    state.wait()
                    continue
                parent = chains[i - 1] if i else None
                job = _LayerJob(i, chains[i], parent, diff_ids[i], sources[i])
                jobs.append(job)
                with self._lock:
                    layer = self._layers.get(parent) if parent else None
                parent_cache = layer.cache_id if layer is not None else (
                    jobs[-2].cache_id if parent else None)
                self._prepare_job(job, parent_cache)
                if parallel:
                    while not slots.acquire(blocking=False):
                        restart = self._finish_job(txn, jobs, abort, on_layer)
                        if restart is not None:
                            return restart
                    job.thread = threading.Thread(
                        target=self._run_job, args=(job, abort, slots),
                        name=f"layer-{i}", daemon=True)
                    job.thread.start()
                else:
                    self._run_job(job, abort, None)
                i += 1
            while jobs:
                restart = self._finish_job(txn, jobs, abort, on_layer)
                if restart is not None:
                    return restart
            return len(chains)
        finally:
            if jobs:
                abort.set()
                for job in jobs:
                    if job.thread is not None:
                        job.thread.join()
                for job in reversed(jobs):
                    self._drop_job(job)

    def _prepare_job(self, job: "_LayerJob", parent_cache: str | None) -> None:
        """The job's temp layer directory and empty driver layer (in chain
        order: a driver layer needs its parent's)."""
        try:
            job.tmpdir = self._new_layer_dir()
            job.cache_id = secrets.token_hex(32)
            self._create_driver_layer(job.tmpdir, job.cache_id, parent_cache)
        except BaseException as e:
            job.error = e
            raise

    def _run_job(self, job: "_LayerJob", abort: threading.Event,
                 slots: threading.BoundedSemaphore | None) -> None:
        try:
            diff_id, tar_size, size = self._fill_layer(job.tmpdir, job.cache_id, job.source,
                                                       abort)
            if diff_id != job.diff_id:
                raise InvalidParameter(
                    f'invalid diffID for layer {job.index}: expected "{job.diff_id}", '
                    f'got "{diff_id}"')
            self._write_layer_records(job.tmpdir, diff_id, job.parent, size, tar_size)
            job.layer = Layer(job.chain, diff_id, job.parent, size, job.cache_id)
        except BaseException as e:
            job.error = e
            abort.set()
        finally:
            if slots is not None:
                slots.release()

    def _finish_job(self, txn: _Txn, jobs: list["_LayerJob"], abort: threading.Event,
                    on_layer: Callable[[int], None] | None) -> int | None:
        """Wait for the oldest job and register its layer.

        :return: ``None``, or the index to go on from if it lost a race
            (the jobs after it, built on it, are dropped then).
        :raises: the first error of the jobs (the caller drops them all).
        """
        job = jobs[0]
        if job.thread is not None:
            job.thread.join()
        if job.error is not None:
            # The first failure in chain order is the one to report (a later
            # job may only have been aborted because of it).
            error = job.error
            if isinstance(error, _Aborted):
                error = next((j.error for j in jobs if j.error is not None
                              and not isinstance(j.error, _Aborted)), error)
            raise error
        assert job.layer is not None
        if self._publish_layer(txn, job.tmpdir, job.layer):
            abort.set()
            for later in jobs[1:]:
                if later.thread is not None:
                    later.thread.join()
            for later in reversed(jobs[1:]):
                self._drop_job(later)
            del jobs[1:]
            self._drop_job(job)
            jobs.clear()
            return job.index + 1
        jobs.pop(0)
        self._unclaim(job.chain)
        if on_layer is not None:
            on_layer(job.index)
        return None

    def _drop_job(self, job: "_LayerJob") -> None:
        if job.tmpdir:
            self._destroy_layer_dir(job.tmpdir)
        self._unclaim(job.chain)

    # -- storing images -------------------------------------------------------

    def _store_image_locked(self, raw: bytes, config: dict, parent: str = "",
                            tag_time: str = "") -> Image:
        image_id = sha256_digest(raw)
        record = self._records.get(image_id)
        if record is None:
            record = replace(self._record(image_id, raw, config), parent=parent,
                             last_tag_time=tag_time)
            self._save_meta_locked(record)
            atomic.write_bytes(os.path.join(self._blobs, image_id[7:]), raw)
        elif (parent and not record.parent) or tag_time:
            record = replace(record, parent=record.parent or parent,
                             last_tag_time=tag_time or record.last_tag_time)
            self._save_meta_locked(record)
        self._records[image_id] = record
        return record

    def _set_ref_locked(self, ref: Reference, image_id: str) -> str | None:
        """Point ``ref`` at the image; return the id it pointed at before."""
        if refs.familiar_name(ref) == "sha256":
            raise InvalidParameter(
                "refusing to create an ambiguous tag using digest algorithm as name")
        key = self._ref_key(ref)
        previous = self._refs.get(key)
        if ref.digest is not None and previous not in (None, image_id):
            raise Conflict(f"Cannot overwrite digest {ref.digest}")
        self._refs[key] = image_id
        return previous

    def _add_entries(self, entries: Sequence[_Entry], tag_time: str = "",
                     on_layer: Callable[[int], None] | None = None
                     ) -> list[tuple[Image, list[str]]]:
        """Create the layers of every entry, then store all images at once.

        All or nothing: a failure removes the layers this call created.
        """
        txn = _Txn()
        try:
            for entry in entries:
                diff_ids = entry.config.get("rootfs", {}).get("diff_ids") or []
                self._add_layers(txn, diff_ids, entry.sources, on_layer)
            out = []
            with self._lock:
                loaded = {sha256_digest(e.raw): e.config for e in entries}
                for entry in entries:
                    parent = entry.parent if _valid_parent(
                        entry.config, loaded.get(entry.parent)) else ""
                    image = self._store_image_locked(entry.raw, entry.config, parent, tag_time)
                    messages = []
                    for ref in entry.tags + entry.digests:
                        previous = self._set_ref_locked(ref, image.id)
                        if previous not in (None, image.id):
                            messages.append(
                                f"The image {refs.familiar(ref)} already exists, renaming the "
                                f"old one with ID {previous} to empty string")
                    out.append((image, messages))
                self._save_refs_locked()
                self._publish()
                result = [(self._snap.images[i.id], m) for i, m in out]
        finally:
            self._end(txn)
        return result

    def add_image(self, config: bytes, layers: Sequence[Callable[[], IO[bytes]]],
                  ref: str | None = None, repo_digest: str | None = None,
                  on_layer: Callable[[int], None] | None = None) -> Image:
        """Store an image from its config bytes and layer streams (for pull).

        Each opener returns a layer blob (plain or compressed; a stream with a
        ``path`` attribute names the file that holds the blob once read to its
        end, which is then linked rather than copied); its diff id is checked
        against the config.  Openers of missing layers may be called from
        several threads at once (overlay2 applies layers side by side).
        ``ref`` (``name:tag``) is tagged and ``repo_digest``
        (``name@sha256:...``) recorded.  ``on_layer(i)`` is called (from a
        store thread) once layer ``i``, made by this call, is registered.
        Blocking.
        """
        parsed = _parse_config(config, sha256_digest(config))
        diff_ids = parsed.get("rootfs", {}).get("diff_ids") or []
        if len(diff_ids) != len(layers):
            raise InvalidParameter(
                f"invalid manifest, layers length mismatch: expected {len(layers)}, "
                f"got {len(diff_ids)}")
        tags = [refs.tag_name_only(refs.parse_normalized_named(ref))] if ref else []
        digests = [refs.parse_normalized_named(repo_digest)] if repo_digest else []
        entry = _Entry(config, parsed, [_StreamLayer(o) for o in layers], tags, "", digests)
        return self._add_entries([entry], on_layer=on_layer)[0][0]

    # -- docker import -------------------------------------------------------

    def import_tar(self, stream: IO[bytes], ref: str | None, changes: Sequence[str],
                   message: str, now: datetime.datetime) -> Image:
        """``docker import``: one rootfs tar (plain/gzip/bzip2/xz/zstd) as a base image.

        :param message: the image comment; empty means ``Imported from -``.
        :raises InvalidParameter: bad reference, bad change, bad stream.
        """
        target = refs.repo_tag_reference(ref, None) if ref else None
        container_config = apply_changes(None, changes)
        message = message or "Imported from -"
        txn = _Txn()
        try:
            _, diff_id = self._stream_layer(txn, None, _StreamLayer(lambda: _NoClose(stream)))
            created = format_go_time(now)
            config = {
                "comment": message, "created": created,
                "container_config": empty_container_config(),
                "docker_version": self.docker_version, "config": container_config,
                "architecture": host_architecture(), "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": created, "comment": message}],
            }
            return self._finish_new_image(config, target, "", now)
        finally:
            self._end(txn)

    def _finish_new_image(self, config: dict, target: Reference | None, parent: str,
                          now: datetime.datetime) -> Image:
        raw = encode_image_config(config)
        with self._lock:
            tag_time = format_go_time(now) if target else ""
            image = self._store_image_locked(raw, json.loads(raw), parent, tag_time)
            if target is not None:
                self._set_ref_locked(target, image.id)
                self._save_refs_locked()
            self._publish()
            return self._snap.images[image.id]

    # -- docker commit --------------------------------------------------------

    def commit(self, layer_id: str, parent: Image | None, config: dict,
               container_config: dict, author: str, comment: str, created_by: str,
               ref: str | None, now: datetime.datetime, container_id: str = "") -> Image:
        """``docker commit``: the container layer ``layer_id`` on top of ``parent``.

        The history entry is marked ``empty_layer`` (and no layer is added)
        when the container changed nothing.
        """
        return self._commit_tar(lambda out: self.driver.diff(layer_id, out), parent, config,
                                container_config, author, comment, created_by, ref, now,
                                container_id)

    def add_layer_image(self, parent: Image | None, layer_tar: str | None, config: dict,
                        container_config: dict, created_by: str, now: datetime.datetime,
                        container_id: str = "", author: str = "", comment: str = "",
                        ref: str | None = None) -> Image:
        """A new image: ``parent`` plus the layer tar at ``layer_tar`` (``None``
        or an empty tar: no layer, history marked ``empty_layer``), with the
        given config and one history entry.  Used by ``docker build`` for
        metadata steps and for COPY on ``scratch``.  Blocking.
        """
        def write(out: IO[bytes]) -> None:
            if layer_tar is not None:
                with open(layer_tar, "rb") as src:
                    shutil.copyfileobj(src, out, CHUNK)

        return self._commit_tar(write, parent, config, container_config, author, comment,
                                created_by, ref, now, container_id)

    def _commit_tar(self, write_tar: Callable[[IO[bytes]], None], parent: Image | None,
                    config: dict, container_config: dict, author: str, comment: str,
                    created_by: str, ref: str | None, now: datetime.datetime,
                    container_id: str = "") -> Image:
        target = refs.repo_tag_reference(ref, None) if ref else None
        txn = _Txn()
        tmpdir = self._new_layer_dir()
        try:
            tar_path = os.path.join(tmpdir, "layer.tar")
            try:
                with open(tar_path, "wb") as out:
                    write_tar(out)
                    out.flush()
                    diff_id = _hash_file(tar_path)
                    empty = diff_id == EMPTY_LAYER_DIFF_ID or _is_empty_tar(tar_path)
                    if not empty:  # a metadata step's empty tar is thrown away
                        os.fsync(out.fileno())
                base = parent.layers[-1] if parent and parent.layers else None
                if base is not None and not self._hold_existing(txn, base):
                    raise no_such_image(parent.id if parent else "")
            except BaseException:
                shutil.rmtree(tmpdir, ignore_errors=True)
                raise
            if empty:
                shutil.rmtree(tmpdir, ignore_errors=True)
            else:
                self._register_layer(txn, base, tmpdir, diff_id)
            created = format_go_time(now)
            pconf = parent.config if parent else {}
            diff_ids = list(parent.diff_ids if parent else []) + ([] if empty else [diff_id])
            entry = {"created": created, "author": author, "created_by": created_by,
                     "comment": comment, "empty_layer": empty}
            history = list(pconf.get("history") or []) + [{k: v for k, v in entry.items() if v}]
            image_config = {
                "created": created, "container": container_id,
                "container_config": container_config or empty_container_config(),
                "docker_version": self.docker_version, "author": author, "config": config,
                "architecture": pconf.get("architecture") or host_architecture(),
                "variant": pconf.get("variant"), "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history,
                "os.version": pconf.get("os.version"), "os.features": pconf.get("os.features"),
            }
            image_config = {k: v for k, v in image_config.items()
                            if v not in (None, "") or k in ("config", "container_config")}
            return self._finish_new_image(image_config, target, parent.id if parent else "", now)
        finally:
            self._end(txn)

    # -- docker tag -----------------------------------------------------------

    def tag(self, source: str, repo: str, tag: str | None,
            now: datetime.datetime | None = None) -> str:
        """``docker tag``: point ``repo:tag`` at the image ``source`` names.

        :return: the new reference in familiar form.
        """
        image = self.resolve(source)
        target = refs.repo_tag_reference(repo, tag)
        when = format_go_time(now or datetime.datetime.now(datetime.timezone.utc))
        with self._lock:
            record = self._records.get(image.id)
            if record is None:
                raise no_such_image(source)
            if self._set_ref_locked(target, image.id) != image.id:
                self._save_refs_locked()  # a rebuild re-tags: unchanged, not rewritten
            self._records[image.id] = replace(record, last_tag_time=when)
            self._save_meta_locked(self._records[image.id])
            self._publish()
        return refs.familiar(target)

    # -- docker rmi -----------------------------------------------------------

    def remove(self, ref: str, force: bool, noprune: bool,
               in_use: Callable[[str], tuple[str, bool] | str | None]) -> list[dict]:
        """``docker rmi`` with Docker's rules (untag, conflicts, parent pruning).

        :param in_use: called with an image id; returns ``(container_id,
            running)`` for a container using the image (a running one in
            preference), a bare container id (taken as stopped), or ``None``.
        :return: ``[{"Untagged": ...}, {"Deleted": ...}, ...]`` as Docker
            returns them, deleted layers' chain ids included.
        :raises Conflict: Docker's ``conflict: unable to ...`` messages.
        """
        image = self.resolve(ref)
        records: list[dict] = []
        garbage: list[tuple[Layer, str]] = []
        try:
            with self._lock:
                if image.id not in self._records:
                    raise no_such_image(ref)
                try:
                    self._remove_locked(image.id, ref, force, not noprune, in_use, records)
                finally:
                    if records:
                        self._save_refs_locked()
                        self._publish()
                        garbage = self._collect_locked()
        finally:
            destroyed = self._destroy(garbage)
        records.extend({"Deleted": layer.chain_id} for layer in destroyed)
        return records

    def _refs_of(self, image_id: str) -> list[Reference]:
        return [refs.parse(n) for n, i in sorted(self._refs.items()) if i == image_id]

    @staticmethod
    def _usage(in_use: Callable, image_id: str) -> tuple[str, bool] | None:
        found = in_use(image_id)
        if not found:
            return None
        if isinstance(found, str):
            return found, False
        return str(found[0]), bool(found[1])

    @staticmethod
    def _single_reference(repo_refs: list[Reference]) -> bool:
        if len(repo_refs) <= 1:
            return len(repo_refs) == 1
        single = None
        names: set[str] = set()
        for r in repo_refs:
            if r.digest is not None:
                names.add(r.name)
            elif single is None:
                names.add(r.name)
                single = r
            else:
                return False
        single = single or repo_refs[0]
        return len(names) == 1 and single.name in names

    def _untag_locked(self, ref: Reference, records: list[dict]) -> None:
        self._refs.pop(self._ref_key(ref), None)
        records.append({"Untagged": refs.familiar(ref)})

    def _conflict(self, image_id: str, in_use: Callable, hard_only: bool,
                  check_refs: bool) -> tuple[Conflict, bool] | None:
        """Docker's ``checkImageDeleteConflict``: (error, image used by a container)."""
        def err(forceable: bool, message: str) -> Conflict:
            how = "must be forced" if forceable else "cannot be forced"
            return Conflict(f"conflict: unable to delete {short_id(image_id)} ({how}) - {message}")

        if any(r.parent == image_id for r in self._records.values()):
            return err(False, "image has dependent child images"), False
        usage = self._usage(in_use, image_id)
        if usage and usage[1]:
            return err(False, f"image is being used by running container "
                              f"{short_id(usage[0])}"), True
        if hard_only:
            return None
        if check_refs and self._refs_of(image_id):
            return err(True, "image is referenced in multiple repositories"), False
        if usage:
            return err(True, f"image is being used by stopped container "
                             f"{short_id(usage[0])}"), True
        return None

    def _remove_locked(self, image_id: str, ref: str, force: bool, prune: bool,
                       in_use: Callable, records: list[dict]) -> None:
        repo_refs = self._refs_of(image_id)
        removed_repository_ref = False
        is_id = image_id.startswith(ref) or image_id.startswith("sha256:" + ref)
        if not is_id:
            if not force and self._single_reference(repo_refs):
                usage = self._usage(in_use, image_id)
                if usage:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{ref}" (must force) '
                        f"- container {short_id(usage[0])} is using its referenced image "
                        f"{short_id(image_id)}")
            parsed = refs.tag_name_only(refs.parse_normalized_named(ref))
            self._untag_locked(parsed, records)
            repo_refs = self._refs_of(image_id)
            if parsed.digest is None and not any(
                    r.digest is None and r.name == parsed.name for r in repo_refs):
                remaining = []
                for r in repo_refs:
                    if r.digest is not None and r.name == parsed.name:
                        self._untag_locked(r, records)
                    else:
                        remaining.append(r)
                repo_refs = remaining
            if repo_refs:
                return
            removed_repository_ref = True
        elif self._single_reference(repo_refs):
            found = self._conflict(image_id, in_use, hard_only=force, check_refs=False)
            if found:
                raise found[0]
            for r in repo_refs:
                self._untag_locked(r, records)
        self._delete_helper(image_id, records, force, prune, removed_repository_ref, in_use)

    def _delete_helper(self, image_id: str, records: list[dict], force: bool, prune: bool,
                       quiet: bool, in_use: Callable) -> None:
        found = self._conflict(image_id, in_use, hard_only=force, check_refs=True)
        if found:
            error, used = found
            dangling = not self._refs_of(image_id) and not any(
                r.parent == image_id for r in self._records.values())
            if quiet and (not dangling or used):
                return
            raise error
        record = self._records[image_id]
        for r in self._refs_of(image_id):
            self._untag_locked(r, records)
        del self._records[image_id]
        for path in (os.path.join(self._blobs, image_id[7:]),
                     os.path.join(self._meta_dir, image_id[7:] + ".json")):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        records.append({"Deleted": image_id})
        if prune and record.parent and record.parent in self._records:
            self._delete_helper(record.parent, records, False, True, True, in_use)

    # -- docker image prune ----------------------------------------------------

    def prune(self, all: bool, in_use: Callable[[str], tuple[str, bool] | str | None],
              label_filters: Sequence[str] = (), label_not: Sequence[str] = (),
              until: datetime.datetime | None = None) -> dict:
        """``docker image prune``: dangling images, or with ``all`` every unused one.

        :param label_filters: ``key`` or ``key=value`` that must match.
        :param label_not: ``key`` or ``key=value``; an image matching all of them is kept.
        :return: ``{"ImagesDeleted": [...] or None, "SpaceReclaimed": n}``.
        """
        snap = self._snap
        layer_sizes = {c: l.size for c, l in snap.layers.items()}
        candidates = []
        for image in sorted(snap.images.values(), key=lambda i: i.created, reverse=True):
            has_children = any(i.parent == image.id for i in snap.images.values())
            if not all and has_children:
                continue
            if not image.repo_tags and not image.repo_digests and has_children:
                continue
            if until is not None and image.created > until:
                continue
            labels = (image.config.get("config") or {}).get("Labels") or {}
            if not label_match(labels, label_filters):
                continue
            if label_not and label_match(labels, label_not):
                continue
            candidates.append(image)
        deleted: list[dict] = []
        for image in candidates:
            names = self.references(image.id)
            if names:
                if not all and image.repo_tags:
                    continue
                targets = names
            else:
                targets = [image.id[7:]]
            for target in targets:
                try:
                    deleted.extend(self.remove(target, False, False, in_use))
                except (Conflict, NotFound):
                    continue
        reclaimed = sum(layer_sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- docker load / save ------------------------------------------------------

    def load(self, stream: IO[bytes]) -> list[str]:
        """``docker load``: a docker-archive and/or OCI layout tar (maybe compressed).

        :return: the lines Docker prints (``Loaded image: busybox:latest``,
            ``Loaded image ID: sha256:...``).
        :raises InvalidParameter: malformed archive, digest or diff id
            mismatch (nothing is stored then).
        """
        spool = tempfile.mkdtemp(prefix="load-", dir=self._tmp)
        try:
            archive = _Archive(spool)
            archive.spool(stream)
            if archive.has("manifest.json"):
                entries = _docker_archive_entries(archive)
            elif archive.has("index.json"):
                entries = _oci_entries(archive)
            else:
                raise InvalidParameter(
                    "invalid archive: no manifest.json or index.json found (legacy "
                    "v1 archives are not supported)")
            results = self._add_entries(entries)
        finally:
            shutil.rmtree(spool, ignore_errors=True)
        lines: list[str] = []
        ids = ""
        tagged = 0
        for (image, messages), entry in zip(results, entries):
            ids += f"Loaded image ID: {image.id}\n"
            tagged = 0
            lines.extend(messages)
            for ref in entry.tags:
                lines.append(f"Loaded image: {refs.familiar(ref)}")
                tagged += 1
        if tagged == 0:
            lines.extend(ids.splitlines())
        return lines

    def _save_names(self, names: Sequence[str]) -> dict[str, list[Reference]]:
        snap = self._snap
        chosen: dict[str, list[Reference]] = {}

        def add(image_id: str, ref: Reference | None) -> None:
            if image_id not in snap.images:
                raise no_such_image(image_id)
            tags = chosen.setdefault(image_id, [])
            if ref is not None and ref.digest is None:
                ref = refs.tag_name_only(ref)
                if ref not in tags:
                    tags.append(ref)

        for name in names:
            parsed = refs.parse_any_reference(name)
            if parsed.is_digest_only:
                add(self.resolve(name).id, None)
            elif refs.familiar_name(parsed) == "sha256" or parsed.is_name_only:
                assocs = [(refs.parse(n), i) for n, i in sorted(snap.refs.items())
                          if parsed.is_name_only and refs.parse(n).name == parsed.name]
                for r, i in assocs:
                    add(i, r)
                if not assocs:
                    found = self._search(snap, name)
                    if found is None:
                        shown = refs.familiar(refs.tag_name_only(parsed))
                        raise NotFound(f"No such image: {shown}")
                    add(found, None)
            else:
                image_id = snap.refs.get(self._ref_key(parsed))
                if image_id is None:
                    raise NotFound(f"No such image: {refs.familiar(parsed)}")
                add(image_id, parsed)
        return chosen

    def save(self, names: Sequence[str], out: IO[bytes]) -> None:
        """``docker save``: write a docker-archive + OCI layout tar to ``out``.

        The layout is Docker 25+'s: ``blobs/sha256/`` (configs, uncompressed
        layer tars, OCI manifests), ``index.json``, ``manifest.json``,
        ``oci-layout`` and the legacy ``repositories``.
        """
        chosen = self._save_names(names)
        txn = _Txn()
        try:
            with self._lock:
                for image_id in chosen:
                    image = self._records[image_id]
                    for chain in image.layers:
                        self._hold_locked(txn, chain)
            self._write_archive(chosen, out)
        finally:
            self._end(txn)

    def layer_blob(self, layer: Layer) -> tuple[str, str | None]:
        """The blob kept for a layer: its path and compression (``None``:
        the plain tar, ``gzip``, ``bzip2``, ``xz``, ``zstd``).  A pulled
        layer keeps the very blob it was pulled as.  Blocking.

        :raises SystemError_: the layer has no kept blob.
        """
        directory = os.path.join(self._layers_dir, layer.chain_id[7:])
        for kind, name in _KEPT_BLOB.items():
            path = os.path.join(directory, name)
            if os.path.exists(path):
                return path, kind
        raise SystemError_(f"layer {layer.chain_id} has no stored tar; cannot export it")

    def open_layer_tar(self, layer: Layer) -> IO[bytes]:
        """The layer's tar, byte for byte (its digest is the diff id).  Blocking."""
        path, kind = self.layer_blob(layer)
        f = open(path, "rb")
        if kind is None:
            return f
        return io.BufferedReader(_Owning(_decompressor(kind, io.BufferedReader(f, CHUNK)), f),
                                 CHUNK)

    def layer_tar_size(self, layer: Layer) -> int:
        """Size of the layer's tar (not of its kept blob).  Blocking."""
        path, kind = self.layer_blob(layer)
        if kind is None:
            return os.path.getsize(path)
        try:
            return int(_read_text(os.path.join(os.path.dirname(path), "tar-size")))
        except (OSError, ValueError):
            n = 0
            with self.open_layer_tar(layer) as f:
                while chunk := f.read(CHUNK):
                    n += len(chunk)
            return n

    def _layer_tar(self, layer: Layer) -> str:
        """The layer's plain tar file (layers made by commit or build)."""
        path, kind = self.layer_blob(layer)
        if kind is None:
            return path
        raise SystemError_(f"layer {layer.chain_id} is kept compressed ({kind}); "
                           "read it with open_layer_tar")

    def _write_archive(self, chosen: dict[str, list[Reference]], out: IO[bytes]) -> None:
        snap = self._snap
        # hex -> (bytes, or the layer to read, mtime)
        blobs: dict[str, tuple[bytes | Layer, int]] = {}
        manifest = []
        index_manifests = []
        repositories: dict[str, dict[str, str]] = {}
        ids = set(chosen)
        for image_id, tags in chosen.items():
            image = snap.images[image_id]
            mtime = int(image.created.timestamp())
            blobs[image_id[7:]] = (image.raw_config, mtime)
            layer_descs = []
            for chain, diff_id in zip(image.layers, image.diff_ids):
                layer = snap.layers[chain]
                blobs[diff_id[7:]] = (layer, mtime)
                layer_descs.append({"mediaType": MEDIA_OCI_LAYER, "digest": diff_id,
                                    "size": self.layer_tar_size(layer)})
            plat = {"architecture": image.config.get("architecture") or host_architecture(),
                    "os": image.config.get("os") or "linux"}
            if image.config.get("variant"):
                plat["variant"] = image.config["variant"]
            oci_manifest = _go_json({
                "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": image_id,
                           "size": len(image.raw_config)},
                "layers": layer_descs})
            mdigest = sha256_digest(oci_manifest)
            blobs[mdigest[7:]] = (oci_manifest, 0)
            desc = {"mediaType": MEDIA_OCI_MANIFEST, "digest": mdigest, "size": len(oci_manifest)}
            for ref in tags:
                index_manifests.append({**desc, "annotations": {
                    ANNOTATION_IMAGE_NAME: str(ref), ANNOTATION_REF_NAME: ref.tag},
                    "platform": plat})
                if image.diff_ids:
                    repositories.setdefault(refs.familiar_name(ref), {})[ref.tag] = \
                        image.diff_ids[-1][7:]
            if not tags:
                index_manifests.append({**desc, "platform": plat})
            item: dict[str, Any] = {
                "Config": "blobs/sha256/" + image_id[7:],
                "RepoTags": [refs.familiar(t) for t in tags] or None,
                "Layers": ["blobs/sha256/" + d[7:] for d in image.diff_ids]}
            if image.parent and image.parent in ids:
                item["Parent"] = image.parent
            manifest.append(item)
        index = _go_json({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                          "manifests": index_manifests})
        tar = _TarWriter(out)
        for name in ("blobs", "blobs/sha256"):
            tar.directory(name)
        for hex_name in sorted(blobs):
            content, mtime = blobs[hex_name]
            name = "blobs/sha256/" + hex_name
            if isinstance(content, bytes):
                tar.file(name, io.BytesIO(content), len(content), mtime)
            else:
                with self.open_layer_tar(content) as f:
                    tar.file(name, f, self.layer_tar_size(content), mtime)
        files = [("index.json", index),
                 ("manifest.json", _go_json(manifest) + b"\n"),
                 ("oci-layout", OCI_LAYOUT)]
        if repositories:
            files.append(("repositories", _go_json(repositories) + b"\n"))
        for name, data in files:
            tar.file(name, io.BytesIO(data), len(data), 0)
        tar.close()

    # -- Docker-shaped views -------------------------------------------------------

    def inspect(self, image: Image) -> dict:
        """``GET /images/{name}/json``."""
        config = image.config
        comment = config.get("comment") or ""
        history = config.get("history") or []
        if not comment and history:
            comment = history[-1].get("comment") or ""
        data = None
        if image.layers:
            layer = self._snap.layers.get(image.layers[-1])
            if layer is not None:
                data = self.driver.metadata(layer.cache_id)
        out = {
            "Id": image.id,
            "RepoTags": list(image.repo_tags),
            "RepoDigests": list(image.repo_digests),
            "Parent": image.parent,
            "Comment": comment,
            "Created": config.get("created") or ZERO_TIME,
            "Container": config.get("container") or "",
            "ContainerConfig": config.get("container_config") or empty_container_config(),
            "DockerVersion": config.get("docker_version") or "",
            "Author": config.get("author") or "",
            "Config": config.get("config"),
            "Architecture": config.get("architecture") or "",
        }
        if config.get("variant"):
            out["Variant"] = config["variant"]
        out["Os"] = config.get("os") or "linux"
        if config.get("os.version"):
            out["OsVersion"] = config["os.version"]
        out.update({
            "Size": image.size,
            "VirtualSize": image.size,
            "GraphDriver": {"Name": self.driver.name, "Data": data},
            "RootFS": {"Type": (config.get("rootfs") or {}).get("type", "layers"),
                       "Layers": list(image.diff_ids)},
            "Metadata": {"LastTagTime": image.last_tag_time or ZERO_TIME},
        })
        return out

    def summary(self, image: Image) -> dict:
        """One entry of ``GET /images/json``."""
        return {
            "Containers": -1,
            "Created": int(image.created.timestamp()),
            "Id": image.id,
            "Labels": (image.config.get("config") or {}).get("Labels") or {},
            "ParentId": image.parent,
            "RepoDigests": list(image.repo_digests),
            "RepoTags": list(image.repo_tags),
            "SharedSize": -1,
            "Size": image.size,
            "VirtualSize": image.size,
        }

    def history(self, image: Image) -> list[dict]:
        """``GET /images/{name}/history``: newest first, ids along the parent chain."""
        snap = self._snap
        items = []
        layer_index = 0
        for h in image.config.get("history") or []:
            size = 0
            if not h.get("empty_layer"):
                if layer_index >= len(image.layers):
                    raise SystemError_("too many non-empty layers in History section")
                layer = snap.layers.get(image.layers[layer_index])
                size = layer.size if layer else 0
                layer_index += 1
            items.insert(0, {
                "Id": "<missing>",
                "Created": int(parse_go_time(h.get("created")).timestamp()),
                "CreatedBy": h.get("created_by") or "",
                "Tags": None,
                "Size": size,
                "Comment": h.get("comment") or "",
            })
        current: Image | None = image
        for item in items:
            if current is None:
                break
            item["Id"] = current.id
            item["Tags"] = list(current.repo_tags) or None
            current = snap.images.get(current.parent) if current.parent else None
        return items


class _TarWriter:
    """A streaming tar writer with large copies (``tarfile``'s stream mode
    re-slices its buffer for every 10 KiB, which is slow for big layers).
    Ends with two zero blocks, as Go's archive/tar does."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def _header(self, info: tarfile.TarInfo) -> None:
        self._out.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))

    def directory(self, name: str, mtime: int = 0) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
        self._header(info)

    def file(self, name: str, src: IO[bytes], size: int, mtime: int) -> None:
        info = tarfile.TarInfo(name)
        info.mode, info.size, info.mtime = 0o644, size, mtime
        self._header(info)
        left = size
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise SystemError_(f"{name} shrank while being exported")
            self._out.write(chunk)
            left -= len(chunk)
        if size % tarfile.BLOCKSIZE:
            self._out.write(b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def close(self) -> None:
        self._out.write(b"\0" * (2 * tarfile.BLOCKSIZE))


class _NoClose:
    """Lets ``with opener() as f`` use a caller's stream without closing it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NoClose":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

