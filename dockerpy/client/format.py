# -*- test-case-name: dockerpy.test.test_client_format -*-
"""How the client prints: Go's tabwriter, go-units sizes and durations,
Docker's Go-template subset, and stdcopy demultiplexing.

Everything here is pure (no I/O besides the streams handed in) so it can be
tested without a daemon.  It must only import the standard library.
"""

from __future__ import annotations

import json
import re
import struct
import time

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any, BinaryIO, Callable, Iterable, Iterator

# ---------------------------------------------------------------- tabwriter


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-terminated cells as Go's ``text/tabwriter`` does.

    Docker builds its tables with ``tabwriter.NewWriter(out, 10, 1, 3, ' ',
    0)``: a column is as wide as its widest cell plus *padding*, at least
    *minwidth*; text after a line's last tab is not aligned.  Columns are
    computed per block of consecutive lines that have the column, as Go does.

    :param text: lines separated by ``\\n``, cells terminated by ``\\t``.
    :return: the aligned text.
    """
    trailing_newline = text.endswith("\n")
    if trailing_newline:
        text = text[:-1]
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, cell in enumerate(cells):
                if j < len(cells) - 1 and j < len(widths):
                    parts.append(cell + " " * (widths[j] - len(cell)))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                cells = lines[this]
                if column >= len(cells) - 1:
                    break
                width = max(width, len(cells[column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    result = "\n".join(out)
    return result + "\n" if trailing_newline else result


# ------------------------------------------------------- go-units helpers

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def _go_g(value: float, precision: int) -> str:
    """Go's ``%.*g``: like C's, which Python's ``%g`` follows."""
    return "%.*g" % (precision, value)


def human_size(size: float, precision: int = 3) -> str:
    """go-units ``HumanSizeWithPrecision``: decimal units, ``4.26MB``.

    Docker's tables use precision 3; ``units.HumanSize`` (prune totals) is
    precision 4.
    """
    i = 0
    size = float(size)
    while size >= 1000.0 and i < len(_DECIMAL) - 1:
        size /= 1000.0
        i += 1
    return _go_g(size, precision) + _DECIMAL[i]


def bytes_size(size: float) -> str:
    """go-units ``BytesSize``: binary units with precision 4 (``1.2GiB``)."""
    i = 0
    size = float(size)
    while size >= 1024.0 and i < len(_BINARY) - 1:
        size /= 1024.0
        i += 1
    return _go_g(size, 4) + _BINARY[i]


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: ``"3 seconds"``, ``"About a minute"``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(timestamp: float, now: float | None = None) -> str:
    """``"<duration> ago"`` as Docker's CREATED columns print it."""
    if now is None:
        now = time.time()
    return human_duration(now - timestamp) + " ago"


def go_time(timestamp: float) -> str:
    """Go's ``time.Unix(t, 0).String()`` in UTC, for ``CreatedAt`` fields."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(timestamp))


def rfc3339(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def truncate_id(identifier: str) -> str:
    """moby's ``stringid.TruncateID``: drop the algorithm, keep 12 chars."""
    if ":" in identifier:
        identifier = identifier.split(":", 1)[1]
    return identifier[:12]


