# -*- test-case-name: dockerpy.test.test_client_main -*-
"""``docker``'s entry point: global flags, the command table and the one
place where failures become messages and exit codes.

Subcommand modules are imported only when their command runs (Buildbot's
runner pattern), so ``docker version`` pays for nothing it does not use.
Standard library only; never import Twisted or dockerpy modules outside
``dockerpy.client`` from here.
"""

from __future__ import annotations

import importlib
import os
import sys

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import BinaryIO

# command -> (module in dockerpy.client, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("system", "version"),
    "info": ("system", "info"),
    "inspect": ("system", "inspect"),
    "images": ("images", "images"),
    "import": ("images", "import_"),
    "load": ("images", "load"),
    "save": ("images", "save"),
    "tag": ("images", "tag"),
    "rmi": ("images", "rmi"),
    "history": ("images", "history"),
    "build": ("build", "build"),
    "commit": ("containers", "commit"),
    "create": ("run", "create"),
    "run": ("run", "run"),
    "start": ("run", "start"),
    "ps": ("containers", "ps"),
    "logs": ("containers", "logs"),
    "stop": ("containers", "stop"),
    "kill": ("containers", "kill"),
    "restart": ("containers", "restart"),
    "wait": ("containers", "wait"),
    "rm": ("containers", "rm"),
    "top": ("containers", "top"),
    "diff": ("containers", "diff"),
    "export": ("containers", "export"),
    "rename": ("containers", "rename"),
    "cp": ("cp", "cp"),
    "exec": ("interactive", "exec_"),
    "attach": ("interactive", "attach"),
    "pause": ("interactive", "pause"),
    "unpause": ("interactive", "unpause"),
    "events": ("interactive", "events"),
    "stats": ("interactive", "stats"),
    "port": ("networks", "port"),
    "pull": ("registry", "pull"),
    "push": ("registry", "push"),
    "login": ("registry", "login"),
    "logout": ("registry", "logout"),
}

# management command -> {subcommand: top-level command or (module, function)}
MANAGEMENT: dict[str, dict[str, str | tuple[str, str]]] = {
    "container": {
        "ls": "ps", "list": "ps", "ps": "ps", "create": "create", "run": "run",
        "start": "start", "stop": "stop", "kill": "kill", "restart": "restart",
        "wait": "wait", "rm": "rm", "remove": "rm", "top": "top", "diff": "diff",
        "export": "export", "rename": "rename", "cp": "cp", "logs": "logs",
        "commit": "commit", "inspect": ("containers", "inspect"),
        "prune": ("containers", "prune"),
        "exec": "exec", "pause": "pause", "unpause": "unpause", "stats": "stats",
        "port": "port", "attach": "attach",
    },
    "image": {
        "ls": "images", "list": "images", "import": "import", "load": "load", "build": "build",
        "save": "save", "tag": "tag", "rm": "rmi", "remove": "rmi",
        "history": "history", "inspect": ("images", "inspect"),
        "prune": ("images", "prune"), "pull": "pull", "push": "push",
    },
    "network": {
        "create": ("networks", "create"), "ls": ("networks", "ls"),
        "list": ("networks", "ls"), "inspect": ("networks", "inspect"),
        "rm": ("networks", "rm"), "remove": ("networks", "rm"),
        "connect": ("networks", "connect"), "disconnect": ("networks", "disconnect"),
        "prune": ("networks", "prune"),
    },
    "builder": {"prune": ("builder", "prune"), "build": "build"},
    "system": {"info": "info", "prune": ("system", "prune"), "events": "events"},
    "volume": {
        "create": ("volumes", "create"), "ls": ("volumes", "ls"), "list": ("volumes", "ls"),
        "inspect": ("volumes", "inspect"), "rm": ("volumes", "rm"),
        "remove": ("volumes", "rm"), "prune": ("volumes", "prune"),
    },
}

_GLOBAL_VALUE_FLAGS = {"-H", "--host", "--tlscacert", "--tlscert", "--tlskey",
                       "-l", "--log-level", "--config", "-c", "--context"}
_GLOBAL_BOOL_FLAGS = {"--tls", "--tlsverify", "-D", "--debug"}

_USAGE = """
Usage:  docker [OPTIONS] COMMAND

A self-sufficient runtime for containers (dockerpy)

Commands:
{commands}

Management Commands:
  container   Manage containers
  image       Manage images
  network     Manage networks
  system      Manage Docker
  volume      Manage volumes

Global Options:
  -H, --host list          Daemon socket to connect to
      --tls                Use TLS; implied by --tlsverify
      --tlscacert string   Trust certs signed only by this CA
      --tlscert string     Path to TLS certificate file
      --tlskey string      Path to TLS key file
      --tlsverify          Use TLS and verify the remote
  -v, --version            Print version information and quit

Run 'docker COMMAND --help' for more information on a command.
"""


