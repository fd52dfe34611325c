# -*- test-case-name: dockerpy.test.test_client_main -*-
"""What every subcommand is handed: the :class:`Cli` (streams, environment,
a lazily connected API client) and :class:`Parser`, an argparse wrapper
that behaves like the docker CLI's cobra/pflag (usage errors, exit codes,
``--flag=false`` booleans), plus small helpers shared by commands.
"""

from __future__ import annotations

import argparse
import json
import os

from dockerpy.client.transport import Client, TLSConfig

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any, BinaryIO, Sequence


class StatusError(Exception):
    """End the command with *status*, printing *message* (if any) to stderr."""

    def __init__(self, status: int, message: str = ""):
        super().__init__(message)
        self.status = status
        self.message = message


class Cli:
    """The environment a command runs in.

    :param host: daemon address (``-H``/``DOCKER_HOST``).
    :param tls: TLS settings, or ``None``.
    :param stdin: binary input stream.
    :param stdout: binary output stream.
    :param stderr: binary error stream.
    :param environ: environment variables (``-e FOO`` reads from here).
    """

    def __init__(self, host: str, tls: TLSConfig | None, stdin: BinaryIO,
                 stdout: BinaryIO, stderr: BinaryIO, environ: dict[str, str]):
        self.host = host
        self.tls = tls
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.host, self.tls,
                                  version=self.environ.get("DOCKER_API_VERSION") or None)
        return self._client

    def out(self, text: str = "", end: str = "\n") -> None:
        self.stdout.write((text + end).encode("utf-8"))
        self.stdout.flush()

    def err(self, text: str = "", end: str = "\n") -> None:
        self.stderr.write((text + end).encode("utf-8"))
        self.stderr.flush()

    def isatty(self, stream: Any) -> bool:
        try:
            return os.isatty(stream.fileno())
        except (AttributeError, OSError, ValueError):
            return False


class UsageError(StatusError):
    pass


class _Bool(argparse.Action):
    """A pflag boolean: ``--rm``; ``--rm=false`` is rewritten before parsing."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: bool = False,
                 **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=default, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        setattr(namespace, self.dest, True)


class Parser:
    """Parse one subcommand's arguments as the docker CLI would.

    :param name: the command as the user typed it (``"container ls"``).
    :param usage: the text after ``docker <name> `` in Docker's usage line.
    :param description: one-line description for ``--help``.
    :param min_args: fewest positional arguments.
    :param max_args: most positional arguments (``None``: unbounded).
    :param interspersed: allow flags after positionals (``False`` for
        ``run``/``create``: everything after the image is the command).
    """

    def __init__(self, name: str, usage: str, description: str = "",
                 min_args: int = 0, max_args: int | None = None,
                 interspersed: bool = True):
        self.name = name
        self.usage = usage
        self.description = description
        self.min_args = min_args
        self.max_args = max_args
        self.interspersed = interspersed
        self._bools: dict[str, str] = {}
        self._p = argparse.ArgumentParser(prog=f"docker {name}", add_help=False)
        self._p.add_argument("--help", action="store_true", dest="_help")
        self._p.error = self._error  # type: ignore[method-assign]

    def _usage_line(self) -> str:
        return f"Usage:  docker {self.name} {self.usage}".rstrip()

    def _error(self, message: str) -> None:
        if message.startswith("unrecognized arguments: "):
            flag = message.split(": ", 1)[1].split()[0]
            message = f"unknown flag: {flag.split('=')[0]}" if flag.startswith("-") else (
                f'"docker {self.name}" accepts no arguments.')
        elif message.startswith("argument "):
            # "argument -t/--timeout: invalid int value: 'x'"
            spec, _, rest = message[len("argument "):].partition(": ")
            if "invalid" in rest and "value:" in rest:
                value = rest.split("value:", 1)[1].strip().strip("'")
                flags = spec.split("/")
                short = [f for f in flags if not f.startswith("--")]
                long = [f for f in flags if f.startswith("--")]
                name = ", ".join(short + long)
                message = (f'invalid argument "{value}" for "{name}" flag: '
                           f'strconv.ParseInt: parsing "{value}": invalid syntax')
            elif "expected one argument" in rest:
                message = f"flag needs an argument: {spec.split('/')[-1]}"
        raise UsageError(125, f"{message}\n\n{self._usage_line()}\n\n"
                              f"Run 'docker {self.name} --help' for more information")

    def add(self, *flags: str, **kwargs: Any) -> None:
        """Declare a flag; ``kind="bool"`` for a pflag boolean, ``kind="list"``
        for a repeatable one."""
        kind = kwargs.pop("kind", None)
        if kind == "bool":
            kwargs["action"] = _Bool
            kwargs.setdefault("default", False)
            action = self._p.add_argument(*flags, **kwargs)
            for f in flags:
                self._bools[f] = action.dest
            return
        if kind == "list":
            kwargs["action"] = "append"
            kwargs.setdefault("default", [])
        self._p.add_argument(*flags, **kwargs)

    def positional(self, name: str, **kwargs: Any) -> None:
        self._p.add_argument(name, **kwargs)

    def help_text(self) -> str:
        lines = [self._usage_line(), ""]
        if self.description:
            lines += [self.description, ""]
        options = []
        for action in self._p._actions:
            if not action.option_strings or action.dest == "_help":
                continue
            flags = ", ".join(action.option_strings)
            if action.option_strings[0].startswith("--"):
                flags = "    " + flags
            options.append((flags, action.help or ""))
        if options:
            lines.append("Options:")
            width = max(len(f) for f, _ in options) + 2
            for flags, text in options:
                lines.append(f"  {flags.ljust(width)}{text}".rstrip())
        return "\n".join(lines) + "\n"

    def parse(self, cli: Cli, argv: list[str]) -> argparse.Namespace:
        """:raises UsageError: with Docker's message and status."""
        forced: dict[str, bool] = {}
        rewritten: list[str] = []
        for i, arg in enumerate(argv):
            if arg == "--" or (not self.interspersed and not arg.startswith("-")):
                rewritten.extend(argv[i:])
                break
            if arg.startswith("-") and "=" in arg:
                flag, _, value = arg.partition("=")
                if flag in self._bools:
                    if value.lower() in ("true", "1", "t"):
                        rewritten.append(flag)
                    elif value.lower() in ("false", "0", "f"):
                        forced[self._bools[flag]] = False
                    else:
                        self._error(f'invalid argument "{value}" for "{flag}" flag: '
                                    f'strconv.ParseBool: parsing "{value}": invalid syntax')
                    continue
            rewritten.append(arg)
        ns = self._p.parse_args(rewritten)
        if ns._help:
            cli.out(self.help_text(), end="")
            raise StatusError(0)
        for dest, value in forced.items():
            setattr(ns, dest, value)
        return ns

    def check_args(self, count: int) -> None:
        """Enforce cobra's positional-argument counts."""
        msg = None
        if self.max_args == 0 and count > 0:
            msg = f"'docker {self.name}' accepts no arguments"
        elif self.min_args == self.max_args and count != self.min_args:
            plural = "s" if self.min_args != 1 else ""
            msg = f"'docker {self.name}' requires {self.min_args} argument{plural}"
        elif count < self.min_args:
            plural = "s" if self.min_args != 1 else ""
            msg = f"'docker {self.name}' requires at least {self.min_args} argument{plural}"
        elif self.max_args is not None and count > self.max_args:
            plural = "s" if self.max_args != 1 else ""
            msg = f"'docker {self.name}' requires at most {self.max_args} argument{plural}"
        if msg:
            word = "Run" if self.min_args == self.max_args else "See"
            raise UsageError(1, f"docker: {msg}\n\n{self._usage_line()}\n\n"
                                f"{word} 'docker {self.name} --help' for more information")


