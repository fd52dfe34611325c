# -*- test-case-name: dockerpy.test.test_client_interactive -*-
"""``docker exec``, ``pause``, ``unpause`` and ``events``.

Standard library only (the client's rule).  ``exec`` creates the exec
instance, takes over the start request's connection (stdin up, output down,
stdcopy-demultiplexed without a TTY), then reads the exit code from the
exec's inspect, as the docker CLI does.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import threading
import time
from typing import Any

from dockerpy.client.command import Cli, Parser, StatusError
from dockerpy.client.containers import _each
from dockerpy.client.run import _stream_output
from dockerpy.client.transport import Hijacked
from dockerpy.client.system import render, template_or_fail


def _raw_terminal(cli: Cli):
    """Put our terminal in raw mode; :return: a function restoring it."""
    import termios
    import tty

    fd = cli.stdin.fileno()
    old = termios.tcgetattr(fd)
    tty.setraw(fd)
    return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _pump_stdin(cli: Cli, stream: Hijacked) -> None:
    """Copy our stdin up, then half-close.  Reads the file descriptor itself
    when there is one: a thread blocked inside a buffered reader's lock
    aborts the interpreter at exit (this thread may still be reading)."""
    try:
        fd = cli.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    read = (lambda n: os.read(fd, n)) if fd is not None else (
        getattr(cli.stdin, "read1", None) or cli.stdin.read)
    try:
        while True:
            data = read(65536)
            if not data:
                break
            stream.write(data)
    except OSError:
        pass
    finally:
        try:
            stream.close_write()
        except OSError:
            pass


def _send_size(cli: Cli, exec_id: str) -> None:
    try:
        size = os.get_terminal_size(cli.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return
    try:
        cli.client.send("POST", f"/exec/{exec_id}/resize",
                        {"h": size.lines, "w": size.columns})
    except Exception:  # as the docker CLI: a failed resize is not an error
        pass


def exec_(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER COMMAND [ARG...]",
               "Execute a command in a running container", min_args=2, interspersed=False)
    p.add("-d", "--detach", kind="bool", help="Detached mode: run command in the background")
    p.add("--detach-keys", help="Override the key sequence for detaching a container")
    p.add("-e", "--env", kind="list", help="Set environment variables")
    p.add("-i", "--interactive", kind="bool", help="Keep STDIN open even if not attached")
    p.add("--privileged", kind="bool", help="Give extended privileges to the command")
    p.add("-t", "--tty", kind="bool", help="Allocate a pseudo-TTY")
    p.add("-u", "--user", help="Username or UID (format: \"<name|uid>[:<group|gid>]\")")
    p.add("-w", "--workdir", help="Working directory inside the container")
    p.positional("container", nargs="?")
    p.positional("cmd", nargs="...")
    ns = p.parse(cli, argv)
    p.check_args((ns.container is not None) + len(ns.cmd))
    container, cmd = ns.container, list(ns.cmd)
    env = []
    for item in ns.env:
        if "=" not in item:
            if item in cli.environ:
                env.append(f"{item}={cli.environ[item]}")
            continue
        env.append(item)
    client = cli.client
    config = {
        "User": ns.user or "", "Privileged": ns.privileged, "Tty": ns.tty,
        "AttachStdin": ns.interactive and not ns.detach,
        "AttachStdout": not ns.detach, "AttachStderr": not ns.detach,
        "DetachKeys": ns.detach_keys or "", "Env": env or None,
        "WorkingDir": ns.workdir or "", "Cmd": cmd,
    }
    exec_id = client.post_json(f"/containers/{container}/exec", body=config)["Id"]
    if ns.detach:
        client.send("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": ns.tty})
        return 0
    stream = client.hijack(f"/exec/{exec_id}/start")
    restore = None
    if ns.tty and ns.interactive and cli.isatty(cli.stdin):
        restore = _raw_terminal(cli)
    try:
        if ns.tty:
            _send_size(cli, exec_id)
        if ns.interactive:
            threading.Thread(target=_pump_stdin, args=(cli, stream), daemon=True).start()
        _stream_output(cli, stream, ns.tty)
    finally:
        stream.close()
        if restore is not None:
            restore()
    info = client.get_json(f"/exec/{exec_id}/json")
    return int(info.get("ExitCode") or 0)


def pause(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "CONTAINER [CONTAINER...]",
               "Pause all processes within one or more containers", min_args=1)
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.containers))
    return _each(cli, ns.containers,
                 lambda c: cli.client.send("POST", f"/containers/{c}/pause"))


def unpause(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "CONTAINER [CONTAINER...]",
               "Unpause all processes within one or more containers", min_args=1)
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.containers))
    return _each(cli, ns.containers,
                 lambda c: cli.client.send("POST", f"/containers/{c}/unpause"))


_DURATION = re.compile(r"^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def timestamp_arg(value: str, now: float) -> str:
    """``--since``/``--until`` as the docker CLI sends them: a Go duration
    becomes ``now - duration`` in ``seconds.nanoseconds``; dates and unix
    times go as given (the daemon parses them)."""
    if _DURATION.match(value):
        total = sum(float(n) * _UNITS[u]
                    for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value))
        t = now - total
        return f"{int(t)}.{int(round((t - int(t)) * 1e9)):09d}"
    return value


def event_time(nanos: int) -> str:
    """The docker CLI's event time: local time, ``RFC3339NanoFixed``."""
    secs, frac = divmod(nanos, 1_000_000_000)
    local = datetime.datetime.fromtimestamp(secs).astimezone()
    offset = local.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else offset[:3] + ":" + offset[3:]
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}" + zone


def event_line(event: dict[str, Any]) -> str:
    """``docker events``' default line."""
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    line = (f"{event_time(int(event.get('timeNano') or 0))} {event.get('Type')} "
            f"{event.get('Action')} {actor.get('ID')}")
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


def events(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Get real time events from the server", max_args=0)
    p.add("-f", "--filter", kind="list", help="Filter output based on conditions provided")
    p.add("--format", help="Format output using a custom template")
    p.add("--since", help="Show all events created since timestamp")
    p.add("--until", help="Stream events until this timestamp")
    p.positional("rest", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.rest))
    filters: dict[str, dict[str, bool]] = {}
    for item in ns.filter:
        key, eq, value = item.partition("=")
        if not eq:
            raise StatusError(125, f"bad format of filter (expected name=value)\n"
                                   f"See 'docker {name} --help'.")
        filters.setdefault(key.strip().lower(), {})[value] = True
    now = time.time()
    query = {"since": timestamp_arg(ns.since, now) if ns.since else None,
             "until": timestamp_arg(ns.until, now) if ns.until else None,
             "filters": json.dumps(filters) if filters else None}
    tmpl = None
    if ns.format and ns.format != "json":
        tmpl = template_or_fail(ns.format)
    resp = cli.client.request("GET", "/events", query, stream=True)
    try:
        for event in resp.json_lines():
            if ns.format == "json":
                cli.out(json.dumps(event, separators=(",", ":")))
            elif tmpl is not None:
                cli.out(render(tmpl, event))
            else:
                cli.out(event_line(event))
    finally:
        resp.close()
    return 0
