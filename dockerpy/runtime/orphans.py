# -*- test-case-name: dockerpy.test.test_runtime_orphans -*-
"""Reaping the orphans a child subreaper daemon inherits.

The daemon is a child subreaper (:func:`dockerpy.runtime.oci.become_subreaper`)
so that a container started with ``run --detach`` becomes its child.  Every
other process orphaned below it becomes its child too: crun's intermediate
processes (one per ``run --detach`` and per ``exec``), and processes that a
runtime started inside a container's pid namespace and left behind.  Twisted
reaps only the processes it spawned and those registered with it (container
inits), so these stay zombies.  A zombie inside a container's pid namespace
is worse than a leak: the container's init, once killed, waits in the
kernel until every process of its namespace is reaped, so ``docker rm -f``
would wait forever.

:func:`install` adds a sweep to Twisted's reaping (it runs on every
SIGCHLD, on the reactor): it reaps the main thread's zombie children that
nobody registered, except container inits (pid 1 of their namespace),
which the runtime registers once it has read their pid file and whose exit
status is the container's.  Children of other threads (``subprocess`` in
the thread pool) are not listed under the main thread and are left alone.
"""

from __future__ import annotations

import os

from twisted.internet import process as twisted_process

#: The sweep's key in Twisted's table of reapers (never a pid).
KEY = "dockerpy-orphans"


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _zombie_not_init(pid: int) -> bool:
    """Whether ``pid`` is a zombie that is not pid 1 of a namespace below ours."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return False
    state = nspid = ""
    for line in status.splitlines():
        if line.startswith("State:"):
            state = line.split()[1]
        elif line.startswith("NSpid:"):
            nspid = line
    if state != "Z":
        return False
    ids = nspid.split()[1:]
    return not (len(ids) > 1 and ids[-1] == "1")


def sweep(me: int | None = None, handlers: dict | None = None) -> list[int]:
    """Reap the unregistered zombie children of ``me`` (this process's main
    thread) that are not container inits.

    :param handlers: Twisted's reapers by pid (default: the real table).
    :return: the pids reaped.
    """
    me = os.getpid() if me is None else me
    handlers = twisted_process.reapProcessHandlers if handlers is None else handlers
    reaped = []
    for pid in _children(me):
        if pid in handlers or not _zombie_not_init(pid):
            continue
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
        except ChildProcessError:
            pass
    return reaped


class _Sweeper:
    """What Twisted's ``reapAllProcesses`` calls, as it calls a process."""

    def reapProcess(self) -> None:  # noqa: N802 (Twisted's name)
        sweep()


def install() -> None:
    """Sweep orphans at every SIGCHLD the reactor handles (idempotent)."""
    twisted_process.reapProcessHandlers.setdefault(KEY, _Sweeper())
    sweep()
