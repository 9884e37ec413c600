"""IPv6 listeners that leave the IPv4 port alone (IPV6_V6ONLY).

With Linux's default ``net.ipv6.bindv6only = 0`` a socket bound to ``[::]:25`` also takes
``0.0.0.0:25``, so a configuration listing both (as etc/mailsuite.toml does, and as
``mailsuite-admin quickstart`` writes) failed with "address already in use". Twisted's endpoints
have no option for it, so the socket is made here and adopted by the reactor.
"""

from __future__ import annotations

import socket

from twisted.internet import defer
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer


@implementer(IStreamServerEndpoint)
class IPv6OnlyServerEndpoint:
    """Listen on an IPv6 address only, with TLS from the first byte when ``tls_options``."""

    def __init__(
        self, reactor, port: int, interface: str, tls_options=None, backlog: int = 50
    ) -> None:
        self._reactor = reactor
        self._port = port
        self._interface = interface
        self._tls_options = tls_options
        self._backlog = backlog

    def listen(self, factory) -> defer.Deferred:
        if self._tls_options is not None:
            factory = TLSMemoryBIOFactory(self._tls_options, False, factory)
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError as exc:
            return defer.fail(exc)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((self._interface, self._port))
            sock.listen(self._backlog)
            sock.setblocking(False)
            port = self._reactor.adoptStreamPort(sock.fileno(), socket.AF_INET6, factory)
        except Exception as exc:
            return defer.fail(exc)
        finally:
            sock.close()  # the reactor holds its own duplicate of the descriptor
        return defer.succeed(port)
