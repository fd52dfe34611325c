# -*- test-case-name: dockerpy.test.test_events -*-
"""``GET /events``: the engine's events as a stream of JSON lines.

Events kept since ``since`` come first, then live ones as they happen, until
``until`` passes or the client goes away (a gone client only unsubscribes).
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.internet import defer

from dockerpy import errors
from dockerpy.api.app import parse_filters, query
from dockerpy.events import check_filters, matches
from dockerpy.timeutil import parse_timestamp_arg


def _time_arg(request, name: str, now: float) -> float | None:
    value = query(request, name)
    if not value:
        return None
    try:
        return parse_timestamp_arg(value, now)
    except ValueError:
        raise errors.InvalidParameter(f"invalid value for {name}: {value!r}") from None


def install(app: Klein, daemon=None) -> None:
    @app.route("/events", methods=["GET"])
    async def get_events(request):
        reactor = daemon.reactor
        now = reactor.seconds()
        since = _time_arg(request, "since", now)
        until = _time_arg(request, "until", now)
        filters = parse_filters(query(request, "filters"))
        check_filters(filters)
        if since is not None and since > now:
            raise errors.InvalidParameter("since time cannot be after the current time")
        bus = daemon.events
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")

        def send(event: dict) -> None:
            request.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

        if since is not None:
            for event in bus.recent(since, until, filters):
                send(event)
        if until is not None and until <= now:
            return b""
        done: defer.Deferred = defer.Deferred()

        def live(event: dict) -> None:
            if until is not None and event["timeNano"] / 1e9 > until:
                return
            if matches(event, filters):
                send(event)

        unsubscribe = bus.subscribe(live)
        timer = None
        if until is not None:
            timer = reactor.callLater(until - now, lambda: done.called or done.callback(None))
        # The client going away cancels this route's Deferred (Klein); the
        # finally below then unsubscribes.
        try:
            await done
        finally:
            unsubscribe()
            if timer is not None and timer.active():
                timer.cancel()
        return b""
