# -*- test-case-name: dockerpy.test.test_storage_vfs,dockerpy.test.test_storage_overlay2 -*-
"""Storage drivers: unpacked layers and container read-write layers.

``make_driver`` picks a driver by name; the drivers themselves (and their
``ctypes``/``tarfile`` imports) load only when asked for.  Each driver keeps
everything under ``<data-root>/storage/<name>``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dockerpy.errors import InvalidParameter

if TYPE_CHECKING:
    from dockerpy.interfaces import IStorageDriver

DRIVERS = ("overlay2", "vfs")


def make_driver(name: str, data_root: str) -> "IStorageDriver":
    """Make the storage driver ``name`` for a daemon's data root.

    :raises InvalidParameter: no driver has that name.
    :raises dockerpy.errors.Unavailable: the kernel or file system cannot
        run it (overlay2 on a file system overlay cannot use).
    """
    home = os.path.join(data_root, "storage", name)
    if name == "overlay2":
        from dockerpy.storage.overlay2 import Overlay2Driver
        return Overlay2Driver(home)
    if name == "vfs":
        from dockerpy.storage.vfs import VfsDriver
        return VfsDriver(home)
    raise InvalidParameter(f"error initializing graphdriver: driver not supported: {name}")
