# -*- test-case-name: dockerpy.test.test_registry_tls -*-
"""TLS to registries as Docker does it: the system CAs, plus the per-registry
CA and client certificates of ``<certs.d>/<host:port>/``.

Docker's layout (``/etc/docker/certs.d`` by default): in the directory named
after the registry host (with its port, if the reference has one), every
``*.crt`` is an extra trusted CA, and each ``X.cert`` with its ``X.key`` is
a client certificate.  A registry configured as insecure is reached over
HTTPS without verification (Docker's ``InsecureSkipVerify``) before falling
back to plain HTTP; that choice is the caller's, this module only builds
the TLS options.  Files are read on every new connection's options so that
certificates dropped into certs.d are used without a daemon restart, as
with Docker.

pyOpenSSL is imported when a registry is first reached over TLS, never at
import (``dockerpy.tlsdefer``: an idle daemon does not load it).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, Callable

from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer, providedBy

from dockerpy import tlsdefer
from dockerpy.errors import InvalidParameter

if TYPE_CHECKING:
    from OpenSSL import crypto
    from twisted.internet import ssl
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

DEFAULT_CERTS_DIR = "/etc/docker/certs.d"


@functools.cache
def _system_and_extra_cas() -> type:
    """The trust root class, made on first use (it needs pyOpenSSL)."""
    tlsdefer.load()
    from twisted.internet import ssl

    # The trust-root interface is not re-exported by twisted.internet.ssl;
    # what platformTrust() returns provides it, so take it from there.
    trust_root = list(providedBy(ssl.platformTrust()))[0]

    @implementer(trust_root)
    class SystemAndExtraCAs:
        """Trust the system's CAs and the given extra ones (Docker adds
        certs.d CAs to the system pool rather than replacing it)."""

        def __init__(self, cas: list[Any]):
            self._extra = ssl.trustRootFromCertificates([ssl.Certificate(c) for c in cas]) \
                if cas else None

        def _addCACertsToContext(self, context) -> None:  # noqa: N802 (Twisted)
            context.set_default_verify_paths()
            if self._extra is not None:
                self._extra._addCACertsToContext(context)

    return SystemAndExtraCAs


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def host_certs(certs_dir: str, host: str) -> tuple[list[crypto.X509], tuple[str, str] | None]:
    """The extra CAs and the client certificate (cert path, key path) for
    ``host`` (``name[:port]``).  Blocking (small reads).

    :raises InvalidParameter: a ``.cert`` without its ``.key`` (or the
        reverse), or an unreadable certificate: Docker's wording.
    """
    directory = os.path.join(certs_dir, host)
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return [], None
    tlsdefer.load()
    from OpenSSL import crypto

    cas: list[crypto.X509] = []
    client = None
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(".crt"):
            data = _read(path)
            for block in data.split(b"-----END CERTIFICATE-----")[:-1]:
                block += b"-----END CERTIFICATE-----\n"
                try:
                    cas.append(crypto.load_certificate(crypto.FILETYPE_PEM, block))
                except crypto.Error:
                    raise InvalidParameter(f"unable to read CA certificate {path}") from None
        elif name.endswith(".cert"):
            key = path[:-5] + ".key"
            if not os.path.exists(key):
                raise InvalidParameter(f"missing key {os.path.basename(key)} for client "
                                       f"certificate {name}. CA certificates must use the "
                                       ".crt extension")
            client = client or (path, key)
        elif name.endswith(".key"):
            if not os.path.exists(path[:-4] + ".cert"):
                raise InvalidParameter(f"missing client certificate "
                                       f"{os.path.basename(path[:-4])}.cert for key {name}")
    return cas, client


def _client_certificate(pair: tuple[str, str] | None) -> ssl.PrivateCertificate | None:
    if pair is None:
        return None
    from twisted.internet import ssl

    cert, key = pair
    try:
        return ssl.PrivateCertificate.loadPEM(_read(cert) + b"\n" + _read(key))
    except Exception as e:
        raise InvalidParameter(f"unable to load client certificate {cert}: {e}") from None


@implementer(IPolicyForHTTPS)
class RegistryTLSPolicy:
    """The treq/Agent TLS policy for registries.

    :param certs_dir: the certs.d root.
    :param insecure: tells whether ``host[:port]`` is an insecure registry
        (TLS without verification).
    """

    def __init__(self, certs_dir: str = DEFAULT_CERTS_DIR,
                 insecure: Callable[[str], bool] = lambda host: False):
        self.certs_dir = certs_dir
        self.insecure = insecure

    def options_for(self, host: str, port: int) -> IOpenSSLClientConnectionCreator:
        """TLS options for a connection to ``host:port``."""
        tlsdefer.load()
        from twisted.internet import ssl

        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        cas, client = host_certs(self.certs_dir, netloc)
        if not cas and client is None and port == 443:
            cas, client = host_certs(self.certs_dir, host)
        certificate = _client_certificate(client)
        if self.insecure(netloc):
            kwargs = {}
            if certificate is not None:
                kwargs = {"privateKey": certificate.privateKey.original,
                          "certificate": certificate.original}
            return ssl.CertificateOptions(verify=False, **kwargs)
        return ssl.optionsForClientTLS(host, trustRoot=_system_and_extra_cas()(cas),
                                       clientCertificate=certificate)

    def creatorForNetloc(self, hostname: bytes, port: int):  # noqa: N802 (Twisted API)
        return self.options_for(hostname.decode("idna"), port)


def tls_reason(e: BaseException) -> str | None:
    """Go's wording for a TLS failure inside ``e`` (a treq/Agent error that
    may wrap several failures), or ``None`` if ``e`` is not about TLS."""
    texts = []
    pending = [e]
    while pending:
        cur = pending.pop()
        for sub in getattr(cur, "reasons", None) or []:
            pending.append(getattr(sub, "value", sub))
        texts.append(f"{cur.__class__.__name__} {cur!s} {cur!r}")
    text = " ".join(texts)
    if "certificate verify failed" in text:
        if "expired" in text:
            return "tls: failed to verify certificate: x509: certificate has expired"
        # OpenSSL's text rarely says which check failed; an unknown issuer is
        # by far the common case (and Go's wording for it is what users search).
        return ("tls: failed to verify certificate: x509: certificate signed by unknown "
                "authority")
    if "VerificationError" in text or "hostname mismatch" in text.lower() or \
            "DNSMismatch" in text or "IPAddressMismatch" in text:
        return ("tls: failed to verify certificate: x509: certificate is not valid for "
                "this host")
    if "certificate required" in text or "alert certificate required" in text or \
            "handshake failure" in text and "alert" in text:
        return "remote error: tls: certificate required"
    if "wrong version number" in text or "packet length too long" in text:
        return "http: server gave HTTP response to HTTPS client"
    if "SSL" in text and "Error" in text:
        return "tls: " + _ssl_detail(text)
    return None


def _ssl_detail(text: str) -> str:
    start = text.find("'", text.find("SSL routines"))
    if start < 0:
        return "handshake failed"
    end = text.find("'", start + 1)
    return text[start + 1:end] if end > start else "handshake failed"
