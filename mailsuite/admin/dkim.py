"""mailsuite-admin dkim generate|list|show|rotate|retire: the keys outgoing mail is signed with.

The life of a key: ``generate`` (or ``domain add``) makes it and it signs at once; ``show``
prints the TXT record to publish; ``rotate`` makes a successor and the old key stops signing but
stays listed, so its record is kept while signed mail is still in flight; ``retire`` forgets it
(then remove its record from DNS). A running server sees every change on its next message.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.accounts.addresses import normalize_domain
from mailsuite.accounts.database import UnknownDomain
from mailsuite.admin.context import Context, add_command, add_group, add_json_option
from mailsuite.authn.keys import (
    ALGORITHMS,
    DEFAULT_RSA_BITS,
    DKIMKey,
    DKIMKeyStore,
    KeyStoreError,
    normalize_selector,
)

TTL = 3600


def register(groups: Any) -> None:
    actions = add_group(groups, "dkim", "manage the DKIM keys outgoing mail is signed with")
    parser = add_command(actions, "generate", _generate, "make a new signing key for a domain")
    parser.add_argument("domain", metavar="DOMAIN")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="rsa", help="default: rsa")
    parser.add_argument("--selector", metavar="NAME", help="default: ms<year><month><r|e>")
    parser.add_argument(
        "--bits", type=int, metavar="N", help=f"RSA key size (default: {DEFAULT_RSA_BITS})"
    )
    parser = add_command(actions, "list", _list, "list DKIM keys, of one domain or all")
    parser.add_argument("domain", metavar="DOMAIN", nargs="?")
    add_json_option(parser)
    parser = add_command(actions, "show", _show, "print the DNS TXT records to publish")
    parser.add_argument("domain", metavar="DOMAIN")
    parser = add_command(
        actions, "rotate", _rotate, "replace the active keys; the old ones stay published"
    )
    parser.add_argument("domain", metavar="DOMAIN")
    parser = add_command(actions, "retire", _retire, "delete a rotated-out key")
    parser.add_argument("domain", metavar="DOMAIN")
    parser.add_argument("selector", metavar="SELECTOR")


def store_of(ctx: Context) -> DKIMKeyStore:
    return DKIMKeyStore(ctx.config.dkim_dir)


def describe(key: DKIMKey) -> str:
    """'ms202612r (rsa-2048)' / 'ms202612e (ed25519)': what a key is, without its secret."""
    if key.algorithm == "rsa":
        return f"{key.selector} (rsa-{key.key_bits()})"
    return f"{key.selector} ({key.algorithm})"


def publish_hint(domain: str, count: int = 1) -> str:
    return (
        f"publish {'it' if count == 1 else 'them'} in DNS: see 'mailsuite-admin dkim show {domain}'"
    )


def _local_domain(ctx: Context, text: str) -> str:
    domain = normalize_domain(text)
    if not ctx.db.has_domain(domain):
        raise UnknownDomain(domain)
    return domain


def _generate(ctx: Context, args: argparse.Namespace) -> None:
    domain = _local_domain(ctx, args.domain)
    if args.bits is not None and args.algorithm != "rsa":
        raise KeyStoreError("--bits applies to rsa keys only")
    store = store_of(ctx)
    before = [k for k in store.active(domain) if k.algorithm == args.algorithm]
    key = store.generate(
        domain, args.algorithm, args.selector, args.bits if args.bits else DEFAULT_RSA_BITS
    )
    ctx.say(f"made DKIM key {describe(key)} for {domain}; {publish_hint(domain)}")
    for old in before:
        ctx.say(f"rotated out {old.selector}: keep its record published until you retire it")


def _list(ctx: Context, args: argparse.Namespace) -> None:
    store = store_of(ctx)
    domains = [normalize_domain(args.domain)] if args.domain else store.domains()
    keys = [key for domain in domains for key in store.keys(domain)]
    if args.json:
        ctx.print_json(
            [
                {
                    "domain": k.domain,
                    "selector": k.selector,
                    "algorithm": k.algorithm,
                    "created": k.created,
                    "active": k.active,
                }
                for k in keys
            ]
        )
        return
    for k in keys:
        status = "active" if k.active else "rotated-out"
        ctx.say(f"{k.domain} {k.selector} {k.algorithm} {k.created} {status}")


def zone_record(key: DKIMKey) -> str:
    """The key's TXT record in zone-file syntax, split into <=255-octet character-strings."""
    strings = key.txt_strings()
    lines = [f'{key.dns_name()}. {TTL} IN TXT ( "{strings[0]}"']
    lines.extend(f'    "{s}"' for s in strings[1:])
    lines[-1] += " )"
    return "\n".join(lines)


def _show(ctx: Context, args: argparse.Namespace) -> None:
    domain = normalize_domain(args.domain)
    keys = store_of(ctx).keys(domain)
    if not keys:
        raise KeyStoreError(f"no DKIM keys for {domain}; make one with 'dkim generate {domain}'")
    for number, key in enumerate(keys):
        if number:
            ctx.say("")
        state = "active: signing now" if key.active else "rotated out: retire when unused"
        ctx.say(f"; {describe(key)}, created {key.created}, {state}")
        ctx.say(zone_record(key))


def _rotate(ctx: Context, args: argparse.Namespace) -> None:
    domain = _local_domain(ctx, args.domain)
    store = store_of(ctx)
    old = store.active(domain)
    new = store.rotate(domain)
    ctx.say(
        f"rotated the DKIM keys of {domain}: {', '.join(describe(k) for k in new)} now sign; "
        f"{publish_hint(domain, len(new))}"
    )
    if old:
        ctx.say(
            f"rotated out {', '.join(k.selector for k in old)}: keep published until you retire "
            f"them ('mailsuite-admin dkim retire {domain} SELECTOR')"
        )


def _retire(ctx: Context, args: argparse.Namespace) -> None:
    domain = normalize_domain(args.domain)
    selector = normalize_selector(args.selector)
    store_of(ctx).retire(domain, selector)
    ctx.say(
        f"retired DKIM key {selector} of {domain}; remove its DNS record "
        f"{selector}._domainkey.{domain}"
    )
