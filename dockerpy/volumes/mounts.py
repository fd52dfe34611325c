# -*- test-case-name: dockerpy.test.test_volume_mounts -*-
"""A container's mount points: parsing, Docker's JSON, and OCI mounts.

Descriptions before effects: :func:`plan` turns a create request
(``HostConfig.Binds``, ``Mounts``, ``VolumesFrom``, ``Tmpfs`` and
``Config.Volumes``) into a list of mount-point dicts, plain data that the
container record stores; the volume service then creates the volumes they
name.  At start :func:`oci_mounts` (blocking, thread pool) makes each mount
point inside the container's root, with symlinks resolved *in* that root, and
returns the OCI mounts.

A mount point dict has Docker's fields (``Type``, ``Name``, ``Source``,
``Destination``, ``Driver``, ``Mode``, ``RW``, ``Propagation``) and ours:
``Anonymous`` (an anonymous volume), ``CopyData`` (fill an empty volume from
the image), ``Data`` (tmpfs options), ``Hidden`` (``--tmpfs``: not listed
in ``Mounts``, as with Docker), ``CreateSource`` (``-v``: make a missing
host path).
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
from typing import Callable

from dockerpy import errors

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_LABEL_MODES = ("z", "Z")
_COPY_MODES = ("nocopy",)
_CONSISTENCY = ("consistent", "cached", "delegated")
_PUBLIC = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")


def _invalid_spec(raw: str) -> errors.InvalidParameter:
    return errors.InvalidParameter(f"invalid volume specification: '{raw}'")


def valid_mode(mode: str) -> bool:
    """moby ``linuxValidMountMode``: at most one word of each kind."""
    if mode == "":
        return True
    counts = [0] * 5
    for word in mode.split(","):
        for i, kind in enumerate((("rw", "ro"), _LABEL_MODES, _PROPAGATIONS, _COPY_MODES,
                                  _CONSISTENCY)):
            if word in kind:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1


def _mode_words(mode: str) -> list[str]:
    return [w for w in mode.split(",") if w]


def _check_target(target: str, what: str) -> str:
    if not target:
        raise errors.InvalidParameter(f"{what}: field Target must not be empty")
    if not target.startswith("/"):
        raise errors.InvalidParameter(
            f"{what}: invalid mount path: '{target}' mount path must be absolute")
    clean = posixpath.normpath(target)
    if clean in ("/", "//"):
        raise errors.InvalidParameter(f"{what}: invalid specification: destination can't be '/'")
    return clean


def _point(kind: str, destination: str, **kw) -> dict:
    mp = {"Type": kind, "Name": "", "Source": "", "Destination": destination, "Driver": "",
          "Mode": "", "RW": True, "Propagation": "", "Anonymous": False, "CopyData": False,
          "Data": "", "Hidden": False, "CreateSource": False}
    mp.update(kw)
    return mp


def parse_bind(raw: str, volume_driver: str = "") -> dict:
    """``-v`` / ``HostConfig.Binds``: ``/host:/ctr[:mode]`` or ``name:/ctr[:mode]``."""
    parts = raw.split(":", 3)
    if not parts[0]:
        raise _invalid_spec(raw)
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    elif len(parts) == 2:
        if valid_mode(parts[1]):
            raise _invalid_spec(raw)
        source, target, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise _invalid_spec(raw)
    if not valid_mode(mode):
        raise errors.InvalidParameter(f"invalid mode: {mode}")
    words = _mode_words(mode)
    what = f"invalid volume specification: '{raw}'"
    destination = _check_target(target, what)
    rw = "ro" not in words
    if source.startswith("/"):
        prop = next((w for w in words if w in _PROPAGATIONS), "rprivate")
        return _point("bind", destination, Source=posixpath.normpath(source), Mode=mode,
                      RW=rw, Propagation=prop, CreateSource=True)
    if any(w in _PROPAGATIONS for w in words):
        raise errors.InvalidParameter(f"{what}: invalid propagation for a volume")
    return _point("volume", destination, Name=source, Driver=volume_driver or "local",
                  Mode=mode or "z", RW=rw, Anonymous=not source,
                  CopyData="nocopy" not in words)


def tmpfs_data(options: dict | None, read_only: bool) -> str:
    """moby ``ConvertTmpfsOptions``: ``TmpfsOptions`` -> ``ro,mode=1777,size=64m``."""
    out = ["ro"] if read_only else []
    options = options or {}
    if options.get("Mode"):
        out.append(f"mode={int(options['Mode']):o}")
    size = int(options.get("SizeBytes") or 0)
    if size:
        suffix = ""
        for s, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                size, suffix = size // div, s
                break
        out.append(f"size={size}{suffix}")
    for opt in options.get("Options") or []:
        if not isinstance(opt, list) or not 1 <= len(opt) <= 2 or opt[0] not in ("exec",
                                                                                 "noexec"):
            raise errors.InvalidParameter(f"invalid option: {opt}")
        out.append("=".join(opt))
    return ",".join(out)


def parse_mount(m: dict) -> dict:
    """``--mount`` / ``HostConfig.Mounts`` (``Type``, ``Source``, ``Target``, ...)."""
    if not isinstance(m, dict):
        raise errors.InvalidParameter("invalid JSON: Mounts must be a list of objects")
    kind = m.get("Type") or ""
    what = f'invalid mount config for type "{kind}"'
    destination = _check_target(m.get("Target") or "", what)
    source = m.get("Source") or ""
    read_only = bool(m.get("ReadOnly"))
    if kind == "bind":
        if not source:
            raise errors.InvalidParameter(f"{what}: field Source must not be empty")
        if m.get("VolumeOptions"):
            raise errors.InvalidParameter(f"{what}: field VolumeOptions must not be specified")
        if not source.startswith("/"):
            raise errors.InvalidParameter(
                f"{what}: invalid mount path: '{source}' mount path must be absolute")
        prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
        if prop not in _PROPAGATIONS:
            raise errors.InvalidParameter(f"{what}: invalid propagation mode: {prop}")
        return _point("bind", destination, Source=posixpath.normpath(source), RW=not read_only,
                      Propagation=prop)
    if kind == "volume":
        if m.get("BindOptions"):
            raise errors.InvalidParameter(f"{what}: field BindOptions must not be specified")
        if read_only and not source:
            raise errors.InvalidParameter(
                f"{what}: must not set ReadOnly mode when using anonymous volumes")
        vopts = m.get("VolumeOptions") or {}
        driver = ((vopts.get("DriverConfig") or {}).get("Name")) or "local"
        return _point("volume", destination, Name=source, Driver=driver, Mode="z",
                      RW=not read_only, Anonymous=not source,
                      CopyData=not vopts.get("NoCopy"),
                      DriverOpts=(vopts.get("DriverConfig") or {}).get("Options") or None,
                      Labels=vopts.get("Labels") or None)
    if kind == "tmpfs":
        if m.get("BindOptions"):
            raise errors.InvalidParameter(f"{what}: field BindOptions must not be specified")
        if source:
            raise errors.InvalidParameter(f"{what}: field Source must not be specified")
        return _point("tmpfs", destination, RW=not read_only,
                      Data=tmpfs_data(m.get("TmpfsOptions"), read_only))
    raise errors.InvalidParameter(f"{what}: mount type unknown")


def parse_volumes_from(spec: str) -> tuple[str, str]:
    if not spec:
        raise errors.InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, "rw"
    words = _mode_words(mode)
    if not valid_mode(mode) or any(w in _PROPAGATIONS or w in _COPY_MODES for w in words):
        raise errors.InvalidParameter(f"invalid mode: {mode}")
    return ref, mode


def plan(config: dict, host_config: dict,
         mounts_of: Callable[[str], list[dict]]) -> list[dict]:
    """The mount points of a new container, in Docker's precedence: the
    image's and ``-v /path`` anonymous volumes, replaced by ``--volumes-from``,
    replaced by ``Binds`` and ``Mounts`` (which must not share a destination)
    and ``Tmpfs``.

    :param mounts_of: a container reference -> its mount points
        (raises NotFound).
    :raises errors.InvalidParameter: a malformed or duplicate mount.
    """
    points: dict[str, dict] = {}
    explicit: dict[str, dict] = {}
    volume_driver = host_config.get("VolumeDriver") or ""
    for raw in host_config.get("Binds") or []:
        if not isinstance(raw, str):
            raise errors.InvalidParameter("invalid JSON: Binds must be a list of strings")
        mp = parse_bind(raw, volume_driver)
        if mp["Destination"] in explicit:
            raise errors.InvalidParameter(f"Duplicate mount point: {mp['Destination']}")
        explicit[mp["Destination"]] = mp
    mounts = host_config.get("Mounts") or []
    if not isinstance(mounts, list):
        raise errors.InvalidParameter("invalid JSON: Mounts must be a list")
    for m in mounts:
        mp = parse_mount(m)
        if mp["Destination"] in explicit:
            raise errors.InvalidParameter(f"Duplicate mount point: {mp['Destination']}")
        explicit[mp["Destination"]] = mp
    tmpfs = host_config.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict):
        raise errors.InvalidParameter("invalid JSON: Tmpfs must be an object")
    for target, data in tmpfs.items():
        destination = _check_target(target, f"invalid tmpfs mount: {target}")
        if destination in explicit:
            raise errors.InvalidParameter(f"Duplicate mount point: {destination}")
        explicit[destination] = _point("tmpfs", destination, Data=str(data or ""),
                                       Hidden=True, RW="ro" not in str(data).split(","))
    volumes = config.get("Volumes") or {}
    if not isinstance(volumes, dict):
        raise errors.InvalidParameter("invalid JSON: Volumes must be an object")
    for target in volumes:
        destination = _check_target(target, f"invalid volume specification: '{target}'")
        points[destination] = _point("volume", destination, Driver=volume_driver or "local",
                                     Anonymous=True, CopyData=True)
    for spec in host_config.get("VolumesFrom") or []:
        ref, mode = parse_volumes_from(spec)
        rw = "ro" not in _mode_words(mode)
        for m in mounts_of(ref):
            if m.get("Hidden"):
                continue
            points[m["Destination"]] = dict(m, RW=m["RW"] and rw, Mode="", CopyData=False,
                                            CreateSource=False)
    points.update(explicit)
    return [points[k] for k in sorted(points)]


def inspect_view(mounts: list[dict]) -> list[dict]:
    """Docker's ``Mounts`` (inspect and list): Name and Driver only when set."""
    out = []
    for m in mounts:
        if m.get("Hidden"):
            continue
        view = {k: m.get(k, "") for k in _PUBLIC}
        for k in ("Name", "Driver"):
            if not view[k]:
                del view[k]
        out.append(view)
    return out


