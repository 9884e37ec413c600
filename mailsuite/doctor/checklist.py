"""The whole checklist: which checks run for a configuration and its domains, in what order.

Listener probes go first (the certificate checks judge what they presented); everything else
runs beside them. The order of the report is fixed whatever finishes first: configuration,
listeners, certificate, DNS (per domain), reverse DNS, blocklists, the SMTP probes, the queue.
"""

from __future__ import annotations

from pathlib import Path

from mailsuite.config import Config
from mailsuite.doctor import authentication, discovery, relay, routing
from mailsuite.doctor.blocklists import check_blocklists, check_listing
from mailsuite.doctor.certificate import check_certificates
from mailsuite.doctor.listeners import (
    PresentedCertificates,
    check_listener,
    configured,
    listener_name,
)
from mailsuite.doctor.queue import check_queue
from mailsuite.doctor.result import CheckResult, passed, warned
from mailsuite.doctor.runner import CheckPool, Pending, collect
from mailsuite.doctor.target import Target

# The per-domain checks, in report order: (name prefix, check(target, domain)).
DOMAIN_CHECKS = (
    ("mx", routing.check_mx),
    ("spf", authentication.check_spf),
    ("dkim", authentication.check_dkim),
    ("dmarc", authentication.check_dmarc),
    ("mta-sts", discovery.check_mta_sts),
    ("srv", discovery.check_srv),
    ("autoconfig", discovery.check_autoconfig),
)


def check_config(source: str | Path | None) -> CheckResult:
    """It loaded, or we would not be here: say from where."""
    if source is None:
        return passed("config", "no file given: the built-in defaults (--config FILE for yours)")
    return passed("config", f"{source} loads")


def run_checklist(
    config: Config, domains: list[str], source: str | Path | None = None
) -> list[CheckResult]:
    target = Target.of(config, domains)
    presented = PresentedCertificates()
    results = [check_config(source)]
    if not domains:
        results.append(
            warned(
                "domains",
                "no local domain: nothing to check in DNS",
                "mailsuite-admin domain add DOMAIN",
            )
        )
    with CheckPool() as pool:
        listeners = [
            pool.submit(
                listener_name(role, address), check_listener, target, role, address, presented
            )
            for role, address in configured(config)
        ]
        others = _submit_others(pool, target)
        results += collect(listeners)
        results += pool.submit("certificate", check_certificates, target, presented).results()
        results += collect(others)
    return results


def _submit_others(pool: CheckPool, target: Target) -> list[Pending]:
    pending = [pool.submit("dns resolver", routing.check_resolver, target)]
    for domain in target.domains:
        pending += [
            pool.submit(f"{prefix} {domain}", check, target, domain)
            for prefix, check in DOMAIN_CHECKS
        ]
    if target.addresses:
        pending += [
            pool.submit(f"reverse dns {address}", routing.check_reverse_dns, target, address)
            for address in target.addresses
        ]
    else:
        pending.append(pool.submit("reverse dns", routing.check_reverse_dns_configured, target))
    if target.addresses and target.config.check.blocklists:
        pending += [
            pool.submit(f"blocklist {name} {address}", check_listing, target, address, name)
            for name in target.config.check.blocklists
            for address in target.addresses
        ]
    else:
        pending.append(pool.submit("blocklists", check_blocklists, target))
    pending.append(pool.submit("open relay", relay.check_open_relay, target))
    pending.append(pool.submit("outbound port 25", relay.check_outbound_port_25, target))
    pending.append(pool.submit("queue", check_queue, target))
    return pending
