"""The delivery agent: one message to the recipients of one destination, host after host.

Resolution runs in a worker thread; then each hop (MX host address, in order) gets a connection
and a ``ClientSession`` until one gives a result per recipient. A host that cannot be reached or
fails before the transaction (greeting, EHLO, TLS, AUTH, 4xx to MAIL) passes the turn to the next
host, and when all of them failed temporarily the fallback relay, if any, gets the message.
An opportunistic STARTTLS whose handshake fails is retried on the same host in plaintext; a
destination that requires TLS is deferred instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger

from mailsuite.queue.client import (
    ClientSession,
    SessionError,
    SessionRequest,
    SMTPClientProtocol,
    Timeouts,
    TLSFailed,
)
from mailsuite.queue.entry import DEFERRED, FAILED, Outcome
from mailsuite.queue.message import MessageInfo
from mailsuite.queue.routing import Destination, DNSResolver, Hop, RouteError, RoutingTable

log = Logger(namespace="mailsuite.queue")


@dataclass
class Attempt:
    """What one delivery job is doing right now, so that it can be stopped from outside."""

    aborted: bool = False
    protocol: SMTPClientProtocol | None = None
    connecting: Deferred | None = None
    closing: Deferred | None = None  # the last connection's QUIT; fires when it is closed

    def abort(self) -> None:
        self.aborted = True
        if self.connecting is not None:
            self.connecting.cancel()
        if self.protocol is not None:
            self.protocol.abort()


@dataclass(frozen=True)
class DeliveryRequest:
    sender: str
    recipients: tuple[str, ...]
    destination: Destination
    message: MessageInfo


@dataclass
class _HostFailure:
    outcome: Outcome
    permanent: bool


class DeliveryAgent:
    """Delivers ``DeliveryRequest``s; returns one Outcome per recipient, never raises."""

    def __init__(
        self,
        routing: RoutingTable,
        resolver: DNSResolver,
        timeouts: Timeouts,
        helo_name: str,
        reactor: Any = None,
        resolve: Callable[[Callable, Any], Deferred] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.routing = routing
        self.resolver = resolver
        self.timeouts = timeouts
        self.helo_name = helo_name
        self._reactor = reactor
        self._in_thread = resolve or threads.deferToThread
        self._tls_cache: dict[tuple[str, bool, str], Any] = {}

    async def deliver(self, request: DeliveryRequest, attempt: Attempt) -> dict[str, Outcome]:
        result = await self._deliver_to(request.destination, request, attempt)
        if isinstance(result, dict):
            return result
        fallback = self.routing.fallback_for(request.destination)
        if fallback is not None and not result.permanent and not attempt.aborted:
            log.info(
                "{destination}: all hosts failed ({error}); trying the fallback relay {relay}",
                destination=request.destination.name,
                error=result.outcome.response,
                relay=fallback.key,
            )
            second = await self._deliver_to(fallback, request, attempt)
            if isinstance(second, dict):
                return second
        return {address: result.outcome for address in request.recipients}

    async def _deliver_to(
        self, destination: Destination, request: DeliveryRequest, attempt: Attempt
    ) -> dict[str, Outcome] | _HostFailure:
        try:
            hops = await self._in_thread(self.resolver.hops, destination)
        except RouteError as exc:
            state = FAILED if exc.permanent else DEFERRED
            return _HostFailure(Outcome(state, exc.status, exc.text, stage="DNS"), exc.permanent)
        failures: list[tuple[Hop, SessionError]] = []
        for hop in hops:
            if attempt.aborted:
                break
            try:
                return await self._try_hop(hop, destination, request, attempt)
            except SessionError as exc:
                log.info("{hop}: {error}", hop=str(hop), error=exc.text)
                failures.append((hop, exc))
        if not failures:
            return _HostFailure(Outcome(DEFERRED, "4.4.2", "delivery interrupted"), False)
        hop, last = failures[-1]
        # Bounce only when every host refused us for good (5xx greetings, say).
        permanent = all(exc.permanent for _, exc in failures)
        outcome = Outcome(
            FAILED if permanent else DEFERRED,
            last.status if permanent or last.status.startswith("4") else "4" + last.status[1:],
            last.text,
            smtp_reply=last.reply is not None,
            remote_mta=hop.name,
            remote_ip=hop.address,
            stage=last.stage,
        )
        return _HostFailure(outcome, permanent)

    async def _try_hop(
        self,
        hop: Hop,
        destination: Destination,
        request: DeliveryRequest,
        attempt: Attempt,
        starttls: bool = True,
    ) -> dict[str, Outcome]:
        protocol = await self._connect(hop, attempt)
        session = ClientSession(
            protocol,
            hop,
            SessionRequest(
                helo_name=self.helo_name,
                sender=request.sender,
                recipients=request.recipients,
                message=request.message,
                timeouts=self.timeouts,
                starttls=starttls,
                require_tls=destination.require_tls,
                tls_options=lambda: self._tls_options(destination, hop),
                credentials=destination.credentials,
            ),
        )
        attempt.protocol = protocol
        try:
            outcomes = await session.run()
        except TLSFailed as exc:
            protocol.abort()
            if destination.require_tls or not starttls or attempt.aborted:
                raise
            log.info("{hop}: {error}; retrying without TLS", hop=str(hop), error=exc.text)
            return await self._try_hop(hop, destination, request, attempt, starttls=False)
        except SessionError:
            attempt.closing = protocol.quit(self.timeouts.command)
            raise
        finally:
            attempt.protocol = None
        attempt.closing = protocol.quit(self.timeouts.command)
        return outcomes

    async def _connect(self, hop: Hop, attempt: Attempt) -> SMTPClientProtocol:
        if isinstance(ipaddress.ip_address(hop.address), ipaddress.IPv6Address):
            endpoint_class = TCP6ClientEndpoint
        else:
            endpoint_class = TCP4ClientEndpoint
        endpoint = endpoint_class(
            self._reactor, hop.address, hop.port, timeout=self.timeouts.connect
        )
        protocol = SMTPClientProtocol(self._reactor)
        attempt.connecting = connectProtocol(endpoint, protocol)
        try:
            await attempt.connecting
        except CancelledError:
            raise SessionError(f"connect to {hop}: cancelled", "4.4.1", stage="connect") from None
        except Exception as exc:
            text = str(exc).strip().rstrip(".") or type(exc).__name__
            raise SessionError(f"connect to {hop}: {text}", "4.4.1", stage="connect") from None
        finally:
            attempt.connecting = None
        return protocol

    def _tls_options(self, destination: Destination, hop: Hop) -> Any:
        """Client TLS options: verified for destinations that ask for it, opportunistic else."""
        ca_file = str(destination.ca_file or "")
        key = (destination.name if destination.verify_tls else "", destination.verify_tls, ca_file)
        options = self._tls_cache.get(key)
        if options is None:
            if destination.verify_tls:
                if destination.ca_file is not None:
                    trust = trustRootFromCertificates(_load_certificates(destination.ca_file))
                else:
                    trust = platformTrust()
                options = optionsForClientTLS(
                    destination.name,
                    trustRoot=trust,
                    extraCertificateOptions={"raiseMinimumTo": TLSVersion.TLSv1_2},
                )
            else:
                # Opportunistic TLS (RFC 3207 §4.1 / RFC 7435): encrypt, do not authenticate.
                options = CertificateOptions(raiseMinimumTo=TLSVersion.TLSv1_2)
            self._tls_cache[key] = options
        return options


def _load_certificates(path: Any) -> list[Certificate]:
    text = open(path, "rb").read()  # noqa: SIM115 - a small file, read once per destination
    marker = b"-----END CERTIFICATE-----"
    blocks = [block + marker for block in text.split(marker) if b"-----BEGIN" in block]
    return [Certificate.loadPEM(block) for block in blocks]