# -- at start: effects (blocking) ---------------------------------------------

_TMPFS_PAIRS = {"exec": "noexec", "noexec": "exec", "suid": "nosuid", "nosuid": "suid",
                "dev": "nodev", "nodev": "dev", "ro": "rw", "rw": "ro"}


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """Later options win over earlier ones of the same kind (moby ``MergeTmpfsOptions``)."""
    out: list[str] = []
    for opt in reversed(options):
        key = opt.split("=", 1)[0]
        if any(o == opt or o.split("=", 1)[0] == key and "=" in opt
               or o == _TMPFS_PAIRS.get(opt) for o in out):
            continue
        out.insert(0, opt)
    return out


def mount_point_in_root(rootfs: str, destination: str, is_dir: bool) -> str:
    """Make the mount point of ``destination`` inside ``rootfs``, every
    symlink resolved inside the root (never outside it).

    :return: the destination as a path inside the root, symlinks resolved:
        what the runtime is told to mount on.
    """
    from dockerpy.archive import resolve_in_root

    root = os.path.abspath(rootfs)
    host = resolve_in_root(root, destination)
    if not (host == root or host.startswith(root.rstrip("/") + "/")):
        raise errors.InvalidParameter(f"mount destination {destination} escapes the root")
    inside = "/" + os.path.relpath(host, root)
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        st = None
    if st is None:
        parent = os.path.dirname(host)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        if is_dir:
            os.mkdir(host, 0o755)
        else:
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
            os.close(fd)
    return inside


