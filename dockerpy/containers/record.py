# -*- test-case-name: dockerpy.test.test_container_record -*-
"""What we store about a container: one versioned JSON record per container
(``containers/<id>/config.json``), written atomically.

This is the stored shape, not the API's: ``dockerpy.api.containers`` builds
Docker's inspect and list JSON from it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from dockerpy import atomic, syscalls
from dockerpy.timeutil import ZERO_TIME

RECORD_VERSION = 1


@dataclasses.dataclass
class State:
    status: str = "created"  # created running paused restarting removing exited dead
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = False
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME


@dataclasses.dataclass
class ContainerRecord:
    id: str
    name: str  # without the leading "/"
    created: str
    path: str
    args: list[str]
    config: dict[str, Any]
    host_config: dict[str, Any]
    image: str  # image id, sha256:...
    image_name: str  # as the user gave it (shown by `docker ps`)
    driver: str
    layer_id: str
    init_layer_id: str
    state: State = dataclasses.field(default_factory=State)
    restart_count: int = 0
    has_been_started: bool = False
    # Mount points (dockerpy.volumes.mounts); records from before volumes have none.
    mounts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # The networks it is connected to: name -> EndpointSettings (Aliases,
    # IPAMConfig, NetworkID), the primary (NetworkMode's) first.
    networks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    version: int = RECORD_VERSION

    def to_json(self) -> dict:
        # Field by field rather than dataclasses.asdict, which deep-copies
        # Config and HostConfig: ~2 ms of the reactor's time per save, for a
        # dict that json.dumps only reads.
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["state"] = {f.name: getattr(self.state, f.name)
                        for f in dataclasses.fields(self.state)}
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "ContainerRecord":
        obj = dict(obj)
        obj["state"] = State(**obj.get("state", {}))
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in fields})

    @property
    def short_id(self) -> str:
        return self.id[:12]


_REMOVING = ".removing-"


class RecordStore:
    """Container records under ``<data-root>/containers``."""

    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)
        # Each container's files in a quiet block group (see the function).
        syscalls.spread_subdirectories(root)

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def log_path(self, cid: str) -> str:
        return os.path.join(self.root, cid, f"{cid}-json.log")

    def create(self, rec: ContainerRecord) -> None:
        """The first save of a new container, durable.  Its directory is new,
        so the record needs no temporary name: a torn one (a crash) does not
        load, as if the container had never been made."""
        directory = self.dir(rec.id)
        os.makedirs(directory, exist_ok=True)
        atomic.write_new(os.path.join(directory, "config.json"),
                         atomic.encode_json(rec.to_json()), 0o600)
        atomic.fsync_dir(directory)
        atomic.fsync_dir(self.root)

    def save(self, rec: ContainerRecord, durable: bool = True) -> None:
        """:param durable: fsync too.  A run's start and exit skip it: after a
            crash the restore finds a container recorded as running dead and
            records it exited, so losing either write loses nothing else."""
        os.makedirs(self.dir(rec.id), exist_ok=True)
        atomic.write_json(os.path.join(self.dir(rec.id), "config.json"), rec.to_json(), 0o600,
                          durable)

    def load_all(self) -> list[ContainerRecord]:
        import shutil

        out = []
        for cid in sorted(os.listdir(self.root)):
            if cid.startswith(_REMOVING):
                shutil.rmtree(os.path.join(self.root, cid), ignore_errors=True)
                continue
            path = os.path.join(self.root, cid, "config.json")
            try:
                out.append(ContainerRecord.from_json(atomic.read_json(path)))
            except (OSError, ValueError, TypeError):
                continue  # a container whose creation never completed
        return out

    def delete(self, cid: str, later: list[str] | None = None) -> None:
        """Remove the container's directory; with ``later``, rename it away
        and append its new path for the caller to delete (``load_all``
        sweeps what a crash left)."""
        import shutil

        if later is None:
            shutil.rmtree(self.dir(cid), ignore_errors=True)
            return
        doomed = os.path.join(self.root, f"{_REMOVING}{cid}")
        try:
            os.rename(self.dir(cid), doomed)
        except FileNotFoundError:
            return
        later.append(doomed)
