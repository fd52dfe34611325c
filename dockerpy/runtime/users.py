# -*- test-case-name: dockerpy.test.test_runtime_users -*-
"""Resolve a container's ``User`` against its own ``/etc/passwd`` and ``/etc/group``.

This module owns Docker's (runc's ``libcontainer/user``) semantics for the
``User`` setting: ``""``, ``name``, ``uid``, ``name:group``, ``uid:gid`` and
mixed forms, supplementary groups from ``/etc/group`` membership, and
``--group-add``.  The files are read inside the container's root without ever
following a symbolic link out of it: an image may ship ``/etc/passwd`` as a
link to ``/etc/shadow`` of the host, and must then read its own.

These functions block (file reads): call them from the thread pool.
"""

import errno
import os
import stat
from typing import Iterable, Optional

from dockerpy.errors import InvalidParameter

MIN_ID = 0
MAX_ID = 2**31 - 1
_MAX_LINKS = 255
_MAX_FILE = 16 * 1024 * 1024

ERR_NO_PASSWD = "no matching entries in passwd file"
ERR_NO_GROUP = "no matching entries in group file"
ERR_RANGE = f"uids and gids must be in range {MIN_ID}-{MAX_ID}"


def _resolve_in_root(root: str, path: str) -> str:
    """Resolve ``path`` as if ``root`` were ``/``: symbolic links are
    interpreted inside ``root``, and ``..`` never climbs above it.

    :return: a host path below ``root`` whose components, up to the last
        one that exists, are not symbolic links.
    """
    root = os.path.abspath(root)
    pending = [c for c in path.split("/") if c]
    resolved = ""
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = resolved.rsplit("/", 1)[0] if resolved else ""
            continue
        candidate = resolved + "/" + part
        try:
            st = os.lstat(root + candidate)
        except OSError:
            resolved = candidate
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved = candidate
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        target = os.readlink(root + candidate)
        if target.startswith("/"):
            resolved = ""
        pending[:0] = [c for c in target.split("/") if c]
    return root + resolved


def read_file_in_root(root: str, path: str) -> Optional[bytes]:
    """Read a regular file at ``path`` inside ``root``.

    :return: its content, or ``None`` if it is missing or not a regular file
        (a FIFO or device in an image must not hang or flood the daemon).
    """
    host_path = _resolve_in_root(root, path)
    try:
        fd = os.open(host_path,
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        total = 0
        while total < _MAX_FILE:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _atoi(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _is_numeric(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _lines(data: bytes) -> Iterable[list[str]]:
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line:
            yield line.split(":")


def parse_passwd(data: bytes) -> list[tuple[str, int, int]]:
    """:return: ``(name, uid, gid)`` for each line of a passwd file."""
    entries = []
    for fields in _lines(data):
        fields += [""] * (7 - len(fields))
        entries.append((fields[0], _atoi(fields[2]), _atoi(fields[3])))
    return entries


def parse_group(data: bytes) -> list[tuple[str, int, list[str]]]:
    """:return: ``(name, gid, members)`` for each line of a group file."""
    entries = []
    for fields in _lines(data):
        fields += [""] * (4 - len(fields))
        members = [m for m in fields[3].split(",") if m]
        entries.append((fields[0], _atoi(fields[2]), members))
    return entries


def _check_range(value: int) -> int:
    if value < MIN_ID or value > MAX_ID:
        raise InvalidParameter(ERR_RANGE)
    return value


def resolve_user(rootfs: str, user: str,
                 group_add: Iterable[str] = ()) -> tuple[int, int, list[int]]:
    """Resolve a ``User`` setting the way Docker does.

    :param rootfs: the container's root file system on the host.
    :param user: ``""`` (root), ``name``, ``uid``, or either followed by
        ``:group`` (a name or a gid).
    :param group_add: ``--group-add`` values (names or gids).
    :return: ``(uid, gid, additional_gids)``; the additional gids start with
        the primary gid, then the groups listing the user (only when no
        explicit group was given), then ``group_add``, as Docker's spec has
        (without duplicates).
    :raises InvalidParameter: ``unable to find user foo: no matching entries
        in passwd file`` and its group equivalents, ids out of range.
    """
    user_arg, _, group_arg = user.partition(":")
    passwd = read_file_in_root(rootfs, "/etc/passwd")
    groups_data = read_file_in_root(rootfs, "/etc/group")

    uid, gid = 0, 0
    matched_name = ""
    users = []
    if passwd is not None:
        if user_arg == "":
            users = [u for u in parse_passwd(passwd) if u[1] == uid]
        elif _is_numeric(user_arg):
            users = [u for u in parse_passwd(passwd) if u[1] == int(user_arg)]
        else:
            users = [u for u in parse_passwd(passwd) if u[0] == user_arg]
    if users:
        matched_name, uid, gid = users[0]
    elif user_arg != "":
        if not _is_numeric(user_arg):
            raise InvalidParameter(f"unable to find user {user_arg}: {ERR_NO_PASSWD}")
        uid = _check_range(int(user_arg))

    sgids: list[int] = []
    if group_arg != "" or matched_name != "":
        groups = parse_group(groups_data) if groups_data is not None else []
        if group_arg == "":
            sgids = [g[1] for g in groups if matched_name in g[2]]
        else:
            if _is_numeric(group_arg):
                found = [g for g in groups if g[1] == int(group_arg)]
            else:
                found = [g for g in groups if g[0] == group_arg]
            if found:
                gid = found[0][1]
            elif not _is_numeric(group_arg):
                raise InvalidParameter(f"unable to find group {group_arg}: {ERR_NO_GROUP}")
            else:
                gid = _check_range(int(group_arg))

    extra: list[int] = []
    group_add = list(group_add)
    if group_add:
        groups = parse_group(groups_data) if groups_data is not None else []
        for name in group_add:
            found = [g for g in groups if g[0] == name or str(g[1]) == name]
            if found:
                value = found[0][1]
            elif _is_numeric(name):
                value = int(name)
                if value < MIN_ID or value > MAX_ID:
                    raise InvalidParameter(f"Unable to find group {name}: {ERR_RANGE}")
            else:
                raise InvalidParameter(f"Unable to find group {name}: {ERR_NO_GROUP}")
            if value not in extra:
                extra.append(value)
    additional: list[int] = []
    for value in [gid] + sgids + extra:
        if value not in additional:
            additional.append(value)
    return uid, gid, additional
