"""Streams one message file to the client as a POP3 multi-line response body.

Like ``twisted.protocols.basic.FileSender``: a pull producer that reads one chunk each time the
transport has room, so a 30 MB message is never held in memory and a slow client only slows
itself. Each chunk goes through CRLF normalisation, the optional TOP filter and dot-stuffing,
all of which keep their state across chunk boundaries; ".CRLF" ends the response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPullProducer
from zope.interface import implementer

from mailsuite.pop3.wire import TERMINATOR, DotStuffer, TopFilter
from mailsuite.store.maildrop import READ_CHUNK, CRLFNormalizer


class SendAborted(Exception):
    """The connection went away before the whole message was sent."""


@implementer(IPullProducer)
class MessageSender:
    """Sends ``file`` to ``consumer``; ``send()``'s Deferred fires with the byte count sent."""

    def __init__(
        self,
        file: BinaryIO,
        top_lines: int | None = None,
        on_chunk: Callable[[], None] | None = None,
        chunk_size: int = READ_CHUNK,
    ) -> None:
        self._file = file
        self._normalizer = CRLFNormalizer()
        self._top = TopFilter(top_lines) if top_lines is not None else None
        self._stuffer = DotStuffer()
        self._on_chunk = on_chunk
        self._chunk_size = chunk_size
        self._consumer: IConsumer | None = None
        self._deferred: Deferred[int] | None = None
        self.sent = 0

    def send(self, consumer: IConsumer) -> Deferred[int]:
        self._consumer = consumer
        self._deferred = deferred = Deferred()
        # A plain TCP transport pulls the first chunk at once, inside registerProducer: a small
        # message may be sent (and the Deferred fired) before this returns.
        consumer.registerProducer(self, False)
        return deferred

    def resumeProducing(self) -> None:
        if self._consumer is None:
            return
        if self._on_chunk is not None:
            self._on_chunk()
        try:
            data = self._file.read(self._chunk_size)
            at_end = not data
            if data and len(data) < self._chunk_size:
                # A short read of a regular file means the end: make sure now, so the last
                # bytes and ".CRLF" leave together instead of in the next round (which, with
                # delayed ACKs, costs a client up to 40 ms per message).
                extra = self._file.read(1)
                data += extra
                at_end = not extra
        except OSError as exc:
            self._finish(exc)
            return
        out = self._normalizer.feed(data)
        if at_end:
            out += self._normalizer.finish()
        if self._top is not None:
            out = self._top.feed(out)
        self._write(self._stuffer.feed(out))
        if not at_end and (self._top is None or not self._top.done):
            return
        self._consumer.write(TERMINATOR)
        self._finish(None)

    def _write(self, data: bytes) -> None:
        if data:
            self.sent += len(data)
            self._consumer.write(data)

    def stopProducing(self) -> None:
        self._finish(SendAborted("connection lost during transfer"))

    def _finish(self, error: Exception | None) -> None:
        consumer, self._consumer = self._consumer, None
        self._file.close()
        if consumer is None:
            return
        consumer.unregisterProducer()
        deferred, self._deferred = self._deferred, None
        if error is None:
            deferred.callback(self.sent)
        else:
            deferred.errback(error)
