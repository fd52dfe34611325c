# -*- test-case-name: dockerpy.test.test_runtime_oci -*-
"""Cgroup facts the daemon reports and the cgroup parent its containers live in.

This module owns: which cgroup layout the host has (v1, v2, hybrid), what
``docker info`` says about it (``CgroupVersion``, ``CgroupDriver``), the
per-daemon cgroup parent (so two daemons on one host never share a cgroup),
and removing that parent at shutdown.  The runtime creates and removes each
container's own cgroup; nothing here writes cgroup control files.

Functions reading ``/proc`` or ``/sys`` block briefly; removing cgroups walks
directories: call :func:`remove_cgroup_parent` from the thread pool.
"""

import errno
import functools
import hashlib
import os
import shutil
from typing import Optional

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270

UNIFIED = "unified"
HYBRID = "hybrid"
LEGACY = "legacy"


def cgroup_mode(root: str = CGROUP_ROOT,
                mountinfo: str = "/proc/self/mountinfo") -> str:
    """The host's layout, as containerd's ``cgroups.Mode()`` names it.

    :return: ``"unified"`` (pure v2), ``"hybrid"`` (v1 controllers plus a v2
        tree at ``<root>/unified``) or ``"legacy"`` (v1 only).
    """
    types = {mountpoint: fstype for mountpoint, fstype in _cgroup_mounts(mountinfo)}
    if types.get(root) == "cgroup2":
        return UNIFIED
    if types.get(os.path.join(root, "unified")) == "cgroup2":
        return HYBRID
    return LEGACY


@functools.cache
def host_cgroup_mode() -> str:
    """:func:`cgroup_mode` of this host, read once (asked at every start;
    the layout does not change under a running daemon)."""
    return cgroup_mode()


def v2_controllers_on_hybrid(root: str = CGROUP_ROOT, mode: Optional[str] = None) -> bool:
    """True on a hybrid host whose v2 tree holds controllers (here:
    ``hugetlb``).  crun 1.8 refuses such a host ("cgroups in hybrid mode not
    supported, drop all controllers from cgroupv2"); runc ignores the v2
    tree's controllers, as Docker does on hybrid hosts."""
    if (mode or host_cgroup_mode()) != HYBRID:
        return False
    try:
        with open(os.path.join(root, UNIFIED, "cgroup.controllers")) as f:
            return bool(f.read().split())
    except OSError:
        return False


#: Run by :func:`legacy_view_argv`'s shell: unmount the v2 tree, then exec
#: the runtime (``$0``) with its arguments.  On a host where that mount is
#: shared, :data:`_PRIVATE_FIRST` detaches it from its peers first: a plain
#: umount would propagate and unmount the host's own.
_HIDE_UNIFIED = 'umount {path} && exec "$0" "$@"'
_PRIVATE_FIRST = 'mount --make-private {path} && '


def legacy_view_argv(root: str = CGROUP_ROOT,
                     mountinfo: str = "/proc/self/mountinfo") -> Optional[list[str]]:
    """The command-line prefix that runs a runtime where this hybrid host
    looks like a legacy (v1 only) one, so that crun manages the container's
    cgroups on the v1 hierarchies, as runc does here.

    The runtime runs in a mount namespace of its own, a copy of the host's
    with the same propagation (so ``rshared`` binds still reach the host),
    minus the v2 tree at ``<root>/unified``.  Its containers' namespaces are
    made from that copy.  The namespace goes away with the runtime process,
    unless a container keeps its copy of it.  The v2 mount's propagation is
    read once, here: a private one (as on this machine) needs no
    ``--make-private``, one process less per runtime command.

    :return: the prefix, or None without ``unshare`` (util-linux) or a
        static busybox (its ``sh``, ``mount`` and ``umount``).
    """
    from dockerpy.tools.busybox_rootfs import find_busybox
    from dockerpy.volumes.mounts import mount_of

    unshare = shutil.which("unshare")
    try:
        busybox = find_busybox()
    except RuntimeError:
        return None
    if unshare is None:
        return None
    path = os.path.join(root, UNIFIED)
    try:
        point, tags = mount_of(path, mountinfo)
        private = point == path and not tags & {"shared", "master"}
    except (OSError, ValueError, IndexError):
        private = False
    script = ("" if private else _PRIVATE_FIRST.format(path=path)) + \
        _HIDE_UNIFIED.format(path=path)
    return [unshare, "--mount", "--propagation", "unchanged", "--",
            busybox, "sh", "-c", script]


