"""The delivery log: every event of a message's life, one JSON object per line, in <data>/log.

The server's event hub (mailsuite/events.py) tells ``writer.DeliveryLogWriter`` what happens;
it writes ``delivery-YYYY-MM-DD.jsonl`` (UTC days) from a thread of its own, fsync'ed about once
a second, and deletes files older than ``log.keep_days``. ``mailsuite-admin report`` and
``mailsuite-admin trace`` read the files back (``reader``, ``report``, ``trace``).

The log is a record for the operator, not a source of truth (the Maildirs and the queue are):
it may lose the last second of events in a crash, and it drops events, with a counted warning,
rather than grow without bound when the disk stops keeping up. The line format is in ``record``.
"""
