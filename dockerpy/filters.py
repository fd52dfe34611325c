# -*- test-case-name: dockerpy.test.test_filters -*-
"""Docker's matching rules for list and prune ``filters``, shared by
containers and images (the wire forms are parsed at the API edge)."""

from __future__ import annotations

import re

from dockerpy import errors


def check_keys(filters: dict[str, list[str]], allowed) -> None:
    """Refuse a filter key outside ``allowed`` with dockerd's 400."""
    for key in filters:
        if key not in allowed:
            raise errors.InvalidParameter(f"invalid filter '{key}'")


def label_match(labels: dict, wanted: list[str]) -> bool:
    """Every ``key`` or ``key=value`` in ``wanted`` holds for ``labels``."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never cross ``/``."""
    regex = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
                    for c in pattern)
    return re.fullmatch(regex, name) is not None


def reference_match(name: str, patterns: list[str]) -> bool:
    """Docker's ``reference.FamiliarMatch``: a glob against the familiar
    reference, or against its name alone (``busybox`` matches ``busybox:1``)."""
    bare = name.split("@", 1)[0]
    if ":" in bare.rsplit("/", 1)[-1]:
        bare = bare.rsplit(":", 1)[0]
    return any(path_match(pat, name) or path_match(pat, bare) for pat in patterns)
