# -*- test-case-name: dockerpy.test.test_logfilter -*-
"""``--log-level``: the engine's events below the level stop; dockerd's
level names; a bad name is refused with dockerd's words."""

from __future__ import annotations

from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from dockerpy import logfilter


class LogLevelTests(SynchronousTestCase):
    def setUp(self):
        self.seen = []
        observer = self.seen.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.addCleanup(logfilter.set_level, "info")
        self.log = Logger(namespace="dockerpy.test.thing", observer=logfilter.engine_log)

    def levels(self):
        return [e["log_level"] for e in self.seen if e.get("log_namespace") == "dockerpy.test.thing"]

    def test_info_by_default_hides_debug(self):
        self.log.debug("d")
        self.log.info("i")
        self.log.error("e")
        self.assertEqual(self.levels(), [LogLevel.info, LogLevel.error])

    def test_error_level_hides_info_and_warn_and_debug_shows_all(self):
        logfilter.set_level("error")
        self.log.info("i")
        self.log.warn("w")
        self.log.critical("c")
        self.assertEqual(self.levels(), [LogLevel.critical])
        self.seen.clear()
        logfilter.set_level("debug")
        self.log.debug("d")
        self.assertEqual(self.levels(), [LogLevel.debug])

    def test_dockerds_names_and_refusal(self):
        self.assertEqual(logfilter.parse_level("fatal"), LogLevel.critical)
        self.assertEqual(logfilter.parse_level("WARN"), LogLevel.warn)
        with self.assertRaises(ValueError) as cm:
            logfilter.parse_level("chatty")
        self.assertEqual(str(cm.exception), "unable to parse logging level: chatty")
