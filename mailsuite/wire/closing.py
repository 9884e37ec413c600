"""Closing a session's connection at once, TLS or not.

Twisted's TLS layer answers ``loseConnection`` by sending its close_notify and then waiting for
the peer's before it closes the socket (``TLSMemoryBIOProtocol._shutdownTLS``). A client that
never answers (many do not: they wait for the server to close, as RFC 3501 §6.1.3 and RFC 5321
§4.1.1.10 say it does) keeps the connection, and the session's per-user slot, open until some
timeout. Dovecot and Postfix close right after their close_notify; so do we: once the TLS layer
has queued its close_notify, the TCP connection below it is closed too (after what is buffered
has been written).
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet import reactor as _reactor
from twisted.protocols.tls import TLSMemoryBIOProtocol

# If the close_notify could not be queued yet (a handshake still running, output held back by a
# slow reader), look again this often, then close regardless.
RETRY_SECONDS = 0.5
RETRIES = 10


def _tls_layer(transport: Any) -> TLSMemoryBIOProtocol | None:
    """The TLS protocol object under a session's transport, if the connection speaks TLS.

    Both ways Twisted adds TLS put it there: ``startTLS`` (STARTTLS, and the implicit-TLS
    listeners, which start TLS on accept) makes the TCP transport's ``protocol`` the TLS layer;
    ``TLSMemoryBIOFactory`` wrapping makes the transport the TLS layer itself.
    """
    if isinstance(transport, TLSMemoryBIOProtocol):
        return transport
    if getattr(transport, "TLS", False):
        layer = getattr(transport, "protocol", None)
        if isinstance(layer, TLSMemoryBIOProtocol):
            return layer
    return None


def close_connection(transport: Any, reactor: Any = None) -> None:
    """``transport.loseConnection()``, without waiting for the peer's TLS close_notify."""
    transport.loseConnection()
    layer = _tls_layer(transport)
    if layer is not None:
        _close_below(layer, reactor or _reactor, RETRIES)


def _close_below(layer: TLSMemoryBIOProtocol, reactor: Any, retries: int) -> None:
    below = layer.transport
    if below is None or getattr(below, "disconnected", False):
        return
    try:
        sent = bool(layer.getHandle().get_shutdown() & SSL.SENT_SHUTDOWN)
    except SSL.Error:
        sent = True
    if sent or retries <= 0:
        below.loseConnection()  # writes what is buffered (the close_notify), then closes
        return
    reactor.callLater(RETRY_SECONDS, _close_below, layer, reactor, retries - 1)
