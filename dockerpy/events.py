# -*- test-case-name: dockerpy.test.test_events -*-
"""The engine's event bus: what ``GET /events`` (``docker events``) reports.

This module owns Docker's event shape (``status``/``id``/``from`` for old
clients, ``Type``/``Action``/``Actor``/``scope``/``time``/``timeNano``), a
bounded ring of recent events for ``since``, live subscribers, and Docker's
event filters (type, event, container, image, label, ...).  Publishers (the
container service, image routes) call :meth:`EventBus.publish`; it never
blocks and never fails because of a subscriber.
"""

from __future__ import annotations

import collections
from typing import Callable

from twisted.logger import Logger

from dockerpy.filters import check_keys, label_match
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

#: Docker keeps the last 256 events for ``since`` (moby ``eventsLimit``).
EVENTS_LIMIT = 256

FILTERS = {"type", "event", "container", "image", "label", "volume", "network", "daemon",
           "plugin", "node", "service", "secret", "config", "scope"}

Subscriber = Callable[[dict], None]


def make_event(kind: str, action: str, actor_id: str, attributes: dict[str, str],
               now: float) -> dict:
    """An event as Docker sends it (``events.Message``)."""
    secs = int(now)
    nano = secs * 1_000_000_000 + int(round((now - secs) * 1e9))
    event = {"Type": kind, "Action": action,
             "Actor": {"ID": actor_id, "Attributes": dict(attributes)},
             "scope": "local", "time": nano // 1_000_000_000, "timeNano": nano}
    if kind in ("container", "image"):
        # The deprecated fields old clients (and `docker events` with its
        # default format) still read.
        event = {"status": action, "id": actor_id,
                 **({"from": attributes["image"]} if kind == "container"
                    and "image" in attributes else {}),
                 **event}
    return event


def _action_matches(action: str, wanted: list[str]) -> bool:
    # "exec_start: sh -c ..." is matched by "exec_start" (moby splits on ":").
    base = action.split(":", 1)[0].strip()
    return action in wanted or base in wanted


def _strip_tag(ref: str) -> str:
    ref = ref.split("@", 1)[0]
    if ":" in ref.rsplit("/", 1)[-1]:
        return ref.rsplit(":", 1)[0]
    return ref


def check_filters(filters: dict[str, list[str]]) -> None:
    check_keys(filters, FILTERS)


def matches(event: dict, filters: dict[str, list[str]]) -> bool:
    """Docker's event filter (moby ``daemon/events/filter.go``): every given
    key must match; values of one key are alternatives."""
    kind = event["Type"]
    actor = event["Actor"]
    attrs = actor.get("Attributes") or {}
    if "type" in filters and kind not in filters["type"]:
        return False
    if "event" in filters and not _action_matches(event["Action"], filters["event"]):
        return False
    if "scope" in filters and event.get("scope") not in filters["scope"]:
        return False
    if "label" in filters and not label_match(attrs, filters["label"]):
        return False
    if "container" in filters:
        if kind != "container":
            return False
        name = attrs.get("name", "")
        if not any(actor["ID"].startswith(v) or name == v.lstrip("/") or
                   (name.startswith(v) and v) for v in filters["container"]):
            return False
    if "image" in filters:
        # moby matchImage: the actor id or its image name, with or without tag.
        name = attrs.get("name" if kind == "image" else "image", "")
        candidates = {actor["ID"], name, _strip_tag(actor["ID"]), _strip_tag(name)}
        if not candidates & set(filters["image"]):
            return False
    for key in ("volume", "network", "daemon", "plugin", "node", "service", "secret",
                "config"):
        if key in filters:
            if kind != key:
                return False
            name = attrs.get("name", "")
            if not any(actor["ID"] == v or name == v for v in filters[key]):
                return False
    return True


class EventBus:
    """Publish events to live subscribers and keep the recent ones.

    :param reactor: ``IReactorTime`` (the events' time).
    :param limit: how many recent events are kept for ``since``.
    """

    def __init__(self, reactor, limit: int = EVENTS_LIMIT) -> None:
        self._reactor = reactor
        self._recent: collections.deque[dict] = collections.deque(maxlen=limit)
        self._subscribers: list[Subscriber] = []

    def publish(self, kind: str, action: str, actor_id: str,
                attributes: dict[str, str] | None = None) -> dict:
        """Record an event and hand it to every subscriber.  :return: the event."""
        event = make_event(kind, action, actor_id, attributes or {}, self._reactor.seconds())
        self._recent.append(event)
        for sub in list(self._subscribers):
            try:
                sub(event)
            except Exception:
                log.failure("event subscriber failed")
        return event

    def recent(self, since: float | None = None, until: float | None = None,
               filters: dict[str, list[str]] | None = None) -> list[dict]:
        """Kept events with ``since <= time <= until`` (seconds) that match."""
        out = []
        for event in self._recent:
            t = event["timeNano"] / 1e9
            if since is not None and t < since:
                continue
            if until is not None and t > until:
                continue
            if filters and not matches(event, filters):
                continue
            out.append(event)
        return out

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Receive every event published from now on; :return: an unsubscriber."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
