"""Will receivers believe our mail: SPF authorises our addresses, each signing DKIM key is
published as it is, and the domain publishes a DMARC policy.

SPF is evaluated with the same engine the MX uses on incoming mail (``authn.spf``), from each
public address, for ``postmaster@<domain>``: what a receiver computes for our bounces and, with
another local part, for every message.
"""

from __future__ import annotations

import base64
import binascii

from mailsuite.authn.dmarc import parse_record
from mailsuite.authn.keys import DKIMKey, DKIMKeyStore, KeyStoreError
from mailsuite.authn.spf import check_mail_from
from mailsuite.doctor.result import CheckResult, failed, passed, warned
from mailsuite.doctor.target import DNS_FIX, Target, dns_unsure, needs_addresses_fix
from mailsuite.resolver import DNSTemporaryError


def _texts(target: Target, name: str) -> list[str]:
    """The TXT records at ``name`` (character-strings joined), decoded leniently."""
    return [text.decode("utf-8", "replace") for text in target.resolver.query(name, "TXT").texts]


# --- SPF ------------------------------------------------------------------------------------------


def _spf_fix(target: Target, domain: str, address: str) -> str:
    kind = "ip4" if ":" not in address else "ip6"
    return (
        f'publish "{domain}. TXT \\"v=spf1 mx {kind}:{address} -all\\"" (or add {kind}:{address})'
    )


def check_spf(target: Target, domain: str) -> list[CheckResult]:
    if not target.addresses:
        return [_spf_record_only(target, domain)]
    return [_spf_from(target, domain, address) for address in target.addresses]


def _spf_record_only(target: Target, domain: str) -> CheckResult:
    """Without a public address only the record's presence can be checked."""
    name = f"spf {domain}"
    try:
        records = [t for t in _texts(target, domain) if t.lower().split(" ")[0] == "v=spf1"]
    except DNSTemporaryError as exc:
        return warned(name, dns_unsure(exc), DNS_FIX)
    if not records:
        return failed(name, "no SPF record", f'publish "{domain}. TXT \\"v=spf1 mx -all\\""')
    return warned(
        name,
        f'"{records[0][:80]}" found; public.ipv4/ipv6 are not set, so whether it '
        "authorises this server cannot be checked",
        needs_addresses_fix(),
    )


def _spf_from(target: Target, domain: str, address: str) -> CheckResult:
    name = f"spf {domain} {address}"
    outcome = check_mail_from(target.resolver, address, f"postmaster@{domain}", target.hostname)
    result = outcome.result
    said = f"{result}" + (f" ({outcome.explanation})" if outcome.explanation else "")
    if result == "pass":
        return passed(name, f"pass: {address} may send for {domain}")
    if result in ("softfail", "neutral"):
        return warned(
            name,
            f"{said}: receivers may treat our mail as suspect",
            _spf_fix(target, domain, address),
        )
    if result == "temperror":
        return warned(name, f"could not tell: {said}", DNS_FIX)
    if result == "none":
        return failed(name, "no SPF record", _spf_fix(target, domain, address))
    if result == "permerror":
        return failed(name, f"the SPF record is broken: {said}", "correct the SPF record's syntax")
    return failed(name, f"{said}: {address} is not authorised", _spf_fix(target, domain, address))


# --- DKIM -----------------------------------------------------------------------------------------


def dkim_tags(text: str) -> dict[str, str]:
    """The tags of a DKIM key record (RFC 6376 §3.6.1); whitespace inside values dropped (a
    base64 p= may be folded), a repeated tag: the first counts."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        tag, eq, value = part.partition("=")
        if eq:
            tags.setdefault(tag.strip().lower(), "".join(value.split()))
    return tags


def check_dkim(target: Target, domain: str) -> list[CheckResult]:
    try:
        keys = DKIMKeyStore(target.config.dkim_dir).active(domain)
    except (KeyStoreError, OSError) as exc:
        return [failed(f"dkim {domain}", f"cannot read the keys: {exc}", "see 'dkim list'")]
    if not keys:
        return [
            warned(
                f"dkim {domain}",
                f"no active DKIM key: mail from {domain} leaves unsigned",
                f"mailsuite-admin dkim generate {domain}, then publish it",
            )
        ]
    return [_dkim_key(target, key) for key in keys]


def _dkim_key(target: Target, key: DKIMKey) -> CheckResult:
    name = f"dkim {key.dns_name()}"
    fix = f"publish it: see 'mailsuite-admin dkim show {key.domain}'"
    try:
        texts = _texts(target, key.dns_name())
    except DNSTemporaryError as exc:
        return warned(name, dns_unsure(exc), DNS_FIX)
    records = [dkim_tags(text) for text in texts if "p=" in text.replace(" ", "")]
    if not records:
        return failed(name, f"{key.algorithm} key {key.selector} is not published", fix)
    ours = key.public_key()
    problems = []
    for tags in records:
        if tags.get("k", "rsa").lower() != key.algorithm:
            problems.append(f"k={tags.get('k', 'rsa')} (ours is {key.algorithm})")
            continue
        if not tags.get("p"):
            problems.append("p= is empty (a revoked key)")
            continue
        try:
            published = base64.b64decode(tags["p"], validate=True)
        except (binascii.Error, ValueError):
            problems.append("p= is not valid base64")
            continue
        if published == ours:
            return passed(name, f"the published {key.algorithm} key matches ours")
        problems.append("p= holds another key (an old record?)")
    return failed(
        name,
        f"published, but {'; '.join(problems)}",
        f"replace the record with ours: see 'mailsuite-admin dkim show {key.domain}'",
    )


# --- DMARC ----------------------------------------------------------------------------------------


def check_dmarc(target: Target, domain: str) -> list[CheckResult]:
    name = f"dmarc {domain}"
    fix = (
        f'publish "_dmarc.{domain}. TXT \\"v=DMARC1; p=quarantine; '
        f'rua=mailto:postmaster@{domain}\\""'
    )
    try:
        texts = _texts(target, f"_dmarc.{domain}")
    except DNSTemporaryError as exc:
        return [warned(name, dns_unsure(exc), DNS_FIX)]
    records = [t for t in texts if t.replace(" ", "").startswith("v=DMARC1")]
    if not records:
        return [failed(name, f"no DMARC record at _dmarc.{domain}", fix)]
    if len(records) > 1:
        return [
            failed(
                name, f"{len(records)} DMARC records: receivers ignore them all", "keep exactly one"
            )
        ]
    try:
        record = parse_record(records[0])
    except ValueError as exc:
        return [failed(name, f"unusable record: {exc}", fix)]
    if record.p == "none":
        return [
            warned(
                name,
                "p=none: a monitoring policy, forged mail from the domain is still delivered",
                "once the reports look clean, raise it to p=quarantine (then p=reject)",
            )
        ]
    return [passed(name, f"p={record.p}" + (f", pct={record.pct}" if record.pct != 100 else ""))]
