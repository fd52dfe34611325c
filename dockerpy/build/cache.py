# -*- test-case-name: dockerpy.test.test_build_cache -*-
"""The build cache: an explicit key per step mapped to the image it made.

Owns ``<data-root>/build/cache/<key>`` (one small file per entry holding the
image id, written atomically), so the cache survives a restart.  A key is
the sha256 of the parent image id, the instruction after expansion, the
build args it used and (for COPY/ADD) the content hash of its files.  An
entry whose image is gone is ignored (and dropped).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from dockerpy import atomic

_VERSION = 1


def step_key(parent: str, instruction: str, build_args: list[str] | None = None,
             content: str = "", extra: str = "") -> str:
    """The cache key of one step (hex sha256)."""
    material = json.dumps([_VERSION, parent, instruction, sorted(build_args or []),
                           content, extra], separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()


class BuildCache:
    """Keys to image ids, on disk under ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key)

    def get(self, key: str, exists) -> str | None:
        """The image id stored for ``key`` if ``exists(image_id)`` still holds."""
        try:
            with open(self._path(key), encoding="ascii") as f:
                image_id = f.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        if image_id and exists(image_id):
            try:
                # The entry's mtime is its LastUsedAt in ``system df``.
                os.utime(self._path(key))
            except OSError:
                pass
            return image_id
        self.forget(key)
        return None

    def put(self, key: str, image_id: str) -> None:
        # Atomic but not fsynced: an entry a crash loses or leaves empty is a
        # cache miss (get checks the image), and a cold build saves two
        # fsyncs per step.
        atomic.write_bytes(self._path(key), image_id.encode("ascii"), durable=False)

    def forget(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    def entries(self) -> dict[str, str]:
        out = {}
        for name in os.listdir(self.directory):
            if name.startswith("."):
                continue
            try:
                with open(self._path(name), encoding="ascii") as f:
                    out[name] = f.read().strip()
            except (OSError, UnicodeDecodeError):
                continue
        return out

    def last_used(self, key: str) -> float:
        try:
            return os.stat(self._path(key)).st_mtime
        except OSError:
            return 0.0

    def prune(self, exists) -> int:
        """Drop every entry (``builder prune``); return how many there were."""
        n = 0
        for name in os.listdir(self.directory):
            path = self._path(name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            n += 1
        return n
