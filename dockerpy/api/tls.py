# -*- test-case-name: dockerpy.test.test_integration_tls -*-
"""TLS for the API with half-close, which Docker's hijacked streams need.

Go clients end stdin on a TLS connection with ``CloseWrite``, which sends a
TLS close_notify alert while they keep reading output.  Twisted's
``TLSMemoryBIOProtocol`` treats close_notify as the end of the connection,
so ``docker run`` over TLS lost its output.  This subclass turns the peer's
close_notify into ``readConnectionLost`` when the application protocol is
half-closeable, and sends our own close_notify when the application closes.
It reaches into one private method of Twisted's TLS layer (the receive
loop); setup.py pins the Twisted range it was checked with.
"""

from __future__ import annotations

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure


class HalfCloseableTLSProtocol(TLSMemoryBIOProtocol):
    _peer_closed = False

    def _flushReceiveBIO(self) -> None:  # noqa: N802 - overrides Twisted's
        while not self._lostTLSConnection and not self._peer_closed:
            try:
                data = self._tlsConnection.recv(2 ** 15)
            except WantReadError:
                break
            except ZeroReturnError:
                half = IHalfCloseableProtocol(self.wrappedProtocol, None)
                if half is None:
                    self._shutdownTLS()
                    self._tlsShutdownFinished(None)
                else:
                    # The peer will send nothing more but still reads:
                    # tell the application and keep the connection.
                    self._peer_closed = True
                    half.readConnectionLost()
            except Error:
                self._tlsShutdownFinished(Failure())
            else:
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
        self._flushSendBIO()


class HalfCloseableTLSFactory(TLSMemoryBIOFactory):
    protocol = HalfCloseableTLSProtocol


def tls_server_factory(context_factory, site) -> HalfCloseableTLSFactory:
    return HalfCloseableTLSFactory(context_factory, False, site)
