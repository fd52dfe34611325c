# -*- test-case-name: dockerpy.test.test_network_dns -*-
"""The embedded DNS server of user-defined networks (127.0.0.11 in each
container, as in Docker).

It owns, per served container, one UDP and one TCP socket bound to
127.0.0.11:53 *inside* the container's network namespace and served by the
daemon's reactor; answers for container names, aliases and addresses come
from the caller's ``lookup``/``reverse`` callables, everything else is
forwarded to upstream servers from the daemon's own namespace.  It does not
own the namespaces, resolv.conf (see :mod:`dockerpy.containers.etcfiles`) or
the names (the network service does).

Why a setns here, when the daemon never calls setns: a socket belongs to the
namespace it was created in, for its whole life, whichever thread later
reads it.  So we create the sockets on one *dedicated* worker thread that
switches into the container's namespace (network namespaces are per thread
for ``setns(CLONE_NEWNET)``), creates and binds them, and switches back
before it does anything else; the reactor thread then serves them.  moby
does the same on a locked OS thread.  If the switch back fails, that worker
is never reused: its pool is stopped and a new one made.  Each job also
checks, before it starts, that its thread is in the daemon's namespace.

Importing this module costs twisted.names; import it only when a user
network is in use.
"""

from __future__ import annotations

import os
import socket
from typing import Callable, Sequence

from twisted.internet import defer, protocol, threads
from twisted.logger import Logger
from twisted.names import client, dns
from twisted.python.threadpool import ThreadPool

from dockerpy import errors
from dockerpy.network import netns

ADDRESS = "127.0.0.11"
PORT = 53
#: Docker's TTL for the records it answers itself.
TTL = 600
# Per-server retry timeouts for forwarded queries: the stub resolver in the
# container gives up after 5 s by default, so answering later is useless.
UPSTREAM_TIMEOUT = (1, 3)

Upstream = Sequence["str | tuple[str, int]"]


PoisonedThread = netns.PoisonedThread


def bind_in_netns(netns_path: str, home: tuple[int, int],
                  address: str = ADDRESS, port: int = PORT) -> tuple[int, int]:
    """Dedicated worker thread only: bind a UDP and a listening TCP socket
    to ``address:port`` inside the namespace at ``netns_path``.

    :param home: the daemon's namespace (:func:`_ns_id` of it); the thread
        must be there when called and is there again when this returns.
    :return: the two file descriptors (UDP, TCP), non-blocking, owned by
        the caller.
    :raises PoisonedThread: the thread is stuck in another namespace.
    :raises OSError: the namespace cannot be entered or the address bound.
    """
    if netns.ns_id() != home:
        raise PoisonedThread("DNS worker thread is not in the daemon's network namespace")
    socks: list[socket.socket] = []
    try:
        with netns.entered(netns_path):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(udp)
            udp.bind((address, port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(tcp)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, port))
            tcp.listen(64)
            for s in socks:
                s.setblocking(False)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return udp.detach(), tcp.detach()


def _servers(upstream: Upstream) -> list[tuple[str, int]]:
    """Normalise upstream entries: an IP (port 53) or an (IP, port) pair."""
    return [(u, 53) if isinstance(u, str) else (u[0], int(u[1])) for u in upstream]


def _ptr_address(name: str) -> str | None:
    """The IPv4 address of an ``in-addr.arpa`` name, or None."""
    suffix = ".in-addr.arpa"
    if not name.endswith(suffix):
        return None
    parts = name[:-len(suffix)].split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    return ".".join(reversed(parts))


class _Controller:
    """The DNS controller of one container's two ports (``dns.DNSMixin``
    protocols call ``messageReceived``/``connectionMade``/``connectionLost``)."""

    def __init__(self, server: EmbeddedDNS, container_id: str, upstream: Upstream | None):
        self.server = server
        self.container_id = container_id
        self.upstream = upstream
        self.connections: list[dns.DNSProtocol] = []
        self.closed = False

    def connectionMade(self, proto: dns.DNSProtocol) -> None:  # noqa: N802 (twisted API)
        self.connections.append(proto)

    def connectionLost(self, proto: dns.DNSProtocol) -> None:  # noqa: N802
        if proto in self.connections:
            self.connections.remove(proto)

    def messageReceived(self, message: dns.Message, proto, address=None) -> None:  # noqa: N802
        if message.answer:
            return
        d = defer.ensureDeferred(self.server._respond(self, message))
        d.addCallback(self._send, proto, address)
        d.addErrback(lambda f: self.server._log.warn(
            "embedded DNS reply for {cid} failed: {error}", cid=self.container_id[:12],
            error=f.getErrorMessage()))

    def _send(self, response: dns.Message, proto, address) -> None:
        if self.closed or proto.transport is None:
            return
        if address is None:
            response.maxSize = 0  # TCP: no 512-byte limit
            proto.writeMessage(response)
        else:
            proto.writeMessage(response, address)


