# -*- test-case-name: dockerpy.test.test_volumes -*-
"""Volume use-cases: create, inspect, list, remove, prune, disk usage, and
the containers' side: the volumes a new container needs, which container
uses which volume, mounting them at start and letting go at exit/removal.

The one owner of "who uses this volume": a volume named by any container
(running or not) is in use and cannot be removed.  The counts are kept on
the reactor thread; the drivers' blocking work runs in the thread pool, except
:meth:`VolumeService.mount_all` and :meth:`VolumeService.unmount_all`, which
are *blocking* and meant for the container service's own thread work.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Callable

from dockerpy import errors
from dockerpy.filters import check_keys, label_match
from dockerpy.volumes import mounts as mountlib
from dockerpy.volumes.local import LocalDriver, validate_name

ANONYMOUS_LABEL = mountlib.ANONYMOUS_LABEL


class VolumeService:
    def __init__(self, in_thread: Callable[..., Any], root: str,
                 drivers: dict[str, Any] | None = None, clock=None,
                 publish: Callable[[str, str, str, dict], Any] | None = None):
        """:param root: ``<data-root>/volumes`` for the local driver.
        :param drivers: volume drivers by name (default: ``local`` only).
        :param publish: ``publish("volume", action, name, attributes)`` for
            Docker's volume events (create, mount, unmount, destroy, prune);
            called from the reactor and from threads, so it must be safe
            from both (the daemon passes one that hops to the reactor)."""
        self._in_thread = in_thread
        self._publish = publish
        self.drivers = drivers if drivers is not None else {"local": LocalDriver(root, clock)}
        self._refs: dict[str, set[str]] = {}

    # -- lookup ---------------------------------------------------------------

    def driver(self, name: str):
        try:
            return self.drivers[name or "local"]
        except KeyError:
            raise errors.NotFound(
                f'error looking up volume plugin {name}: plugin "{name}" not found') from None

    def _find(self, name: str) -> tuple[Any, dict]:
        """Blocking: the driver holding ``name`` and the volume."""
        for drv in self.drivers.values():
            try:
                return drv, drv.get(name)
            except errors.NotFound:
                continue
        raise errors.NotFound(f"get {name}: no such volume")

    def _event(self, action: str, name: str, **attributes: str) -> None:
        if self._publish is not None:
            self._publish("volume", action, name, attributes)

    def users(self, name: str) -> list[str]:
        """The ids of the containers that use the volume."""
        return sorted(self._refs.get(name, ()))

    # -- the volume API -------------------------------------------------------

    async def create(self, name: str | None = None, driver: str = "local",
                     options: dict | None = None, labels: dict | None = None,
                     anonymous: bool = False) -> dict:
        """:param anonymous: a container's anonymous volume (``-v /path``, an
            image's VOLUME): labelled so, as Docker does, for ``rm -v`` and
            prune.  A volume created through the API without a name only
            gets a random name."""
        drv = self.driver(driver)
        if anonymous:
            labels = dict(labels or {}, **{ANONYMOUS_LABEL: ""})
        if not name:
            name = secrets.token_hex(32)
        else:
            validate_name(name)
        for value in (options, labels):
            if value is not None and not (isinstance(value, dict) and all(
                    isinstance(v, str) for v in value.values())):
                raise errors.InvalidParameter("invalid JSON: options and labels must map "
                                              "strings to strings")

        def work():
            for other in self.drivers.values():
                if other is drv:
                    continue
                try:
                    other.get(name)
                except errors.NotFound:
                    continue
                raise errors.Conflict(
                    f'create {name}: volume name must be unique: a volume named "{name}" '
                    f'already exists with driver "{other.name}"')
            return drv.create(name, options, labels)

        vol = await self._in_thread(work)
        self._event("create", name, driver=drv.name)
        return vol

    async def inspect(self, name: str) -> dict:
        return (await self._in_thread(self._find, name))[1]

    async def list(self, filters: dict[str, list[str]]) -> list[dict]:  # noqa: A003
        vols = await self._in_thread(lambda: [v for d in self.drivers.values() for v in d.list()])
        return [v for v in vols if self._matches(v, filters)]

    def _matches(self, vol: dict, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if key == "dangling":
                for value in values:
                    if value.lower() not in ("true", "false", "1", "0"):
                        raise errors.InvalidParameter(
                            f'invalid filter \'dangling={value}\'')
                want_dangling = values[-1].lower() in ("true", "1")
                if want_dangling == bool(self._refs.get(vol["Name"])):
                    return False
            elif key == "name":
                if not any(v in vol["Name"] for v in values):
                    return False
            elif key == "driver":
                if vol["Driver"] not in values:
                    return False
            elif key == "label":
                if not label_match(vol.get("Labels") or {}, values):
                    return False
            elif key == "label!":
                # As moby's prune: a volume is spared only when it has every
                # label given (checked against Docker 20.10: with
                # label!=env=prod and label!=team=x, a volume labelled
                # env=prod alone is pruned).
                if label_match(vol.get("Labels") or {}, values):
                    return False
            elif key == "all":
                continue
            else:
                raise errors.InvalidParameter(f"invalid filter '{key}'")
        return True

    async def remove(self, name: str, force: bool = False) -> None:
        try:
            drv, vol = await self._in_thread(self._find, name)
        except errors.NotFound:
            if force:
                return
            raise
        self._check_unused(name)
        try:
            await self._in_thread(drv.remove, name)
        except errors.Conflict:
            self._check_unused(name)
            raise
        self._event("destroy", name, driver=drv.name)

    def _check_unused(self, name: str) -> None:
        users = self.users(name)
        if users:
            raise errors.Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")

    async def prune(self, filters: dict[str, list[str]], all_by_default: bool = False) -> dict:
        """Remove unused volumes: by default only anonymous ones (API >= 1.42),
        all with the ``all`` filter (or ``all_by_default``, for older APIs)."""
        all_values = filters.get("all") or []
        prune_all = all_by_default if not all_values else all_values[-1].lower() in ("true",
                                                                                   "1")
        flt = {k: v for k, v in filters.items() if k in ("label", "label!")}
        check_keys(filters, ("label", "label!", "all"))
        deleted, reclaimed = [], 0
        for vol in await self.list(flt):
            name = vol["Name"]
            if self._refs.get(name):
                continue
            if not prune_all and ANONYMOUS_LABEL not in (vol.get("Labels") or {}):
                continue
            drv = self.driver(vol["Driver"])
            try:
                size = await self._in_thread(drv.size, name)
                await self._in_thread(drv.remove, name)
            except errors.DockerError:
                continue
            deleted.append(name)
            reclaimed += size
            self._event("destroy", name, driver=drv.name)
        self._event("prune", "", reclaimed=str(reclaimed))
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    async def usage(self) -> list[dict]:
        """The volumes with Docker's ``UsageData`` (``system df``)."""
        out = []
        for vol in await self.list({}):
            drv = self.driver(vol["Driver"])
            size = await self._in_thread(drv.size, vol["Name"])
            out.append(dict(vol, UsageData={"Size": size,
                                            "RefCount": len(self._refs.get(vol["Name"], ()))}))
        return out

    # -- containers -------------------------------------------------------------

    async def setup(self, cid: str, points: list[dict]) -> list[dict]:
        """Create what a new container's mount points need: the volumes they
        name (anonymous ones get a random name), and check the bind sources;
        then count the container as a user of its volumes.

        :return: the mount points with each volume's Name, Source and Driver.
        :raises errors.InvalidParameter: a ``--mount`` bind whose source does
            not exist (Docker refuses those at create).
        """
        out, made = [], []
        try:
            for mp in points:
                mp = dict(mp)
                if mp["Type"] == "bind" and not mp.get("CreateSource"):
                    if not await self._in_thread(os.path.lexists, mp["Source"]):
                        raise errors.InvalidParameter(
                            f'invalid mount config for type "bind": bind source path does '
                            f'not exist: {mp["Source"]}')
                elif mp["Type"] == "volume" and not mp["Source"]:
                    if mp["Name"]:
                        try:
                            drv, vol = await self._in_thread(self._find, mp["Name"])
                        except errors.NotFound:
                            vol = await self.create(mp["Name"], mp.get("Driver") or "local",
                                                    mp.pop("DriverOpts", None),
                                                    mp.pop("Labels", None))
                    else:
                        vol = await self.create(None, mp.get("Driver") or "local",
                                                anonymous=True)
                        made.append(vol)
                    mp.pop("DriverOpts", None)
                    mp.pop("Labels", None)
                    mp.update(Name=vol["Name"], Source=vol["Mountpoint"], Driver=vol["Driver"],
                              Anonymous=ANONYMOUS_LABEL in (vol.get("Labels") or {}))
                out.append(mp)
        except BaseException:
            for vol in made:
                try:
                    await self._in_thread(self.driver(vol["Driver"]).remove, vol["Name"])
                except Exception:
                    pass
            raise
        self.add_references(cid, out)
        return out

    def add_references(self, cid: str, points: list[dict]) -> None:
        for mp in points:
            if mp["Type"] == "volume" and mp.get("Name"):
                self._refs.setdefault(mp["Name"], set()).add(cid)

    async def release(self, cid: str, points: list[dict], remove_anonymous: bool) -> None:
        """The container is gone: it no longer uses its volumes; with
        ``remove_anonymous`` its anonymous volumes that nobody else uses are
        removed (``rm -v``, ``--rm``), never named ones."""
        for mp in points:
            name = mp.get("Name")
            if mp["Type"] != "volume" or not name:
                continue
            users = self._refs.get(name)
            if users is not None:
                users.discard(cid)
                if not users:
                    del self._refs[name]
            if remove_anonymous and mp.get("Anonymous") and not self._refs.get(name):
                driver = mp.get("Driver") or "local"
                try:
                    await self._in_thread(self.driver(driver).remove, name)
                except errors.DockerError:
                    continue
                self._event("destroy", name, driver=driver)

    def mount_all(self, cid: str, points: list[dict]) -> dict[str, str]:
        """Blocking: mount the container's volumes with their drivers.

        :return: destination -> host path.
        """
        sources, done = {}, []
        try:
            for mp in points:
                if mp["Type"] == "volume" and mp.get("Name"):
                    drv = self.driver(mp.get("Driver") or "local")
                    sources[mp["Destination"]] = drv.mount(mp["Name"], cid)
                    done.append(mp)
                    self._event("mount", mp["Name"], container=cid,
                                destination=mp["Destination"], driver=drv.name,
                                propagation=mp.get("Propagation") or "",
                                **{"read/write": str(bool(mp["RW"])).lower()})
        except BaseException:
            self.unmount_all(cid, done)
            raise
        return sources

    def unmount_all(self, cid: str, points: list[dict]) -> None:
        """Blocking: the container stopped; drop its use of its volumes' mounts."""
        for mp in points:
            if mp["Type"] == "volume" and mp.get("Name"):
                drv = self.driver(mp.get("Driver") or "local")
                try:
                    drv.unmount(mp["Name"], cid)
                except errors.DockerError:
                    continue
                self._event("unmount", mp["Name"], container=cid, driver=drv.name)

    def cleanup(self) -> None:
        """Blocking: unmount whatever the drivers mounted (shutdown, crash recovery)."""
        for drv in self.drivers.values():
            drv.cleanup()