def parse_filters(values: list[str]) -> str | None:
    """``-f key=value`` flags as the JSON ``filters`` query parameter.

    :raises StatusError: for a filter without ``=``.
    """
    if not values:
        return None
    filters: dict[str, dict[str, bool]] = {}
    for value in values:
        if "=" not in value:
            raise StatusError(125, f'invalid argument "{value}" for "-f, --filter" flag: '
                                   f"bad format of filter (expected name=value)")
        key, _, val = value.partition("=")
        filters.setdefault(key.strip().lower(), {})[val.strip()] = True
    return json.dumps(filters, separators=(",", ":"))


def confirm(cli: Cli, warning: str) -> bool:
    """Ask ``Are you sure you want to continue? [y/N]`` on stdin."""
    cli.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ".encode())
    cli.stdout.flush()
    line = cli.stdin.readline().decode("utf-8", "replace").strip().lower()
    return line in ("y", "yes")


def split_repo_tag(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` into (repo, tag); a ``:`` in a registry port is not a tag."""
    if "@" in ref:
        return ref, ""
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return ref, ""


def normalize_name(repo: str) -> str:
    """distribution's ``ParseNormalizedNamed``: ``busybox`` becomes
    ``docker.io/library/busybox``, as the docker CLI sends to commit/tag."""
    first, sep, rest = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return repo
    if not sep:
        return f"docker.io/library/{repo}"
    if first == "docker.io":
        return repo if "/" in rest else f"docker.io/library/{rest}"
    return f"docker.io/{repo}"


def familiar_with_tag(ref: str) -> str:
    """``busybox`` -> ``busybox:latest`` (digests and tags kept)."""
    if "@" in ref:
        return ref
    _, tag = split_repo_tag(ref)
    return ref if tag else ref + ":latest"


def write_stream(read: Any, target: BinaryIO) -> None:
    """Copy ``read(n)`` chunks to *target* until EOF."""
    while True:
        chunk = read(65536)
        if not chunk:
            break
        target.write(chunk)
    target.flush()


def open_output(cli: Cli, path: str | None, what: str = "save") -> BinaryIO:
    """``-o file`` or stdout; refuses a terminal as docker does."""
    if path:
        return open(path, "wb")
    if cli.isatty(cli.stdout):
        raise StatusError(1, "cowardly refusing to save to a terminal. "
                             "Use the -o flag or redirect")
    return cli.stdout
