"""write_now reads private attributes of Twisted's TCP transport (twisted/twisted#5303 is why):
these tests fail if a Twisted release renames them or if the fast path stops being taken."""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, ServerFactory

from mailsuite.wire.fastwrite import PRIVATE_ATTRIBUTES, can_write_now, write_now


class Greeter(Protocol):
    """Greets with write_now while the transport's own write() is disabled."""

    def connectionMade(self) -> None:
        transport = self.transport
        self.factory.seen.callback(
            (type(transport), [hasattr(transport, name) for name in PRIVATE_ATTRIBUTES],
             can_write_now(transport))
        )

        def refuse(data: bytes) -> None:
            raise AssertionError("write_now fell back to transport.write")

        transport.write = refuse
        write_now(transport, b"220 hello\r\n")
        del transport.write  # the class's own write again


def test_write_now_sends_directly_on_a_live_tcp_connection(reactor_thread):
    factory = ServerFactory.forProtocol(Greeter)
    factory.seen = Deferred()
    port = reactor_thread.call(
        lambda: reactor_thread.reactor.listenTCP(0, factory, interface="127.0.0.1")
    )
    try:
        with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10) as client:
            assert client.recv(100) == b"220 hello\r\n"
        kind, present, ready = reactor_thread.call(lambda: factory.seen)
        assert kind is tcp.Server
        assert present == [True] * len(PRIVATE_ATTRIBUTES)
        assert ready
    finally:
        reactor_thread.call(port.stopListening)
