"""The doctor: the mail troubleshooting checklist, automated (``mailsuite-admin check``).

Each family of checks is one module (listeners, certificate, routing, authentication,
discovery, relay, blocklists, queue); ``checklist`` runs them all in a small thread pool and
returns the items in a fixed order, each pass / warn / fail with a one-line fix. Everything
here blocks and is bounded by short timeouts: it runs in the admin CLI, never in the reactor.
"""
