"""The one factory every listener uses: a protocol class plus the arguments of each session."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol, ServerFactory


class SessionFactory(ServerFactory):
    """Builds ``protocol(*args)`` for each connection. Quiet: the listener logs its own line."""

    noisy = False

    def __init__(self, protocol: type[Protocol], *args: Any) -> None:
        self.protocol = protocol
        self.args = args

    def buildProtocol(self, addr: Any) -> Protocol:
        session = self.protocol(*self.args)
        session.factory = self
        return session
