"""Mail authentication: DKIM signing of what we send; SPF, DKIM, DMARC, ARC and iprev checks of
what the MX receives, reported in one Authentication-Results header (RFC 8601).

Everything here blocks (DNS through ``mailsuite.resolver``, RSA): callers run it in threads.
"""
