"""SPF (RFC 7208) for mail arriving on the MX: pyspf evaluates, our one Resolver asks DNS.

pyspf is the SPF engine; this module is glue. pyspf looks up DNS through its module-level
``spf.DNSLookup``: we install one replacement, once, that sends each lookup through the
``Resolver`` of the check running in the current thread (a ContextVar set around each check), so
lookups share the server's TTL cache and two servers with two resolvers in one process do not
mix. Outside our checks (no resolver set) it falls back to pyspf's own lookup, unchanged.

Everything here blocks: call it from a worker thread, never the reactor.
"""

from __future__ import annotations

import ipaddress
import re
from contextvars import ContextVar
from dataclasses import dataclass

import dns.name
import idna
import spf
from twisted.logger import Logger

from mailsuite.resolver import DNSTemporaryError, Resolver

log = Logger(namespace="mailsuite.authn.spf")

RESULTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"})

# RFC 7208 §4.6.4 allows a bound on a whole check's time of at least 20 s: past it, temperror.
# (pyspf stops starting lookups once the budget is spent; one lookup is bounded by the Resolver.)
CHECK_TIME_LIMIT = 20

# Explanations come from pyspf or from the checked domain's exp= TXT (attacker-controlled text):
# kept to printable ASCII without comment delimiters, and short, for one header comment line.
EXPLANATION_MAX = 200
_UNSAFE = re.compile(r"[^\x20-\x7e]+")
_COMMENT_DELIMITERS = str.maketrans({"(": "[", ")": "]", "\\": "/"})


@dataclass(frozen=True)
class SPFResult:
    """The outcome of one SPF check, what Authentication-Results and Received-SPF report."""

    result: str  # "pass" | "fail" | "softfail" | "neutral" | "none" | "temperror" | "permerror"
    domain: str  # the domain whose policy was checked (MAIL FROM domain, or the HELO name)
    identity: str  # "mailfrom" or "helo"
    explanation: str  # short reason text (pyspf's), safe for one header comment line


_current_resolver: ContextVar[Resolver | None] = ContextVar("mailsuite_spf_resolver", default=None)


def _dns_lookup(name: str, qtype: str, strict=True, timeout=None) -> list:
    """pyspf's DNSLookup contract: [((name, qtype), value), ...], spf.TempError on DNS failure.

    Values are shaped as pyspf's own dnspython driver makes them. Our Resolver follows CNAMEs,
    so answers come keyed by the asked name and pyspf never needs the CNAME records themselves.
    """
    resolver = _current_resolver.get()
    if resolver is None:  # a pyspf query that is not ours: pyspf's behaviour, untouched
        return _PYSPF_LOOKUP(name, qtype, strict, timeout)
    if not name.isascii():
        return []  # no DNS name as given (e.g. a macro-expanded UTF-8 local part): void
    try:
        answer = resolver.query(name, qtype)
    except DNSTemporaryError as exc:
        raise spf.TempError(str(exc)) from None
    values: list = []
    for record in answer.records:
        if qtype in ("A", "AAAA"):
            values.append(record.address)
        elif qtype == "MX":
            values.append((record.preference, _host(record.exchange)))
        elif qtype in ("PTR", "CNAME"):
            values.append(_host(record.target))
        elif qtype in ("TXT", "SPF"):
            values.append(tuple(record.strings))
    return [((name, qtype), value) for value in values]


def _host(name: dns.name.Name) -> str:
    """A dnspython name as pyspf wants it: no final dot; the root (null MX) as ''."""
    return name.to_text(omit_final_dot=True).rstrip(".")


# Installed once, at import; a re-import keeps pyspf's original as the fallback.
_PYSPF_LOOKUP = getattr(spf.DNSLookup, "pyspf_original", spf.DNSLookup)
_dns_lookup.pyspf_original = _PYSPF_LOOKUP  # type: ignore[attr-defined]
spf.DNSLookup = _dns_lookup


