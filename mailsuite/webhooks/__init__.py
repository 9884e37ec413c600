"""Webhooks: delivery outcomes POSTed, signed, to the URLs users and the operator subscribed.

service.py     the Twisted service: subscribes to the event hub, resumes the outbox at start
collector.py   the hub's listener: outcomes -> matching webhooks -> outbox files (never blocks)
payload.py     which events are outcomes, and the JSON body a receiver gets
directory.py   the webhooks of the user database (accounts/webhooks.py), re-read on change
outbox.py      one file per call not yet made, under <data>/webhooks/outbox/ (durable)
dispatcher.py  the calls: Agent POSTs, per-webhook pause and per-call exponential backoff
backoff.py     when to retry, when to give up ([webhooks] first_retry, max_retry, give_up)
signature.py   X-Mailsuite-Timestamp / X-Mailsuite-Signature: HMAC-SHA256 of "<ts>.<body>"

A client of other servers, not part of the HTTP listener (mailsuite/web), so it lives apart;
``mailsuite-admin webhook`` (admin/webhooks.py) manages the subscriptions.
"""
