"""The HTTP listener (twisted.web): what mail clients and other servers fetch over HTTP(S).

site.py            the Site of the http and https roles: which path is answered by what
limits.py          bounds on one connection (head, body, time) and polite refusals
request.py         the request class: capped in-memory bodies, absolute-form targets
router.py          exact-path routing, short 404/405 answers
reply.py           the Reply an endpoint returns and how it is written (now or later)
domains.py         the mail domain a request is about, and whether it is hosted here
mailservers.py     the IMAP/POP3/submission servers clients are told about, in preference order
autoconfig.py      Thunderbird autoconfig (config-v1.1.xml)
autodiscover.py    Outlook-style POX autodiscover (also asked by Thunderbird)
mta_sts.py         the MTA-STS policy (RFC 8461), https only
acme_challenge.py  ACME HTTP-01 challenge files (RFC 8555)
health.py          /healthz
"""