def ellipsis(text: str, width: int) -> str:
    """Docker's ``formatter.Ellipsis``: cut to *width* ending in ``…``."""
    if len(text) <= width:
        return text
    if width <= 0:
        return ""
    return text[: width - 1] + "…"


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` for the printable strings commands contain."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """Docker's ``json`` template function (no HTML escaping, compact).

    Maps marshal with sorted keys in Go; Docker's structs keep field order,
    which our dicts already carry, so only plain mappings get sorted by the
    caller when that matters.
    """
    return json.dumps(_jsonable(value), separators=(",", ":"), ensure_ascii=False)


def _jsonable(value: Any, key: str | None = None) -> Any:
    """Order mappings as Go marshals them: structs keep their field order
    (the daemon's), Go maps (labels, options...) sort their keys."""
    if isinstance(value, Context):
        return value.to_json()
    if isinstance(value, dict):
        keys = sorted(value) if key in _NIL_MAPS else list(value)
        return {k: _jsonable(value[k], k) for k in keys}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def go_json_keyed(value: Any, key: str | None) -> str:
    return json.dumps(_jsonable(value, key), separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------- templates


class TemplateError(Exception):
    """A template that fails to parse or execute; ``str`` is Docker's text."""


class Context:
    """A row of a listing (``ps``, ``images``...) seen by templates.

    Subclasses expose Docker's field names as methods; ``FIELDS`` lists
    those that ``{{json .}}`` marshals.
    """

    FIELDS: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in sorted(self.FIELDS)}


_MISSING = object()
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<pipe>\|)
      | (?P<lp>\() | (?P<rp>\))
      | (?P<field>(?:\$\w*)?(?:\.[A-Za-z_]\w*)+|\.|\$\w*)
      | (?P<ident>[A-Za-z_]\w*)
    )""",
    re.X,
)
# Fields that Docker's structs declare as slices or maps: a Go nil of those
# prints as "[]" / "map[]" rather than "<nil>".
_NIL_SLICES = {
    "Cmd", "Entrypoint", "Env", "Binds", "Links", "Dns", "DnsSearch",
    "DnsOptions", "ExtraHosts", "CapAdd", "CapDrop", "Mounts", "Shell",
    "OnBuild", "RepoTags", "RepoDigests", "Args", "VolumesFrom",
    "SecurityOpt", "GroupAdd", "Devices", "Warnings", "Aliases",
}
_NIL_MAPS = {
    "Labels", "ExposedPorts", "Volumes", "Options", "PortBindings",
    "Networks", "Ports", "Tmpfs", "Sysctls", "DriverOpts",
}


def go_str(value: Any, key: str | None = None) -> str:
    """Print *value* as Go's ``fmt.Print`` prints the matching Go value."""
    if value is None:
        if key in _NIL_SLICES:
            return "[]"
        if key in _NIL_MAPS:
            return "map[]"
        return "<nil>"
    if value is _MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return "%g" % value
    if isinstance(value, dict):
        return "map[" + " ".join(
            f"{k}:{go_str(value[k], k)}" for k in sorted(value)
        ) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, Context):
        return "{" + " ".join(go_str(v) for v in value.to_json().values()) + "}"
    return str(value)


def _truth(value: Any) -> bool:
    if value is _MISSING or value is None:
        return False
    if isinstance(value, Context):
        return True
    return bool(value)


def _index(container: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(container, dict):
            container = container.get(key, "")
        elif isinstance(container, (list, tuple)):
            container = container[int(key)]
        else:
            raise TemplateError(f"can't index item of type {type(container).__name__}")
    return container


def _truncate(text: Any, n: Any) -> str:
    text = str(text)
    n = int(n)
    return text[:n] if len(text) > n else text


def _pad(text: Any, left: Any, right: Any) -> str:
    return " " * int(left) + str(text) + " " * int(right)


def _title(text: str) -> str:
    return re.sub(r"\b(\w)", lambda m: m.group(1).upper(), text)


FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: go_json(v),
    "index": _index,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda s, sep: s.split(sep),
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "title": lambda s: _title(go_str(s)),
    "len": lambda v: len(v) if v is not None else 0,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "printf": lambda f, *a: _printf(f, *a),
    "truncate": _truncate,
    "pad": _pad,
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda a: not _truth(a),
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
}


def _printf(fmt: str, *args: Any) -> str:
    conv = re.sub(r"%v", "%s", fmt)
    return conv % tuple(go_str(a) if "%s" in conv else a for a in args)


class _Node:
    pass


class _Text(_Node):
    def __init__(self, text: str):
        self.text = text


class _Action(_Node):
    def __init__(self, pipeline: list, pos: int):
        self.pipeline = pipeline
        self.pos = pos


class _Block(_Node):
    def __init__(self, kind: str, pipeline: list, pos: int):
        self.kind = kind  # "if", "range", "with"
        self.pipeline = pipeline
        self.pos = pos
        self.body: list[_Node] = []
        self.else_body: list[_Node] = []
        self.vars: list[str] = []


class Template:
    """A parsed Go template of the subset Docker's ``--format`` users write.

    Supported: text, ``{{.A.B}}``, ``{{.}}``, ``{{$}}``, pipelines with
    ``|``, function calls (json, index, join, split, upper, lower, title,
    len, println, truncate, pad, eq, ne, not, and, or, printf), method
    calls with arguments (``{{.Label "k"}}``), ``{{if}}/{{else}}/{{end}}``,
    ``{{range}}`` (with ``$k, $v :=``), ``{{with}}`` and ``{{- -}}`` trims.
    A missing map key fails, as it does for Docker's inspect.
    """

    def __init__(self, source: str):
        self.source = source
        self.nodes = self._parse(source)

    # -- parsing
    def _parse(self, source: str) -> list[_Node]:
        root: list[_Node] = []
        stack: list[_Block] = []
        target = root
        pos = 0
        while True:
            start = source.find("{{", pos)
            if start < 0:
                if pos < len(source):
                    target.append(_Text(source[pos:]))
                break
            end = source.find("}}", start + 2)
            if end < 0:
                raise TemplateError("template: :1: unclosed action")
            text = source[pos:start]
            inner_start = start + 2
            inner = source[inner_start:end]
            if inner.startswith("-") and inner[1:2] in (" ", "\t", "\n"):
                text = text.rstrip()
                inner = inner[1:]
                inner_start += 1
            trim_right = False
            if inner.endswith("-") and inner[-2:-1] in (" ", "\t", "\n"):
                inner = inner[:-1]
                trim_right = True
            if text:
                target.append(_Text(text))
            pos = end + 2
            if trim_right:
                while pos < len(source) and source[pos] in " \t\r\n":
                    pos += 1
            stripped = inner.strip()
            offset = inner_start + (len(inner) - len(inner.lstrip()))
            if stripped.startswith("/*"):
                continue
            word = stripped.split(None, 1)[0] if stripped else ""
            if word in ("if", "range", "with"):
                block = _Block(word, [], offset)
                rest = stripped[len(word):]
                m = re.match(r"\s*(\$\w+)\s*(?:,\s*(\$\w+)\s*)?:=", rest)
                if m:
                    block.vars = [v for v in m.groups() if v]
                    rest = rest[m.end():]
                block.pipeline = self._parse_pipeline(rest, offset + len(word))
                target.append(block)
                stack.append(block)
                target = block.body
            elif word == "else":
                if not stack:
                    raise TemplateError("template: :1: unexpected {{else}}")
                rest = stripped[4:].strip()
                block = stack[-1]
                if rest.startswith("if"):
                    # {{else if x}} is {{else}}{{if x}}...{{end}} sharing one end.
                    nested = _Block("if", self._parse_pipeline(rest[2:], offset), offset)
                    nested.vars = ["__elseif__"]
                    block.else_body.append(nested)
                    stack.append(nested)
                    target = nested.body
                else:
                    target = block.else_body
            elif word == "end":
                if not stack:
                    raise TemplateError("template: :1: unexpected {{end}}")
                while stack and stack[-1].vars == ["__elseif__"]:
                    stack.pop()
                stack.pop()
                target = root if not stack else (
                    stack[-1].else_body if stack[-1].else_body else stack[-1].body
                )
            else:
                target.append(_Action(self._parse_pipeline(stripped, offset), offset))
        if stack:
            raise TemplateError("template: :1: unexpected EOF")
        return root

    def _parse_pipeline(self, text: str, base: int) -> list:
        commands: list[list] = [[]]
        pos = 0
        stack: list[list] = []
        current = commands[-1]
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                raise TemplateError(
                    f"template: :1: bad character {text[pos:].strip()[:1]!r}")
            tok_pos = base + m.start(m.lastgroup)
            pos = m.end()
            kind = m.lastgroup
            value = m.group(kind)
            if kind == "pipe":
                commands.append([])
                current = commands[-1]
            elif kind == "str":
                if value.startswith("`"):
                    current.append(("lit", value[1:-1], tok_pos))
                else:
                    current.append(("lit", json.loads(value), tok_pos))
            elif kind == "num":
                current.append(("lit", float(value) if "." in value else int(value), tok_pos))
            elif kind == "lp":
                stack.append(current)
                sub: list = []
                current.append(("sub", [sub], tok_pos))
                current = sub
            elif kind == "rp":
                current = stack.pop()
            elif kind == "field":
                current.append(("field", value, tok_pos))
            elif kind == "ident":
                if value in ("true", "false"):
                    current.append(("lit", value == "true", tok_pos))
                elif value == "nil":
                    current.append(("lit", None, tok_pos))
                elif value not in FUNCS:
                    raise TemplateError(
                        f'template: :1: function "{value}" not defined')
                else:
                    current.append(("func", value, tok_pos))
        if not commands[0]:
            raise TemplateError("template: :1: missing value for command")
        return commands

    # -- execution
    def render(self, data: Any) -> str:
        """Execute the template on *data*.

        :raises TemplateError: on a missing field, with Docker's wording.
        """
        out: list[str] = []
        self._exec(self.nodes, data, {"$": data}, out)
        return "".join(out)

    def _exec(self, nodes: list[_Node], dot: Any, variables: dict, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                value, key = self._pipeline(node.pipeline, dot, variables)
                out.append(go_str(value, key))
            elif isinstance(node, _Block):
                value, _ = self._pipeline(node.pipeline, dot, variables)
                if node.kind == "if":
                    self._exec(node.body if _truth(value) else node.else_body, dot, variables, out)
                elif node.kind == "with":
                    if _truth(value):
                        self._exec(node.body, value, variables, out)
                    else:
                        self._exec(node.else_body, dot, variables, out)
                else:
                    if isinstance(value, dict):
                        items = [(k, value[k]) for k in sorted(value)]
                    elif isinstance(value, (list, tuple)):
                        items = list(enumerate(value))
                    elif value is None or value is _MISSING:
                        items = []
                    else:
                        raise TemplateError(f"range can't iterate over {go_str(value)}")
                    if not items:
                        self._exec(node.else_body, dot, variables, out)
                    for k, v in items:
                        scope = dict(variables)
                        if len(node.vars) == 2:
                            scope[node.vars[0]] = k
                            scope[node.vars[1]] = v
                        elif len(node.vars) == 1:
                            scope[node.vars[0]] = v
                        self._exec(node.body, v, scope, out)

    def _pipeline(self, commands: list, dot: Any, variables: dict) -> tuple[Any, str | None]:
        value: Any = _MISSING
        key: str | None = None
        for i, command in enumerate(commands):
            extra = [value] if i > 0 else []
            if i > 0:
                self._last_key = key
            value, key = self._command(command, dot, variables, extra)
        return value, key

    def _command(self, command: list, dot: Any, variables: dict, extra: list) -> tuple[Any, str | None]:
        head = command[0]
        args = [self._arg(a, dot, variables) for a in command[1:]] + extra
        if head[0] == "func" and head[1] == "json" and len(args) == 1:
            return go_json_keyed(args[0], self._last_key), None
        if head[0] == "func":
            try:
                return FUNCS[head[1]](*args), None
            except TemplateError:
                raise
            except Exception as e:
                raise TemplateError(
                    f'template: :1:{head[2]}: executing "" at <{head[1]}>: '
                    f"error calling {head[1]}: {e}")
        if head[0] == "field":
            return self._field(head[1], head[2], dot, variables, args)
        if head[0] == "sub":
            return self._pipeline(head[1], dot, variables)
        return head[1], None

    _last_key: str | None = None

    def _arg(self, arg: tuple, dot: Any, variables: dict) -> Any:
        if arg[0] == "field":
            value, self._last_key = self._field(arg[1], arg[2], dot, variables, [])
            return value
        if arg[0] == "sub":
            return self._pipeline(arg[1], dot, variables)[0]
        if arg[0] == "func":
            return FUNCS[arg[1]]()
        return arg[1]

    def _field(self, path: str, pos: int, dot: Any, variables: dict, args: list) -> tuple[Any, str | None]:
        if path.startswith("$"):
            name, _, rest = path.partition(".")
            value = variables.get(name or "$", variables["$"])
            pos += len(name)
            path = "." + rest if rest else ""
        else:
            value = dot
        if path in ("", "."):
            return value, None
        key = None
        parts = path[1:].split(".")
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(value, Context):
                method = getattr(value, name, None)
                if method is None or name.startswith("_"):
                    raise TemplateError(
                        f'template: :1:{pos}: executing "" at <.{name}>: '
                        f"can't evaluate field {name} in type "
                        f"*formatter.{type(value).__name__}")
                value = method(*args) if last else method()
            elif isinstance(value, dict):
                if name not in value:
                    raise TemplateError(
                        f'template: :1:{pos}: executing "" at <{path}>: '
                        f'map has no entry for key "{name}"')
                value = value[name]
            elif value is None:
                raise TemplateError(
                    f'template: :1:{pos}: executing "" at <{path}>: '
                    f"nil pointer evaluating interface {{}}.{name}")
            else:
                raise TemplateError(
                    f'template: :1:{pos}: executing "" at <{path}>: '
                    f"can't evaluate field {name} in type {type(value).__name__}")
            key = name
            pos += len(name) + 1
        return value, key


def render_each(template: str, items: Iterable[Any]) -> Iterator[str]:
    """Render *template* once per item, as Docker prints non-table formats."""
    tmpl = Template(template)
    for item in items:
        yield tmpl.render(item)


# ---------------------------------------------------------------- stdcopy

STDIN, STDOUT, STDERR = 0, 1, 2
_HEADER = struct.Struct(">BxxxI")


def demux(read: Callable[[int], bytes], stdout: BinaryIO, stderr: BinaryIO) -> None:
    """Copy a stdcopy-multiplexed stream to *stdout* and *stderr*.

    Each frame is an 8-byte header (stream byte, three zero bytes, a
    big-endian uint32 length) and a payload.  Stream 0 and 1 go to stdout,
    2 to stderr; ``read(n)`` returns up to *n* bytes, ``b""`` at EOF.
    """
    while True:
        header = read_exact(read, 8)
        if len(header) < 8:
            return
        stream, length = _HEADER.unpack(header)
        target = stderr if stream == STDERR else stdout
        remaining = length
        while remaining:
            chunk = read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)
            target.write(chunk)
            target.flush()


def read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def frame(stream: int, data: bytes) -> bytes:
    """One stdcopy frame (for fakes and tests)."""
    return _HEADER.pack(stream, len(data)) + data
