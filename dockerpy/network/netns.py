# -*- test-case-name: dockerpy.test.test_network_netns -*-
"""Network namespaces made and entered by one dedicated thread.

A network namespace is per thread for ``unshare(CLONE_NEWNET)`` and
``setns(CLONE_NEWNET)``, and a netlink or IP socket stays in the namespace
it was made in.  So the network service's single worker thread (and the
DNS server's) can make a namespace, or step into one to open a socket
there, and step back, without touching any other thread of the daemon —
the way moby does it on a locked OS thread.  This replaces pyroute2's
``netns`` helpers, which fork a child process for every operation
(tens of milliseconds each in a daemon of this size).

A thread that cannot step back is stuck in the wrong namespace: the
functions here raise :class:`PoisonedThread` and the owner must retire
that thread.  Everything here blocks; call it on that dedicated thread only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os

from dockerpy import syscalls

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
THREAD_NS = "/proc/thread-self/ns/net"


class PoisonedThread(Exception):
    """The worker thread could not return to the daemon's network namespace."""


def _check(rc: int) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
    else:
        _check(syscalls.libc().setns(fd, CLONE_NEWNET))


def ns_id(path: str = THREAD_NS) -> tuple[int, int]:
    """Identity of a namespace (of this thread's, by default)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def _home():
    """Run the body, then put this thread back in the namespace it started in."""
    home = os.open(THREAD_NS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            yield
        finally:
            try:
                setns(home)
            except OSError as e:
                raise PoisonedThread(f"cannot return to the daemon's network namespace: "
                                     f"{e.strerror}") from e
    finally:
        os.close(home)


@contextlib.contextmanager
def entered(path: str):
    """Run the body inside the namespace bound at ``path``."""
    with _home():
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target)
        finally:
            os.close(target)
        yield


@contextlib.contextmanager
def created(path: str):
    """Make a namespace, bind it at ``path`` (like ``ip netns add``), and run
    the body inside it.  A failure removes it again."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    with _home():
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
        try:
            _check(syscalls.libc().unshare(CLONE_NEWNET))
            syscalls.mount(THREAD_NS, path, None, MS_BIND, None)
            yield
        except BaseException:
            remove(path)
            raise


def remove(path: str) -> None:
    """Unbind and delete ``path``.  The kernel destroys the namespace (and the
    veth ends in it, with their peers) once nothing else holds it."""
    try:
        syscalls.umount(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
