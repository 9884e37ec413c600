"""The checks of a message arriving on the MX, and what follows from them.

``envelope()`` (SPF of HELO and MAIL FROM, iprev) needs only the SMTP dialog, so the server starts
it when DATA begins and the lookups overlap the transfer of the body; ``message()`` adds DKIM,
ARC and DMARC once the message is in, and returns the Verdict: the Authentication-Results header
and the action the ``[verify]`` policy gives. Both block (DNS, RSA): run them in threads.

A DNS temporary error never becomes a permanent refusal: where the answer would have been a
reject, it is a 451 and the sender tries again.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsuite.authn import dmarc, iprev, results, spf
from mailsuite.authn.dkimcheck import DKIMCheck, verify_arc, verify_signatures
from mailsuite.authn.fromfield import from_domains
from mailsuite.resolver import Resolver

ACCEPT, JUNK, REJECT, TEMPFAIL = "accept", "junk", "reject", "tempfail"

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


class InboundChecks:
    """SPF, DKIM, ARC, DMARC and iprev for the MX, with the ``[verify]`` policy applied."""

    def __init__(self, resolver: Resolver, authserv_id: str, policy) -> None:
        """``policy``: the config's ``verify`` section (on_dmarc_reject, ..., iprev)."""
        self.resolver = resolver
        self.authserv_id = authserv_id
        self.policy = policy

    def envelope(self, ip: str, helo: str, mail_from: str) -> EnvelopeChecks:
        helo_result = spf.check_helo(self.resolver, ip, helo)
        if mail_from:
            mail_result = spf.check_mail_from(self.resolver, ip, mail_from, helo)
        else:
            mail_result = helo_result  # RFC 7208 §2.4: a null sender is checked as its HELO
        reverse = iprev.check_iprev(self.resolver, ip) if self.policy.iprev else None
        return EnvelopeChecks(helo_result, mail_result, reverse)

    def message(
        self, envelope: EnvelopeChecks, message: bytes, header_block: bytes, mail_from: str, ip: str
    ) -> Verdict:
        signatures = verify_signatures(self.resolver, message)
        arc = verify_arc(self.resolver, message)
        spf_result = envelope.mail_from
        evaluations = [
            dmarc.evaluate(
                self.resolver,
                domain,
                (spf_result.result, spf_result.domain),
                [(s.result, s.domain) for s in signatures],
            )
            for domain in from_domains(header_block)
        ]
        lines = self._result_lines(envelope, signatures, arc, evaluations, mail_from, ip)
        header = results.header(self.authserv_id, lines)
        summary = " ".join(line.split(" ", 1)[0] for line in lines)
        action, code, enhanced, reason = self._decide(envelope, signatures, evaluations)
        return Verdict(header, action, code, enhanced, reason or summary, summary)

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
