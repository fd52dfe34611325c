# -*- test-case-name: dockerpy.test.test_client_interactive -*-
"""``docker exec``, ``pause``, ``unpause`` and ``events``.

Standard library only (the client's rule).  ``exec`` creates the exec
instance, takes over the start request's connection (stdin up, output down,
stdcopy-demultiplexed without a TTY), then reads the exit code from the
exec's inspect, as the docker CLI does.  With a TTY the daemon's terminal
follows ours: :class:`TtySizeMonitor` sends one resize at once and one per
``SIGWINCH`` (the docker CLI's ``MonitorTtySize``); ``run -it`` and
``attach`` can use it with the container's resize path.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import threading
import time

from dockerpy.client.command import Cli, Parser, StatusError
from dockerpy.client.containers import _each
from dockerpy.client.run import _pump_stdin, _stream_output
from dockerpy.client.system import render, template_or_fail

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any, Callable


def _raw_terminal(cli: Cli):
    """Put our terminal in raw mode; :return: a function restoring it."""
    import termios
    import tty

    fd = cli.stdin.fileno()
    old = termios.tcgetattr(fd)
    # TCSANOW, as the docker CLI: what was typed ahead stays (setraw's default,
    # TCSAFLUSH, would throw it away).
    tty.setraw(fd, termios.TCSANOW)
    return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, old)


def terminal_size(cli: Cli) -> tuple[int, int] | None:
    """``(rows, columns)`` of our terminal (stdout's), or ``None``."""
    try:
        size = os.get_terminal_size(cli.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return (size.lines, size.columns) if size.lines and size.columns else None


def _in_background(fn: Callable[[], None]) -> None:
    threading.Thread(target=fn, daemon=True).start()


class TtySizeMonitor:
    """Keep the daemon's terminal the size of ours while in the ``with``
    block: one resize on entry, then one after each ``SIGWINCH``.

    The signal handler only starts the request (on a thread by default):
    a handler must not block the main thread, which is busy copying output.

    :param path: ``/containers/{id}/resize`` or ``/exec/{id}/resize``.
    :param get_size: our terminal's size (tests give their own).
    :param spawn: runs the sending function (tests run it at once).
    """

    def __init__(self, cli: Cli, path: str,
                 get_size: Callable[[], tuple[int, int] | None] | None = None,
                 spawn: Callable[[Callable[[], None]], None] = _in_background) -> None:
        self._cli = cli
        self._path = path
        self._get_size = get_size or (lambda: terminal_size(cli))
        self._spawn = spawn
        self._old: Any = None
        self._installed = False

    def send(self) -> None:
        size = self._get_size()
        if size is None:
            return
        try:
            self._cli.client.send("POST", self._path, {"h": size[0], "w": size[1]})
        except Exception:  # as the docker CLI: a failed resize is not an error
            pass

    def _on_winch(self, signum: int, frame: Any) -> None:
        self._spawn(self.send)

    def __enter__(self) -> "TtySizeMonitor":
        self.send()
        # Signal handlers can only be set from the main thread.
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGWINCH, self._on_winch)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGWINCH, self._old)
            self._installed = False


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
    size = terminal_size(cli) if ns.tty else None
    config = {
        "User": ns.user or "", "Privileged": ns.privileged, "Tty": ns.tty,
        "AttachStdin": ns.interactive and not ns.detach,
        "AttachStdout": not ns.detach, "AttachStderr": not ns.detach,
        "DetachKeys": ns.detach_keys or "", "Env": env or None,
        "WorkingDir": ns.workdir or "", "Cmd": cmd,
    }
    if size is not None:
        # As the docker CLI (API 1.42+): the terminal is made at this size.
        config["ConsoleSize"] = list(size)
    exec_id = client.post_json(f"/containers/{container}/exec", body=config)["Id"]
    if ns.detach:
        client.send("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": ns.tty})
        return 0
    stream = client.hijack(f"/exec/{exec_id}/start")
    restore = None
    if ns.tty and ns.interactive and cli.isatty(cli.stdin):
        restore = _raw_terminal(cli)
    monitor = TtySizeMonitor(cli, f"/exec/{exec_id}/resize") if ns.tty else None
    try:
        if monitor is not None:
            monitor.__enter__()
        if ns.interactive:
            threading.Thread(target=_pump_stdin, args=(cli, stream), daemon=True).start()
        _stream_output(cli, stream, ns.tty)
    finally:
        if monitor is not None:
            monitor.__exit__()
        stream.close()
        if restore is not None:
            restore()
    info = client.get_json(f"/exec/{exec_id}/json")
    return int(info.get("ExitCode") or 0)


