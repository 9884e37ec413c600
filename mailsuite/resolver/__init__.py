"""The server's one DNS resolver: dnspython underneath, one TTL cache for every lookup.

The queue's MX lookups and the mail-authentication checks (SPF, DKIM, DMARC, iprev) all ask
through one ``Resolver``, so a domain looked up by SPF is not asked again by DMARC or by the
relay, and positive and negative answers (NXDOMAIN, no data) are kept for their TTL. The lookups
block: call ``query`` in a worker thread (``lookup`` does that from the reactor).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from twisted.internet import threads
from twisted.internet.defer import Deferred

from mailsuite.events import NO_EVENTS, Events

# Cached (name, type) answers, at most (positive and negative, each kept for its TTL).
DEFAULT_CACHE_SIZE = 50_000
# A negative answer (NXDOMAIN, no data) is remembered this long in front of dnspython's cache.
NEGATIVE_MEMO_SECONDS = 30.0


class DNSTemporaryError(Exception):
    """The answer is unknown for now (SERVFAIL, timeout, refused): try again later."""


@dataclass(frozen=True)
class Answer:
    """What DNS says about (name, type): records, or none (``nxdomain`` when the name is absent).

    CNAMEs are followed; ``records`` are dnspython rdata objects of the asked type.
    """

    name: str
    rdtype: str
    records: tuple = ()
    nxdomain: bool = False

    @property
    def texts(self) -> list[bytes]:
        """TXT records, character-strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        return [b"".join(record.strings) for record in self.records if hasattr(record, "strings")]

    @property
    def addresses(self) -> list[str]:
        return [record.address for record in self.records if hasattr(record, "address")]

    @property
    def void(self) -> bool:
        """No usable answer: NXDOMAIN or no data (an SPF "void lookup", RFC 7208 §4.6.4)."""
        return not self.records


class Resolver:
    """Blocking, thread-safe lookups through dnspython with one shared LRU/TTL cache."""

    def __init__(
        self,
        nameservers: tuple[str, ...] = (),
        port: int = 53,
        timeout: float = 10.0,
        cache_size: int = DEFAULT_CACHE_SIZE,
        events: Events = NO_EVENTS,
    ) -> None:
        self.events = events  # told of each lookup that leaves the cache (mailsuite/events.py)
        self.nameservers = tuple(nameservers)
        self.port = port
        self.timeout = timeout
        if self.nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = list(self.nameservers)
        else:
            resolver = dns.resolver.Resolver()
        resolver.port = port
        resolver.timeout = timeout
        resolver.lifetime = timeout
        resolver.cache = dns.resolver.LRUCache(cache_size)
        self._resolver = resolver
        # (name, type) -> (Answer, monotonic expiry): in front of dnspython's own cache, whose
        # lookup (name parsing, query set-up) costs ~100 µs; a hit here costs a dict lookup,
        # which matters when every MX message asks the same six names.
        self._memo: dict[tuple[str, str], tuple[Answer, float]] = {}
        self._memo_size = cache_size
        self._memo_lock = threading.Lock()

    @classmethod
    def from_config(cls, config, events: Events = NO_EVENTS) -> Resolver:
        """From the ``[dns]`` section: nameservers (else /etc/resolv.conf), port, timeout."""
        return cls(config.dns.nameservers, config.dns.port, config.dns.timeout, events=events)

    def query(self, name: str | dns.name.Name, rdtype: str) -> Answer:
        """The answer for (name, rdtype); DNSTemporaryError when DNS cannot say (blocks)."""
        text = name if isinstance(name, str) else name.to_text(omit_final_dot=True)
        text = text.rstrip(".").lower()
        key = (text, rdtype)
        memo = self._memo.get(key)
        now = time.monotonic()
        if memo is not None and memo[1] > now:
            return memo[0]
        try:
            answer, ttl = self._ask(text, rdtype)
        except DNSTemporaryError:
            self._told(text, rdtype, now, "error")
            raise
        outcome = "nxdomain" if answer.nxdomain else "nodata" if answer.void else "answer"
        self._told(text, rdtype, now, outcome)
        with self._memo_lock:
            if len(self._memo) >= self._memo_size:
                self._memo.clear()  # crude bound; refilling costs one dnspython lookup a name
            self._memo[key] = (answer, now + ttl)
        return answer

    def _told(self, name: str, rdtype: str, started: float, outcome: str) -> None:
        if self.events.active:
            seconds = time.monotonic() - started
            self.events.emit("dns.query", name=name, type=rdtype, seconds=seconds, outcome=outcome)

    def _ask(self, text: str, rdtype: str) -> tuple[Answer, float]:
        """dnspython's answer (from its cache or the network) and how long it stays valid."""
        try:
            answer = self._resolver.resolve(text + ".", rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(text, rdtype, (), nxdomain=True), NEGATIVE_MEMO_SECONDS
        except dns.resolver.NoAnswer:
            return Answer(text, rdtype), NEGATIVE_MEMO_SECONDS
        except dns.resolver.YXDOMAIN:
            return Answer(text, rdtype, (), nxdomain=True), NEGATIVE_MEMO_SECONDS
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong):
            # Not a name DNS can hold.
            return Answer(text, rdtype, (), nxdomain=True), NEGATIVE_MEMO_SECONDS
        except dns.exception.DNSException as exc:
            raise DNSTemporaryError(f"DNS lookup of {text} {rdtype} failed: {exc}") from None
        expected = dns.rdatatype.from_text(rdtype)
        ttl = max(0.0, answer.expiration - time.time())
        return Answer(text, rdtype, tuple(r for r in answer if r.rdtype == expected)), ttl

    def lookup(self, name: str, rdtype: str) -> Deferred:
        """Deferred[Answer]: ``query`` in the reactor's thread pool (for reactor-side callers)."""
        return threads.deferToThread(self.query, name, rdtype)

    def flush(self) -> None:
        """Forget every cached answer (tests that change a zone between lookups)."""
        with self._memo_lock:
            self._memo.clear()
        self._resolver.cache.flush()
