"""Webhooks in the running server: the hub's listener, the outbox, the dispatcher.

Started, it subscribes the collector to the event hub and hands the dispatcher every call the
outbox kept from before (a restart loses none); stopped, it unsubscribes and stops dispatching,
leaving what is left in the outbox.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import threads
from twisted.logger import Logger

from mailsuite.config import Config
from mailsuite.events import Events
from mailsuite.webhooks.backoff import Backoff
from mailsuite.webhooks.collector import WebhookCollector
from mailsuite.webhooks.directory import HookDirectory
from mailsuite.webhooks.dispatcher import WebhookDispatcher
from mailsuite.webhooks.outbox import Outbox

log = Logger(namespace="mailsuite.webhooks")


class WebhookService(Service):
    name = "webhooks"

    def __init__(
        self, config: Config, database: Any, events: Events, backoff: Backoff | None = None
    ) -> None:
        """``backoff``: the retry schedule (default: from ``[webhooks]``)."""
        self.events = events
        self.outbox = Outbox(config.webhooks_dir / "outbox")
        hooks = HookDirectory(database)
        self.dispatcher = WebhookDispatcher(
            self.outbox, hooks, backoff or Backoff.from_config(config), config.webhooks.timeout
        )
        self.collector = WebhookCollector(database, hooks, self.outbox, self.dispatcher.add)

    def startService(self) -> None:
        super().startService()
        self.dispatcher.start()
        self.events.subscribe(self.collector)
        d = threads.deferToThread(self.outbox.scan)
        d.addCallback(self._resume)
        d.addErrback(lambda failure: log.failure("reading the webhook outbox failed", failure))

    def _resume(self, items: list) -> None:
        if items:
            log.info("{count} webhook calls waiting in the outbox", count=len(items))
        self.dispatcher.add(items)

    def stopService(self) -> None:
        self.events.unsubscribe(self.collector)
        self.dispatcher.stop()
        return super().stopService()
