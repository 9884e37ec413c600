"""The MTA-STS policy (RFC 8461): ``https://mta-sts.D/.well-known/mta-sts.txt`` for a local D.

Sending servers fetch it to learn that mail for D must go over verified TLS to the listed MX.
RFC 8461 §3.3 requires the policy to come over HTTPS with a certificate valid for
``mta-sts.D``, so it is served on the https role only (plain http answers 404: a policy fetched
in the clear would be worthless and is not what the RFC's senders ask). The one MX is this
server's public hostname; mode and max_age come from ``[mta_sts]`` (mode "none" is how a
domain withdraws a policy, so it is served too).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from mailsuite.config import Config
from mailsuite.mta_sts import policy_text
from mailsuite.web.domains import LocalDomains, host_below, normalized
from mailsuite.web.reply import NOT_FOUND, Reply

PATH = b"/.well-known/mta-sts.txt"


class MTASTSPolicy:
    def __init__(self, config: Config, domains: LocalDomains) -> None:
        mx = normalized(config.public_hostname) or config.public_hostname  # A-labels
        self.policy = policy_text(config.mta_sts.mode, mx, config.mta_sts.max_age).encode()
        self.domains = domains

    def get(self, request: Request) -> Reply | Deferred[Reply]:
        domain = host_below(request, "mta-sts")
        if not request.isSecure() or domain is None:
            return NOT_FOUND
        return self.domains.is_local(domain).addCallback(self._answer)

    def _answer(self, local: bool) -> Reply:
        return Reply(200, self.policy, b"text/plain") if local else NOT_FOUND
