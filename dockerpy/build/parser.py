# -*- test-case-name: dockerpy.test.test_build_parser -*-
"""Dockerfile parsing: BuildKit's own parser (the ``dockerfile`` package),
then Docker's checks, giving a list of `Instruction`.

The grammar (line continuations with the ``escape`` directive, comments,
parser directives, JSON versus shell forms, heredocs) is BuildKit's; this
module adds what the classic builder checks before running anything:
known instructions, arguments present, ``FROM`` first (after ``ARG``), and
splits the file into stages.  Expansion happens later, per step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dockerfile as _bk

from dockerpy.errors import InvalidParameter

KNOWN = frozenset({"add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from",
                   "healthcheck", "label", "maintainer", "onbuild", "run", "shell",
                   "stopsignal", "user", "volume", "workdir"})
_DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class Instruction:
    """One instruction as written (arguments not yet expanded).

    :ivar cmd: lower-case instruction name.
    :ivar value: arguments (name/value pairs flattened for ENV and LABEL).
    :ivar json: exec (JSON) form.
    :ivar original: the instruction text, continuations joined (shown as
        ``Step n/m : <original>``).
    """

    cmd: str
    value: tuple[str, ...]
    flags: tuple[str, ...] = ()
    json: bool = False
    original: str = ""
    line: int = 0
    sub_cmd: str | None = None
    heredocs: tuple = ()

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` (the last one), ``None`` if absent."""
        found = None
        for f in self.flags:
            key, eq, val = f[2:].partition("=")
            if key == name:
                found = val if eq else "true"
        return found


@dataclass
class Stage:
    """A ``FROM`` and the instructions up to the next one."""

    index: int
    base: str
    name: str | None
    platform: str | None
    from_instruction: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    meta_args: list[Instruction]
    stages: list[Stage]
    escape: str = "\\"

    def total_steps(self, stages: list[Stage] | None = None) -> int:
        chosen = self.stages if stages is None else stages
        return len(self.meta_args) + sum(1 + len(s.instructions) for s in chosen)


def directives(text: str) -> dict[str, str]:
    """Parser directives at the top of the file (``# escape=``, ``# syntax=``)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _DIRECTIVE.match(line)
        if m is None:
            break
        key = m.group(1).lower()
        if key in found:
            raise InvalidParameter(f"only one {key} parser directive can be used")
        found[key] = m.group(2)
    return found


def _error(line: int, message: str) -> InvalidParameter:
    return InvalidParameter(f"Dockerfile parse error line {line}: {message}")


def _convert(c) -> Instruction:
    cmd = c.cmd.lower()
    return Instruction(cmd=cmd, value=tuple(c.value), flags=tuple(c.flags), json=bool(c.json),
                       original=c.original, line=c.start_line, sub_cmd=c.sub_cmd,
                       heredocs=tuple(c.heredocs))


def trigger_text(ins: Instruction) -> str:
    """The trigger of ``ONBUILD <trigger>`` as written."""
    return ins.original.split(None, 1)[1] if len(ins.original.split(None, 1)) > 1 else ""


def parse_text(text: str) -> list[Instruction]:
    """Parse Dockerfile text into checked instructions (no stage split)."""
    d = directives(text)
    escape = d.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise InvalidParameter(f"invalid escape token '{escape}' does not match ` or \\")
    try:
        commands = _bk.parse_string(text)
    except _bk.GoParseError as e:
        raise InvalidParameter(f"failed to parse dockerfile: {e}") from None
    out = []
    for c in commands:
        ins = _convert(c)
        if ins.cmd not in KNOWN:
            raise _error(ins.line, f"unknown instruction: {c.cmd.upper()}")
        if not ins.value and ins.cmd not in ("healthcheck",):
            raise _error(ins.line, f"{ins.cmd.upper()} requires at least one argument")
        if ins.cmd == "onbuild":
            trig = (ins.sub_cmd or "").upper()
            if trig in ("ONBUILD", "FROM", "MAINTAINER"):
                raise _error(ins.line, f"{trig} isn't allowed as an ONBUILD trigger")
            if trig.lower() not in KNOWN:
                raise _error(ins.line, f"unknown instruction: {trig}")
        if ins.cmd in ("env", "label") and len(ins.value) % 2:
            raise _error(ins.line, f"{ins.cmd.upper()} must have two arguments")
        out.append(ins)
    return out


def parse(text: str) -> Dockerfile:
    """Parse a Dockerfile and split it into meta ARGs and stages.

    :raises InvalidParameter: with Docker's wording for syntax errors,
        unknown instructions, or a file that does not start with ``FROM``.
    """
    d = directives(text)
    escape = d.get("escape", "\\")
    instructions = parse_text(text)
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.cmd == "from":
            value = list(ins.value)
            name = None
            if len(value) == 3 and value[1].lower() == "as":
                name = value[2].lower()
                if not re.match(r"^[a-z][a-z0-9-_.]*$", name):
                    raise _error(ins.line, f"invalid name for build stage: {value[2]!r}, "
                                 "name can't start with a number or contain symbols")
            elif len(value) != 1:
                raise _error(ins.line, "FROM requires either one or three arguments")
            stages.append(Stage(len(stages), value[0], name, ins.flag("platform"), ins))
        elif not stages:
            if ins.cmd != "arg":
                raise InvalidParameter(
                    "Please provide a source image with `from` prior to commit"
                    if ins.cmd != "arg" else "")
            meta.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise InvalidParameter("No image was generated. Is your Dockerfile empty?"
                               if not meta else
                               "Please provide a source image with `from` prior to commit")
    return Dockerfile(meta, stages, escape)