class _TCPFactory(protocol.ServerFactory):
    def __init__(self, controller: _Controller, reactor):
        self.controller = controller
        self.reactor = reactor

    def buildProtocol(self, addr):  # noqa: N802
        return dns.DNSProtocol(self.controller, reactor=self.reactor)


class _Served:
    def __init__(self, controller: _Controller, udp_port, tcp_port):
        self.controller = controller
        self.udp_port = udp_port
        self.tcp_port = tcp_port

    async def close(self) -> None:
        self.controller.closed = True
        for proto in list(self.controller.connections):
            proto.transport.abortConnection()
        await defer.gatherResults([defer.maybeDeferred(self.udp_port.stopListening),
                                   defer.maybeDeferred(self.tcp_port.stopListening)],
                                  consumeErrors=True)


class EmbeddedDNS:
    """The 127.0.0.11 resolver of every container on a user-defined network.

    :param reactor: provides IReactorSocket (adopt*Port), IReactorUDP,
        IReactorTCP, IReactorThreads.
    :param lookup: ``lookup(container_id, name)`` (name lower-cased, no
        trailing dot) returns the IPv4 addresses the asking container knows
        ``name`` by, or [] to forward the query.  Called on the reactor thread.
    :param reverse: ``reverse(container_id, ip)`` returns the name for a PTR
        query of an IPv4 address, or None to forward it.
    :param upstream: default forwarders (IPs, or (IP, port) pairs), e.g.
        :func:`dockerpy.containers.etcfiles.host_upstreams`; a container may
        have its own (``--dns``), given to :meth:`serve`.
    """

    _log = Logger()

    def __init__(self, reactor, lookup: Callable[[str, str], list[str]],
                 reverse: Callable[[str, str], "str | None"], upstream: Upstream):
        self._reactor = reactor
        self._lookup = lookup
        self._reverse = reverse
        self.upstream = list(upstream)
        self._served: dict[str, _Served] = {}
        self._pending: dict[str, object] = {}
        self._pool: ThreadPool | None = None
        self._home: tuple[int, int] | None = None
        self._trigger = None
        self._resolvers: dict[tuple, client.Resolver] = {}

    # -- sockets in the container's namespace ------------------------------------

    def _worker(self) -> ThreadPool:
        if self._pool is None:
            # The reactor thread is in the daemon's namespace by rule.
            self._home = netns.ns_id()
            self._pool = ThreadPool(1, 1, name="dockerpy-dns-netns")
            self._pool.start()
            if self._trigger is None:
                self._trigger = self._reactor.addSystemEventTrigger(
                    "during", "shutdown", self._stop_pool)
        return self._pool

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    async def serve(self, container_id: str, netns_path: str,
                    upstream: Upstream | None = None) -> None:
        """Serve 127.0.0.11:53 (UDP and TCP) in the namespace at ``netns_path``.

        Serving a container again first stops its current ports.

        :param upstream: this container's forwarders (``--dns``), instead of
            the default ones.
        :raises errors.SystemError_: the namespace cannot be entered, the
            address is taken, or the worker could not get back (it is then
            replaced).
        """
        if container_id in self._served or container_id in self._pending:
            await self.stop(container_id)
        token = object()
        self._pending[container_id] = token
        pool = self._worker()
        try:
            udp_fd, tcp_fd = await threads.deferToThreadPool(
                self._reactor, pool, bind_in_netns, netns_path, self._home)
        except PoisonedThread as e:
            if self._pool is pool:
                self._stop_pool()
            raise errors.SystemError_(f"embedded DNS for {container_id[:12]}: {e}") from e
        except OSError as e:
            raise errors.SystemError_(f"embedded DNS for {container_id[:12]}: cannot listen on "
                                      f"{ADDRESS}:{PORT} in {netns_path}: "
                                      f"{e.strerror or e}") from e
        finally:
            current = self._pending.get(container_id) is token
            if current:
                del self._pending[container_id]
        try:
            if not current:
                return  # stopped (or served again) while we were binding
            controller = _Controller(self, container_id,
                                     list(upstream) if upstream is not None else None)
            udp_port = self._reactor.adoptDatagramPort(
                udp_fd, socket.AF_INET, dns.DNSDatagramProtocol(controller, reactor=self._reactor),
                maxPacketSize=65535)
            try:
                tcp_port = self._reactor.adoptStreamPort(
                    tcp_fd, socket.AF_INET, _TCPFactory(controller, self._reactor))
            except BaseException:
                udp_port.stopListening()
                raise
            self._served[container_id] = _Served(controller, udp_port, tcp_port)
        finally:
            # The reactor serves duplicates of these.
            os.close(udp_fd)
            os.close(tcp_fd)

    def serving(self, container_id: str) -> bool:
        return container_id in self._served

    async def stop(self, container_id: str) -> None:
        """Close a container's ports (nothing if it is not served)."""
        self._pending.pop(container_id, None)
        served = self._served.pop(container_id, None)
        if served is not None:
            await served.close()

    async def close(self) -> None:
        """Close every container's ports and the worker thread."""
        for cid in list(self._served) + list(self._pending):
            await self.stop(cid)
        self._stop_pool()
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None

    # -- answers -------------------------------------------------------------------

    async def _respond(self, controller: _Controller, message: dns.Message) -> dns.Message:
        rcode, answers, authority, additional = dns.OK, [], [], []
        if message.opCode != dns.OP_QUERY:
            rcode = dns.ENOTIMP
        elif len(message.queries) != 1:
            rcode = dns.EFORMAT
        else:
            query = message.queries[0]
            try:
                local = self._answer(controller.container_id, query)
            except Exception as e:
                self._log.warn("embedded DNS lookup failed: {error}", error=repr(e))
                local, rcode = None, dns.ESERVER
            if local is not None:
                answers = local
            elif rcode == dns.OK:
                upstream = controller.upstream if controller.upstream is not None else self.upstream
                rcode, answers, authority, additional = await self._forward(query, upstream)
        response = dns.Message(id=message.id, answer=1, opCode=message.opCode,
                               recDes=message.recDes, recAv=1, rCode=rcode)
        response.queries = message.queries
        response.answers, response.authority, response.additional = answers, authority, additional
        return response

    def _answer(self, container_id: str, query: dns.Query) -> list[dns.RRHeader] | None:
        """Our own answer records, or None to forward the query."""
        if query.cls != dns.IN:
            return None
        qname = query.name.name
        name = qname.decode("ascii", "replace").rstrip(".").lower()
        if query.type in (dns.A, dns.AAAA):
            ips = self._lookup(container_id, name) if name else []
            if not ips:
                return None
            if query.type == dns.AAAA:
                return []  # known, but containers have no IPv6 here: NOERROR, no data
            return [dns.RRHeader(name=qname, type=dns.A, cls=dns.IN, ttl=TTL,
                                 payload=dns.Record_A(ip, ttl=TTL)) for ip in ips]
        if query.type == dns.PTR:
            ip = _ptr_address(name)
            target = self._reverse(container_id, ip) if ip else None
            if not target:
                return None
            return [dns.RRHeader(name=qname, type=dns.PTR, cls=dns.IN, ttl=TTL,
                                 payload=dns.Record_PTR(target, ttl=TTL))]
        return None

    def _resolver(self, servers: list[tuple[str, int]]) -> client.Resolver:
        key = tuple(servers)
        resolver = self._resolvers.get(key)
        if resolver is None:
            resolver = self._resolvers[key] = client.Resolver(
                servers=servers, timeout=UPSTREAM_TIMEOUT, reactor=self._reactor)
        return resolver

    async def _forward(self, query: dns.Query, upstream: Upstream) -> tuple:
        """Ask the upstream servers from the daemon's namespace.

        :return: their (rcode, answers, authority, additional), or SERVFAIL
            when there is none or none answers.
        """
        servers = _servers(upstream)
        if not servers:
            return dns.ESERVER, [], [], []
        resolver = self._resolver(servers)
        try:
            reply = await resolver.queryUDP([query], timeout=UPSTREAM_TIMEOUT)
            if reply.trunc:
                reply = await resolver.queryTCP([query])
        except Exception as e:
            self._log.info("embedded DNS: upstream {servers} failed for {name}: {error}",
                           servers=servers, name=query.name, error=repr(e))
            return dns.ESERVER, [], [], []
        return reply.rCode, reply.answers, reply.authority, reply.additional