def copy_image_content(rootfs: str, destination: str, target: str) -> None:
    """Fill an empty volume directory ``target`` from the image's content at
    ``destination`` (ownership, modes, times, symlinks kept), as Docker does
    on a volume's first use.  Nothing happens when the volume is not empty
    or the image has nothing there."""
    from dockerpy.archive import resolve_in_root

    source = resolve_in_root(rootfs, destination)
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode) or os.listdir(target):
        return
    _copy_tree(source, target)
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat.S_IMODE(st.st_mode))


def _copy_tree(src: str, dst: str) -> None:
    for entry in os.scandir(src):
        s, d = entry.path, os.path.join(dst, entry.name)
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISDIR(st.st_mode):
            os.mkdir(d, 0o700)
            _copy_tree(s, d)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(s, d, follow_symlinks=False)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            os.mknod(d, st.st_mode, st.st_rdev)
        else:
            continue  # sockets are not copied
        os.lchown(d, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(d, stat.S_IMODE(st.st_mode))
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def ensure_bind_source(m: dict) -> None:
    """A ``-v`` bind's missing host directory is made (as Docker does); a
    ``--mount`` bind's is an error."""
    if os.path.lexists(m["Source"]):
        return
    if m.get("CreateSource"):
        os.makedirs(m["Source"], mode=0o755, exist_ok=True)
        return
    raise errors.InvalidParameter(
        f'invalid mount config for type "bind": bind source path does not exist: '
        f'{m["Source"]}')


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, set[str]]:
    """The mount point holding ``path`` and its propagation tags (``shared``,
    ``master``, ...) from mountinfo's optional fields."""
    path = os.path.realpath(path)
    best, tags = "/", set()
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            point = _unescape_mountinfo(fields[4])
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            # Later lines are mounted on top of earlier ones at the same point.
            if inside and len(point) >= len(best):
                best = point
                tags = {o.split(":")[0] for o in fields[6:fields.index("-")]}
    return best, tags


