# -*- test-case-name: dockerpy.test.test_volume_client -*-
"""``docker volume create/ls/inspect/rm/prune`` and the ``--mount`` flag
syntax of ``run``/``create`` (``type=bind,source=...,target=...``).

Standard library only, as every client module.
"""

from __future__ import annotations


from dockerpy.client.command import Cli, Parser, StatusError, confirm, parse_filters
from dockerpy.client.format import Context, human_size
from dockerpy.client.transport import APIError

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any

VOLUME_HEADERS = {
    "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Label": "LABEL",
}


class VolumeContext(Context):
    """One ``volume ls`` row: Docker's ``formatter.volumeContext`` fields."""

    FIELDS = ("Availability", "Driver", "Group", "Labels", "Links", "Mountpoint", "Name",
              "Scope", "Size", "Status")

    def __init__(self, vol: dict[str, Any]):
        self._v = vol

    def Name(self) -> str:  # noqa: N802 - Docker's template names
        return self._v.get("Name", "")

    def Driver(self) -> str:  # noqa: N802
        return self._v.get("Driver", "")

    def Scope(self) -> str:  # noqa: N802
        return self._v.get("Scope", "")

    def Mountpoint(self) -> str:  # noqa: N802
        return self._v.get("Mountpoint", "")

    def Labels(self) -> str:  # noqa: N802
        labels = self._v.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def Label(self, name: str) -> str:  # noqa: N802
        return (self._v.get("Labels") or {}).get(name, "")

    def Links(self) -> str:  # noqa: N802
        usage = self._v.get("UsageData")
        return str(usage.get("RefCount")) if usage else "N/A"

    def Size(self) -> str:  # noqa: N802
        usage = self._v.get("UsageData")
        return human_size(usage.get("Size", 0)) if usage else "N/A"

    def Group(self) -> str:  # noqa: N802
        return ""

    def Availability(self) -> str:  # noqa: N802
        return "N/A"

    def Status(self) -> str:  # noqa: N802
        return "N/A"


def create(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] [VOLUME]", "Create a volume", max_args=1)
    p.add("-d", "--driver", default="local", help='Specify volume driver name (default "local")')
    p.add("--label", kind="list", help="Set metadata for a volume")
    p.add("--name", help="Specify volume name")
    p.add("-o", "--opt", kind="list", help="Set driver specific options")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    vname = ns.args[0] if ns.args else (ns.name or "")
    if ns.args and ns.name and ns.name != ns.args[0]:
        raise StatusError(1, "conflicting options: cannot specify a volume-name through both "
                             "--name and as a positional arg")
    opts, labels = {}, {}
    for item in ns.opt:
        k, _, v = item.partition("=")
        opts[k] = v
    for item in ns.label:
        k, _, v = item.partition("=")
        labels[k] = v
    vol = cli.client.post_json("/volumes/create", None, {
        "Name": vname, "Driver": ns.driver, "DriverOpts": opts, "Labels": labels}) or {}
    cli.out(vol.get("Name", ""))
    return 0


def ls(cli: Cli, name: str, argv: list[str]) -> int:
    from dockerpy.client.containers import print_listing

    p = Parser(name, "[OPTIONS]", "List volumes", max_args=0)
    p.add("--cluster", kind="bool", help="Display only cluster volumes, and use cluster volume "
          "list formatting")
    p.add("-f", "--filter", kind="list", help="Provide filter values (e.g. \"dangling=true\")")
    p.add("--format", help="Format output using a custom template")
    p.add("-q", "--quiet", kind="bool", help="Only display volume names")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    result = cli.client.get_json("/volumes", {"filters": parse_filters(list(ns.filter))}) or {}
    vols = sorted(result.get("Volumes") or [], key=lambda v: v.get("Name", ""))
    fmt = "{{.Name}}" if ns.quiet else (ns.format or "table")
    if fmt == "table":
        fmt = "table {{.Driver}}\t{{.Name}}"
    print_listing(cli, fmt, [VolumeContext(v) for v in vols], VOLUME_HEADERS)
    for warning in result.get("Warnings") or []:
        cli.err(warning)
    return 0


