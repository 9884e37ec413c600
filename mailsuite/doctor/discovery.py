"""What lets others find the rest: the MTA-STS policy agrees with the MX, and mail clients
find the submission and IMAP services (RFC 6186 SRV) and the autoconfig host.

MTA-STS (RFC 8461) is the dangerous one: a policy whose ``mx`` lines miss one of the MX hosts
makes enforcing senders refuse to deliver there. When the policy cannot be fetched (DNS points
elsewhere, no trusted certificate yet), it is at least compared with what this server would
serve (``mx: <public hostname>``).
"""

from __future__ import annotations

import ssl

from mailsuite.doctor.probes import LineClient, ProbeError, http_get
from mailsuite.doctor.result import CheckResult, failed, passed, warned
from mailsuite.doctor.routing import host_addresses, mx_hosts
from mailsuite.doctor.target import DNS_FIX, Target, dns_unsure
from mailsuite.resolver import DNSTemporaryError

POLICY_PATH = "/.well-known/mta-sts.txt"
HTTPS_PORT = 443
_MAX_ADDRESSES_TRIED = 2


def _texts(target: Target, name: str) -> list[str]:
    return [text.decode("utf-8", "replace") for text in target.resolver.query(name, "TXT").texts]


# --- MTA-STS --------------------------------------------------------------------------------------


