# -*- test-case-name: dockerpy.test.test_registry_layers -*-
"""What the daemon knows of layers on registries (Docker's distribution
metadata, ``V2MetadataService``), so a push can skip work:

- ``<state>/compressed.json``: diff id -> the blob it was pulled as or
  pushed as (``digest``, ``size``, ``mediaType`` and, for a foreign layer,
  its ``urls``).  A push asks the registry for that blob before compressing,
  and a foreign layer is not pushed at all.
- ``<state>/sources.json``: blob digest -> the repositories
  (``host[:port]/path``) it was pulled from or pushed to, newest first: a
  push to another repository of the same registry mounts it from there
  instead of uploading it.

Both are small JSON files rewritten atomically under one lock; every
function blocks (run them in the thread pool).  A missing or corrupt file
reads as empty: the metadata only ever saves work, it is never needed.
"""

from __future__ import annotations

import os
import threading

from dockerpy import atomic

MAX_SOURCES = 5


class DistributionMetadata:
    """:param state_dir: ``<data-root>/registry``."""

    def __init__(self, state_dir: str):
        self._compressed = os.path.join(state_dir, "compressed.json")
        self._sources = os.path.join(state_dir, "sources.json")
        self._lock = threading.Lock()

    @staticmethod
    def _read(path: str) -> dict:
        try:
            data = atomic.read_json(path)
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def blob_for(self, diff_id: str) -> dict | None:
        """``{"digest", "size", "mediaType"?, "urls"?}`` known for ``diff_id``."""
        with self._lock:
            known = self._read(self._compressed).get(diff_id)
        if not isinstance(known, dict) or "digest" not in known or "size" not in known:
            return None
        return known

    def sources(self, digest: str) -> list[str]:
        """Repositories ``digest`` is known to be in, newest first."""
        with self._lock:
            found = self._read(self._sources).get(digest)
        return [s for s in found if isinstance(s, str)] if isinstance(found, list) else []

    def record(self, diff_id: str | None, digest: str, size: int, repository: str | None,
               media_type: str | None = None, urls: tuple[str, ...] = ()) -> None:
        """Remember that the layer ``diff_id`` travels as blob ``digest``
        (when given) and that ``repository`` holds that blob (when given)."""
        self.record_many([(diff_id, digest, size, repository, media_type, urls)])

    def record_many(self, entries: list[tuple]) -> None:
        """``record`` for each tuple of its arguments, with one write per file."""
        with self._lock:
            known = self._read(self._compressed)
            sources = self._read(self._sources)
            known_changed = sources_changed = False
            for diff_id, digest, size, repository, *rest in entries:
                media_type = rest[0] if rest else None
                urls = rest[1] if len(rest) > 1 else ()
                if diff_id is not None:
                    entry: dict = {"digest": digest, "size": size}
                    if media_type:
                        entry["mediaType"] = media_type
                    if urls:
                        entry["urls"] = list(urls)
                    if known.get(diff_id) != entry:
                        known[diff_id] = entry
                        known_changed = True
                if repository is not None:
                    repos = [r for r in sources.get(digest) or [] if r != repository]
                    new = ([repository] + repos)[:MAX_SOURCES]
                    if sources.get(digest) != new:
                        sources[digest] = new
                        sources_changed = True
            if known_changed:
                atomic.write_json(self._compressed, known)
            if sources_changed:
                atomic.write_json(self._sources, sources)
