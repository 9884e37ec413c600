"""What happens to mail, told to whoever listens: metrics, the delivery log, webhooks.

One ``Events`` hub per server. Code that sees something happen calls ``emit(kind, **fields)``;
listeners get ``(kind, fields)`` synchronously, in the emitter's thread (the reactor, or the
commit / queue worker threads), so a listener must be quick and thread-safe and must not block:
one that writes to disk buffers and writes in a thread of its own. A listener that raises is
logged and skipped; mail flow never depends on it. With no listener, ``emit`` is one check.

The kinds and their fields (all JSON-serialisable):

- ``session.opened`` / ``session.closed``: role, protocol ("SMTP", "IMAP", "POP3"), client, tls
  (bool; for closed: whether it ended under TLS)
- ``session.starttls``: role, protocol, client
- ``command``: role, protocol, verb (upper case; unknown verbs as "UNKNOWN")
- ``auth``: protocol, user, client, ok (bool)
- ``message.accepted``: role, id (the server's message id, in Received), message_id (the
  Message-ID header, "" if none), sender, recipients (as given in RCPT), local (mailboxes),
  queue_id (for remote recipients, or None), size, client, user (or None), auth ("spf=pass ...")
- ``message.rejected``: role, id, sender, recipients, client, user, code, enhanced, reason
- ``commit``: messages (batch size), seconds (durable-commit latency), journal (bool)
- ``delivery.attempt``: queue_id, message_id (here and in the two kinds below: the server's
  message id, the ``id`` of ``message.accepted``, as the queue keeps it; not the header), sender,
  recipient, domain, outcome ("delivered",
  "deferred", "failed"), status, reply, relay ("host[ip]" or None), tls, attempts, age (seconds
  since the message was queued), notification (bool: the message is itself a bounce)
- ``notice.sent``: queue_id, message_id, action ("failed" / "delayed"), to, mailboxes, queued
- ``queue.removed``: queue_id, message_id, delivered, failed
- ``imap.idle``: started (bool) — sessions in IDLE
- ``dns.query``: name, type, seconds, outcome ("answer", "nxdomain", "nodata", "error")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

log = Logger(namespace="mailsuite.events")

Listener = Callable[[str, dict[str, Any]], None]


class Events:
    """The hub: ``subscribe(listener)``, then every ``emit`` reaches it."""

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()

    @property
    def active(self) -> bool:
        """Whether anyone listens (emitters may skip building costly fields when not)."""
        return bool(self._listeners)

    def subscribe(self, listener: Listener) -> None:
        self._listeners = (*self._listeners, listener)  # a new tuple: emit never sees it half-made

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners = tuple(item for item in self._listeners if item is not listener)

    def emit(self, kind: str, **fields: Any) -> None:
        for listener in self._listeners:
            try:
                listener(kind, fields)
            except Exception:
                log.failure("event listener failed on {kind}", kind=kind)


# For objects built without a server around them (unit tests, the admin CLI): nobody listens.
NO_EVENTS = Events()
