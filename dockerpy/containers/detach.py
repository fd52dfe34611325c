# -*- test-case-name: dockerpy.test.test_detach -*-
"""Detach keys: the key sequence that ends an attach (or an exec's
attached stream) while the process keeps running.

Docker's format is a comma-separated list of single characters and
``ctrl-<c>`` names (``ctrl-@``, ``ctrl-a`` ... ``ctrl-z``, ``ctrl-[``,
``ctrl-\\``, ``ctrl-]``, ``ctrl-^``, ``ctrl-_``) or ``DEL``, exactly as
``moby/term.ToBytes`` reads it; the default is ``ctrl-p,ctrl-q``.  As in
Docker the daemon watches for it only on a terminal (``Tty: true``).

The parsing and matching live in the stdlib-only
:mod:`dockerpy.client.detachkeys`, which bin/docker shares; this module
words the daemon's refusals and publishes the ``detach`` events.
"""

from __future__ import annotations

from dockerpy import errors
from dockerpy.client.detachkeys import detach_keys

def attach_keys(keys: str | None) -> bytes:
    """``detachKeys`` of ``POST /containers/{id}/attach``.

    :raises InvalidParameter: malformed (Docker's message).
    """
    try:
        return detach_keys(keys)
    except ValueError:
        raise errors.InvalidParameter(f"Invalid detach keys ({keys}) provided") from None


def exec_keys(keys: str | None) -> bytes:
    """``DetachKeys`` of ``POST /containers/{id}/exec``.

    :raises InvalidParameter: malformed (Docker's message; dockerd answers
        500 for it, a client error all the same).
    """
    try:
        return detach_keys(keys)
    except ValueError:
        raise errors.InvalidParameter(f"Invalid escape keys ({keys}) provided") from None


def publish_detach(events, rec, action: str = "detach", **extra: str) -> None:
    """The event Docker logs when a client detached with the keys
    (``detach``, or ``exec_detach`` with ``execID``)."""
    if events is None:
        return
    attrs = {"name": rec.name, "image": rec.image_name}
    attrs.update(rec.config.get("Labels") or {})
    attrs.update(extra)
    events.publish("container", action, rec.id, attrs)