def _pump_until_keys(cli: Cli, stream: Any, keys: bytes, detached: threading.Event) -> None:
    """:func:`_pump_stdin` watching for the detach keys on a terminal.

    The keys are sent on like any input: the daemon, given the same keys
    (``detachKeys``), ends the attach itself and leaves the container's
    stdin open.  Ending it here instead (closing our side) would look like
    the client leaving, and close the stdin of a ``StdinOnce`` container
    (``run -it``) - its shell would exit.  Once the keys are seen nothing
    more is read or sent; the daemon closes the stream."""
    from dockerpy.client.detachkeys import EscapeFilter

    escape = EscapeFilter(keys)
    fd = cli.stdin.fileno()
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            # Known before the keys leave: the daemon ends the stream on
            # them, and the main thread, seeing that end, must find the
            # attach detached (else it waits for the container's exit).
            keys_seen = escape.feed(data)[1]
            if keys_seen:
                detached.set()
            stream.write(data)
            if keys_seen:
                return
        stream.close_write()
    except OSError:
        pass


def stream_attached(cli: Cli, cid: str, stream: Any, *, tty: bool, stdin: bool,
                    sig_proxy: bool, keys: bytes) -> bool:
    """Our stdio to an attached container's until its output ends, as the
    docker CLI does: with a terminal on both ends ours is raw meanwhile
    (restored on every exit), the container's follows our size (SIGWINCH),
    and the detach keys end the attach; without, signals are proxied.

    :return: whether the detach keys ended it (the container still runs).
    """
    from dockerpy.client.run import _SignalProxy

    detached = threading.Event()
    restore = _raw_terminal(cli) if tty and stdin and cli.isatty(cli.stdin) else None
    monitor = TtySizeMonitor(cli, f"/containers/{cid}/resize") \
        if tty and cli.isatty(cli.stdout) else None
    try:
        if monitor is not None:
            monitor.__enter__()
        if stdin and restore is not None:
            threading.Thread(target=_pump_until_keys, args=(cli, stream, keys, detached),
                             daemon=True).start()
        elif stdin:
            threading.Thread(target=_pump_stdin, args=(cli, stream), daemon=True).start()
        if sig_proxy and not tty:
            with _SignalProxy(cli.client, cid):
                _stream_output(cli, stream, tty)
        else:
            _stream_output(cli, stream, tty)
    finally:
        stream.close()
        if monitor is not None:
            monitor.__exit__()
        if restore is not None:
            restore()
    return detached.is_set()


def attach(cli: Cli, name: str, argv: list[str]) -> int:
    """``docker attach``: our stdio to a running container's, until it exits
    (its status is ours) or the detach keys end the attach while it runs
    (the docker CLI then says ``read escape sequence`` and exits 1)."""
    from dockerpy.client.detachkeys import detach_keys

    p = Parser(name, "[OPTIONS] CONTAINER",
               "Attach local standard input, output, and error streams to a running "
               "container", min_args=1, max_args=1)
    p.add("--detach-keys", help="Override the key sequence for detaching a container")
    p.add("--no-stdin", kind="bool", help="Do not attach STDIN")
    p.add("--sig-proxy", kind="bool", default=True,
          help="Proxy all received signals to the process")
    p.positional("container", nargs="?")
    ns = p.parse(cli, argv)
    p.check_args(ns.container is not None)
    client = cli.client
    info = client.get_json(f"/containers/{ns.container}/json") or {}
    state, config = info.get("State") or {}, info.get("Config") or {}
    if not state.get("Running"):
        raise StatusError(1, "You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise StatusError(1, "You cannot attach to a paused container, unpause it first")
    cid, tty = info.get("Id", ns.container), bool(config.get("Tty"))
    stdin = not ns.no_stdin and bool(config.get("OpenStdin"))
    try:
        keys = detach_keys(ns.detach_keys)
    except ValueError:
        raise StatusError(1, f"Invalid detach keys ({ns.detach_keys}) provided") from None
    query = {"stream": True, "stdin": True if stdin else None, "stdout": True,
             "stderr": True, "detachKeys": ns.detach_keys or None}
    stream = client.hijack(f"/containers/{cid}/attach", query)
    if stream_attached(cli, cid, stream, tty=tty, stdin=stdin, sig_proxy=ns.sig_proxy,
                       keys=keys):
        cli.err("read escape sequence")
        return 1
    # The daemon may end the stream on its own keys (piped stdin): then the
    # container still runs and the wait below would never end.
    if tty and stdin and ((client.get_json(f"/containers/{cid}/json") or {}).get(
            "State") or {}).get("Running"):
        cli.err("read escape sequence")
        return 1
    result = client.post_json(f"/containers/{cid}/wait") or {}
    return int(result.get("StatusCode") or 0)


def _container_action(cli: Cli, name: str, argv: list[str], action: str, summary: str) -> int:
    p = Parser(name, "CONTAINER [CONTAINER...]", summary, min_args=1)
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.containers))
    return _each(cli, ns.containers,
                 lambda c: cli.client.send("POST", f"/containers/{c}/{action}"))


