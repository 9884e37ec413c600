"""DMARC (RFC 7489, with ``np`` of RFC 9091) for mail the MX receives.

SPF and DKIM each say "this domain vouches for the message"; neither says anything about the
author the reader sees. DMARC ties them to the RFC5322.From domain: the message passes when SPF or
a DKIM signature passes for a domain *aligned* with it, and otherwise the From domain's published
policy (none / quarantine / reject) says what the owner wants done. Everything here blocks on DNS
(through ``mailsuite.resolver``): call it from a worker thread.

What this module decides and the caller does not have to:

- A DNS temporary error anywhere that matters gives ``temperror`` (never a reject): the caller
  answers 451 and the sender retries.
- A record that is present but broken gives ``permerror`` with disposition ``none``
  (RFC 7489 §6.6.3: "applies no DMARC processing").
- ``from_domain`` is strict: a From: field that could be read two ways gives None, not a guess.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mailsuite.authn.orgdomain import normalize_domain, organizational_domain
from mailsuite.resolver import DNSTemporaryError

__all__ = [
    "DMARCRecord",
    "DMARCResult",
    "evaluate",
    "from_domain",
    "organizational_domain",
    "parse_record",
]

POLICIES = ("none", "quarantine", "reject")
# A message left out of the pct sample gets the next less strict policy (RFC 7489 §6.6.4).
_STEP_DOWN = {"reject": "quarantine", "quarantine": "none", "none": "none"}

# "v=DMARC1" first, then ";" or the end (RFC 7489 §6.4: the version is case-sensitive).
_VERSION = re.compile(r"\s*v\s*=\s*DMARC1\s*(?:;|\Z)")
_TAG = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*)\Z", re.DOTALL)
# dmarc-uri: a URI (",", "!" percent-encoded inside it) with an optional size limit "!10m".
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s,!]+(?:![0-9]+[kmgt]?)?\Z", re.IGNORECASE)
_FO = re.compile(r"[01ds](?::[01ds])*\Z")


@dataclass(frozen=True)
class DMARCRecord:
    """One policy record, its tags per RFC 7489 §6.3 (np: RFC 9091 §4.1), defaults filled in."""

    p: str
    sp: str | None = None
    np: str | None = None
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: str = "0"
    rf: str = "afrf"
    ri: int = 86400

    def policy_for(self, subdomain: bool, nonexistent: bool = False) -> str:
        """The policy for the From domain, given where this record was found (RFC 9091 §4.1:
        np, else sp, else p for a subdomain that does not exist; sp, else p for other
        subdomains of the Organizational Domain; p for the domain that publishes it)."""
        if not subdomain:
            return self.p
        if nonexistent and self.np is not None:
            return self.np
        return self.sp or self.p


def _uris(value: str) -> tuple[str, ...]:
    """The syntactically valid URIs of a rua/ruf list, as written (with any "!size")."""
    return tuple(u for u in (part.strip() for part in value.split(",")) if _URI.match(u))


def _policy(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if value in POLICIES else None


def _percent(value: str | None) -> int:
    if value is not None and re.fullmatch(r"[0-9]{1,3}", value) and int(value) <= 100:
        return int(value)
    return 100


def parse_record(text: str) -> DMARCRecord:
    """The record in one DMARC TXT string; ValueError when it is not a usable policy record.

    RFC 7489 §6.3: unknown tags are ignored and a bad value of an optional tag falls back to the
    tag's default (pct=101 -> 100, adkim=x -> r; a bad np is ignored). §6.6.3 step 6: a missing or
    bad ``p``, or a bad ``sp``, makes the record unusable -- unless a valid ``rua`` is present,
    in which case it counts as ``p=none`` (so the owner still gets reports). A repeated tag: the
    first one counts.
    """
    if not _VERSION.match(text):
        raise ValueError("a DMARC record starts with v=DMARC1")
    tags: dict[str, str] = {}
    for part in text.split(";")[1:]:
        match = _TAG.match(part.strip())
        if match:  # anything else is a syntax error in the remainder: ignored (§6.3)
            tags.setdefault(match.group(1).lower(), match.group(2).strip())
    rua = _uris(tags.get("rua", ""))
    p, sp = _policy(tags.get("p")), _policy(tags.get("sp"))
    fo = tags.get("fo", "0").lower().replace(" ", "")
    ri = tags.get("ri", "")
    record = DMARCRecord(
        p=p or "none",
        sp=sp,
        np=_policy(tags.get("np")),
        pct=_percent(tags.get("pct")),
        adkim="s" if tags.get("adkim", "").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "").lower() == "s" else "r",
        rua=rua,
        ruf=_uris(tags.get("ruf", "")),
        fo=fo if _FO.match(fo) else "0",
        rf=tags.get("rf", "afrf").lower() or "afrf",
        ri=int(ri) if ri.isdigit() and ri.isascii() else 86400,
    )
    if p is None or ("sp" in tags and sp is None):
        problem = "no valid p= tag" if p is None else f"invalid sp={tags['sp']}"
        if not rua:
            raise ValueError(f"DMARC record has {problem} and no rua=")
        return DMARCRecord(p="none", pct=record.pct, adkim=record.adkim, aspf=record.aspf,
                           rua=rua, ruf=record.ruf, fo=record.fo, rf=record.rf, ri=record.ri)
    return record


@dataclass(frozen=True)
class DMARCResult:
    """The outcome for one message, ready for Authentication-Results and the SMTP decision.

    ``policy`` is what the domain owner asks for this From domain; ``disposition`` is what to do
    with this message ("none" on pass, else the policy after pct sampling).
    """

    result: str  # "pass" | "fail" | "none" | "temperror" | "permerror"
    header_from: str
    policy: str
    disposition: str
    record_domain: str
    reason: str


def _aligned(domain: str, author: str, mode: str) -> bool:
    """RFC 7489 §3.1: strict = the same name; relaxed = the same Organizational Domain."""
    name = normalize_domain(domain)
    if name is None:
        return False
    if mode == "s":
        return name == author
    return organizational_domain(name) == organizational_domain(author)


def _dmarc_texts(resolver, domain: str) -> list[str]:
    """The TXT records at _dmarc.<domain> that start like a DMARC record (§6.6.3 steps 1-2)."""
    texts = (t.decode("utf-8", "replace") for t in resolver.query("_dmarc." + domain, "TXT").texts)
    return [text for text in texts if _VERSION.match(text)]


def _exists(resolver, domain: str) -> bool:
    """RFC 9091 §2.1: a domain exists for DMARC when A, AAAA or MX holds a record."""
    for rdtype in ("A", "AAAA", "MX"):
        answer = resolver.query(domain, rdtype)
        if answer.records:
            return True
        if answer.nxdomain:  # the name is absent: no other type can hold a record (RFC 8020)
            return False
    return False


def _aligned_pass(
    record: DMARCRecord,
    author: str,
    spf: tuple[str, str] | None,
    dkim: Iterable[tuple[str, str]],
) -> str | None:
    """Why the message passes (an aligned SPF or DKIM pass), or None."""
    for result, domain in dkim:
        if result.strip().lower() == "pass" and _aligned(domain, author, record.adkim):
            return f"DKIM d={domain.lower()} aligned with {author}"
    if spf is not None:
        result, domain = spf
        if result.strip().lower() == "pass" and _aligned(domain, author, record.aspf):
            return f"SPF {domain.lower()} aligned with {author}"
    return None


def evaluate(
    resolver,
    from_domain: str,
    spf: tuple[str, str] | None,
    dkim: list[tuple[str, str]],
    rng: Callable[[], float] = random.random,
) -> DMARCResult:
    """DMARC for a message whose RFC5322.From domain is ``from_domain``.

    ``spf`` is (result, domain) of the SPF check (MAIL FROM, or HELO for a null reverse path),
    None when none was made; ``dkim`` is one (result, d= domain) per signature. ``rng`` draws
    the pct sample, in [0, 1); it is called only for a failing message whose policy is not
    "none" and whose record has pct < 100.
    """
    author = normalize_domain(from_domain)
    if author is None:
        return DMARCResult("none", from_domain, "none", "none", "", "not a DNS domain")

    def outcome(result: str, reason: str, record_domain: str = "") -> DMARCResult:
        return DMARCResult(result, author, "none", "none", record_domain, reason)

    # Policy discovery, RFC 7489 §6.6.3: the From domain, else its Organizational Domain.
    org = organizational_domain(author)
    record_domain = author
    try:
        texts = _dmarc_texts(resolver, author)
        if not texts and org != author:
            record_domain, texts = org, _dmarc_texts(resolver, org)
    except DNSTemporaryError as exc:
        return outcome("temperror", f"DMARC record lookup failed: {exc}")
    if not texts:
        return outcome("none", f"no DMARC record for {author}")
    if len(texts) > 1:
        return outcome("none", f"{len(texts)} DMARC records at _dmarc.{record_domain}")
    try:
        record = parse_record(texts[0])
    except ValueError as exc:
        return outcome("permerror", f"invalid record at _dmarc.{record_domain}: {exc}",
                       record_domain)

    passed = _aligned_pass(record, author, spf, dkim)
    subdomain = record_domain != author
    policy = record.policy_for(subdomain)
    if subdomain and record.np is not None and record.np != policy:
        try:
            policy = record.policy_for(subdomain, nonexistent=not _exists(resolver, author))
        except DNSTemporaryError as exc:
            if not passed:  # np or sp decides the disposition: ask again later
                return outcome("temperror", f"existence of {author} unknown: {exc}",
                               record_domain)
            # A pass is a pass under either policy; report the one for existing subdomains.

    if passed:
        return DMARCResult("pass", author, policy, "none", record_domain, passed)
    disposition, reason = policy, f"SPF and DKIM not aligned with {author}"
    if policy != "none" and record.pct < 100 and rng() >= record.pct / 100:
        disposition = _STEP_DOWN[policy]
        reason += f"; not sampled (pct={record.pct})"
    return DMARCResult("fail", author, policy, disposition, record_domain, reason)


# --- The author domain of a From: field (RFC 5322 §3.4, with the obsolete forms of §4.4) ------

_SPECIALS = frozenset('()<>[]:;@\\,."')
_WSP = frozenset(" \t\r\n")


class _Invalid(Exception):
    """The field does not parse as an RFC 5322 address list."""


def _tokens(value: str) -> list[tuple[str, str]]:
    """(kind, text) lexical tokens: "atom", "quoted" (its content), "literal", or the special
    character itself. Comments and folding white space are dropped."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in _WSP:
            i += 1
        elif c == "(":  # a comment, possibly nested, with quoted-pairs
            depth = 0
            while i < n:
                c = value[i]
                depth += (c == "(") - (c == ")")
                i += 2 if c == "\\" else 1
                if depth == 0:
                    break
            if depth:
                raise _Invalid("comment not closed")
        elif c in "\"[":
            close = '"' if c == '"' else "]"
            j, text = i + 1, []
            while j < n and value[j] != close:
                if value[j] == "\\":
                    j += 1
                elif c == "[" and value[j] == "[":
                    raise _Invalid("[ inside a domain literal")
                if j < n:
                    text.append(value[j])
                j += 1
            if j >= n:
                raise _Invalid(f"{c} not closed")
            out.append(("quoted" if c == '"' else "literal", "".join(text)))
            i = j + 1
        elif c in _SPECIALS:
            out.append((c, c))
            i += 1
        else:
            j = i
            while j < n and value[j] not in _SPECIALS and value[j] not in _WSP:
                if ord(value[j]) < 0x20 or value[j] == "\x7f":
                    raise _Invalid("control character")
                j += 1
            out.append(("atom", value[i:j]))
            i = j
    return out


