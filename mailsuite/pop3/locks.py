"""The maildrop lock of RFC 1939 §8: one POP3 session per maildrop, within this process.

A second login to a held maildrop is refused with ``-ERR [IN-USE]`` (RFC 2449 §8.1.1) instead of
both sessions working on one snapshot and deleting messages the other still numbers.
"""

from __future__ import annotations


class MaildropLocks:
    """Which maildrops (by canonical address) are held, and by which session. Reactor thread."""

    def __init__(self) -> None:
        self._held: dict[str, object] = {}

    def acquire(self, address: str, owner: object) -> bool:
        """Take the lock of ``address`` for ``owner``; False if another session holds it."""
        holder = self._held.setdefault(address, owner)
        return holder is owner

    def release(self, address: str, owner: object) -> None:
        """Give the lock back; only its owner can (a stale release is a no-op)."""
        if self._held.get(address) is owner:
            del self._held[address]

    def __contains__(self, address: str) -> bool:
        return address in self._held

    def __len__(self) -> int:
        return len(self._held)
