"""The checks of a message arriving on the MX, and what follows from them.

``envelope()`` (SPF of HELO and MAIL FROM, iprev) needs only the SMTP dialog, so the server starts
it when DATA begins and the lookups overlap the transfer of the body; ``message()`` adds DKIM,
ARC and DMARC once the message is in, and returns the Verdict: the Authentication-Results header
and the action the ``[verify]`` policy gives. Both block (DNS, RSA): run them in threads.

A DNS temporary error never becomes a permanent refusal: where the answer would have been a
reject, it is a 451 and the sender tries again.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from mailsuite.authn import dmarc, iprev, results, spf
from mailsuite.authn.dkimcheck import DKIMCheck, verify_arc, verify_signatures
from mailsuite.authn.fromfield import from_domains
from mailsuite.resolver import Resolver

ACCEPT, JUNK, REJECT, TEMPFAIL = "accept", "junk", "reject", "tempfail"

# How long a result of the checks is reused for the same inputs: a busy sender's next message
# costs a dictionary lookup, not an SPF evaluation. Short, so that a changed DNS record is seen
# about as soon as the resolver's own cache lets it be.
RESULT_MEMO_SECONDS = 30.0
_FROM_FIELD = re.compile(rb"^from[ \t]*:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", re.I | re.M)
RESULT_MEMO_SIZE = 10_000


class _Memo:
    """A small thread-safe map whose entries expire; cleared wholesale when full."""

    def __init__(self) -> None:
        self._entries: dict = {}
        self._lock = threading.Lock()

    def get(self, key):
        entry = self._entries.get(key)
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            if len(self._entries) >= RESULT_MEMO_SIZE:
                self._entries.clear()
            self._entries[key] = (value, time.monotonic() + RESULT_MEMO_SECONDS)

@dataclass(frozen=True)
class EnvelopeChecks:
    helo: spf.SPFResult
    mail_from: spf.SPFResult
    iprev: iprev.IprevResult | None


@dataclass(frozen=True)
class Verdict:
    header: bytes  # the Authentication-Results field, CRLF-terminated
    action: str  # accept | junk | reject | tempfail
    code: int  # the SMTP reply for reject/tempfail (550, 451), 250 otherwise
    enhanced: str
    reason: str  # reply text for a refusal; a short summary otherwise
    summary: str  # "spf=pass dkim=pass dmarc=pass" for the log line
    authentic: bool = False  # DMARC passed for every From: domain (there was at least one)


class InboundChecks:
    """SPF, DKIM, ARC, DMARC and iprev for the MX, with the ``[verify]`` policy applied."""

    def __init__(self, resolver: Resolver, authserv_id: str, policy) -> None:
        """``policy``: the config's ``verify`` section (on_dmarc_reject, ..., iprev)."""
        self.resolver = resolver
        self.authserv_id = authserv_id
        self.policy = policy
        self._envelopes = _Memo()  # (ip, helo, mail from) -> EnvelopeChecks
        self._passes = _Memo()  # DMARC passes: (domain, spf, dkim results) -> DMARCResult
        self._verdicts = _Memo()  # quick(): (envelope inputs, From: fields) -> Verdict

    def known_envelope(self, ip: str, helo: str, mail_from: str) -> EnvelopeChecks | None:
        """The envelope checks of these inputs, if done in the last seconds (no I/O: reactor)."""
        return self._envelopes.get((ip, helo.lower(), mail_from.lower()))

    def envelope(self, ip: str, helo: str, mail_from: str) -> EnvelopeChecks:
        checks = self._envelope(ip, helo, mail_from)
        if "temperror" not in (checks.helo.result, checks.mail_from.result):
            self._envelopes.put((ip, helo.lower(), mail_from.lower()), checks)
        return checks

    def _envelope(self, ip: str, helo: str, mail_from: str) -> EnvelopeChecks:
        helo_result = spf.check_helo(self.resolver, ip, helo)
        if mail_from:
            mail_result = spf.check_mail_from(self.resolver, ip, mail_from, helo)
        else:
            mail_result = helo_result  # RFC 7208 §2.4: a null sender is checked as its HELO
        reverse = iprev.check_iprev(self.resolver, ip) if self.policy.iprev else None
        return EnvelopeChecks(helo_result, mail_result, reverse)

    def quick(
        self, envelope: EnvelopeChecks, header_block: bytes, mail_from: str, ip: str
    ) -> Verdict | None:
        """The verdict without any I/O, when it needs none: no DKIM signature or ARC set to
        verify, and each From: domain's DMARC pass known from the last seconds (the common case
        of a steady sender); None otherwise (then ``message`` in a thread). Reactor-safe."""
        lowered = header_block.lower()
        if b"dkim-signature" in lowered or b"arc-seal" in lowered:
            return None
        key = (ip, envelope, mail_from, tuple(_FROM_FIELD.findall(header_block)))
        known = self._verdicts.get(key)
        if known is not None:
            return known
        spf_key = (envelope.mail_from.result, envelope.mail_from.domain)
        evaluations = []
        for domain in from_domains(header_block):
            known = self._passes.get((domain, spf_key, ()))
            if known is None:
                return None
            evaluations.append(known)
        if not evaluations:
            return None
        verdict = self._verdict(envelope, [], "none", evaluations, mail_from, ip)
        self._verdicts.put(key, verdict)
        return verdict

    def message(
        self, envelope: EnvelopeChecks, message: bytes, header_block: bytes, mail_from: str, ip: str
    ) -> Verdict:
        signatures = verify_signatures(self.resolver, message)
        arc = verify_arc(self.resolver, message)
        spf_key = (envelope.mail_from.result, envelope.mail_from.domain)
        dkim_key = tuple((s.result, s.domain) for s in signatures)
        evaluations = []
        for domain in from_domains(header_block):
            evaluation = dmarc.evaluate(self.resolver, domain, spf_key, list(dkim_key))
            if evaluation.result == "pass":  # a pass does not depend on pct sampling
                self._passes.put((domain, spf_key, dkim_key), evaluation)
            evaluations.append(evaluation)
        return self._verdict(envelope, signatures, arc, evaluations, mail_from, ip)

    def _verdict(self, envelope, signatures, arc, evaluations, mail_from, ip) -> Verdict:
        lines = self._result_lines(envelope, signatures, arc, evaluations, mail_from, ip)
        header = results.header(self.authserv_id, lines)
        summary = " ".join(line.split(" ", 1)[0] for line in lines)
        action, code, enhanced, reason = self._decide(envelope, signatures, evaluations)
        authentic = bool(evaluations) and all(e.result == "pass" for e in evaluations)
        return Verdict(header, action, code, enhanced, reason or summary, summary, authentic)

    # --- the header ---------------------------------------------------------------------------

    def _result_lines(self, envelope, signatures, arc, evaluations, mail_from, ip) -> list[str]:
        lines = []
        if envelope.iprev is not None:
            name = envelope.iprev.hostname
            lines.append(
                f"iprev={envelope.iprev.result} policy.iprev={ip}" + (f" ({name})" if name else "")
            )
        mail = envelope.mail_from
        if mail_from:
            lines.append(
                f"spf={mail.result}{results.comment(mail.explanation)}"
                f" smtp.mailfrom={results.pvalue(mail_from)}"
            )
        helo = envelope.helo
        lines.append(
            f"spf={helo.result}{results.comment(helo.explanation)}"
            f" smtp.helo={results.pvalue(helo.domain or 'unknown')}"
        )
        if not signatures:
            lines.append("dkim=none")
        for check in signatures:
            lines.append(self._dkim_line(check))
        for evaluation in evaluations:
            detail = f"p={evaluation.policy} dis={evaluation.disposition}"
            if evaluation.result != "pass" and evaluation.reason:
                detail += f"; {evaluation.reason}"
            lines.append(
                f"dmarc={evaluation.result}{results.comment(detail)}"
                f" header.from={results.pvalue(evaluation.header_from)}"
            )
        if not evaluations:
            lines.append("dmarc=none (no From: domain)")
        if arc != "none":
            lines.append(f"arc={arc}")
        return lines

    @staticmethod
    def _dkim_line(check: DKIMCheck) -> str:
        line = f"dkim={check.result}{results.comment(check.reason)}"
        if check.domain:
            line += f" header.d={results.pvalue(check.domain)}"
        if check.selector:
            line += f" header.s={results.pvalue(check.selector)}"
        if check.algorithm:
            line += f" header.a={results.pvalue(check.algorithm)}"
        if check.b:
            line += f" header.b={results.pvalue(check.b)}"
        return line

    # --- the policy ---------------------------------------------------------------------------

    def _decide(self, envelope, signatures, evaluations) -> tuple[str, int, str, str]:
        """(action, code, enhanced code, reply text): the strictest of the DMARC and SPF rules."""
        temporary = envelope.mail_from.result == "temperror" or any(
            s.result == "temperror" for s in signatures
        )
        actions = []
        for evaluation in evaluations:
            if evaluation.result == "fail" and evaluation.disposition in ("reject", "quarantine"):
                if evaluation.disposition == "reject":
                    action = self.policy.on_dmarc_reject
                else:
                    action = self.policy.on_dmarc_quarantine
                text = (
                    f"DMARC policy of {evaluation.record_domain or evaluation.header_from} "
                    f"({evaluation.disposition}): {evaluation.reason or 'not authenticated'}"
                )
                if action == REJECT and temporary:
                    text = f"{text}; a DNS lookup failed, try again later"
                    actions.append((TEMPFAIL, 451, "4.7.1", text))
                else:
                    actions.append((action, 550, "5.7.1", text))
            elif evaluation.result == "temperror" and evaluation.policy == "reject":
                domain = evaluation.header_from
                text = f"DMARC check of {domain} failed temporarily, try again later"
                actions.append((TEMPFAIL, 451, "4.7.1", text))
        if envelope.mail_from.result == "fail" and self.policy.on_spf_fail != ACCEPT:
            text = f"SPF of {envelope.mail_from.domain} does not permit this host"
            actions.append((self.policy.on_spf_fail, 550, "5.7.23", text))
        for wanted in (REJECT, TEMPFAIL, JUNK):
            for action, code, enhanced, text in actions:
                if action == wanted:
                    return action, code if action != JUNK else 250, enhanced, text
        return ACCEPT, 250, "2.0.0", ""