def _dotted(kinds: list[str], words: tuple[str, ...]) -> bool:
    """word *("." word): local parts and domains."""
    return (
        len(kinds) % 2 == 1
        and all(k in words for k in kinds[0::2])
        and all(k == "." for k in kinds[1::2])
    )


def _phrase(kinds: list[str]) -> bool:
    """A display name: words, with the "." obs-phrase allows after the first."""
    return bool(kinds) and kinds[0] != "."


class _AddressList:
    """A recursive-descent reader of address-list that returns each mailbox's domain."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.pos = tokens, 0

    def peek(self) -> str:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else ""

    def expect(self, kind: str) -> None:
        if self.peek() != kind:
            raise _Invalid(f"expected {kind!r}")
        self.pos += 1

    def words(self) -> list[str]:
        start = self.pos
        while self.peek() in ("atom", "quoted", "."):
            self.pos += 1
        return [kind for kind, _ in self.tokens[start : self.pos]]

    def domains(self) -> list[str]:
        found: list[str] = []
        while self.peek():
            if self.peek() == ",":  # obs-addr-list: empty members between commas
                self.pos += 1
                continue
            found += self.address()
            if self.peek() not in (",", ""):
                raise _Invalid("junk after an address")
        return found

    def address(self) -> list[str]:
        start = self.pos
        if _phrase(self.words()) and self.peek() == ":":  # group: name ":" [mailboxes] ";"
            self.pos += 1
            found = []
            while self.peek() != ";":
                if self.peek() == ",":
                    self.pos += 1
                    continue
                found.append(self.mailbox())
                if self.peek() not in (",", ";"):
                    raise _Invalid("junk in a group")
            self.pos += 1
            return found
        self.pos = start
        return [self.mailbox()]

    def mailbox(self) -> str:
        start = self.pos
        kinds = self.words()
        if self.peek() == "<":  # name-addr
            if kinds and not _phrase(kinds):
                raise _Invalid("bad display name")
            self.pos += 1
            if self.peek() in ("@", ","):  # obs-route: "@a.example,@b.example:" before the address
                while self.peek() != ":":
                    if not self.peek() or self.peek() == ">":
                        raise _Invalid("bad route")
                    self.pos += 1
                self.pos += 1
            domain = self.addr_spec()
            self.expect(">")
            return domain
        self.pos = start
        return self.addr_spec()

    def addr_spec(self) -> str:
        if not _dotted(self.words(), ("atom", "quoted")):
            raise _Invalid("bad local part")
        self.expect("@")
        if self.peek() == "literal":
            raise _Invalid("a domain literal has no DMARC policy")
        start = self.pos
        if not _dotted(self.words(), ("atom",)):
            raise _Invalid("bad domain")
        return "".join(text for _, text in self.tokens[start : self.pos])


def from_domain(header_value: str) -> str | None:
    """The author domain of a From: field value (normalized: lower case, A-labels), or None.

    The value is read as an RFC 5322 address list (display names, comments, quoted strings,
    groups, encoded words -- which never hold the address -- and the obsolete forms). None means
    DMARC cannot name one author domain: no address, a field that does not parse (also any that
    a lenient parser could read two ways, such as ``a@evil.example <b@example.com>``), a domain
    literal, or addresses in more than one domain. Several addresses in one domain give that
    domain: RFC 7489 §6.6.1 evaluates each author domain, which here is the same check.

    What to do with None is local policy (RFC 7489 §6.6.1); the author domain being the one
    thing DMARC protects, the recommendation is to refuse the message (550 5.7.1) rather than
    deliver it unchecked.
    """
    try:
        raw = _AddressList(_tokens(header_value)).domains()
    except _Invalid:
        return None
    domains = {normalize_domain(domain) for domain in raw}
    if len(domains) != 1 or None in domains:
        return None
    return domains.pop()
