"""The event bus, Docker's event filters and ``GET /events`` (through StubTreq)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from dockerpy.api import events as events_api
from dockerpy.api.app import make_app, make_site
from dockerpy.events import EventBus, make_event, matches

CID = "a" * 64


def _event(kind="container", action="start", actor=CID, **attrs):
    return make_event(kind, action, actor, attrs, 1_700_000_000.25)


class EventShapeTests(unittest.SynchronousTestCase):
    def test_container_event_has_dockers_fields(self):
        e = _event(name="web", image="busybox")
        self.assertEqual(e, {
            "status": "start", "id": CID, "from": "busybox", "Type": "container",
            "Action": "start", "Actor": {"ID": CID, "Attributes": {
                "name": "web", "image": "busybox"}},
            "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_250_000_000})

    def test_other_types_have_no_deprecated_fields(self):
        e = _event("network", "connect", "n1", name="bridge")
        self.assertNotIn("status", e)
        self.assertEqual(e["Type"], "network")


class FilterTests(unittest.SynchronousTestCase):
    def test_type_and_event(self):
        e = _event(action="die", name="web", image="busybox")
        self.assertTrue(matches(e, {"type": ["container"], "event": ["die", "start"]}))
        self.assertFalse(matches(e, {"type": ["image"]}))
        self.assertFalse(matches(e, {"event": ["start"]}))

    def test_exec_events_match_their_base_action(self):
        e = _event(action="exec_start: sh -c true")
        self.assertTrue(matches(e, {"event": ["exec_start"]}))

    def test_container_by_name_or_id_prefix(self):
        e = _event(name="web", image="busybox")
        self.assertTrue(matches(e, {"container": ["web"]}))
        self.assertTrue(matches(e, {"container": [CID[:12]]}))
        self.assertFalse(matches(e, {"container": ["db"]}))
        self.assertFalse(matches(_event("image", "pull", "busybox:latest",
                                        name="busybox:latest"), {"container": ["web"]}))

    def test_image_with_or_without_tag(self):
        e = _event(name="web", image="busybox:1.36")
        self.assertTrue(matches(e, {"image": ["busybox"]}))
        self.assertTrue(matches(e, {"image": ["busybox:1.36"]}))
        self.assertFalse(matches(e, {"image": ["alpine"]}))
        img = _event("image", "tag", "sha256:" + "b" * 64, name="me/app:v1")
        self.assertTrue(matches(img, {"image": ["me/app"]}))
        self.assertTrue(matches(img, {"image": ["sha256:" + "b" * 64]}))

    def test_label(self):
        e = _event(name="web", image="busybox", tier="front")
        self.assertTrue(matches(e, {"label": ["tier=front"]}))
        self.assertTrue(matches(e, {"label": ["tier"]}))
        self.assertFalse(matches(e, {"label": ["tier=back"]}))


class BusTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.clock.advance(100)
        self.bus = EventBus(self.clock, limit=3)

    def test_recent_keeps_a_bounded_window_by_time(self):
        for i in range(5):
            self.bus.publish("container", f"a{i}", CID, {})
            self.clock.advance(1)
        self.assertEqual([e["Action"] for e in self.bus.recent()], ["a2", "a3", "a4"])
        self.assertEqual([e["Action"] for e in self.bus.recent(since=103, until=103.5)],
                         ["a3"])

    def test_subscribers_get_live_events_until_they_unsubscribe(self):
        seen = []
        unsubscribe = self.bus.subscribe(seen.append)
        self.bus.publish("image", "pull", "busybox:latest", {"name": "busybox:latest"})
        unsubscribe()
        self.bus.publish("image", "delete", "sha256:x", {})
        self.assertEqual([e["Action"] for e in seen], ["pull"])
        self.assertEqual(self.bus.subscriber_count, 0)

    def test_a_failing_subscriber_does_not_stop_the_others(self):
        seen = []

        def broken(event):
            raise RuntimeError("boom")

        self.bus.subscribe(broken)
        self.bus.subscribe(seen.append)
        self.bus.publish("container", "create", CID, {})
        self.assertEqual(len(seen), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class EventsRouteTests(unittest.TestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.clock.advance(1_700_000_000)
        self.bus = EventBus(self.clock)
        daemon = SimpleNamespace(reactor=self.clock, events=self.bus)
        app = make_app([lambda app: events_api.install(app, daemon)])
        self.treq = StubTreq(make_site(app).resource)

    def _lines(self, body: bytes) -> list[dict]:
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def test_since_until_in_the_past_returns_the_matching_kept_events(self):
        self.bus.publish("container", "create", CID, {"name": "web", "image": "busybox"})
        self.bus.publish("container", "start", CID, {"name": "web", "image": "busybox"})
        self.bus.publish("image", "tag", "sha256:x", {"name": "busybox:latest"})
        self.clock.advance(10)
        filters = json.dumps({"type": {"container": True}})
        resp = self.successResultOf(self.treq.get(
            "http://x/v1.47/events", params={"since": "1699999999", "until": "1700000005",
                                             "filters": filters}))
        self.assertEqual(resp.code, 200)
        body = self.successResultOf(resp.content())
        self.assertEqual([e["Action"] for e in self._lines(body)], ["create", "start"])

    def test_live_events_stream_until_until_passes(self):
        d = self.treq.get("http://x/events", params={"until": "1700000005"})
        resp = self.successResultOf(d)
        body = resp.content()
        self.bus.publish("container", "die", CID, {"name": "web"})
        self.assertNoResult(body)
        self.clock.advance(6)
        self.bus.publish("container", "destroy", CID, {"name": "web"})
        self.treq.flush()
        lines = self._lines(self.successResultOf(body))
        self.assertEqual([e["Action"] for e in lines], ["die"])
        self.assertEqual(self.bus.subscriber_count, 0)

    def test_invalid_filter_is_rejected(self):
        resp = self.successResultOf(self.treq.get(
            "http://x/events", params={"filters": json.dumps({"colour": ["red"]})}))
        self.assertEqual(resp.code, 400)
        self.assertEqual(json.loads(self.successResultOf(resp.content()))["message"],
                         "invalid filter 'colour'")
