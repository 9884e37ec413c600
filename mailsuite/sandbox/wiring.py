"""Sandbox mode's objects, built once for mailsuite/service.py, whose hooks (each marked
"sandbox") are small: the portal, the SMTP context, the MX checks left off, the queue's agent."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.cred.portal import Portal
from twisted.logger import Logger
from zope.interface.interface import InterfaceClass

from mailsuite.accounts.cred import AvatarFactory
from mailsuite.config import Config
from mailsuite.sandbox.bounces import CaptureBounces
from mailsuite.sandbox.capture import CaptureMailbox
from mailsuite.sandbox.intake import CaptureWriter
from mailsuite.sandbox.login import make_sandbox_portal
from mailsuite.sandbox.relay import CaptureAgent
from mailsuite.sandbox.settings import capture_address
from mailsuite.sandbox.smtp import Observer, SandboxSMTP
from mailsuite.store.maildir import MaildirStore

log = Logger(namespace="mailsuite.sandbox")


class Sandbox:
    """Touches no disk when built (like MailSuite): the capture Maildir appears with the first
    message or the first IMAP/POP3 login."""

    def __init__(self, config: Config, store: MaildirStore) -> None:
        """ConfigError (naming sandbox.login) when the login cannot name a Maildir."""
        self.settings = config.sandbox
        self.address = capture_address(config.sandbox)
        self.mailbox = CaptureMailbox(store.maildir_path(self.address))
        self.writer = CaptureWriter(store, self.address, config.spool_dir)
        bounces = CaptureBounces(self.writer, self.mailbox, config.hostname, config.queue.lifetime)
        self.smtp = SandboxSMTP(self.address, bounces)
        log.warn(
            "sandbox mode: every accepted message is captured in {path} and none is delivered;"
            " read them as {login!r} over IMAP/POP3 or at /api/v1/sandbox/messages (http role)",
            path=str(self.mailbox.root),
            login=self.settings.login,
        )

    def portal(self, factories: Mapping[InterfaceClass, AvatarFactory]) -> Portal:
        return make_sandbox_portal(self.settings, self.address, factories)

    def watch(self, observers: list[Observer]) -> None:
        """Tell ``observers`` (the router's: IMAP IDLE) of what the sandbox captures itself."""
        self.smtp.observers = observers

    def queue_agent(self) -> CaptureAgent:
        """The queue scheduler's delivery agent in sandbox mode (relay.py)."""
        return CaptureAgent(self.writer, self.smtp.notify)