def pause(cli: Cli, name: str, argv: list[str]) -> int:
    return _container_action(cli, name, argv, "pause",
                             "Pause all processes within one or more containers")


def unpause(cli: Cli, name: str, argv: list[str]) -> int:
    return _container_action(cli, name, argv, "unpause",
                             "Unpause all processes within one or more containers")


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


# -- stats ------------------------------------------------------------------

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
_STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME",
                  "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                  "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def stats_row(doc: dict[str, Any], container: str) -> dict[str, str]:
    """The docker CLI's columns for one stats document (``cli/command/
    container/stats_helpers.go``: CPU % from the pair of samples, memory
    without the inactive page cache)."""
    from dockerpy.client.format import bytes_size, human_size

    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    cpu_delta = ((cpu.get("cpu_usage") or {}).get("total_usage", 0)
                 - (pre.get("cpu_usage") or {}).get("total_usage", 0))
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                         or []) or 1
    cpu_percent = cpu_delta / system_delta * cpus * 100.0 \
        if system_delta > 0 and cpu_delta > 0 else 0.0
    mem = doc.get("memory_stats") or {}
    extra = mem.get("stats") or {}
    usage = mem.get("usage", 0)
    for key in ("total_inactive_file", "inactive_file"):
        if key in extra and extra[key] < usage:
            usage -= extra[key]
            break
    limit = mem.get("limit", 0)
    rx = sum(n.get("rx_bytes", 0) for n in (doc.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (doc.get("networks") or {}).values())
    read = write = 0
    for entry in (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    running = doc.get("read") != "0001-01-01T00:00:00Z"
    return {
        "ID": doc.get("id", "")[:12], "Container": container,
        "Name": (doc.get("name") or "").lstrip("/"),
        "CPUPerc": f"{cpu_percent:.2f}%" if running else "--",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}" if running else "-- / --",
        "MemPerc": f"{(usage / limit * 100.0) if limit else 0.0:.2f}%" if running else "--",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}" if running else "--",
        "BlockIO": f"{human_size(read)} / {human_size(write)}" if running else "--",
        "PIDs": str((doc.get("pids_stats") or {}).get("current", 0)) if running else "--",
    }


def stats(cli: Cli, name: str, argv: list[str]) -> int:
    from dockerpy.client.format import tabwrite
    from dockerpy.client.transport import APIError

    p = Parser(name, "[OPTIONS] [CONTAINER...]",
               "Display a live stream of container(s) resource usage statistics")
    p.add("-a", "--all", kind="bool", help="Show all containers (default shows just running)")
    p.add("--format", help="Format output using a custom template")
    p.add("--no-stream", kind="bool", help="Disable streaming stats and only pull the first "
          "result")
    p.add("--no-trunc", kind="bool", help="Do not truncate output")
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    targets = list(ns.containers)
    if not targets:
        query = {"all": "1"} if ns.all else None
        targets = [c["Id"] for c in cli.client.get_json("/containers/json", query)]
    fmt = ns.format or STATS_TABLE
    table = fmt.startswith("table")
    body = fmt[len("table"):].lstrip() if table else fmt
    tmpl = template_or_fail(body) if fmt != "json" else None

    def frame() -> str:
        lines = []
        if table:
            header = re.sub(r"\{\{\s*\.(\w+)\s*\}\}",
                            lambda m: _STATS_HEADERS.get(m.group(1), m.group(1).upper()), body)
            lines.append(header)
        for target in targets:
            try:
                doc = cli.client.get_json(f"/containers/{target}/stats", {"stream": "0"})
            except APIError as e:
                raise StatusError(1, f"Error response from daemon: {e}")
            row = stats_row(doc, target)
            if ns.no_trunc:
                row["ID"] = doc.get("id", "")
            lines.append(json.dumps(row) if tmpl is None else render(tmpl, row))
        text = "\n".join(lines)
        return tabwrite(text + "\n").rstrip("\n") if table else text

    if ns.no_stream:
        cli.out(frame())
        return 0
    try:
        while True:
            text = frame()
            cli.out("\033[2J\033[H" + text)
    except KeyboardInterrupt:
        return 0