def check_source_propagation(source: str, propagation: str,
                             mountinfo: str = "/proc/self/mountinfo") -> None:
    """A shared bind needs a shared host mount under its source, a slave bind
    a shared or slave one, or the propagation silently does nothing; moby
    refuses such a container with these words.

    :raises InvalidParameter: the host mount cannot propagate that way.
    """
    if propagation in ("shared", "rshared"):
        point, tags = mount_of(source, mountinfo)
        if "shared" not in tags:
            raise errors.InvalidParameter(
                f"path {source} is mounted on {point} but it is not a shared mount")
    elif propagation in ("slave", "rslave"):
        point, tags = mount_of(source, mountinfo)
        if not tags & {"shared", "master"}:
            raise errors.InvalidParameter(
                f"path {source} is mounted on {point} but it is not a shared or slave mount")


def oci_mounts(rootfs: str, mounts: list[dict], sources: dict[str, str]) -> list[dict]:
    """The OCI mounts of a container's mount points; makes each mount point
    in the root (blocking).

    :param sources: destination -> host path of each volume (mounted by its
        driver); binds use their ``Source``.
    """
    out = []
    for m in mounts:
        if m["Type"] == "tmpfs":
            dest = mount_point_in_root(rootfs, m["Destination"], True)
            options = merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate"]
                                          + _mode_words(m.get("Data") or ""))
            out.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                        "options": options})
            continue
        source = sources.get(m["Destination"], m["Source"]) if m["Type"] == "volume" \
            else m["Source"]
        if m["Type"] == "bind":
            ensure_bind_source(m)
            check_source_propagation(source, m.get("Propagation") or "")
        is_dir = os.path.isdir(source)
        if m["Type"] == "volume" and m.get("CopyData"):
            copy_image_content(rootfs, m["Destination"], source)
        dest = mount_point_in_root(rootfs, m["Destination"], is_dir)
        options = ["rbind"]
        if not m["RW"]:
            options.append("ro")
        if m.get("Propagation"):
            options.append(m["Propagation"])
        out.append({"destination": dest, "type": "bind", "source": source, "options": options})
    return out