def parse_policy(text: str) -> dict[str, list[str]]:
    """An MTA-STS policy (RFC 8461 §3.2): key -> values, in order (``mx`` repeats)."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    return fields


def policy_allows(patterns: list[str], host: str) -> bool:
    """RFC 8461 §4.1: an ``mx`` pattern is a host name, or ``*.`` + a name matching exactly one
    more leftmost label."""
    host = host.lower().rstrip(".")
    for pattern in (p.lower().rstrip(".") for p in patterns):
        if pattern == host:
            return True
        if pattern.startswith("*.") and host.partition(".")[2] == pattern[2:]:
            return True
    return False


def fetch_policy(target: Target, domain: str) -> tuple[str | None, str]:
    """(policy text, "") from https://mta-sts.<domain>/.well-known/mta-sts.txt, as a sender
    fetches it (a trusted certificate for that name, HTTP 200), or (None, why not)."""
    host = f"mta-sts.{domain}"
    try:
        addresses = host_addresses(target, host)
    except DNSTemporaryError as exc:
        return None, f"{host}: {exc}"
    if not addresses:
        return None, f"{host} does not resolve"
    context = ssl.create_default_context()
    reason = ""
    for address in addresses[:_MAX_ADDRESSES_TRIED]:
        try:
            with LineClient.connect(address, HTTPS_PORT) as client:
                client.start_tls(context, host)
                status, body = http_get(client, host, POLICY_PATH)
        except ProbeError as exc:
            reason = f"https://{host}{POLICY_PATH} ({address}): {exc}"
            continue
        if status != 200:
            reason = f"https://{host}{POLICY_PATH}: HTTP {status}"
            continue
        return body.decode("utf-8", "replace"), ""
    return None, reason


def check_mta_sts(target: Target, domain: str) -> list[CheckResult]:
    name = f"mta-sts {domain}"
    try:
        records = [
            t
            for t in _texts(target, f"_mta-sts.{domain}")
            if t.replace(" ", "").startswith("v=STSv1")
        ]
        mx = [host for _, host in mx_hosts(target.resolver.query(domain, "MX")) if host]
    except DNSTemporaryError as exc:
        return [warned(name, dns_unsure(exc), DNS_FIX)]
    if not records:
        if target.config.mta_sts.mode == "none":
            return [passed(name, "not published (mta_sts.mode = none)")]
        return [
            warned(
                name,
                f"no _mta-sts.{domain} TXT record: senders do not use MTA-STS for {domain}",
                f'publish "_mta-sts.{domain}. TXT \\"v=STSv1; id=1\\"" and '
                f'"mta-sts.{domain}. CNAME {target.hostname}."',
            )
        ]
    if len(records) > 1:
        return [
            failed(
                name, f"{len(records)} STSv1 records: senders ignore them all", "keep exactly one"
            )
        ]
    policy_text, reason = fetch_policy(target, domain)
    if policy_text is None:
        return [_compare_served(target, domain, mx, reason)]
    policy = parse_policy(policy_text)
    patterns = policy.get("mx", [])
    mode = (policy.get("mode") or ["?"])[0]
    missing = [host for host in mx if not policy_allows(patterns, host)]
    if missing:
        return [
            failed(
                name,
                f"the policy (mode {mode}, mx {', '.join(patterns) or 'none'}) does not allow "
                f"MX {', '.join(missing)}",
                f"add 'mx: {missing[0]}' to the policy, or change the MX, then change the TXT id",
            )
        ]
    if mode not in ("enforce", "testing"):
        return [
            warned(
                name,
                f"the policy's mode is {mode}: it protects nothing",
                "set mta_sts.mode = testing, then enforce",
            )
        ]
    return [passed(name, f"the policy (mode {mode}) allows every MX ({', '.join(mx)})")]


def _compare_served(target: Target, domain: str, mx: list[str], reason: str) -> CheckResult:
    name = f"mta-sts {domain}"
    served = [target.hostname]
    missing = [host for host in mx if not policy_allows(served, host)]
    if missing:
        return failed(
            name,
            f"policy not fetched ({reason}); the one this server serves (mx: {target.hostname}) "
            f"does not allow MX {', '.join(missing)}",
            f"point the MX of {domain} to {target.hostname}, or set public.hostname",
        )
    return warned(
        name,
        f"policy not fetched ({reason}); the one this server serves (mx: {target.hostname}) "
        "agrees with the MX",
        f"make https://mta-sts.{domain}/ reach the https listener with a trusted certificate",
    )


# --- client discovery -----------------------------------------------------------------------------


SRV_SERVICES = (("_submissions._tcp", "submissions"), ("_imaps._tcp", "imaps"))


def check_srv(target: Target, domain: str) -> list[CheckResult]:
    return [_srv(target, domain, service, role) for service, role in SRV_SERVICES]


def _srv(target: Target, domain: str, service: str, role: str) -> CheckResult:
    owner = f"{service}.{domain}"
    name = f"srv {owner}"
    port = target.config.public_port(role)
    if port is None:
        return passed(name, f"not needed: the {role} role has no listener")
    wanted = f"{target.hostname}:{port}"
    fix = f'publish "{owner}. SRV 0 1 {port} {target.hostname}."'
    try:
        answer = target.resolver.query(owner, "SRV")
    except DNSTemporaryError as exc:
        return warned(name, dns_unsure(exc), DNS_FIX)
    found = [
        (record.target.to_text(omit_final_dot=True).rstrip(".").lower(), record.port)
        for record in answer.records
    ]
    if not found:
        return warned(name, "no SRV record: mail clients must be told the server by hand", fix)
    shown = ", ".join(f"{host or '.'}:{p}" for host, p in found)
    if any(host == target.hostname and p == port for host, p in found):
        return passed(name, f"points to {wanted}")
    return warned(name, f"points to {shown}, not {wanted}", fix)


def check_autoconfig(target: Target, domain: str) -> list[CheckResult]:
    host = f"autoconfig.{domain}"
    name = f"autoconfig {domain}"
    try:
        addresses = host_addresses(target, host)
    except DNSTemporaryError as exc:
        return [warned(name, dns_unsure(exc), DNS_FIX)]
    fix = f'publish "{host}. CNAME {target.hostname}."'
    if not addresses:
        return [warned(name, f"{host} does not resolve: Thunderbird cannot find the settings", fix)]
    if target.addresses and not set(addresses) & set(target.addresses):
        return [warned(name, f"{host} resolves to {', '.join(addresses)}, not this server", fix)]
    return [passed(name, f"{host} resolves to {', '.join(addresses)}")]
