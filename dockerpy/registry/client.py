# -*- test-case-name: dockerpy.test.test_registry -*-
"""HTTP to one repository of a registry: endpoints, auth, errors.

``Repository`` owns the conversation with ``/v2/<name>/...``: it pings
``/v2/`` once to learn the authentication scheme, then signs each request
(basic credentials, or a bearer token fetched from the challenge's realm
with the repository scope), and turns registry error bodies into Docker's
messages.  All HTTP goes through a treq ``HTTPClient`` given by the caller
(its agent carries the injected reactor); nothing here blocks.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import treq
from twisted.internet.defer import CancelledError
from twisted.internet.error import (ConnectError, ConnectionLost, ConnectionRefusedError,
                                     DNSLookupError)

from dockerpy.errors import DockerError, Forbidden, NotFound, SystemError_
from dockerpy.registry.auth import AuthConfig, Challenge, parse_challenges
from dockerpy.registry.tls import tls_reason


PROBE_TIMEOUT = 10.0


class Unauthorized(DockerError):
    """The registry refused our credentials (Docker answers 401 for login)."""

    status = 401


class RegistryError(SystemError_):
    """The registry answered with an error (its ``errors`` body, Docker's wording)."""

    def __init__(self, message: str, code: str = "", status: int = 0):
        super().__init__(message)
        self.code = code
        self.http_status = status


def is_insecure(host: str, configured: tuple[str, ...] | list[str] = (),
                loopback: bool = True) -> bool:
    """Plain HTTP for loopback (Docker's default insecure 127.0.0.0/8) and the
    configured registries (``host:port`` names or CIDRs).  ``loopback=False``
    drops the loopback default (only tests want a verified loopback registry)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if host in configured or name in configured:
        return True
    if name == "localhost" and loopback:
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    if addr.is_loopback and loopback:
        return True
    for entry in configured:
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def endpoint_for(host: str, insecure: tuple[str, ...] | list[str] = ()) -> str:
    """The base URL a registry host ends up on when HTTPS is not offered
    (``docker.io`` -> its API host): the last of ``endpoints_for``."""
    return endpoints_for(host, insecure)[-1]


def endpoints_for(host: str, insecure: tuple[str, ...] | list[str] = (),
                  loopback: bool = True) -> list[str]:
    """The base URLs to try, in order.  Docker tries HTTPS first for an
    insecure registry (without verification) and falls back to plain HTTP;
    a secure one is HTTPS only."""
    if host == "docker.io":
        return ["https://registry-1.docker.io"]
    if is_insecure(host, insecure, loopback):
        return [f"https://{host}", f"http://{host}"]
    return [f"https://{host}"]


def error_message(body: bytes) -> tuple[str, str]:
    """(message, first code) from a registry error body, as Go's errcode prints it:
    ``manifest unknown: manifest unknown``."""
    try:
        errs = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return "", ""
    parts, first = [], ""
    for e in errs:
        if not isinstance(e, dict):
            continue
        code = str(e.get("code") or "UNKNOWN")
        first = first or code
        text = code.lower().replace("_", " ")
        if e.get("message"):
            text += ": " + str(e["message"])
        parts.append(text)
    return "; ".join(parts), first


class ConnectFailed(SystemError_):
    """No answer from an endpoint (refused, unresolvable, TLS failure): the
    next endpoint of the registry may be tried."""


def _connect_error(method: str, url: str, host: str, e: Exception) -> DockerError:
    verb = method.capitalize()
    if isinstance(e, ConnectionRefusedError):
        why = f"dial tcp {host}: connect: connection refused"
    elif isinstance(e, DNSLookupError):
        why = f"dial tcp: lookup {host.rsplit(':', 1)[0]}: no such host"
    else:
        why = str(e) or e.__class__.__name__
    return ConnectFailed(f'{verb} "{url}": {why}')


class Repository:
    """One repository on one registry, with its credentials and scope.

    :param http: a treq ``HTTPClient`` (or anything with its ``request``).
    :param base: ``http(s)://host[:port]``.
    :param path: repository path (``library/busybox``).
    :param actions: token scope actions (``["pull"]`` or ``["pull", "push"]``).
    """

    def __init__(self, http, base: str | list[str], host: str, path: str, auth: AuthConfig,
                 actions: list[str], on_base: Callable[[str], None] | None = None,
                 reactor=None):
        self.http = http
        self.reactor = reactor  # for timeouts only
        # Several bases: tried in order by ``ping`` (HTTPS, then HTTP for an
        # insecure registry); the first that answers is kept.
        self.bases = [base] if isinstance(base, str) else list(base)
        self.base = self.bases[0]
        self._on_base = on_base
        self.host = host
        self.path = path
        self.auth = auth
        self.actions = actions
        self._authorization: str | None = None
        self._bearer: Challenge | None = None
        # Bearer headers for cross-repository mounts, by source repository.
        self._mount_auth: dict[str, str] = {}
        self._pinged = False

    # -- auth ------------------------------------------------------------------

    async def _raw(self, method: str, url: str, headers: dict | None = None, data: Any = None,
                   redirects: bool = True, timeout: float | None = None):
        kwargs = {}
        if timeout is not None and self.reactor is not None:
            kwargs = {"timeout": timeout, "reactor": self.reactor}
        try:
            return await self.http.request(method, url, headers=headers or {}, data=data,
                                           unbuffered=True, allow_redirects=redirects,
                                           **kwargs)
        except CancelledError:
            raise ConnectFailed(f'{method.capitalize()} "{url}": net/http: TLS handshake '
                                "timeout") from None
        except (ConnectError, DNSLookupError) as e:
            raise _connect_error(method, url, self.host, e) from None
        except Exception as e:  # TLS failures, resets: say which host and why
            if isinstance(e, DockerError):
                raise
            tls = tls_reason(e)
            if tls is not None:
                raise ConnectFailed(f'{method.capitalize()} "{url}": {tls}') from None
            raise ConnectFailed(f'{method.capitalize()} "{url}": {_reason(e)}') from None

    async def ping(self) -> list[Challenge]:
        """``GET /v2/``: the challenges (empty when no auth is required).

        Tries each base in turn; an endpoint that cannot be reached (refused,
        TLS failure) gives way to the next, and the last one's error is the
        one reported, as with Docker; but when the plain-HTTP fallback turns
        out to be a TLS server, the HTTPS error (a missing client
        certificate, say) is the one reported.
        """
        first_error: ConnectFailed | None = None
        for n, base in enumerate(self.bases):
            last = n == len(self.bases) - 1
            try:
                # A server that is not TLS may never answer a handshake: give
                # the probe Go's TLS handshake timeout when a fallback exists.
                resp = await self._raw("GET", base + "/v2/",
                                       timeout=None if last else PROBE_TIMEOUT)
            except ConnectFailed as e:
                first_error = first_error or e
                if last:
                    raise
                continue
            if resp.code == 400 and base.startswith("http://"):
                body = await treq.content(resp)
                if b"HTTP request to an HTTPS server" in body:
                    # Go's TLS server refusing plain HTTP: the HTTPS failure
                    # (a certificate, say) is the one worth reporting, and
                    # this endpoint must not be remembered as working.
                    error = ConnectFailed(f'Get "{base}/v2/": the server speaks HTTPS only')
                    first_error = first_error or error
                    if last:
                        raise first_error
                    continue
            self.base = base
            if self._on_base is not None:
                self._on_base(base)
            if resp.code == 400 and base.startswith("http://"):
                return []  # body already read; a 400 carries no challenge
            return await self._challenges(resp)
        raise AssertionError("no endpoint")  # pragma: no cover

    async def _challenges(self, resp) -> list[Challenge]:
        url = self.base + "/v2/"
        await treq.content(resp)
        if resp.code == 401:
            challenges = []
            for h in resp.headers.getRawHeaders(b"www-authenticate") or []:
                challenges += parse_challenges(h.decode("latin-1"))
            return challenges
        if resp.code >= 500 or resp.code == 404:
            raise SystemError_(f'Get "{url}": unexpected status {resp.code}'
                               " (is this a registry?)")
        return []

    async def authenticate(self) -> None:
        """Ping and prepare the Authorization header for this repository's scope."""
        if self._pinged:
            return
        challenges = await self.ping()
        self._pinged = True
        for c in challenges:
            if c.scheme == "bearer":
                scope = f"repository:{self.path}:{','.join(self.actions)}" if self.path else ""
                token = await self.fetch_token(c, scope)
                self._authorization = "Bearer " + token
                self._bearer = c
                return
        for c in challenges:
            if c.scheme == "basic":
                if self.auth.anonymous:
                    return  # requests will fail with 401, worded by the caller
                pair = f"{self.auth.username}:{self.auth.password}".encode()
                self._authorization = "Basic " + base64.b64encode(pair).decode()
                return

    async def fetch_token(self, c: Challenge, scope: str | list[str]) -> str:
        """A bearer token from the challenge's realm (Docker's token flow).

        With an identity token, OAuth2's refresh-token grant (POST); otherwise
        GET with basic credentials when we have them.
        """
        realm = c.params.get("realm")
        if not realm:
            raise Unauthorized("bearer auth challenge without realm")
        if self.auth.registry_token:
            return self.auth.registry_token
        service = c.params.get("service", "")
        if self.auth.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": self.auth.identity_token,
                    "service": service, "client_id": "docker"}
            if scope:
                # OAuth2: one space-separated list.
                form["scope"] = scope if isinstance(scope, str) else " ".join(scope)
            resp = await self._raw("POST", realm, {
                "Content-Type": "application/x-www-form-urlencoded"},
                urlencode(form).encode())
        else:
            query: dict = {"service": service} if service else {}
            if scope:
                # Docker's token flow repeats ``scope`` for each one.
                query["scope"] = [scope] if isinstance(scope, str) else scope
            url = (realm + ("&" if "?" in realm else "?") + urlencode(query, doseq=True)
                   if query else realm)
            headers = {}
            if not self.auth.anonymous:
                pair = f"{self.auth.username}:{self.auth.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            resp = await self._raw("GET", url, headers)
        body = await treq.content(resp)
        if resp.code in (401, 403):
            msg, _ = error_message(body)
            raise Unauthorized(msg or "unauthorized: incorrect username or password")
        if resp.code != 200:
            raise SystemError_(f"token server {realm} answered {resp.code}")
        try:
            obj = json.loads(body)
            token = obj.get("token") or obj.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise Unauthorized(f"token server {realm} sent no token")
        return str(token)

    # -- requests ----------------------------------------------------------------

    async def request(self, method: str, path: str, headers: dict | None = None,
                      data: Any = None, redirects: bool = True):
        """A signed request to ``/v2/<name>/<path>`` (or an absolute URL)."""
        await self.authenticate()
        url = path if "://" in path else f"{self.base}/v2/{self.path}/{path}"
        headers = dict(headers or {})
        if self._authorization:
            headers["Authorization"] = self._authorization
        source = parse_qs(urlsplit(path).query).get("from") if "from=" in path else None
        if source and self._bearer is not None:
            # A cross-repository mount needs pull access to the source too
            # (what distribution's token handler adds for a ``from`` query).
            header = self._mount_auth.get(source[0])
            if header is None:
                own = f"repository:{self.path}:{','.join(self.actions)}"
                token = await self.fetch_token(self._bearer,
                                               [own, f"repository:{source[0]}:pull"])
                header = self._mount_auth[source[0]] = "Bearer " + token
            headers["Authorization"] = header
        return await self._raw(method, url, headers, data, redirects)

    def absolute(self, location: str) -> str:
        return urljoin(self.base + "/", location)

    async def error(self, resp, what: str) -> DockerError:
        """The DockerError for an error response (its body is consumed)."""
        body = await treq.content(resp)
        msg, code = error_message(body)
        if resp.code in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
            return Forbidden(msg or f"{resp.code} {resp.phrase.decode('latin-1', 'replace')}")
        if resp.code == 404 or code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"):
            return NotFound(msg or f"{what} not found")
        return RegistryError(msg or f"{what}: unexpected status {resp.code}", code, resp.code)


def _reason(e: Exception) -> str:
    reasons = getattr(e, "reasons", None)
    if reasons:
        # ResponseNeverReceived/ResponseFailed: a list of Failures.
        e = getattr(reasons[0], "value", reasons[0])
        if isinstance(e, ConnectionLost):
            return "EOF"
    text = str(e)
    if "SSL" in text or "certificate" in text.lower():
        return "tls: " + text
    return text or e.__class__.__name__


def make_http_client(reactor, tls_policy=None):
    """A treq client on ``reactor`` with a persistent pool; TLS trusts the
    system CAs unless a policy is given."""
    from dockerpy import tlsdefer

    tlsdefer.load()  # HTTPS through Twisted's endpoints, in a daemon that deferred it
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

    from twisted.web.client import _HTTP11ClientFactory

    class _QuietFactory(_HTTP11ClientFactory):
        noisy = False  # one "Starting factory" log line per connection otherwise

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool._factory = _QuietFactory
    pool.maxPersistentPerHost = 6
    agent = Agent(reactor, contextFactory=tls_policy or BrowserLikePolicyForHTTPS(), pool=pool,
                  connectTimeout=30)
    return treq.client.HTTPClient(agent), pool


Progress = Callable[[dict], None]
