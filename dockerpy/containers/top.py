# -*- test-case-name: dockerpy.test.test_container_top -*-
"""``docker top``: the host's ``ps`` output restricted to a container's pids."""

from __future__ import annotations

import shlex

from dockerpy import errors
from dockerpy.process import run_command


def parse_ps(output: str, pids: set[int]) -> dict:
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise errors.SystemError_("ps printed nothing")
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise errors.InvalidParameter("Couldn't find PID field in ps output") from None
    procs = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        try:
            pid = int(fields[pid_col])
        except (ValueError, IndexError):
            continue
        if pid in pids:
            procs.append(fields)
    return {"Titles": titles, "Processes": procs}


async def ps_table(reactor, pids: list[int], ps_args: str) -> dict:
    result = await run_command(reactor, ["ps"] + shlex.split(ps_args))
    if result.code != 0:
        raise errors.SystemError_(
            f"Error running ps: {result.err.decode(errors='replace').strip()}")
    return parse_ps(result.out.decode("utf-8", "replace"), set(pids))