def _parse_globals(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    """Split ``docker [global flags] command ...``.

    :raises StatusError: for an unknown global flag.
    """
    from dockerpy.client.command import StatusError

    opts: dict[str, object] = {"host": [], "tls": False, "tlsverify": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        flag, eq, value = arg.partition("=")
        if not eq and len(flag) > 2 and flag[1] != "-" and flag[:2] in _GLOBAL_VALUE_FLAGS:
            flag, value, eq = flag[:2], flag[2:], "="
        if flag in _GLOBAL_VALUE_FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise StatusError(125, f"flag needs an argument: {flag}")
                value = argv[i]
            key = {"-H": "host", "--host": "host", "-l": "log-level", "-c": "context"}.get(
                flag, flag.lstrip("-"))
            if key == "host":
                opts["host"].append(value)  # type: ignore[union-attr]
            else:
                opts[key] = value
        elif flag in _GLOBAL_BOOL_FLAGS:
            on = not eq or value.lower() in ("1", "true", "t")
            key = {"-D": "debug"}.get(flag, flag.lstrip("-"))
            opts[key] = on
        elif flag in ("-v", "--version"):
            opts["print-version"] = True
        elif flag in ("-h", "--help"):
            opts["help"] = True
        else:
            raise StatusError(125, f"unknown flag: {flag}\nSee 'docker --help'.")
        i += 1
    return opts, argv[i:]


def _resolve(words: list[str]) -> tuple[str, str, str, list[str]] | None:
    """Find the command for *words*: (display name, module, function, rest)."""
    if not words:
        return None
    first = words[0]
    if first in MANAGEMENT and len(words) > 1 and not words[1].startswith("-"):
        target = MANAGEMENT[first].get(words[1])
        if target is None:
            return None
        name = f"{first} {words[1]}"
        if isinstance(target, tuple):
            return name, target[0], target[1], words[2:]
        module, func = COMMANDS[target]
        return name, module, func, words[2:]
    if first in COMMANDS:
        module, func = COMMANDS[first]
        return first, module, func, words[1:]
    return None


def main(argv: list[str], stdin: BinaryIO | None = None, stdout: BinaryIO | None = None,
         stderr: BinaryIO | None = None, environ: dict[str, str] | None = None) -> int:
    """Run ``docker <argv>``.

    :param argv: arguments after the program name.
    :param stdin: binary input (default: the process's stdin).
    :param stdout: binary output (default: the process's stdout).
    :param stderr: binary error output (default: the process's stderr).
    :param environ: environment (default: ``os.environ``).
    :return: the exit status.
    """
    from dockerpy.client.command import Cli, StatusError
    from dockerpy.client.transport import APIError, DaemonUnreachable, DEFAULT_HOST, tls_config

    env = dict(os.environ if environ is None else environ)
    err_stream = stderr if stderr is not None else sys.stderr.buffer

    def fail(message: str, status: int) -> int:
        if message:
            err_stream.write((message.rstrip("\n") + "\n").encode("utf-8", "replace"))
            err_stream.flush()
        return status

    try:
        opts, words = _parse_globals(argv)
    except StatusError as e:
        return fail(e.message, e.status)

    hosts = opts["host"]
    host = hosts[-1] if hosts else (env.get("DOCKER_HOST") or DEFAULT_HOST)  # type: ignore[index]
    try:
        tls = tls_config(bool(opts["tls"]), opts["tlsverify"],  # type: ignore[arg-type]
                         opts.get("tlscacert"), opts.get("tlscert"),  # type: ignore[arg-type]
                         opts.get("tlskey"), env)  # type: ignore[arg-type]
    except OSError as e:
        return fail(f"could not read CA certificate: {e}", 1)
    cli = Cli(host, tls,
              stdin if stdin is not None else sys.stdin.buffer,
              stdout if stdout is not None else sys.stdout.buffer,
              err_stream, env)

    if opts.get("print-version"):
        from dockerpy import __version__
        cli.out(f"Docker version {__version__}, build dockerpy")
        return 0
    if opts.get("help") or not words:
        names = sorted(COMMANDS)
        cli.out(_USAGE.format(commands="\n".join(f"  {n}" for n in names)).strip("\n"))
        return 0

    resolved = _resolve(words)
    if resolved is None:
        if words[0] in MANAGEMENT:
            if len(words) == 1 or words[1] in ("--help", "-h"):
                subs = "\n".join(f"  {s}" for s in sorted(MANAGEMENT[words[0]]))
                cli.out(f"\nUsage:  docker {words[0]} COMMAND\n\nCommands:\n{subs}\n")
                return 0
            return fail(f"docker: unknown command: docker {words[0]} {words[1]}\n\n"
                        f"Usage:  docker {words[0]}\n\n"
                        f"Run 'docker {words[0]} --help' for more information", 1)
        return fail(f"docker: unknown command: docker {words[0]}\n\n"
                    "Run 'docker --help' for more information", 1)
    name, module_name, func_name, rest = resolved
    try:
        module = importlib.import_module(f"dockerpy.client.{module_name}")
        return int(getattr(module, func_name)(cli, name, rest) or 0)
    except StatusError as e:
        return fail(e.message, e.status)
    except APIError as e:
        return fail(str(e), 1)
    except DaemonUnreachable as e:
        if "Permission denied" in str(e):
            return fail("permission denied while trying to connect to the Docker daemon "
                        f"socket at {host}: {e}", 1)
        return fail(f"Cannot connect to the Docker daemon at {host}. "
                    "Is the docker daemon running?", 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
