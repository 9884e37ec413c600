"""mailsuite-admin quickstart: from nothing to a working mail domain in one command.

It writes a commented configuration for a real host (standard ports on every interface), adds
the domain with its DKIM keys and the first user (and postmaster@ for the reports DMARC and
TLSRPT send), then prints what is left to do by hand: the DNS records, the mail client settings
and the command that starts the server.

Running it again with the same arguments changes nothing: what exists is kept and reported (no
second password, no new keys), so it is safe to repeat after a failure half-way. A configuration
file that differs from what it would write is never replaced without --force.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shlex
from pathlib import Path
from typing import Any

from mailsuite.accounts.addresses import normalize_domain, normalize_mailbox
from mailsuite.accounts.passwords import hash_password
from mailsuite.admin import records
from mailsuite.admin.context import CommandError, Context
from mailsuite.admin.domains import make_dkim_keys
from mailsuite.admin.prompt import read_new_password
from mailsuite.config import Config, load_config
from mailsuite.safeio import write_file_atomic

DEFAULT_CONFIG = "mailsuite.toml"
DEFAULT_DATA_DIR = "/var/lib/mailsuite"
TWISTD = (
    "twistd --uid mail --gid mail --pidfile /run/mailsuite.pid "
    "--logfile /var/log/mailsuite.log mailsuite --config {config}"
)
# 32 letters and digits without look-alikes (0/o, 1/l): 5 bits each, 4 groups of 6 = 120 bits.
_PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
_PASSWORD_GROUPS = 4
_PASSWORD_GROUP_LENGTH = 6

TEMPLATE = """\
# mailsuite configuration written by `mailsuite-admin quickstart` for {hostname}.
# Every key of etc/mailsuite.toml may be added; a missing key takes its default.
# Start the server (as root: it binds the standard ports, then runs as the user "mail"):
#   {twistd}

[server]
# Name in the SMTP greeting, Received: headers and the generated certificate.
hostname = {hostname_toml}
# User database, Maildirs, queue, DKIM keys, certificate.
data_dir = {data_dir_toml}

[tls]
# Empty: a self-signed certificate is generated into <data_dir>/tls/ on first start. Point
# these at a real one (e.g. Let's Encrypt's fullchain.pem / privkey.pem), or enable [acme].
cert_file = ""
key_file = ""

[smtp]
# Inbound mail from the Internet (MX), port 25.
listen = ["0.0.0.0:25", "[::]:25"]

[submission]
# Mail clients send here: STARTTLS then AUTH, port 587.
listen = ["0.0.0.0:587", "[::]:587"]

[submissions]
# Mail clients send here: implicit TLS then AUTH, port 465.
listen = ["0.0.0.0:465", "[::]:465"]

[imap]
# IMAP with STARTTLS, port 143.
listen = ["0.0.0.0:143", "[::]:143"]

[imaps]
# IMAP over implicit TLS, port 993.
listen = ["0.0.0.0:993", "[::]:993"]

[pop3]
# POP3 with STLS, port 110.
listen = ["0.0.0.0:110", "[::]:110"]

[pop3s]
# POP3 over implicit TLS, port 995.
listen = ["0.0.0.0:995", "[::]:995"]

[http]
# Autoconfig, autodiscover, ACME challenges.
listen = ["0.0.0.0:80", "[::]:80"]

[https]
# The same over TLS, and the MTA-STS policy.
listen = ["0.0.0.0:443", "[::]:443"]

[public]
# The name clients and other servers connect to (MX target, certificate name).
hostname = {hostname_toml}
# This host's public addresses: published as A/AAAA, authorised in SPF, PTR to ask for.
# Fill them in, then print the records again:
#   mailsuite-admin --config {config_arg} dns {domain}
ipv4 = []
ipv6 = []

[mta_sts]
# "testing" reports TLS failures without refusing mail; "enforce" once all works.
mode = "testing"

