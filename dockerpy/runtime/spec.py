# -*- test-case-name: dockerpy.test.test_runtime_spec -*-
"""The OCI runtime spec (``config.json``) with Docker's defaults.

This module owns the translation from a container's resolved settings
(:class:`SpecInput`, plain data the container service fills in) to the
``config.json`` document an OCI runtime reads.  It follows moby's
``oci/defaults.go`` and ``daemon/oci_linux.go``.  It does no I/O of its own
except, for privileged containers, the walk of the host's ``/dev`` (which the
caller may replace) and the check of which sysctls the kernel has.

Not done here (yet): the default seccomp profile (omitted: the runtime then
applies none, as ``--security-opt seccomp=unconfined``), AppArmor and SELinux
labels, user namespaces, resource limits other than those passed through
``resources``.
"""

import os
import posixpath
import stat
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from dockerpy.errors import InvalidParameter

OCI_VERSION = "1.0.2-dev"

DEFAULT_SHM_SIZE = 64 * 1024 * 1024

#: Docker's default capability set (moby ``oci/caps/defaults.go``).
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

#: Every capability Linux defines, indexed by its number.
ALL_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
    "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]

MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]

READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def _dev_rule(allow: bool, kind: Optional[str] = None, major: Optional[int] = None,
              minor: Optional[int] = None, access: str = "rwm") -> dict:
    rule: dict[str, Any] = {"allow": allow}
    if kind is not None:
        rule["type"] = kind
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = access
    return rule


def default_device_rules() -> list[dict]:
    """The devices cgroup rules of a non-privileged container.

    Docker's own list (deny all; null, zero, full, random, urandom, tty,
    console, ptmx, /dev/pts; deny fuse) plus the rules runc appends by itself
    (``mknod`` of any device, ``/dev/net/tun``), written out so that every
    runtime gets the same set.
    """
    return [
        _dev_rule(False),
        _dev_rule(True, "c", 1, 3),     # /dev/null
        _dev_rule(True, "c", 1, 5),     # /dev/zero
        _dev_rule(True, "c", 1, 7),     # /dev/full
        _dev_rule(True, "c", 1, 8),     # /dev/random
        _dev_rule(True, "c", 1, 9),     # /dev/urandom
        _dev_rule(True, "c", 5, 0),     # /dev/tty
        _dev_rule(True, "c", 5, 1),     # /dev/console
        _dev_rule(True, "c", 5, 2),     # /dev/ptmx
        _dev_rule(True, "c", 136, None),  # /dev/pts/*
        _dev_rule(True, "c", 10, 200),  # /dev/net/tun
        _dev_rule(False, "c", 10, 229),  # /dev/fuse
        # Last, as runc appends them: a v1 devices cgroup cannot deny a
        # device after a wildcard rule allowed it.
        _dev_rule(True, "c", None, None, "m"),    # mknod c *:* m
        _dev_rule(True, "b", None, None, "m"),    # mknod b *:* m
    ]


def default_mounts(shm_size: int) -> list[dict]:
    """Docker's default mounts, ``/dev/shm`` sized ``shm_size`` bytes."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["rw", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["rw", "nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["rw", "nosuid", "noexec", "newinstance", "ptmxmode=0666",
                     "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["rw", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["rw", "nosuid", "noexec", "nodev", "mode=1777",
                     f"size={shm_size}"]},
    ]


def normalize_capability(name: str) -> str:
    """``net_admin`` -> ``CAP_NET_ADMIN``; ``ALL`` stays ``ALL``.

    :raises InvalidParameter: the capability does not exist.
    """
    cap = name.strip().upper()
    if cap == "ALL":
        return cap
    if not cap.startswith("CAP_"):
        cap = "CAP_" + cap
    if cap not in ALL_CAPABILITIES:
        raise InvalidParameter(f'unknown capability: "{cap}"')
    return cap


def host_capabilities() -> list[str]:
    """The capabilities this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = len(ALL_CAPABILITIES) - 1
    return ALL_CAPABILITIES[:last + 1]


def tweak_capabilities(cap_add: list[str], cap_drop: list[str],
                       privileged: bool,
                       all_caps: Optional[list[str]] = None) -> list[str]:
    """The capability set Docker computes (moby ``caps.TweakCapabilities``).

    :param all_caps: what ``ALL`` means (default: the host kernel's set).
    :raises InvalidParameter: an unknown capability name.
    """
    everything = all_caps if all_caps is not None else host_capabilities()
    if privileged:
        return list(everything)
    adds = [normalize_capability(c) for c in cap_add]
    drops = [normalize_capability(c) for c in cap_drop]
    if "ALL" in adds:
        return list(everything)
    if "ALL" in drops:
        base: list[str] = []
    else:
        base = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    for cap in adds:
        if cap not in base:
            base.append(cap)
    return base


