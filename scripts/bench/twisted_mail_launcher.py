"""Run Twisted's own ``twistd mail`` on Python 3, with the smallest str/bytes patches it needs.

Usage: python twisted_mail_launcher.py <twistd arguments...>
(e.g. ``-n --pidfile= mail -E --maildirdbmdomain=bench.example=DIR --user=bench=pw --no-pop3
-s tcp:PORT:interface=127.0.0.1``).

Stock Twisted 26.10 fails in four places when an SMTP client delivers into a Maildir domain:
``--user`` hands str keys to a bytes-only DirDBM, domains are registered under str names but
looked up with bytes, ``startMessage`` joins bytes and str paths and opens a text-mode file, and
``MaildirMessage.eomReceived`` appends a str suffix to a bytes file name. Each patch below only
converts types; the delivery logic (write to tmp/, close, rename into new/, *no fsync*) is
Twisted's own, so the benchmark measures the stock server, not a rewrite.
"""

from __future__ import annotations

import os
import sys

from twisted.mail import mail, maildir


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _patch() -> None:
    add_user = maildir.MaildirDirdbmDomain.addUser

    def addUser(self, user, password):  # noqa: N802 (Twisted's name)
        add_user(self, _as_bytes(user), _as_bytes(password))

    maildir.MaildirDirdbmDomain.addUser = addUser

    add_domain = mail.MailService.addDomain

    def addDomain(self, name, domain):  # noqa: N802
        add_domain(self, _as_bytes(name), domain)

    mail.MailService.addDomain = addDomain

    def startMessage(self, user):  # noqa: N802
        name, domain = user.dest.local, user.dest.domain
        directory = self.userDirectory(name)
        fname = maildir._generateMaildirName()
        filename = os.path.join(directory, b"tmp", fname)
        return maildir.MaildirMessage(
            b"%s@%s" % (name, domain),
            open(filename, "wb"),  # noqa: SIM115 (closed by FileMessage.eomReceived)
            filename,
            os.path.join(directory, b"new", fname),
        )

    maildir.AbstractMaildirDomain.startMessage = startMessage

    def eomReceived(self):  # noqa: N802
        self.finalName = self.finalName + b",S=%d" % self.size
        return mail.FileMessage.eomReceived(self)

    maildir.MaildirMessage.eomReceived = eomReceived


def main() -> None:
    _patch()
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
