"""What the tests share beyond tests/conftest.py's server fixtures, importable as ``support``
(pyproject.toml puts tests/ on pytest's ``pythonpath``; tests/ itself is no package):

- ``support.wire``: ``RawClient``, the one line-level client for SMTP, POP3 and IMAP over plain
  TCP, STARTTLS or implicit TLS, for what smtplib, poplib and imaplib refuse to send or hide;
- ``support.dns``: ``FakeZone``, an authoritative DNS server on 127.0.0.1 serving what a test
  puts in it;
- ``support.sink``: ``SMTPSink``, a scriptable remote SMTP server that records what it got;
- ``support.postfix``: a throwaway Postfix peer (its configuration comes from the bench's
  scripts/bench/postfix_instance.py, the one place that knows how to set one up);
- ``support.maildir``: messages dropped straight into a Maildir, as an MDA would;
- ``support.config``: the TOML the tests write for a server's settings;
- ``support.net`` and ``support.wait``: a free port, and polling for a condition;
- ``support.tools``: the real programs the tests drive, or a skip where one is missing;
- ``support.fixtures``: pytest fixtures around the peers (``zone``, ``start_sink``), registered
  for every test by tests/conftest.py.

Nothing here imports ``conftest``: tests/conftest.py imports from here (``PASSWORD``), and
test modules import from either.
"""

from __future__ import annotations

PASSWORD = "correct horse battery staple"  # every test user's password