def host_devices(root: str = "/dev") -> list[dict]:
    """Every device node under the host's ``/dev``, as OCI ``linux.devices``.

    Used for privileged containers (moby ``coci.HostDevices``).  Blocking, but
    small: a walk of ``/dev`` without ``/dev/pts``, ``/dev/shm``, ``/dev/mqueue``.
    """
    devices = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames
                           if d not in ("pts", "shm", "mqueue", ".lxc", ".lxd-mounts")]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            if path == "/dev/console":
                continue
            devices.append({
                "path": path, "type": kind,
                "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                "fileMode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid, "gid": st.st_gid,
            })
    return devices


def _depth(destination: str) -> int:
    return len([p for p in posixpath.normpath(destination).split("/") if p])


def _clear_readonly(mount: dict) -> None:
    mount["options"] = [o for o in mount["options"] if o != "ro"]


def rootfs_propagation(mounts: list[dict]) -> str:
    """The root's propagation that lets the mounts' own propagation work, as
    moby sets it: a shared mount needs a shared root, a slave mount a slave
    (or shared) one; otherwise the runtime's default (``""``).
    """
    options = {o for m in mounts for o in m.get("options", ())}
    if options & {"shared", "rshared"}:
        return "rshared"
    if options & {"slave", "rslave"}:
        return "rslave"
    return ""


@dataclass
class SpecInput:
    """What the container service decided, in the terms of the runtime spec.

    :ivar network: ``None`` for a new network namespace (loopback only),
        ``"host"`` for the host's, or the path of a namespace to join
        (``/var/run/netns/<name>``, ``/proc/<pid>/ns/net``).
    :ivar mounts: extra mounts, each ``{"destination", "type", "source",
        "options"}``; they override default mounts at the same destination.
    :ivar cgroupns: ``"private"`` (Docker's default on cgroup v2) or
        ``"host"`` (its default on v1 and hybrid); see
        :func:`dockerpy.runtime.cgroups.default_cgroupns_mode`.
    :ivar ulimits: ``[{"name": "nofile", "soft": n, "hard": n}]``; empty means
        the container inherits the daemon's limits, as with Docker.
    :ivar init_path: host path of an init (tini) to run as pid 1, mounted at
        ``/sbin/docker-init`` like ``docker run --init``; ``None``: no init.
    :ivar resources: extra ``linux.resources`` members (``memory``, ``cpu``,
        ``pids``), merged as given.
    :ivar devices: for privileged containers, the host devices to create;
        ``None`` walks the host's ``/dev``.
    """

    rootfs: str
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    readonly_rootfs: bool = False
    network: Optional[str] = None
    mounts: list[dict] = field(default_factory=list)
    cgroups_path: str = ""
    cgroupns: str = "host"
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    shm_size: int = DEFAULT_SHM_SIZE
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: list[dict] = field(default_factory=list)
    init_path: Optional[str] = None
    oom_score_adj: int = 0
    resources: dict = field(default_factory=dict)
    devices: Optional[list[dict]] = None
    #: ``HostConfig.SecurityOpt``: with a list (even empty) the container
    #: gets Docker's seccomp profile, or the one ``seccomp=`` names; None:
    #: no seccomp section (bare specs of tests and probes).
    security_opt: Optional[list[str]] = None


INIT_IN_CONTAINER = "/sbin/docker-init"
#: The init of ``--init``, first found wins: a static tini runs in any image
#: (busybox has no libc for the dynamic one).
INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini")


def find_init(candidates: tuple[str, ...] = INIT_CANDIDATES) -> str:
    """:return: the host path of the init for ``--init``.

    :raises dockerpy.errors.SystemError_: none is installed (Docker's words).
    """
    from dockerpy.errors import SystemError_

    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise SystemError_('exec: "docker-init": executable file not found in $PATH')


def _sysctl_exists(name: str) -> bool:
    return os.path.exists("/proc/sys/" + name.replace(".", "/"))


