"""Send a short reply at once instead of one reactor turn later.

Twisted's TCP transport buffers every write() and registers the socket for writability, so each
reply of a lock-step protocol costs two epoll_ctl calls and an extra pass through the reactor
before the first byte leaves. For a plain TCP connection whose buffer is empty, one non-blocking
send() is equivalent and in order; whatever it cannot send goes through the transport as usual.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending directly when that is safe and the socket takes it."""
    if (
        type(transport) is tcp.Server
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN or a dead peer: the transport's own write path reports it
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
