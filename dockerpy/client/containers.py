# -*- test-case-name: dockerpy.test.test_client_containers -*-
"""Container commands other than create/run/start: ``ps``, ``logs``,
``stop``, ``kill``, ``restart``, ``wait``, ``rm``, ``top``, ``diff``,
``export``, ``rename``, ``commit``, ``container inspect`` and ``container
prune``.  ``ps`` output is built by :class:`ContainerContext`, the same
fields Docker's formatter offers to ``--format``."""

from __future__ import annotations

import datetime
import re
import time

from dockerpy.client.command import (
    Cli, Parser, StatusError, confirm, normalize_name, open_output, parse_filters,
    split_repo_tag, write_stream)
from dockerpy.client.format import (
    Context, ellipsis, go_quote, go_time, human_size, since, tabwrite, truncate_id)
from dockerpy.client.transport import APIError
from dockerpy.client.system import inspect_objects, render, template_or_fail

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any, Callable


# ------------------------------------------------------------ listings

class Headers(Context):
    """Renders a table template's header row: every field is its title."""

    def __init__(self, titles: dict[str, str]):
        self._titles = titles

    def __getattr__(self, name: str) -> Callable[..., str]:
        if name.startswith("_"):
            raise AttributeError(name)
        title = self._titles.get(name, name.upper())
        return lambda *args: title


CONTAINER_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
    "CreatedAt": "CREATED AT", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
    "Size": "SIZE", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS",
    "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES", "State": "STATE",
    "Platform": "PLATFORM",
}


def print_listing(cli: Cli, fmt: str, rows: list[Context], headers: dict[str, str]) -> None:
    """Print *rows* with a Docker ``--format`` (``table ...``, ``json`` or a
    template), through the tabwriter for tables as Docker does."""
    if fmt == "json":
        fmt = "{{json .}}"
    table = fmt.startswith("table")
    if table:
        fmt = fmt[len("table"):]
    fmt = fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    tmpl = template_or_fail(fmt)
    lines = []
    if table:
        lines.append(render(tmpl, Headers(headers)))
    lines.extend(render(tmpl, row) for row in rows)
    text = "".join(line + "\n" for line in lines)
    cli.stdout.write((tabwrite(text) if table else text).encode("utf-8"))
    cli.stdout.flush()


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """Docker's ``DisplayablePorts``: ranges grouped, host mappings last."""
    def key(p: dict[str, Any]) -> tuple:
        return (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0),
                p.get("Type", ""))

    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []

    def form(group_key: str, first: int, last: int) -> str:
        ip, _, kind = group_key.rpartition("/")
        text = str(first) if first == last else f"{first}-{last}"
        if ip:
            text = f"{ip}:{text}->{text}"
        return f"{text}/{kind}"

    for port in sorted(ports or [], key=key):
        private = port.get("PrivatePort", 0)
        public = port.get("PublicPort", 0)
        kind = port.get("Type", "tcp")
        ip = port.get("IP", "")
        group_key = kind
        if ip:
            if public != private:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{private}/{kind}")
                continue
            group_key = f"{ip}/{kind}"
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [private, private]
            order.append(group_key)
            continue
        if private == group[1] + 1:
            group[1] = private
            continue
        result.append(form(group_key, group[0], group[1]))
        groups[group_key] = [private, private]
    for group_key in order:
        first, last = groups[group_key]
        result.append(form(group_key, first, last))
    return ", ".join(result + mappings)


