# -*- test-case-name: dockerpy.test.test_client_main -*-
"""``docker version``, ``docker info``, ``docker inspect`` and ``docker
system prune``: commands about the daemon or about any kind of object."""

from __future__ import annotations

import json
import platform
import time

from dockerpy.client.command import Cli, Parser, StatusError
from dockerpy.client.format import Template, TemplateError, bytes_size
from dockerpy.client.transport import CLIENT_API_VERSION, APIError, DaemonUnreachable

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any


def template_or_fail(source: str) -> Template:
    """Parse a ``--format`` template; a syntax error exits 64 as docker does."""
    try:
        return Template(source)
    except TemplateError as e:
        raise StatusError(64, f"template parsing error: {e}")


def render(tmpl: Template, data: Any) -> str:
    try:
        return tmpl.render(data)
    except TemplateError as e:
        raise StatusError(1, f"template parsing error: {e}")


def _label(name: str, indent: int = 1) -> str:
    return (" " * indent + name + ":").ljust(20)


def _go_build_time(value: str) -> str:
    """RFC 3339 -> Go's ``time.ANSIC`` as ``docker version`` prints it."""
    try:
        parsed = time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return value
    return (time.strftime("%a %b ", parsed) + f"{parsed.tm_mday:2d}"
            + time.strftime(" %H:%M:%S %Y", parsed))


def _client_version(cli: Cli) -> dict[str, Any]:
    from dockerpy import __version__
    return {
        "Platform": {"Name": ""},
        "Version": __version__,
        "ApiVersion": CLIENT_API_VERSION,
        "DefaultAPIVersion": CLIENT_API_VERSION,
        "GitCommit": "",
        "GoVersion": "python" + platform.python_version(),
        "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "BuildTime": "",
        "Context": "default",
    }


