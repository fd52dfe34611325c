# -*- test-case-name: dockerpy.test.test_registry_download -*-
"""Layer downloads: resumable, shared between pulls, readable while they run.

A ``BlobDownload`` fetches one blob into ``<tmp>/<hex>.partial``, hashing
it as it goes.  The file outlives a failed pull (connection cut, daemon
stopped), and the next attempt asks only for the rest with a ``Range``
request; within one pull a dropped connection is retried that way a few
times, as Docker does.  Several pulls needing the same blob at the same
time share one download.

``BlobReader`` is what the image store reads while the download runs (in
the pull's extraction thread): it blocks until more bytes are on disk, and
it reports end of file only once the whole blob has been checked against
its digest, so nothing unverified is ever registered as a layer.

Disk writes and hashing run in the thread pool, in order; the reactor only
moves bytes from the socket to the write queue.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Callable

import treq
from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from dockerpy import atomic
from dockerpy.errors import DockerError, InvalidParameter, SystemError_
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

CHUNK = 1 << 20
RECV_SIZE = 1 << 20
RETRIES = 5
_PROGRESS_INTERVAL = 0.1
PARTIAL_MAX_AGE = 24 * 3600

Progress = Callable[[dict], None]


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def partial_path(tmp: str, digest: str) -> str:
    return os.path.join(tmp, digest.split(":", 1)[-1] + ".partial")


def clean_tmp(tmp: str, now: float | None = None) -> None:
    """Start-up cleaning of the download directory: keep recent ``.partial``
    files (resumable), remove everything else.  Blocking."""
    now = time.time() if now is None else now
    os.makedirs(tmp, exist_ok=True)
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name)
        try:
            if name.endswith(".partial") and now - os.path.getmtime(path) < PARTIAL_MAX_AGE:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass


class _Interrupted(Exception):
    """The body stopped early: worth resuming."""


class BlobDownload:
    """One blob being fetched into a resumable partial file.

    :param reactor: for ``callLater``/``seconds``.
    :param in_thread: runs blocking work in the thread pool.
    :param digest: expected ``sha256:...``; ``size`` the expected size (0: unknown).
    """

    def __init__(self, reactor, in_thread, tmp: str, digest: str, size: int):
        self.reactor = reactor
        self.in_thread = in_thread
        self.digest = digest
        self.size = size
        self.path = partial_path(tmp, digest)
        self.listeners: list[Progress] = []
        self.users = 0
        self.requests: list[str | None] = []  # Range header of each GET (tests, logs)
        self._cond = threading.Condition()
        self._written = 0  # bytes on disk, readable
        self._done = False
        self._error: DockerError | None = None
        self._waiters: list[defer.Deferred] = []
        self._result: Failure | None | bool = False  # False: running
        self._file = None
        self._hash = hashlib.sha256()
        self._tail: defer.Deferred = defer.succeed(None)
        self._last_report = 0.0
        self._received = 0

    # -- for the pulls --------------------------------------------------------------

    def emit(self, message: dict) -> None:
        for listener in list(self.listeners):
            listener(message)

    def when_done(self) -> defer.Deferred:
        """A Deferred fired with ``None`` when the blob is verified (or
        failed with the download's error)."""
        if self._result is not False:
            return defer.fail(self._result) if isinstance(self._result, Failure) \
                else defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    @property
    def failed(self) -> bool:
        return isinstance(self._result, Failure)

    @property
    def finished(self) -> bool:
        return self._result is not False

    # -- the download --------------------------------------------------------------

    async def run(self, repo) -> None:
        """Fetch (resuming what is on disk), verify; never raises: the outcome
        goes to ``when_done`` and to the readers."""
        try:
            await self._run(repo)
        except BaseException as e:
            error = e if isinstance(e, DockerError) else SystemError_(str(e) or repr(e))
            await self._close_file()
            if isinstance(error, InvalidParameter):
                # Verification failed: nothing here is worth resuming.
                await self.in_thread(atomic.discard, self.path)
            with self._cond:
                self._error = error
                self._cond.notify_all()
            self._finish(Failure(error))
        else:
            with self._cond:
                self._done = True
                self._cond.notify_all()
            self._finish(None)

    def _finish(self, result) -> None:
        self._result = result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(None)

    def _open(self) -> int:
        """Open the partial file, hash what is already there; :return: its size."""
        try:
            if os.stat(self.path).st_nlink > 1:
                # A complete blob the image store linked as a layer's kept blob
                # (the daemon stopped before removing it here): never append to
                # that file; fetch into a new one.
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        f = open(self.path, "a+b")
        try:
            f.seek(0)
            while chunk := f.read(CHUNK):
                self._hash.update(chunk)
            size = f.tell()
            if self.size and size > self.size:
                f.truncate(0)
                self._hash = hashlib.sha256()
                size = 0
        except BaseException:
            f.close()
            raise
        self._file = f
        return size

    async def _close_file(self) -> None:
        try:
            await self._tail
        except Exception:
            pass
        if self._file is not None:
            f, self._file = self._file, None
            await self.in_thread(f.close)

    async def _run(self, repo) -> None:
        have = await self.in_thread(self._open)
        with self._cond:
            self._written = have
        received = have
        attempt = 0
        sid = short(self.digest)
        while True:
            if self.size and received >= self.size:
                break
            try:
                received = await self._fetch(repo, received)
                break
            except _Interrupted as e:
                attempt += 1
                if attempt > RETRIES:
                    raise SystemError_(f"error pulling blob {self.digest}: {e}") from None
                log.info("download of {digest} interrupted at {n} bytes ({e}); resuming",
                         digest=self.digest, n=received, e=e)
                self.emit({"status": f"Retrying in {attempt} second"
                           + ("s" if attempt > 1 else ""), "progressDetail": {}, "id": sid})
                await deferLater(self.reactor, attempt, lambda: None)
                received = self._received
        self.emit({"status": "Verifying Checksum", "progressDetail": {}, "id": sid})
        await self._tail
        digest = "sha256:" + self._hash.hexdigest()
        await self._close_file()
        if digest != self.digest or (self.size and received != self.size):
            raise InvalidParameter(f"filesystem layer verification failed for digest "
                                   f"{self.digest}")
        self.emit({"status": "Download complete", "progressDetail": {}, "id": sid})

    def _write(self, chunks: list[bytes]) -> None:
        n = 0
        for c in chunks:
            self._hash.update(c)
            self._file.write(c)
            n += len(c)
        self._file.flush()
        with self._cond:
            self._written += n
            self._cond.notify_all()

    def _queue(self, chunks: list[bytes]) -> None:
        self._tail.addCallback(lambda _: self.in_thread(self._write, chunks))

    async def _fetch(self, repo, offset: int) -> int:
        """One GET from ``offset``; :return: bytes now received in total.

        :raises _Interrupted: the body ended early (resumable).
        """
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        self.requests.append(headers.get("Range"))
        try:
            resp = await repo.request("GET", f"blobs/{self.digest}", headers)
        except SystemError_ as e:
            if offset or self.requests[:-1]:
                raise _Interrupted(e.message) from None
            raise
        if resp.code == 416 and offset:
            await treq.content(resp)
            return offset  # everything is already here; the digest will tell
        if resp.code not in (200, 206):
            raise await repo.error(resp, f"blob {self.digest}")
        _widen_reads(resp)
        # A server that ignores Range sends it all again: skip what we have.
        skip = offset if resp.code == 200 else 0
        self._received = offset
        pending: list[bytes] = []
        pending_size = 0
        sid = short(self.digest)

        def received(data: bytes) -> None:
            nonlocal skip, pending_size
            if skip:
                if len(data) <= skip:
                    skip -= len(data)
                    return
                data, skip = data[skip:], 0
            pending.append(data)
            pending_size += len(data)
            self._received += len(data)
            if pending_size >= CHUNK:
                self._queue(pending[:])
                pending.clear()
                pending_size = 0
            now = self.reactor.seconds()
            if now - self._last_report >= _PROGRESS_INTERVAL:
                self._last_report = now
                self.emit({"status": "Downloading",
                           "progressDetail": {"current": self._received, "total": self.size},
                           "progress": progress_bar(self._received, self.size), "id": sid})

        try:
            await treq.collect(resp, received)
        except Exception as e:
            if pending:
                self._queue(pending[:])
            raise _Interrupted(str(e) or e.__class__.__name__) from None
        if pending:
            self._queue(pending[:])
        if self.size and self._received < self.size:
            raise _Interrupted(f"short body: {self._received} of {self.size} bytes")
        self.emit({"status": "Downloading",
                   "progressDetail": {"current": self._received, "total": self.size},
                   "progress": progress_bar(self._received, self.size), "id": sid})
        return self._received

    # -- for the extraction thread --------------------------------------------------

    def wait_readable(self, pos: int) -> int:
        """Block until bytes past ``pos`` are on disk; :return: how many are
        (0: the blob is complete and verified).  Called from a worker thread.

        :raises DockerError: the download failed (or failed verification).
        """
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._written > pos:
                    # Bytes of a blob not yet verified may be read: the reader
                    # withholds end of file until ``_done``.
                    return self._written - pos
                if self._done:
                    return 0
                self._cond.wait(1.0)

    @property
    def verified(self) -> bool:
        return self._done


class BlobReader:
    """A file-like view of a ``BlobDownload`` for the image store (blocking).

    :param report: called with the bytes read so far, from the reading thread,
        once the download is verified (extraction progress).
    """

    def __init__(self, blob: BlobDownload, report: Callable[[int], None] | None = None):
        self._blob = blob
        self._f = None  # opened at the first bytes: the download may be queued
        self._pos = 0
        self._report = report

    def read(self, n: int = -1) -> bytes:
        avail = self._blob.wait_readable(self._pos)
        if avail == 0:
            return b""
        if self._f is None:
            self._f = open(self._blob.path, "rb")
        data = self._f.read(avail if n is None or n < 0 else min(n, avail))
        self._pos += len(data)
        if self._report is not None and self._blob.verified:
            self._report(self._pos)
        return data

    @property
    def path(self) -> str:
        """The file the blob is downloaded to: once this reader has reached
        its end, it holds exactly the verified blob (the image store links
        it as the layer's kept blob instead of writing a copy)."""
        return self._blob.path

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _widen_reads(resp) -> None:
    """Let the connection read a blob's body in ``RECV_SIZE`` pieces rather
    than Twisted's 64 KiB.  Every ``recv`` gives the GIL back, and while
    layers are being extracted in other threads the reactor waits to get it
    back after each one: fewer, larger reads keep a pull from being paced
    by that wait.  (Reaches into treq's and Twisted's response objects; if
    their shape changes this does nothing.)"""
    transport = getattr(getattr(getattr(resp, "original", None), "_transport", None),
                        "_producer", None)
    if transport is not None and isinstance(getattr(transport, "bufferSize", None), int):
        transport.bufferSize = RECV_SIZE


def progress_bar(current: int, total: int) -> str:
    """The text bar Docker puts in ``progress`` (clients draw their own from
    ``progressDetail``; this is for the ones that print the string)."""
    def human(n: float) -> str:
        for unit in ("B", "kB", "MB", "GB"):
            if n < 1000 or unit == "GB":
                return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
            n /= 1000
        return str(n)
    if total <= 0:
        return human(current)
    width = 50
    filled = min(width, int(width * current / total))
    arrow = "=" * max(filled - 1, 0) + (">" if filled < width else "=") if filled else ">"
    return f"[{arrow:<{width}}] {human(current)}/{human(total)}"