class ContainerContext(Context):
    """One ``ps`` row: Docker's ``formatter.ContainerContext`` fields."""

    FIELDS = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
              "Names", "Networks", "Platform", "Ports", "RunningFor", "Size", "State",
              "Status")

    def __init__(self, c: dict[str, Any], trunc: bool = True, now: float | None = None):
        self.c = c
        self.trunc = trunc
        self.now = now

    def ID(self) -> str:
        return truncate_id(self.c.get("Id", "")) if self.trunc else self.c.get("Id", "")

    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            for n in names:
                if "/" not in n:
                    names = [n]
                    break
        return ",".join(names)

    def Image(self) -> str:
        image = self.c.get("Image") or ""
        if not image:
            return "<no image>"
        if self.trunc:
            short = truncate_id(self.c.get("ImageID") or "")
            if short and short == truncate_id(image):
                return short
            if "@" in image:
                image = image.split("@", 1)[0]
        return image

    def Command(self) -> str:
        command = self.c.get("Command") or ""
        if self.trunc:
            command = ellipsis(command, 20)
        return go_quote(command)

    def CreatedAt(self) -> str:
        return go_time(self.c.get("Created", 0))

    def RunningFor(self) -> str:
        return since(self.c.get("Created", 0), self.now)

    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    def State(self) -> str:
        return self.c.get("State", "")

    def Status(self) -> str:
        return self.c.get("Status", "")

    def Size(self) -> str:
        srw = human_size(self.c.get("SizeRw") or 0)
        rootfs = self.c.get("SizeRootFs") or 0
        return f"{srw} (virtual {human_size(rootfs)})" if rootfs > 0 else srw

    def Labels(self) -> str:
        labels = self.c.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def Label(self, name: str) -> str:
        return (self.c.get("Labels") or {}).get(name, "")

    def Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source", "")
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:
        nets = ((self.c.get("NetworkSettings") or {}).get("Networks")) or {}
        return ",".join(sorted(nets))

    def Platform(self) -> Any:
        return None


def ps(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "List containers", max_args=0)
    p.add("-a", "--all", kind="bool", help="Show all containers (default shows just running)")
    p.add("-f", "--filter", kind="list", help="Filter output based on conditions provided")
    p.add("--format", help="Format output using a custom template")
    p.add("-n", "--last", type=int, default=-1, help="Show n last created containers")
    p.add("-l", "--latest", kind="bool", help="Show the latest created container")
    p.add("--no-trunc", kind="bool", help="Don't truncate output")
    p.add("-q", "--quiet", kind="bool", help="Only display container IDs")
    p.add("-s", "--size", kind="bool", help="Display total file sizes")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    limit = ns.last
    if ns.latest and limit == -1:
        limit = 1
    fmt = ns.format
    if ns.quiet and not fmt:
        fmt = "{{.ID}}"
    if not fmt or fmt == "table":
        fmt = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}"
               "\t{{.Ports}}\t{{.Names}}")
        if ns.size:
            fmt += "\t{{.Size}}"
    size = ns.size or ".Size" in fmt or fmt == "json" or "json ." in fmt
    query = {"all": True if ns.all else None, "limit": limit if limit > 0 else None,
             "size": True if size else None, "filters": parse_filters(ns.filter)}
    containers = cli.client.get_json("/containers/json", query) or []
    now = time.time()
    rows = [ContainerContext(c, trunc=not ns.no_trunc, now=now) for c in containers]
    print_listing(cli, fmt, rows, CONTAINER_HEADERS)
    return 0


# ------------------------------------------------------------ lifecycle

def _each(cli: Cli, targets: list[str], action: Callable[[str], None],
          summary: str | None = None) -> int:
    """Apply *action* to each container, printing its name on success and
    Docker's error lines otherwise (exit 1 if any failed)."""
    failed = []
    for target in targets:
        try:
            action(target)
        except APIError as e:
            cli.err(str(e))
            failed.append(target)
            continue
        cli.out(target)
    if failed:
        raise StatusError(1, f"Error: {summary}: {', '.join(failed)}" if summary else "")
    return 0


def _stop_or_restart(cli: Cli, name: str, argv: list[str], action: str, summary: str) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", summary, min_args=1)
    p.add("-s", "--signal", help="Signal to send to the container")
    p.add("-t", "--timeout", type=int, help="Seconds to wait before killing the "
          "container")
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.containers))
    query = {"t": ns.timeout, "signal": ns.signal}
    return _each(cli, ns.containers,
                 lambda c: cli.client.send("POST", f"/containers/{c}/{action}", query))


