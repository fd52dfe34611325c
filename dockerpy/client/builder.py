# -*- test-case-name: dockerpy.test.test_build_options -*-
"""``docker builder prune``: clear the daemon's build (step) cache through
``POST /build/prune``, printed as the docker CLI prints it."""

from __future__ import annotations

import json

from dockerpy.client.command import Cli, Parser, confirm, parse_filters
from dockerpy.client.format import human_size


def prune(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Remove build cache", max_args=0)
    p.add("-a", "--all", kind="bool", help="Remove all unused build cache, not just dangling ones")
    p.add("--filter", kind="list", help='Provide filter values (e.g. "until=24h")')
    p.add("-f", "--force", kind="bool", help="Do not prompt for confirmation")
    p.add("--keep-storage", help="Amount of disk space to keep for cache")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    warning = ("WARNING! This will remove all build cache." if ns.all else
               "WARNING! This will remove all dangling build cache.")
    if not ns.force and not confirm(cli, warning):
        return 0
    query: dict[str, str] = {}
    if ns.all:
        query["all"] = "1"
    filters = parse_filters(list(ns.filter))
    if filters:
        query["filters"] = filters if isinstance(filters, str) else json.dumps(filters)
    if ns.keep_storage:
        query["keep-storage"] = ns.keep_storage
    report = cli.client.post_json("/build/prune", query) or {}
    deleted = report.get("CachesDeleted") or []
    if deleted:
        cli.out("Deleted build cache objects:")
        for cache_id in deleted:
            cli.out(cache_id)
        cli.out()
    cli.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0, 4)}")
    return 0
