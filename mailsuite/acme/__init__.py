"""ACME (RFC 8555): the server gets and renews its own certificate from a CA such as Let's
Encrypt, answering HTTP-01 challenges through the http role.

files.py    the on-disk layout under ``config.acme_dir`` and the atomic install of a new pair
names.py    which names the certificate covers (public hostname, autoconfig./mta-sts. per domain)
client.py   the blocking protocol run (account, order, HTTP-01, finalize, download), for threads
renewal.py  the Twisted service that decides when to issue and hands the result to the reloader
"""