def stop(cli: Cli, name: str, argv: list[str]) -> int:
    return _stop_or_restart(cli, name, argv, "stop", "Stop one or more running containers")


def restart(cli: Cli, name: str, argv: list[str]) -> int:
    return _stop_or_restart(cli, name, argv, "restart", "Restart one or more containers")


def kill(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
               min_args=1)
    p.add("-s", "--signal", help="Signal to send to the container")
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.containers))
    return _each(cli, ns.containers,
                 lambda c: cli.client.send("POST", f"/containers/{c}/kill",
                                           {"signal": ns.signal}))


def rm(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
               min_args=1)
    p.add("-f", "--force", kind="bool", help="Force the removal of a running container "
          "(uses SIGKILL)")
    p.add("-l", "--link", kind="bool", help="Remove the specified link")
    p.add("-v", "--volumes", kind="bool", help="Remove anonymous volumes associated with the "
          "container")
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.containers))
    query = {"v": True if ns.volumes else None, "link": True if ns.link else None,
             "force": True if ns.force else None}
    return _each(cli, ns.containers,
                 lambda c: cli.client.send("DELETE", f"/containers/{c.strip('/')}", query))


def wait(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "CONTAINER [CONTAINER...]", "Block until one or more containers stop, "
               "then print their exit codes", min_args=1)
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.containers))
    failed = False
    for c in ns.containers:
        try:
            result = cli.client.post_json(f"/containers/{c}/wait") or {}
        except APIError as e:
            cli.err(str(e))
            failed = True
            continue
        if result.get("Error"):
            cli.err(str(result["Error"].get("Message", "")))
            failed = True
            continue
        cli.out(str(result.get("StatusCode", 0)))
    if failed:
        raise StatusError(1)
    return 0


# ------------------------------------------------------------ logs

_DURATION = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def get_timestamp(value: str, now: float | None = None) -> str:
    """Docker's ``GetTimestamp``: a Go duration means that long ago; an RFC
    3339 time or date becomes ``seconds.nanoseconds``; numbers pass through.

    :raises StatusError: for a value that is none of those.
    """
    now = time.time() if now is None else now
    if value != "0" and _DURATION.match(value):
        total = sum(float(n) * _UNITS[u] for n, _, u in
                    re.findall(r"([0-9]*(\.[0-9]*)?)(ns|us|µs|ms|s|m|h)", value))
        return str(int(now - total))
    if re.match(r"^-?\d+(\.\d+)?$", value):
        return value
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise StatusError(1, f'invalid value for "since": failed to parse value as time or '
                             f'duration: "{value}"')
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    ts = parsed.timestamp()
    return "%d.%09d" % (int(ts), round((ts - int(ts)) * 1e9))


def logs(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER", "Fetch the logs of a container",
               min_args=1, max_args=1)
    p.add("--details", kind="bool", help="Show extra details provided to logs")
    p.add("-f", "--follow", kind="bool", help="Follow log output")
    p.add("--since", help="Show logs since timestamp or relative")
    p.add("-n", "--tail", default="all", help="Number of lines to show from the end")
    p.add("-t", "--timestamps", kind="bool", help="Show timestamps")
    p.add("--until", help="Show logs before a timestamp or relative")
    p.positional("container", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.container))
    target = ns.container[0]
    info = cli.client.get_json(f"/containers/{target}/json") or {}
    query = {"stdout": True, "stderr": True,
             "since": get_timestamp(ns.since) if ns.since else None,
             "until": get_timestamp(ns.until) if ns.until else None,
             "timestamps": True if ns.timestamps else None,
             "follow": True if ns.follow else None,
             "tail": ns.tail, "details": True if ns.details else None}
    resp = cli.client.request("GET", f"/containers/{target}/logs", query, stream=True)
    try:
        if (info.get("Config") or {}).get("Tty"):
            write_stream(resp.read, cli.stdout)
        else:
            from dockerpy.client.format import demux
            demux(resp.read, cli.stdout, cli.stderr)
    finally:
        resp.close()
    return 0