class _Query(spf.query):
    """pyspf's query, with one RFC 7208 rule it lacks."""

    def validated_ptrs(self) -> list[str]:
        """§5.5: the names of the client's PTR records (at most 10) whose addresses include it.

        "If a DNS error occurs while doing the PTR RR lookup, then this mechanism fails to match.
        If a DNS error occurs while doing an A RR lookup, then that domain name is skipped and the
        search continues." pyspf makes either error temperror for the whole check instead.
        """
        try:
            ptr_names = self.dns_ptr(self.i)[: spf.MAX_PTR]
        except spf.TempError:
            return []
        names = []
        for name in ptr_names:
            try:
                addresses = self.dns_a(name, self.A)
            except spf.TempError:
                continue
            if self.cidrmatch(addresses, self.cidrmax):
                names.append(name)
        return names


def check_helo(resolver: Resolver, ip: str, helo: str) -> SPFResult:
    """RFC 7208 §2.3: the HELO identity, checked as postmaster@<helo>.

    Only a fully qualified domain name can be checked: an address literal or a bare word (or
    anything malformed) gives "none" without asking DNS.
    """
    domain = _domain(helo)
    if domain is None:
        return SPFResult("none", helo.lower(), "helo", "HELO name is not a domain")
    return _check(resolver, ip, "postmaster", domain, domain, "helo")


def check_mail_from(resolver: Resolver, ip: str, mail_from: str, helo: str) -> SPFResult:
    """RFC 7208 §2.4: the MAIL FROM identity; the null reverse-path <> is checked as the HELO.

    ``mail_from`` is the reverse-path address, with or without its angle brackets. A missing
    local part is "postmaster" (§4.3); a domain that is malformed, single-label or an address
    literal gives "none" (§4.3) without asking DNS. A malformed ``ip`` raises ValueError (it
    comes from our socket: a bug, not the peer's doing).
    """
    address = mail_from.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if not address:
        return check_helo(resolver, ip, helo)
    local, at, rest = address.rpartition("@")  # the domain follows the last @ (quoted locals)
    local = local if at else ""
    domain = _domain(rest)
    if domain is None:
        return SPFResult("none", rest.lower(), "mailfrom", "MAIL FROM domain is not a domain")
    helo_domain = _domain(helo) or helo.lower()
    return _check(resolver, ip, local or "postmaster", domain, helo_domain, "mailfrom")


def _domain(text: str) -> str | None:
    """The lower-case FQDN that ``text`` names (A-labels, RFC 8616 §4), or None (RFC 7208 §4.3
    "malformed": empty or over-long labels, a single label, an address literal)."""
    name = text.strip().lower()
    name = name[:-1] if name.endswith(".") else name
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return None
    labels = name.split(".")
    if name.startswith("[") or len(labels) < 2 or len(name) > 253:
        return None
    if any(not 0 < len(label) <= 63 for label in labels) or labels[-1].isdigit():
        return None
    return name


def _check(
    resolver: Resolver, ip: str, local: str, domain: str, helo: str, identity: str
) -> SPFResult:
    """One pyspf check_host() of <local>@<domain> from ``ip``, DNS through ``resolver``.

    strict=True keeps RFC 7208's limits as errors: more than 10 DNS-querying terms, more than
    10 MX or PTR names, more than 2 void lookups (the last always on in pyspf) are permerror.
    """
    ipaddress.ip_address(ip)  # a bad client address is the caller's bug: ValueError
    sender = f"{local}@{domain}"
    query = _Query(
        i=ip,
        s="" if identity == "helo" else sender,
        h=helo,
        strict=True,
        querytime=CHECK_TIME_LIMIT,
    )
    # pyspf splits the sender at its first @; the domain follows the last one (a quoted local
    # part may hold @), so set the macro variables l, o and d (§7.3) from our split.
    query.l, query.o, query.d = local, domain, domain
    token = _current_resolver.set(resolver)
    try:
        result, _code, explanation = query.check()
    except Exception:  # a pyspf bug on hostile records must not fail the SMTP session
        log.failure("SPF check of {domain} from {ip} crashed", domain=domain, ip=ip)
        result, explanation = "permerror", "SPF evaluation error"
    finally:
        _current_resolver.reset(token)
    if result not in RESULTS:
        result = "permerror"
    return SPFResult(result, domain, identity, _safe(explanation))


def _safe(text: str) -> str:
    """One short line of printable ASCII, no comment delimiters (it may come from DNS)."""
    text = _UNSAFE.sub(" ", str(text)).translate(_COMMENT_DELIMITERS).strip()
    return text[:EXPLANATION_MAX]
