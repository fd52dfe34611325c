# -*- test-case-name: dockerpy.test.test_api_app -*-
"""Assembles the Engine API: every route module installed on one Klein app."""

from __future__ import annotations

from functools import partial

from dockerpy.api import containers, events, exec as exec_, images, system, volumes
from dockerpy.api import registry
from dockerpy.api import build
from dockerpy.api import networks
from dockerpy.api import stats
from dockerpy.api.app import EngineSite, make_app, make_site

ROUTE_MODULES = (system, containers, images, exec_, events, volumes, registry, build, networks,
                 stats)


def make_engine_app(daemon):
    return make_app([partial(m.install, daemon=daemon) for m in ROUTE_MODULES])


def make_engine_site(daemon) -> EngineSite:
    return make_site(make_engine_app(daemon))