def cgroup_version(mode: Optional[str] = None) -> str:
    """``CgroupVersion`` of ``docker info``: moby reports ``"2"`` only on a
    pure v2 host and ``"1"`` on hybrid hosts (``daemon/info_unix.go``
    tests ``cgroups.Mode() == cgroups.Unified``)."""
    return "2" if (mode or host_cgroup_mode()) == UNIFIED else "1"


def cgroup_driver() -> str:
    """``CgroupDriver`` of ``docker info``: we drive cgroups through the
    file system (runc/crun with plain ``cgroupsPath``), never systemd."""
    return "cgroupfs"


def default_cgroupns_mode(mode: Optional[str] = None) -> str:
    """Docker's default cgroup namespace mode: ``private`` on a pure v2 host,
    ``host`` otherwise (moby ``daemon/config``)."""
    return "private" if (mode or host_cgroup_mode()) == UNIFIED else "host"


def cgroup_parent_for(data_root: str) -> str:
    """The per-daemon cgroup parent: ``/dockerpy-<8 hex of sha256(data_root)>``.

    Containers go to ``<parent>/<container id>`` (Docker uses ``/docker``).
    """
    digest = hashlib.sha256(os.path.abspath(data_root).encode()).hexdigest()
    return f"/dockerpy-{digest[:8]}"


def cgroups_path(parent: str, container_id: str) -> str:
    """``linux.cgroupsPath`` of a container."""
    return parent.rstrip("/") + "/" + container_id


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, str]]:
    """:return: ``(mount point, "cgroup" or "cgroup2")`` of every cgroup mount."""
    found = []
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fstype = right.split(" ", 1)[0]
        if fstype in ("cgroup", "cgroup2"):
            found.append((_unescape(left.split(" ")[4]), fstype))
    return found


def cgroup_mountpoints(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points of every cgroup hierarchy (v1 and v2) on the host."""
    return [mountpoint for mountpoint, _ in _cgroup_mounts(mountinfo)]


@functools.cache
def host_cgroup_mounts() -> tuple[tuple[str, str], ...]:
    """:func:`_cgroup_mounts` of this host, read once (asked at every exit;
    the hierarchies do not move under a running daemon)."""
    return tuple(_cgroup_mounts())


@functools.cache
def swap_accounting(root: str = CGROUP_ROOT) -> bool:
    """Whether a container's swap can be limited: v1's ``memsw`` files, or
    the memory controller on a pure v2 host (``docker info``'s SwapLimit)."""
    if host_cgroup_mode() == UNIFIED:
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                return "memory" in f.read().split()
        except OSError:
            return False
    return os.path.exists(os.path.join(root, "memory", "memory.memsw.limit_in_bytes"))


def oom_kills(cgroups_path: str, mounts=None) -> int:
    """How many processes the kernel's OOM killer ended in the container's
    cgroup: ``oom_kill`` of v1's ``memory.oom_control`` or of v2's
    ``memory.events``.  Read before the cgroup is removed.  Blocking.

    :param mounts: ``(mount point, type)`` pairs (default: this host's).
    """
    relative = cgroups_path.strip("/")
    if not relative or ".." in relative.split("/"):
        return 0
    count = 0
    for mountpoint, fstype in (host_cgroup_mounts() if mounts is None else mounts):
        name = "memory.events" if fstype == "cgroup2" else "memory.oom_control"
        try:
            with open(os.path.join(mountpoint, relative, name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        count = max(count, int(value))
        except (OSError, ValueError):
            continue
    return count


def _remove_tree(path: str) -> list[str]:
    """rmdir ``path`` and its sub-cgroups, deepest first.

    :return: the directories that could not be removed (still busy).
    """
    busy = []
    if not os.path.isdir(path):
        return busy
    for dirpath, dirnames, _ in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError as e:
            if e.errno != errno.ENOENT:
                busy.append(dirpath)
    return busy


def remove_cgroup_parent(parent: str, mountinfo: Optional[str] = None) -> list[str]:
    """Remove the daemon's cgroup parent from every hierarchy.

    Cgroups that still hold processes cannot be removed: they are left in
    place and returned, so the caller can log them.  Blocking.

    :param mountinfo: a mountinfo file to find the hierarchies in (default:
        this host's, read once, as :func:`oom_kills` does at every exit).
    :return: the cgroup directories left behind.
    """
    relative = parent.strip("/")
    if not relative or ".." in relative.split("/"):
        raise ValueError(f"refusing to remove cgroup parent {parent!r}")
    mountpoints = ([point for point, _ in host_cgroup_mounts()] if mountinfo is None
                   else cgroup_mountpoints(mountinfo))
    busy = []
    for mountpoint in mountpoints:
        busy.extend(_remove_tree(os.path.join(mountpoint, relative)))
    return busy
