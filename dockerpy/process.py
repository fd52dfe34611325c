# -*- test-case-name: dockerpy.test.test_process -*-
"""Running short commands without blocking the reactor.

``run_command`` spawns through ``reactor.spawnProcess`` and collects output:
the one way the daemon runs a helper program (runtime state queries,
``ps`` for ``docker top``, ``mount`` fallbacks are done in threads instead).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from twisted.internet import defer, error
from twisted.internet.protocol import ProcessProtocol


@dataclass
class CommandResult:
    code: int
    out: bytes
    err: bytes


class _Collect(ProcessProtocol):
    def __init__(self, stdin: bytes | None):
        self.stdin = stdin
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.done: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:  # noqa: N802
        if self.stdin:
            self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.err.append(data)

    def processEnded(self, reason) -> None:  # noqa: N802
        code = 0
        if isinstance(reason.value, error.ProcessTerminated):
            code = reason.value.exitCode if reason.value.exitCode is not None else (
                128 + (reason.value.signal or 0))
        self.done.callback(CommandResult(code, b"".join(self.out), b"".join(self.err)))


def default_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                   "/sbin:/bin"), "LANG": "C.UTF-8"}


def run_command(reactor, argv: list[str], stdin: bytes | None = None,
                env: dict[str, str] | None = None) -> defer.Deferred:
    """:return: Deferred firing with a ``CommandResult`` (never fails on a
    non-zero exit: the caller decides what that means)."""
    proto = _Collect(stdin)
    reactor.spawnProcess(proto, argv[0], argv, env=env if env is not None else default_env())
    return proto.done