def inspect(cli: Cli, name: str, argv: list[str]) -> int:
    from dockerpy.client.system import inspect_objects

    return inspect_objects(cli, name, argv, kind="volume")


def rm(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes. You cannot "
               "remove a volume that is in use by a container.", min_args=1)
    p.add("-f", "--force", kind="bool", help="Force the removal of one or more volumes")
    p.positional("volumes", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.volumes))
    failed = False
    for vol in ns.volumes:
        try:
            cli.client.send("DELETE", f"/volumes/{vol}", {"force": True if ns.force else None})
        except APIError as e:
            cli.err(str(e))
            failed = True
            continue
        cli.out(vol)
    if failed:
        raise StatusError(1, "")
    return 0


def prune(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Remove unused local volumes", max_args=0)
    p.add("-a", "--all", kind="bool", help="Remove all unused volumes, not just anonymous ones")
    p.add("--filter", kind="list", help='Provide filter values (e.g. "label=<label>")')
    p.add("-f", "--force", kind="bool", help="Do not prompt for confirmation")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    warning = ("WARNING! This will remove all local volumes not used by at least one container."
               if ns.all else "WARNING! This will remove anonymous local volumes not used by at "
               "least one container.")
    if not ns.force and not confirm(cli, warning):
        return 0
    filters = list(ns.filter) + (["all=true"] if ns.all else [])
    report = cli.client.post_json("/volumes/prune", {"filters": parse_filters(filters)}) or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        cli.out("Deleted Volumes:")
        for vol in deleted:
            cli.out(vol)
        cli.out()
    cli.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0, 4)}")
    return 0


# ------------------------------------------------------------ --mount

_TRUE = ("", "1", "true", "yes")


def _bool(value: str, key: str, spec: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise StatusError(125, f'invalid argument "{spec}" for "--mount" flag: invalid value for '
                           f"{key}: {value}")


def parse_mount_flag(spec: str) -> dict[str, Any]:
    """``--mount type=volume,source=v,target=/d,readonly,...`` -> a ``Mounts`` entry
    (docker CLI ``opts.MountOpt``)."""
    import csv

    m: dict[str, Any] = {"Type": "volume"}
    fields = next(csv.reader([spec]))

    def opts(key: str) -> dict:
        return m.setdefault(key, {})

    for field in fields:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq and key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            value = "true"
        elif not eq:
            raise StatusError(125, f'invalid argument "{spec}" for "--mount" flag: invalid '
                                   f"field '{field}' must be a key=value pair")
        if key == "type":
            m["Type"] = value
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "dst", "destination"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = _bool(value, key, spec)
        elif key == "consistency":
            m["Consistency"] = value
        elif key == "bind-propagation":
            opts("BindOptions")["Propagation"] = value
        elif key == "bind-nonrecursive":
            opts("BindOptions")["NonRecursive"] = _bool(value, key, spec)
        elif key == "volume-nocopy":
            opts("VolumeOptions")["NoCopy"] = _bool(value, key, spec)
        elif key == "volume-driver":
            opts("VolumeOptions").setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            opts("VolumeOptions").setdefault("DriverConfig", {}).setdefault(
                "Options", {})[k] = v
        elif key == "volume-label":
            k, _, v = value.partition("=")
            opts("VolumeOptions").setdefault("Labels", {})[k] = v
        elif key == "tmpfs-size":
            from dockerpy.client.run import ram_in_bytes

            opts("TmpfsOptions")["SizeBytes"] = ram_in_bytes(value)
        elif key == "tmpfs-mode":
            try:
                opts("TmpfsOptions")["Mode"] = int(value, 8)
            except ValueError:
                raise StatusError(125, f'invalid argument "{spec}" for "--mount" flag: '
                                       f"invalid value for {key}: {value}") from None
        else:
            raise StatusError(125, f'invalid argument "{spec}" for "--mount" flag: unexpected '
                                   f"key '{key}' in '{field}'")
    if not m.get("Type"):
        raise StatusError(125, f'invalid argument "{spec}" for "--mount" flag: type is required')
    if not m.get("Target"):
        raise StatusError(125, f'invalid argument "{spec}" for "--mount" flag: target is '
                               f"required")
    return m
