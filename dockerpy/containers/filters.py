# -*- test-case-name: dockerpy.test.test_container_filters -*-
"""``filters`` for ``GET /containers/json`` and ``POST /containers/prune``."""

from __future__ import annotations

from dockerpy import errors
from dockerpy.filters import check_keys, label_match
from dockerpy.timeutil import parse_rfc3339, parse_timestamp_arg

LIST_FILTERS = {"id", "name", "label", "status", "ancestor", "exited", "before", "since",
                "health", "isolation", "network", "publish", "expose", "volume", "is-task"}
PRUNE_FILTERS = {"until", "label", "label!"}
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def matches_list(rec, filters: dict[str, list[str]], image_matches) -> bool:
    """:param image_matches: callable(ref, image_id) -> bool for ``ancestor``."""
    check_keys(filters, LIST_FILTERS)
    if "id" in filters and not any(rec.id.startswith(v) for v in filters["id"]):
        return False
    if "name" in filters and not any(v.lstrip("/") in rec.name for v in filters["name"]):
        return False
    if "status" in filters:
        for v in filters["status"]:
            if v not in STATUSES:
                raise errors.InvalidParameter(
                    f"invalid filter 'status={v}'")
        if rec.state.status not in filters["status"]:
            return False
    if "exited" in filters:
        if rec.state.status != "exited":
            return False
        try:
            codes = {int(v) for v in filters["exited"]}
        except ValueError:
            raise errors.InvalidParameter("invalid filter 'exited'") from None
        if rec.state.exit_code not in codes:
            return False
    if "label" in filters and not label_match(rec.config.get("Labels") or {},
                                               filters["label"]):
        return False
    if "ancestor" in filters and not any(image_matches(v, rec.image)
                                         for v in filters["ancestor"]):
        return False
    return True


def matches_prune(rec, filters: dict[str, list[str]], now: float) -> bool:
    check_keys(filters, PRUNE_FILTERS)
    if "until" in filters:
        limit = min(parse_timestamp_arg(v, now) for v in filters["until"])
        if parse_rfc3339(rec.created) >= limit:
            return False
    labels = rec.config.get("Labels") or {}
    if "label" in filters and not label_match(labels, filters["label"]):
        return False
    if "label!" in filters and label_match(labels, filters["label!"]):
        return False
    return True