def version(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Show the Docker version information", max_args=0)
    p.add("-f", "--format", help="Format output using a custom template")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    client = _client_version(cli)
    server: Any = None
    error: Exception | None = None
    try:
        server = cli.client.get_json("/version")
        client["ApiVersion"] = cli.client.version
    except (APIError, DaemonUnreachable) as e:
        error = e
    if ns.format:
        tmpl = template_or_fail("{{json .}}" if ns.format == "json" else ns.format)
        cli.out(render(tmpl, {"Client": client, "Server": server}))
    else:
        api = client["ApiVersion"]
        if api != CLIENT_API_VERSION:
            api = f"{api} (downgraded from {CLIENT_API_VERSION})"
        lines = ["Client:",
                 _label("Version") + client["Version"],
                 _label("API version") + api,
                 _label("Python version") + platform.python_version(),
                 _label("OS/Arch") + f"{client['Os']}/{client['Arch']}",
                 _label("Context") + "default"]
        if server is not None:
            lines.append("")
            pname = (server.get("Platform") or {}).get("Name", "")
            lines.append("Server:" + (f" {pname}" if pname else ""))
            components = server.get("Components") or [
                {"Name": "Engine", "Version": server.get("Version", ""), "Details": {}}]
            for comp in components:
                details = comp.get("Details") or {}
                lines.append(f" {comp.get('Name')}:")
                lines.append(_label("Version", 2) + str(comp.get("Version", "")))
                if comp.get("Name") == "Engine":
                    get = lambda k: str(details.get(k, server.get(k, "")))  # noqa: E731
                    lines.append(_label("API version", 2)
                                 + f"{get('ApiVersion')} (minimum version {get('MinAPIVersion')})")
                    lines.append(_label("Go version", 2) + get("GoVersion"))
                    lines.append(_label("Git commit", 2) + get("GitCommit"))
                    lines.append(_label("Built", 2) + _go_build_time(get("BuildTime")))
                    lines.append(_label("OS/Arch", 2) + f"{get('Os')}/{get('Arch')}")
                    lines.append(_label("Experimental", 2) + get("Experimental").lower())
                else:
                    for key, value in details.items():
                        lines.append(_label(key, 2) + str(value))
        cli.out("\n".join(lines))
    if error is not None:
        raise error
    return 0


def info(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Display system-wide information", max_args=0)
    p.add("-f", "--format", help="Format output using a custom template")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    from dockerpy import __version__
    client_info = {"Debug": False, "Context": "default", "Plugins": [], "Warnings": None}
    if ns.format:
        data = cli.client.get_json("/info")
        data = dict(data or {})
        data["ClientInfo"] = client_info
        tmpl = template_or_fail("{{json .}}" if ns.format == "json" else ns.format)
        cli.out(render(tmpl, data))
        return 0
    cli.out(f"Client:\n Version:    {__version__}\n Context:    default\n Debug Mode: false\n")
    data = cli.client.get_json("/info") or {}
    g = data.get
    lines = ["Server:",
             f" Containers: {g('Containers', 0)}",
             f"  Running: {g('ContainersRunning', 0)}",
             f"  Paused: {g('ContainersPaused', 0)}",
             f"  Stopped: {g('ContainersStopped', 0)}",
             f" Images: {g('Images', 0)}",
             f" Server Version: {g('ServerVersion', '')}",
             f" Storage Driver: {g('Driver', '')}"]
    for pair in g("DriverStatus") or []:
        lines.append(f"  {pair[0]}: {pair[1]}")
    lines += [f" Logging Driver: {g('LoggingDriver', '')}",
              f" Cgroup Driver: {g('CgroupDriver', '')}",
              f" Cgroup Version: {g('CgroupVersion', '')}"]
    runtimes = g("Runtimes") or {}
    if runtimes:
        lines.append(" Runtimes: " + " ".join(sorted(runtimes)))
        lines.append(f" Default Runtime: {g('DefaultRuntime', '')}")
    lines += [f" Kernel Version: {g('KernelVersion', '')}",
              f" Operating System: {g('OperatingSystem', '')}",
              f" OSType: {g('OSType', '')}",
              f" Architecture: {g('Architecture', '')}",
              f" CPUs: {g('NCPU', 0)}",
              f" Total Memory: {bytes_size(g('MemTotal', 0) or 0)}",
              f" Name: {g('Name', '')}",
              f" ID: {g('ID', '')}",
              f" Docker Root Dir: {g('DockerRootDir', '')}",
              f" Debug Mode: {str(bool(g('Debug'))).lower()}",
              f" Experimental: {str(bool(g('ExperimentalBuild'))).lower()}",
              f" Live Restore Enabled: {str(bool(g('LiveRestoreEnabled'))).lower()}"]
    cli.out("\n".join(lines))
    for warning in g("Warnings") or []:
        cli.err(warning)
    return 0


# kind -> (path template, query for -s)
_KINDS = {
    "container": "/containers/{}/json",
    "image": "/images/{}/json",
    "network": "/networks/{}",
    "volume": "/volumes/{}",
}


def inspect_objects(cli: Cli, name: str, argv: list[str], kind: str | None = None) -> int:
    """``docker inspect`` and the typed ``container inspect``/``image inspect``."""
    p = Parser(name, "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on "
               "Docker objects", min_args=1)
    p.add("-f", "--format", help="Format output using a custom template")
    p.add("-s", "--size", kind="bool", help="Display total file sizes if the type is container")
    if kind is None:
        p.add("--type", help="Only inspect objects of the given type")
    p.positional("names", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.names))
    kind = kind or ns.type
    if kind and kind not in _KINDS:
        raise StatusError(1, f'"{kind}" is not a valid value for --type')
    tmpl = None
    if ns.format and ns.format != "json":
        tmpl = template_or_fail(ns.format)
    results: list[Any] = []
    errors: list[str] = []
    for obj in ns.names:
        kinds = [kind] if kind else list(_KINDS)
        found = None
        for k in kinds:
            query = {"size": True} if (k == "container" and ns.size) else None
            try:
                found = cli.client.get_json(_KINDS[k].format(obj), query)
                break
            except APIError as e:
                if e.status != 404 and not (kind is None and e.status in (400, 405, 501)):
                    errors.append(str(e))
                    found = False
                    break
                if kind:
                    errors.append(str(e))
                    found = False
        if found is None:
            errors.append(f"Error: No such object: {obj}")
        elif found is not False:
            results.append(found)
    return print_inspected(cli, results, errors, tmpl)


def print_inspected(cli: Cli, results: list[Any], errors: list[str], tmpl,
                    compact: bool = False) -> int:
    """What every ``inspect`` prints: each object through the template, or
    all as one JSON array (indented, or on one line with ``compact``), then
    the errors, with status 1 if there were any."""
    if tmpl is not None:
        for item in results:
            cli.out(render(tmpl, item))
    elif compact:
        cli.out(json.dumps(results, separators=(",", ":"), ensure_ascii=False))
    else:
        cli.out(json.dumps(results, indent=4, ensure_ascii=False) if results else "[]")
    if errors:
        raise StatusError(1, "\n".join(errors))
    return 0


def inspect(cli: Cli, name: str, argv: list[str]) -> int:
    return inspect_objects(cli, name, argv)


def prune(cli: Cli, name: str, argv: list[str]) -> int:
    from dockerpy.client import containers, images
    p = Parser(name, "[OPTIONS]", "Remove unused data", max_args=0)
    p.add("-a", "--all", kind="bool", help="Remove all unused images not just dangling ones")
    p.add("-f", "--force", kind="bool", help="Do not prompt for confirmation")
    p.add("--filter", kind="list", help="Provide filter values")
    p.positional("args", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.args))
    from dockerpy.client.command import confirm
    if not ns.force and not confirm(cli, "WARNING! This will remove:\n"
                                         "  - all stopped containers\n"
                                         "  - all dangling images"):
        return 0
    extra = ["-f"] + [f"--filter={f}" for f in ns.filter]
    containers.prune(cli, "container prune", extra)
    images.prune(cli, "image prune", extra + (["-a"] if ns.all else []))
    return 0