# ------------------------------------------------------------ misc

def top(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "CONTAINER [ps OPTIONS]", "Display the running processes of a container",
               min_args=1, interspersed=False)
    p.positional("args", nargs="...")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    target, ps_args = ns.args[0], ns.args[1:]
    query = {"ps_args": " ".join(ps_args) if ps_args else None}
    result = cli.client.get_json(f"/containers/{target}/top", query) or {}
    lines = ["\t".join(result.get("Titles") or [])]
    lines += ["\t".join(proc) for proc in result.get("Processes") or []]
    cli.stdout.write(tabwrite("\n".join(lines) + "\n", minwidth=20).encode())
    cli.stdout.flush()
    return 0


def diff(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "CONTAINER", "Inspect changes to files or directories on a container's "
               "filesystem", min_args=1, max_args=1)
    p.positional("container", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.container))
    changes = cli.client.get_json(f"/containers/{ns.container[0]}/changes") or []
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in changes:
        cli.out(f"{kinds.get(change.get('Kind'), '?')} {change.get('Path')}")
    return 0


def export(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive",
               min_args=1, max_args=1)
    p.add("-o", "--output", help="Write to a file, instead of STDOUT")
    p.positional("container", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.container))
    out = open_output(cli, ns.output)
    resp = cli.client.request("GET", f"/containers/{ns.container[0]}/export", stream=True)
    try:
        write_stream(resp.read, out)
    finally:
        resp.close()
        if out is not cli.stdout:
            out.close()
    return 0


def rename(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "CONTAINER NEW_NAME", "Rename a container", min_args=2, max_args=2)
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    old, new = ns.args[0], ns.args[1].strip().lstrip("/")
    if not new:
        raise StatusError(1, "Error: neither old nor new names may be empty")
    try:
        cli.client.send("POST", f"/containers/{old}/rename", {"name": new})
    except APIError as e:
        raise StatusError(1, f"{e}\nError: failed to rename container named {old}")
    return 0


def commit(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a "
               "container's changes", min_args=1, max_args=2)
    p.add("-a", "--author", help="Author")
    p.add("-c", "--change", kind="list", help="Apply Dockerfile instruction to the created "
          "image")
    p.add("-m", "--message", help="Commit message")
    p.add("-p", "--pause", kind="bool", default=True, help="Pause container during commit "
          "(default true)")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    repo = tag = None
    if len(ns.args) > 1:
        r, t = split_repo_tag(ns.args[1])
        repo, tag = normalize_name(r), t or None
    query = [("container", ns.args[0]), ("repo", repo), ("tag", tag),
             ("comment", ns.message), ("author", ns.author),
             ("pause", ns.pause), ("changes", ns.change or None)]
    result = cli.client.post_json("/commit", query) or {}
    cli.out(result.get("Id", ""))
    return 0


def inspect(cli: Cli, name: str, argv: list[str]) -> int:
    return inspect_objects(cli, name, argv, kind="container")


def prune(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Remove all stopped containers", max_args=0)
    p.add("--filter", kind="list", help='Provide filter values (e.g. "until=<timestamp>")')
    p.add("-f", "--force", kind="bool", help="Do not prompt for confirmation")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    if not ns.force and not confirm(
            cli, "WARNING! This will remove all stopped containers."):
        return 0
    report = cli.client.post_json("/containers/prune",
                                  {"filters": parse_filters(ns.filter)}) or {}
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        cli.out("Deleted Containers:")
        for cid in deleted:
            cli.out(cid)
        cli.out()
    cli.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0, 4)}")
    return 0
