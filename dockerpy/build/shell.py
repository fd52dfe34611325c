# -*- test-case-name: dockerpy.test.test_build_shell -*-
"""Word expansion of Dockerfile arguments, as BuildKit's ``shell.Lex`` does it.

``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``,
``${VAR+word}``, ``${VAR:?msg}``, ``${VAR?msg}``; single quotes are literal,
double quotes expand ``$`` and let the escape character escape only ``"``,
``$`` and itself; outside quotes the escape character makes the next
character literal.  Which instructions expand is decided by the builder
(``EXPANDING``), not here.
"""

from __future__ import annotations

import re

from dockerpy.errors import InvalidParameter

#: Instructions whose arguments are expanded (moby's ``replaceEnvAllowed``).
EXPANDING = frozenset({"add", "copy", "env", "expose", "from", "label", "stopsignal",
                       "user", "volume", "workdir", "arg"})

_NAME_START = re.compile(r"[A-Za-z_]")
_NAME = re.compile(r"[A-Za-z0-9_]*")


class _Lexer:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        c = self.peek()
        self.i += 1
        return c

    # Each word is a list of (text, splittable) pieces: expansions outside
    # quotes split on whitespace, quoted text never does.
    def words(self, stop: str = "") -> list[list[tuple[str, bool, bool]]]:
        """Read up to ``stop`` (or the end).  Each piece is
        ``(text, quoted, from_expansion)``."""
        words: list[list[tuple[str, bool, bool]]] = []
        cur: list[tuple[str, bool, bool]] = []
        started = False
        while self.i < len(self.s):
            c = self.peek()
            if stop and c in stop:
                break
            if c in " \t\r\n":
                self.i += 1
                if started:
                    words.append(cur)
                cur, started = [], False
                continue
            started = True
            if c == self.escape:
                self.i += 1
                if self.i >= len(self.s):
                    cur.append((c, True, False))
                else:
                    cur.append((self.next(), True, False))
            elif c == "'":
                self.i += 1
                j = self.s.find("'", self.i)
                if j < 0:
                    raise InvalidParameter(
                        "unexpected end of statement while looking for matching single-quote")
                cur.append((self.s[self.i:j], True, False))
                self.i = j + 1
            elif c == '"':
                self.i += 1
                cur.append((self._double_quoted(), True, False))
            elif c == "$":
                cur.append((self._dollar(), False, True))
            else:
                cur.append((c, False, False))
                self.i += 1
        if started:
            words.append(cur)
        return words

    def _double_quoted(self) -> str:
        out = []
        while True:
            if self.i >= len(self.s):
                raise InvalidParameter(
                    "unexpected end of statement while looking for matching double-quote")
            c = self.next()
            if c == '"':
                return "".join(out)
            if c == "$":
                self.i -= 1
                out.append(self._dollar())
            elif c == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                out.append(self.next())
            else:
                out.append(c)

    def _dollar(self) -> str:
        self.i += 1  # the $
        c = self.peek()
        if c == "{":
            self.i += 1
            return self._braced()
        if c and _NAME_START.match(c):
            m = _NAME.match(self.s, self.i)
            name = m.group(0)
            self.i = m.end()
            return self.env.get(name, "")
        return "$"

    def _braced(self) -> str:
        m = _NAME.match(self.s, self.i)
        name = m.group(0)
        self.i = m.end()
        if not name:
            raise InvalidParameter(f"bad substitution: invalid variable name in {self.s!r}")
        c = self.peek()
        if c == "}":
            self.i += 1
            return self.env.get(name, "")
        colon = False
        if c == ":":
            colon = True
            self.i += 1
            c = self.peek()
        if c not in ("-", "+", "?"):
            raise InvalidParameter(f"unsupported modifier ({c}) in substitution")
        self.i += 1
        word = self._word_until_brace()
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if c == "-":
            return value if is_set else word
        if c == "+":
            return word if is_set else ""
        if not is_set:
            raise InvalidParameter(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""

    def _word_until_brace(self) -> str:
        out = []
        while True:
            if self.i >= len(self.s):
                raise InvalidParameter("syntax error: missing '}'")
            c = self.peek()
            if c == "}":
                self.i += 1
                return "".join(out)
            if c == self.escape and self.i + 1 < len(self.s):
                self.i += 1
                out.append(self.next())
            elif c == "$":
                out.append(self._dollar())
            elif c == "'":
                self.i += 1
                j = self.s.find("'", self.i)
                if j < 0:
                    raise InvalidParameter(
                        "unexpected end of statement while looking for matching single-quote")
                out.append(self.s[self.i:j])
                self.i = j + 1
            elif c == '"':
                self.i += 1
                out.append(self._double_quoted())
            else:
                out.append(c)
                self.i += 1


def expand_word(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """``ProcessWord``: one word, quotes removed, whitespace kept."""
    lexer = _Lexer(text, env, escape)
    out: list[str] = []
    while lexer.i < len(text):
        c = text[lexer.i]
        if c in " \t\r\n":
            out.append(c)
            lexer.i += 1
            continue
        for word in lexer.words(stop=" \t\r\n"):
            out.extend(piece for piece, _, _ in word)
    return "".join(out)


def expand_words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """``ProcessWords``: split into words; unquoted expansions split too."""
    out: list[str] = []
    for word in _Lexer(text, env, escape).words():
        cur: list[str] = []
        have = False
        for piece, quoted, expanded in word:
            if expanded and not quoted:
                parts = re.split(r"[ \t\r\n]+", piece)
                for k, part in enumerate(parts):
                    if k > 0:
                        if have:
                            out.append("".join(cur))
                        cur, have = [], False
                    if part:
                        cur.append(part)
                        have = True
            else:
                cur.append(piece)
                have = True
        if have:
            out.append("".join(cur))
    return out


def expand_heredoc(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """A here-document's body as BuildKit expands it (``RawQuotes`` and
    ``RawEscapes``): variables expanded, quotes and escapes kept as written
    (an escaped ``$`` is not expanded)."""
    lexer = _Lexer(text, env, escape)
    out: list[str] = []
    while lexer.i < len(text):
        c = text[lexer.i]
        if c == escape and lexer.i + 1 < len(text):
            out.append(text[lexer.i:lexer.i + 2])
            lexer.i += 2
        elif c == "$":
            out.append(lexer._dollar())
        else:
            out.append(c)
            lexer.i += 1
    return "".join(out)
