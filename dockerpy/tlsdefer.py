# -*- test-case-name: dockerpy.test.test_tlsdefer -*-
"""Keep pyOpenSSL and cryptography out of a daemon until it uses TLS.

Twisted imports pyOpenSSL whenever it is installed: the reactor
(``posixbase`` tries ``twisted.protocols.tls``) and
``twisted.internet.endpoints`` (which Klein and our tap import) do it at
import time.  That is ~13 MB resident in a daemon of ~68 MB that serves a
unix socket and may never speak TLS.  TLS is needed only by a ``--tlsverify``
listener and by registries over HTTPS; both call :func:`load` first.

The twistd entry (``dockerpy.tap``) calls :func:`defer` before importing
Twisted's endpoints and :func:`release` once the reactor and the API are
imported.  The Twisted modules imported in between cached "no OpenSSL";
:func:`load` imports it and hands them what they would have imported, so
``wrapClientTLS``, TLS endpoints and ``reactor.listenSSL`` work as usual.

One thing stays as it was deferred: the reactor's TCP transports have no
``startTLS`` (``twisted.internet.tcp`` picks its TLS mixins when the reactor
is imported).  dockerpy never uses it: its TLS, server and client, wraps
the connection with ``TLSMemoryBIOFactory``.

In a process that imported OpenSSL already (trial, any embedding
application) all three are no-ops.
"""

from __future__ import annotations

import sys

_HIDDEN = "OpenSSL"
_deferred = False


def defer() -> bool:
    """Make ``import OpenSSL`` fail until :func:`release` or :func:`load`.

    :return: whether it is deferred now (``False``: already imported).
    """
    global _deferred
    if _HIDDEN in sys.modules:
        return _deferred
    sys.modules[_HIDDEN] = None  # type: ignore[assignment]
    _deferred = True
    return True


def release() -> None:
    """Let OpenSSL be imported again (by whoever needs it first)."""
    if _HIDDEN in sys.modules and sys.modules[_HIDDEN] is None:
        del sys.modules[_HIDDEN]


def load() -> None:
    """Import OpenSSL and Twisted's TLS, and complete the Twisted modules
    that were imported while it was deferred.  Idempotent."""
    global _deferred
    release()
    if not _deferred:
        return
    from twisted.internet import ssl
    from twisted.protocols import tls

    posixbase = sys.modules.get("twisted.internet.posixbase")
    if posixbase is not None:
        if posixbase.tls is None:
            posixbase.tls = tls
        if posixbase.ssl is None:
            posixbase.ssl = ssl
    endpoints = sys.modules.get("twisted.internet.endpoints")
    if endpoints is not None and endpoints.TLSMemoryBIOFactory is None:
        # What endpoints imports when OpenSSL is there (its own try/else).
        from OpenSSL.SSL import Error as SSLError
        from twisted.protocols._sni import (SNIConnectionCreator, TLSServerEndpoint,
                                            autoReloadingDirectoryOfPEMs)

        vars(endpoints).update(
            SSLError=SSLError, Certificate=ssl.Certificate,
            CertificateOptions=ssl.CertificateOptions, KeyPair=ssl.KeyPair,
            PrivateCertificate=ssl.PrivateCertificate,
            optionsForClientTLS=ssl.optionsForClientTLS,
            trustRootFromCertificates=ssl.trustRootFromCertificates,
            SNIConnectionCreator=SNIConnectionCreator, _TLSServerEndpoint=TLSServerEndpoint,
            autoReloadingDirectoryOfPEMs=autoReloadingDirectoryOfPEMs,
            TLSMemoryBIOFactory=tls.TLSMemoryBIOFactory)
    _deferred = False
