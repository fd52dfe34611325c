# -*- test-case-name: dockerpy.test.test_logfilter -*-
"""``--log-level``: the engine's log events, filtered by level.

Every engine module logs through ``Logger(observer=engine_log)``: a
filtering observer in front of Twisted's global publisher (which twistd
points at the terminal or the log file).  Events below the daemon's level
stop here; Twisted's own events are not ours to filter.
"""

from __future__ import annotations

from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                            globalLogPublisher)

#: dockerd's level names.
LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
          "error": LogLevel.error, "fatal": LogLevel.critical}

_predicate = LogLevelFilterPredicate(LogLevel.info)
engine_log = FilteringLogObserver(globalLogPublisher, [_predicate])


def parse_level(name: str) -> LogLevel:
    """:raises ValueError: with dockerd's words."""
    try:
        return LEVELS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f'unable to parse logging level: {name}') from None


def set_level(name: str) -> None:
    """Pass events at ``name`` (``debug`` ... ``fatal``) and above."""
    _predicate.setLogLevelForNamespace("dockerpy", parse_level(name))
