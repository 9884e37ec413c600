"""Durable delivery into the capture mailbox of what the sandbox makes itself (a simulated
bounce) or takes from the queue (relay.py): the SMTP server's own captures go through the
ordinary MessageRouter instead, the capture being an ordinary store address.

Blocking (it fsyncs, as every delivery here does before it counts): run it in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mailsuite.store.incoming import IncomingMessage
from mailsuite.store.maildir import MaildirStore


class CaptureWriter:
    def __init__(self, store: MaildirStore, address: str, spool_dir: Path) -> None:
        self.store = store
        self.address = address  # the capture mailbox's store address (settings.capture_address)
        self.spool_dir = Path(spool_dir)

    def deliver(self, chunks: Iterable[bytes]) -> str:
        """Store the message made of ``chunks`` (CRLF lines) in the capture; its Maildir key."""
        incoming = IncomingMessage(self.spool_dir)
        try:
            for chunk in chunks:
                incoming.write(chunk)
            path = incoming.finalize()
            return self.store.deliver_file(path, self.address)
        finally:
            incoming.remove()
