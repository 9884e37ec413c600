"""The HTTP listener (twisted.web): what mail clients and other servers fetch over HTTP(S):
Thunderbird autoconfig, autodiscover, the MTA-STS policy, ACME HTTP-01 challenges, /healthz."""
