# -*- test-case-name: dockerpy.test.test_tap -*-
"""The daemon's configuration: command-line flags merged with daemon.json.

Flags win over daemon.json, as with dockerd (which refuses a key given both
ways; we follow it for the keys that conflict).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from dockerpy import errors

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockerpy"
DEFAULT_EXEC_ROOT = "/run/dockerpy"

# daemon.json key -> DaemonConfig field
_JSON_KEYS = {
    "hosts": "hosts",
    "data-root": "data_root",
    "exec-root": "exec_root",
    "storage-driver": "storage_driver",
    "default-runtime": "default_runtime",
    "log-level": "log_level",
    "tls": "tls",
    "tlsverify": "tlsverify",
    "tlscacert": "tlscacert",
    "tlscert": "tlscert",
    "tlskey": "tlskey",
    "group": "group",
    "cgroup-parent": "cgroup_parent",
    "insecure-registries": "insecure_registries",
    "registry-mirrors": "registry_mirrors",
    "bridge": "bridge",
    "bip": "bip",
    "iptables": "iptables",
}


@dataclasses.dataclass
class DaemonConfig:
    hosts: list[str] = dataclasses.field(default_factory=list)
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    storage_driver: str = "overlay2"
    default_runtime: str | None = None
    log_level: str = "info"
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None
    insecure_tcp: bool = False
    group: str = "docker"
    cgroup_parent: str | None = None
    # registries (host:port or CIDR) pulled from and pushed to over plain HTTP;
    # 127.0.0.0/8 always is, as with dockerd
    insecure_registries: list[str] = dataclasses.field(default_factory=list)
    # mirror URLs tried before the origin for every pull (any registry, not
    # only Docker Hub); per-registry CAs and client certs in <dir>/<host:port>/
    registry_mirrors: list[str] = dataclasses.field(default_factory=list)
    registry_certs_dir: str = "/etc/docker/certs.d"
    # default bridge network: bridge name (default dpy<daemon_key>), its
    # gateway/prefix (default: a free pool), and whether we may program
    # the host firewall (our own nft table) and ip_forward
    bridge: str | None = None
    bip: str | None = None
    iptables: bool = True

    @property
    def daemon_key(self) -> str:
        """A short name unique to this daemon's data root: several daemons on one
        host derive cgroup parents, runtime roots and bridge names from it."""
        return hashlib.sha256(os.path.abspath(self.data_root).encode()).hexdigest()[:8]

    @property
    def cgroup_parent_path(self) -> str:
        from dockerpy.runtime.cgroups import cgroup_parent_for

        return self.cgroup_parent or cgroup_parent_for(self.data_root)


def load_daemon_json(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read() or b"{}")
    except FileNotFoundError:
        raise errors.InvalidParameter(f"unable to configure the Docker daemon with file {path}: "
                                      "open: no such file or directory") from None
    except ValueError as e:
        raise errors.InvalidParameter(
            f"unable to configure the Docker daemon with file {path}: {e}") from None
    if not isinstance(obj, dict):
        raise errors.InvalidParameter(f"unable to configure the Docker daemon with file {path}")
    return obj


def merge(config: DaemonConfig, from_json: dict, explicit: set[str]) -> DaemonConfig:
    """Apply daemon.json values to fields not set on the command line.

    :param explicit: the fields given as flags.
    :raises InvalidParameter: a key is both a flag and in the file (as dockerd).
    """
    conflicts = []
    for key, value in from_json.items():
        field = _JSON_KEYS.get(key)
        if field is None:
            continue  # keys for features we do not have yet are ignored
        if field in explicit:
            conflicts.append(f"{key}: (from flag: {getattr(config, field)}, "
                             f"from file: {value})")
            continue
        setattr(config, field, value)
    if conflicts:
        raise errors.InvalidParameter(
            "the following directives are specified both as a flag and in the configuration "
            "file: " + ", ".join(conflicts))
    return config
