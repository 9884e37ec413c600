"""Send a short reply at once instead of one reactor turn later.

Twisted's TCP transport buffers every write() and registers the socket for writability, so each
reply of a lock-step protocol costs two epoll_ctl calls and an extra pass through the reactor
before the first byte leaves (upstream: twisted/twisted#5303, "Default transport implementation
doesn't write out bytes immediately", open since 2011). For a plain TCP connection whose buffer
is empty, one non-blocking send() is equivalent and in order; whatever it cannot send goes
through the transport as usual. TLS connections always take the transport's path.

This reads private attributes of ``twisted.internet.tcp.Server`` (``dataBuffer``, ``offset``,
``_tempDataLen``). tests/wire/test_fastwrite.py fails if a Twisted release renames them or if
the fast path stops being taken, so an upgrade cannot silently fall back (or break ordering).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

# The private attributes read below; the test checks a live transport still has them.
PRIVATE_ATTRIBUTES = ("dataBuffer", "offset", "_tempDataLen")


def can_write_now(transport: Any) -> bool:
    """Is ``transport`` a plain TCP connection with nothing waiting in its write buffer?"""
    return (
        type(transport) is tcp.Server
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    )


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending directly when that is safe and the socket takes it."""
    if can_write_now(transport):
        try:
            sent = transport.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN or a dead peer: the transport's own write path reports it
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