[acme]
# Certificates from Let's Encrypt (HTTP-01 on port 80): enable once the DNS records exist,
# or failed attempts count against the CA's limits.
enabled = false
email = {email_toml}
"""


def register(groups: Any) -> None:
    help_text = "set up a real host: configuration, domain, DKIM keys, first user"
    parser = groups.add_parser(
        "quickstart",
        help=help_text,
        description=f"{help_text}; then print the DNS records, the mail client settings and the "
        "command that starts the server. Safe to run again: what exists is kept.",
        epilog="The configuration is written to the --config given after 'quickstart' (default: "
        f"./{DEFAULT_CONFIG}); a --config given before it is read by mailsuite-admin itself, so "
        "it must already exist (it is then the file quickstart checks). The data directory "
        f"written into it is the --data-dir given, else {DEFAULT_DATA_DIR}.",
    )
    parser.add_argument("--hostname", required=True, help="this host's public name (the MX)")
    parser.add_argument("--domain", required=True, help="the mail domain, e.g. example.com")
    parser.add_argument("--user", required=True, metavar="ADDRESS", help="the first user")
    parser.add_argument(
        "--config",
        dest="target",
        metavar="PATH",
        help=f"the configuration file to write (default: ./{DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"data directory written into the configuration (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace a different existing configuration file"
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the user's password from standard input (default: generate and print one)",
    )
    parser.set_defaults(handler=_quickstart)


def _quickstart(ctx: Context, args: argparse.Namespace) -> None:
    hostname, domain, user = _names(args)
    target = Path(args.target or args.config or DEFAULT_CONFIG).expanduser().absolute()
    data_dir = Path(args.data_dir or DEFAULT_DATA_DIR).expanduser().resolve()
    text = render_config(hostname, domain, data_dir, target, user)
    existing = _existing_config(target, text, args.force)  # refuses before anything changes
    # Read and checked before anything changes too; used only if the user is new.
    password = read_new_password(user, True) if args.password_stdin else None
    _write_config(ctx, target, text, existing)
    site = Context(load_config(target))
    try:
        _setup_accounts(site, domain, user, password)
        _print_next_steps(site, domain, user, target)
    finally:
        site.close()


def _names(args: argparse.Namespace) -> tuple[str, str, str]:
    """Normalized hostname, domain and user, checked before anything is written."""
    hostname = normalize_domain(args.hostname)
    if "." not in hostname:
        raise CommandError(f"--hostname {args.hostname!r}: give the fully qualified public name")
    domain = normalize_domain(args.domain)
    user = normalize_mailbox(args.user)
    if user.rpartition("@")[2] != domain:
        raise CommandError(f"--user {args.user!r} is not an address at --domain {domain}")
    return hostname, domain, user


def _toml(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (non-ASCII kept as is)."""
    return json.dumps(text, ensure_ascii=False)


def render_config(hostname: str, domain: str, data_dir: Path, target: Path, user: str) -> str:
    """The configuration text; the same arguments give the same bytes, which is how a second run
    knows the file is its own."""
    twistd = twistd_command(target)
    return TEMPLATE.format(
        hostname=hostname,
        domain=domain,
        hostname_toml=_toml(hostname),
        data_dir_toml=_toml(str(data_dir)),
        twistd=twistd,
        config_arg=shlex.quote(str(target)),
        email_toml=_toml(user),
    )


def twistd_command(target: Path) -> str:
    return TWISTD.format(config=shlex.quote(str(target)))


def _existing_config(target: Path, text: str, force: bool) -> bytes | None:
    """The current file's content (None: no file). Refuses to lose an operator's edits: a file
    that differs from ``text`` is replaced only with --force."""
    try:
        existing = target.read_bytes()
    except FileNotFoundError:
        return None
    if existing != text.encode("utf-8") and not force:
        raise CommandError(
            f"{target} exists and differs from what quickstart writes; "
            f"use --force to replace it (the old file is then kept as {target.name}.bak)"
        )
    return existing