def build_spec(inp: SpecInput,
               sysctl_exists: Callable[[str], bool] = _sysctl_exists,
               all_caps: Optional[list[str]] = None) -> dict:
    """Build ``config.json`` for ``inp`` as Docker would.

    :param sysctl_exists: whether the host kernel has a sysctl (Docker adds
        its default network sysctls only where they exist).
    :param all_caps: the capabilities ``ALL`` and privileged mode stand for
        (default: those of the running kernel).
    :return: the spec as a JSON-ready dict.
    :raises InvalidParameter: bad capability names, a relative working
        directory, an empty command.
    """
    if not inp.args:
        raise InvalidParameter("no command specified")
    if not posixpath.isabs(inp.cwd):
        raise InvalidParameter(
            f"the working directory '{inp.cwd}' is invalid, it needs to be an absolute path")

    caps = tweak_capabilities(inp.cap_add, inp.cap_drop, inp.privileged, all_caps)
    if inp.uid == 0:
        capabilities = {"bounding": caps, "effective": list(caps), "permitted": list(caps)}
    else:
        # Docker leaves a non-root user only the bounding set, as execve would.
        capabilities = {"bounding": caps}

    args = list(inp.args)
    user_mounts = [dict(m, options=list(m.get("options", []))) for m in inp.mounts]
    if inp.init_path:
        args = [INIT_IN_CONTAINER, "--"] + args
        user_mounts.append({"destination": INIT_IN_CONTAINER, "type": "bind",
                            "source": inp.init_path, "options": ["bind", "ro"]})
    user_mounts.sort(key=lambda m: _depth(m["destination"]))

    process: dict[str, Any] = {
        "terminal": inp.tty,
        "user": {"uid": inp.uid, "gid": inp.gid},
        "args": args,
        "env": list(inp.env),
        "cwd": inp.cwd,
        "capabilities": capabilities,
        "noNewPrivileges": False,
        "oomScoreAdj": inp.oom_score_adj,
    }
    if inp.additional_gids:
        process["user"]["additionalGids"] = list(inp.additional_gids)
    if inp.ulimits:
        process["rlimits"] = [
            {"type": "RLIMIT_" + u["name"].upper(), "soft": int(u["soft"]),
             "hard": int(u["hard"])}
            for u in inp.ulimits]

    destinations = {m["destination"] for m in user_mounts}
    mount_dev = "/dev" in destinations
    mounts = []
    for m in default_mounts(inp.shm_size):
        if m["destination"] in destinations:
            continue
        if mount_dev and m["destination"].startswith("/dev/"):
            continue
        mounts.append(m)
    if inp.readonly_rootfs:
        for m in mounts:
            if m["destination"] in ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"):
                continue
            if "ro" not in m["options"]:
                m["options"].append("ro")
    if inp.privileged:
        for m in mounts:
            if m["destination"] == "/sys" or m["type"] == "cgroup":
                _clear_readonly(m)
    mounts.extend(user_mounts)

    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if inp.network is None:
        namespaces.append({"type": "network"})
    elif inp.network != "host":
        namespaces.append({"type": "network", "path": inp.network})
    if inp.cgroupns == "private":
        namespaces.append({"type": "cgroup"})

    sysctls: dict[str, str] = {}
    if inp.network != "host":
        if sysctl_exists("net.ipv4.ping_group_range"):
            sysctls["net.ipv4.ping_group_range"] = "0 2147483647"
        if sysctl_exists("net.ipv4.ip_unprivileged_port_start"):
            sysctls["net.ipv4.ip_unprivileged_port_start"] = "0"
    sysctls.update(inp.sysctls)

    resources: dict[str, Any] = dict(inp.resources)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": resources,
    }
    if inp.privileged:
        resources["devices"] = [_dev_rule(True)]
        linux["devices"] = (inp.devices if inp.devices is not None
                            else host_devices())
    else:
        resources["devices"] = default_device_rules()
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if inp.cgroups_path:
        linux["cgroupsPath"] = inp.cgroups_path
    if inp.security_opt is not None:
        from dockerpy.runtime.seccomp import profile_for

        profile = profile_for(inp.security_opt, caps, inp.privileged)
        if profile is not None:
            linux["seccomp"] = profile
    if sysctls:
        linux["sysctl"] = sysctls
    propagation = rootfs_propagation(user_mounts)
    if propagation:
        linux["rootfsPropagation"] = propagation

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inp.rootfs, "readonly": inp.readonly_rootfs},
        "hostname": inp.hostname,
        "mounts": mounts,
        "linux": linux,
    }
    if inp.domainname:
        spec["domainname"] = inp.domainname
    return spec
