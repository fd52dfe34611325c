# -*- test-case-name: dockerpy.test.test_image_store -*-
"""An in-memory storage driver: the verified fake of ``IStorageDriver``.

Layers are lists of tar entries kept in memory; ``apply_diff`` records the
entries of the tar it reads and ``diff`` writes a layer's own entries back as
a tar.  Nothing is mounted: ``mount`` hands out an empty directory under
``home`` so callers that only need a path can run.  Good enough for testing
code that drives a driver (the image store), not for running containers.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import tarfile
import threading

from zope.interface import implementer

from dockerpy.errors import Conflict, InvalidParameter, NotFound
from dockerpy.interfaces import IStorageDriver


class _FakeLayer:
    def __init__(self, parent: str | None) -> None:
        self.parent = parent
        self.entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
        self.mounts = 0


@implementer(IStorageDriver)
class FakeStorageDriver:
    """Keeps layers in memory; counts calls so tests can check cleanups.

    :ivar fail_apply: when true, ``apply_diff`` raises after reading its input
        (a driver failure in the middle of applying a layer).
    """

    name = "fake"

    def __init__(self, home: str) -> None:
        self.home = home
        self.layers: dict[str, _FakeLayer] = {}
        self.removed: list[str] = []
        self.fail_apply = False
        self._lock = threading.Lock()

    def create(self, layer_id: str, parent_id: str | None) -> None:
        with self._lock:
            if layer_id in self.layers:
                raise Conflict(f"layer {layer_id} already exists")
            if parent_id is not None and parent_id not in self.layers:
                raise NotFound(f"parent layer {parent_id} does not exist")
            self.layers[layer_id] = _FakeLayer(parent_id)

    def remove(self, layer_id: str, later: list[str] | None = None) -> None:
        with self._lock:
            if self.layers.pop(layer_id, None) is not None:
                self.removed.append(layer_id)
        path = os.path.join(self.home, layer_id)
        if later is not None and os.path.isdir(path):
            doomed = os.path.join(self.home, f".removing-{layer_id}")
            os.rename(path, doomed)
            later.append(doomed)
            return
        shutil.rmtree(path, ignore_errors=True)

    def exists(self, layer_id: str) -> bool:
        return layer_id in self.layers

    def apply_diff(self, layer_id: str, stream) -> int:
        layer = self._get(layer_id)
        entries = []
        size = 0
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                name = posixpath.normpath(info.name.lstrip("/"))
                if name == ".." or name.startswith("../"):
                    raise InvalidParameter(f"invalid path in layer: {info.name}")
                data = None
                if info.isreg():
                    f = tar.extractfile(info)
                    data = f.read() if f is not None else b""
                    size += len(data)
                entries.append((info, data))
        if self.fail_apply:
            raise OSError("fake driver: apply failed")
        layer.entries = entries
        return size

    def mount(self, layer_id: str) -> str:
        layer = self._get(layer_id)
        path = os.path.join(self.home, layer_id)
        os.makedirs(path, exist_ok=True)
        layer.mounts += 1
        return path

    def unmount(self, layer_id: str) -> None:
        layer = self._get(layer_id)
        layer.mounts = max(0, layer.mounts - 1)

    def is_mounted(self, layer_id: str) -> bool:
        return self._get(layer_id).mounts > 0

    def changes(self, layer_id: str) -> list[tuple[str, int]]:
        return sorted(("/" + i.name.lstrip("/"), 1) for i, _ in self._get(layer_id).entries)

    def diff(self, layer_id: str, out) -> None:
        layer = self._get(layer_id)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for info, data in layer.entries:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)

    def size(self, layer_id: str) -> int:
        return sum(len(d) for _, d in self._get(layer_id).entries if d is not None)

    def metadata(self, layer_id: str) -> dict:
        self._get(layer_id)
        return {"Dir": os.path.join(self.home, layer_id)}

    def status(self) -> list[list[str]]:
        return [["Layers", str(len(self.layers))]]

    def cleanup(self) -> None:
        for layer in self.layers.values():
            layer.mounts = 0

    # Test helpers: what a container would have written into its layer.

    def write_file(self, layer_id: str, path: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), mode, 0
        self._get(layer_id).entries.append((info, data))

    def _get(self, layer_id: str) -> _FakeLayer:
        try:
            return self.layers[layer_id]
        except KeyError:
            raise NotFound(f"layer {layer_id} does not exist") from None