def _write_config(ctx: Context, target: Path, text: str, existing: bytes | None) -> None:
    data = text.encode("utf-8")
    if existing == data:
        ctx.say(f"configuration {target} is already as quickstart writes it: left alone")
        return
    if existing is not None:
        backup = target.with_name(f"{target.name}.bak")
        write_file_atomic(backup, existing, mode=0o644)
        ctx.say(f"kept the previous configuration as {backup}")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(target, data, mode=0o644)
    ctx.say(f"wrote configuration {target}")


def _setup_accounts(ctx: Context, domain: str, user: str, password: str | None) -> None:
    """Domain, DKIM keys, user and postmaster: each made only if missing."""
    if ctx.db.has_domain(domain):
        ctx.say(f"domain {domain} exists")
    else:
        ctx.db.add_domain(domain)
        ctx.say(f"added domain {domain}")
    make_dkim_keys(ctx, domain)
    _add_user(ctx, user, password)
    _add_postmaster(ctx, domain, user)


def generate_password() -> str:
    """Easy to type from a phone, strong enough for a mail account exposed to the Internet."""
    groups = (
        "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(_PASSWORD_GROUP_LENGTH))
        for _ in range(_PASSWORD_GROUPS)
    )
    return "-".join(groups)


def _add_user(ctx: Context, user: str, password: str | None) -> None:
    """A new user gets ``password``, or a generated one shown once; an existing one keeps its
    own, so a second run prints no new password."""
    if ctx.db.get_user(user) is not None:
        ctx.say(
            f"user {user} exists: its password is unchanged "
            f"(change it with 'mailsuite-admin user passwd {user}')"
        )
        return
    generated = password is None
    if password is None:
        password = generate_password()
    ctx.db.add_user(user, hash_password(password))
    ctx.say(f"added user {user}")
    if generated:
        ctx.say(f"password of {user} (shown only this once, keep it): {password}")


def _add_postmaster(ctx: Context, domain: str, user: str) -> None:
    """DMARC and TLS reports go to postmaster@domain, which RFC 5321 4.5.1 also requires."""
    postmaster = f"postmaster@{domain}"
    if postmaster == user or ctx.db.resolve_recipient(postmaster) is not None:
        return
    ctx.db.add_alias(postmaster, user)
    ctx.say(f"added alias {postmaster} -> {user}")


def client_settings(config: Config, user: str) -> list[str]:
    """What to type into Thunderbird (or any client), from the ports clients are told about:
    implicit TLS first (RFC 8314), STARTTLS where that is off."""
    host = config.public_hostname
    lines = [f"Mail client settings (Thunderbird: 'Configure manually') for {user}:"]
    for direction, protocol, roles in (
        ("incoming", "IMAP", (("imaps", "SSL/TLS"), ("imap", "STARTTLS"))),
        ("outgoing", "SMTP", (("submissions", "SSL/TLS"), ("submission", "STARTTLS"))),
    ):
        label = f"  {direction}  {protocol}  {host}"
        for role, security in roles:
            port = config.public_port(role)
            if port is not None:
                lines.append(f"{label}  port {port}  {security}")
                label = f"{'or':>{len(label)}}"
    lines.append(f"  user name {user}, authentication 'Normal password'")
    return lines


def _print_next_steps(ctx: Context, domain: str, user: str, target: Path) -> None:
    config_arg = shlex.quote(str(target))
    ctx.say("")
    ctx.say(
        f"DNS records to publish for {domain} "
        f"(again: mailsuite-admin --config {config_arg} dns {domain} [--format json]):"
    )
    ctx.say("")
    records.print_records(ctx, domain, "zone")
    ctx.say("")
    for line in client_settings(ctx.config, user):
        ctx.say(line)
    ctx.say("")
    ctx.say("Start the server (as root; it drops to the user 'mail' after binding the ports):")
    ctx.say(f"  {twistd_command(target)}")
