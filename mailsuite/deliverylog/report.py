"""A pflogsumm-like summary of delivery-log records: what happened to mail over a window.

Counted per recipient domain: local deliveries (``message.accepted``'s mailboxes), relayed
recipients delivered, deferred (recipients with at least one deferral; ``deferrals`` counts the
attempts), bounced (refused for good) and expired (the queue gave up after its lifetime). The
reasons of bounces and deferrals are grouped by status and by the reply with what differs per
message (addresses, IP addresses, ids) masked, so one cause is one line. Senders are counted
from ``message.accepted``: per authenticated user and per envelope sender.

``domain`` narrows everything to recipients of that domain: a message counts when one of its
recipients is there, and only those recipients are counted.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from mailsuite.deliverylog.record import (
    ACCEPTED,
    ATTEMPT,
    DEFERRED,
    DELIVERED,
    EXPIRED,
    FAILED,
    NOTICE,
    REJECTED,
    domain_of,
)

TOP = 10
REPLY_WIDTH = 120
DOMAIN_COLUMNS = ("local", "delivered", "deferred", "bounced", "expired", "deferrals")

_CODES = re.compile(r"^\s*(\d{3}[ -])?\s*([245]\.\d{1,3}\.\d{1,3}\s+)?")
_ADDRESS = re.compile(r"<[^<>\s]*@[^<>\s]*>|[^\s<>()\[\]\"',;:]+@[\w.-]+")
_IP = re.compile(r"\[?\b\d{1,3}(?:\.\d{1,3}){3}\b\]?(?::\d+)?|\[[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\]")
_TOKEN = re.compile(r"\b(?=[\w-]*\d)[\w-]{10,}\b")


def normalise_reply(reply: str | None) -> str:
    """A reply with its codes cut and what names one message (addresses, IPs, ids) masked."""
    text = " ".join(str(reply or "").split())
    text = _CODES.sub("", text, count=1)
    text = _ADDRESS.sub("<address>", text)
    text = _IP.sub("[ip]", text)
    text = _TOKEN.sub("#", text)
    if len(text) > REPLY_WIDTH:
        text = text[: REPLY_WIDTH - 3] + "..."
    return text or "(no reply)"


def summarize(
    records: Iterable[dict[str, Any]], domain: str | None = None, top: int = TOP
) -> dict[str, Any]:
    """The report of ``records`` (in time order) as one JSON-ready object."""
    summary = _Summary(_domain_filter(domain), filtered=bool(domain))
    for record in records:
        summary.add(record)
    return summary.result(domain, top)


def _domain_filter(domain: str | None) -> Callable[[str], bool]:
    if not domain:
        return lambda address: True
    wanted = domain.strip().rstrip(".").lower()
    return lambda address: domain_of(address) == wanted


class _Summary:
    def __init__(self, wanted: Callable[[str], bool], filtered: bool) -> None:
        self.wanted = wanted
        self.filtered = filtered
        self.totals: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.notices: Counter[str] = Counter()
        self.domains: dict[str, Counter[str]] = defaultdict(Counter)
        self.deferred_once: set[tuple[str, str]] = set()
        self.bounces: Counter[tuple[str, str]] = Counter()
        self.deferrals: Counter[tuple[str, str]] = Counter()
        self.users: dict[str, Counter[str]] = defaultdict(Counter)
        self.senders: dict[str, Counter[str]] = defaultdict(Counter)
        # Queue entries with a failure / a deferral counted: whose notices count (with a domain).
        self.notice_due: dict[str, set[str]] = {"failed": set(), "delayed": set()}

    def add(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event == ACCEPTED:
            self._accepted(record)
        elif event == REJECTED:
            if any(self.wanted(a) for a in _strings(record.get("recipients"))):
                self.totals["rejected"] += 1
                self.rejected[f"{record.get('code')} {record.get('enhanced') or ''}".strip()] += 1
        elif event == ATTEMPT:
            self._attempt(record)
        elif event == NOTICE:
            action = str(record.get("action"))
            if not self.filtered or record.get("queue_id") in self.notice_due.get(action, ()):
                self.notices[action] += 1

    def _accepted(self, record: dict[str, Any]) -> None:
        recipients = [a for a in _strings(record.get("recipients")) if self.wanted(a)]
        local = [a for a in _strings(record.get("local")) if self.wanted(a)]
        if not recipients and not local:
            return
        size = record.get("size") if isinstance(record.get("size"), int) else 0
        self.totals["accepted"] += 1
        self.totals["recipients"] += len(recipients)
        self.totals["bytes"] += size
        self.totals["local"] += len(local)
        for mailbox in local:
            self.domains[domain_of(mailbox)]["local"] += 1
        rows = [self.senders[str(record.get("sender") or "<>")]]
        if record.get("user"):
            rows.append(self.users[str(record["user"])])
        for row in rows:
            row["messages"] += 1
            row["recipients"] += len(recipients)
            row["bytes"] += size

    def _attempt(self, record: dict[str, Any]) -> None:
        recipient = str(record.get("recipient") or "")
        if not self.wanted(recipient):
            return
        queue_id = str(record.get("queue_id") or "")
        row = self.domains[str(record.get("domain") or domain_of(recipient))]
        outcome = record.get("outcome")
        reason = (str(record.get("status") or "-"), normalise_reply(record.get("reply")))
        if outcome == DELIVERED:
            self._count(row, "delivered")
        elif outcome == DEFERRED:
            self._count(row, "deferrals")
            self.notice_due["delayed"].add(queue_id)
            self.deferrals[reason] += 1
            if (queue_id, recipient) not in self.deferred_once:
                self.deferred_once.add((queue_id, recipient))
                self._count(row, "deferred")
        elif outcome == FAILED:
            self._count(row, "bounced")
            self.bounces[reason] += 1
            self.notice_due["failed"].add(queue_id)
        elif outcome == EXPIRED:
            self._count(row, "expired")
            self.notice_due["failed"].add(queue_id)

    def _count(self, row: Counter[str], column: str) -> None:
        row[column] += 1
        self.totals[column] += 1

    def result(self, domain: str | None, top: int) -> dict[str, Any]:
        """Flat totals and domain -> counts (busiest first): what tables and pages show as is."""
        names = ("accepted", "recipients", "bytes", "local", *DOMAIN_COLUMNS[1:], "rejected")
        totals = {name: self.totals[name] for name in names}
        totals["notices_failed"] = self.notices["failed"]
        totals["notices_delayed"] = self.notices["delayed"]
        ranked = sorted(
            self.domains.items(),
            key=lambda item: (-sum(item[1][c] for c in DOMAIN_COLUMNS[:5]), item[0]),
        )
        return {
            "domain": domain,
            "totals": totals,
            "rejected_by_code": dict(self.rejected.most_common()),
            "domains": {name: {c: row[c] for c in DOMAIN_COLUMNS} for name, row in ranked},
            "bounce_reasons": _reasons(self.bounces, top),
            "deferral_reasons": _reasons(self.deferrals, top),
            "users": _ranking("user", self.users, None),  # all: a self-hosted server has few
            "senders": _ranking("sender", self.senders, top),
        }


def _reasons(counts: Counter[tuple[str, str]], top: int) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [{"count": n, "status": status, "reply": reply} for (status, reply), n in ranked]


def _ranking(key: str, rows: dict[str, Counter[str]], top: int | None) -> list[dict[str, Any]]:
    ranked = sorted(rows.items(), key=lambda item: (-item[1]["messages"], -item[1]["recipients"]))
    return [
        {key: name, "messages": c["messages"], "recipients": c["recipients"], "bytes": c["bytes"]}
        for name, c in ranked[:top]
    ]


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
