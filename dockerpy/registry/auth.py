# -*- test-case-name: dockerpy.test.test_registry -*-
"""Registry credentials and authentication challenges.

Owns the ``X-Registry-Auth`` header format (base64url JSON, as the docker CLI
and docker-py send it), the ``serveraddress`` spelling users give to
``docker login``, and the parsing of ``WWW-Authenticate`` challenges.  Pure
functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from dockerpy.errors import InvalidParameter

INDEX_SERVER = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class AuthConfig:
    """Credentials for one registry (all empty: anonymous)."""

    username: str = ""
    password: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token
                    or self.registry_token)


def _b64decode_any(s: str) -> bytes:
    """Base64 in either alphabet, padded or not (clients differ)."""
    s = s.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    return base64.b64decode(s, validate=True)


def auth_from_dict(obj: dict) -> AuthConfig:
    """An ``AuthConfig`` from Docker's JSON shape (``types.AuthConfig``)."""
    if not isinstance(obj, dict):
        raise InvalidParameter("invalid X-Registry-Auth header: not a JSON object")
    username = str(obj.get("username") or "")
    password = str(obj.get("password") or "")
    if obj.get("auth") and not username:
        # The config.json form: base64("user:password").
        try:
            username, _, password = _b64decode_any(obj["auth"]).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidParameter("invalid X-Registry-Auth header: bad auth field") from None
    return AuthConfig(username, password, str(obj.get("serveraddress") or ""),
                      str(obj.get("identitytoken") or ""), str(obj.get("registrytoken") or ""))


def decode_auth_header(value: str | bytes | None) -> AuthConfig:
    """Decode ``X-Registry-Auth``; missing or empty means anonymous.

    Docker ignores an undecodable header (the pull goes on anonymously), and
    so do we, except that a decodable header that is not an object is an error.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not value or not value.strip():
        return AuthConfig()
    try:
        obj = json.loads(_b64decode_any(value))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return AuthConfig()
    return auth_from_dict(obj)


def encode_auth_header(auth: AuthConfig) -> str:
    """The header value a client sends (base64url of the JSON)."""
    obj = {"username": auth.username, "password": auth.password,
           "serveraddress": auth.server_address}
    if auth.identity_token:
        obj = {"identitytoken": auth.identity_token, "serveraddress": auth.server_address}
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


def registry_host(server_address: str) -> str:
    """``docker login`` address -> registry host (``docker.io`` for the index).

    ``https://host:5000/v2/``, ``http://host:5000`` and ``host:5000`` all name
    ``host:5000``.
    """
    s = server_address.strip()
    if not s or s.rstrip("/") in (INDEX_SERVER.rstrip("/"), "index.docker.io",
                                  "docker.io", "registry-1.docker.io"):
        return "docker.io"
    s = re.sub(r"^[a-z]+://", "", s)
    host = s.split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return host


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lowercase) and parameters."""

    scheme: str
    params: dict


_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``Bearer realm="...",service="...",scope="..."`` (and Basic).

    Only one challenge per header line is supported, which is what registries
    send; several headers give several challenges.
    """
    header = header.strip()
    if not header:
        return []
    scheme, _, rest = header.partition(" ")
    params = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return [Challenge(scheme.lower(), params)]
