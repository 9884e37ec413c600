"""The aiosmtpd peer: aiosmtpd's SMTP protocol with a handler that makes each message durable in
a Maildir before answering 250 (write into tmp/, fsync, rename into new/, fsync new/).

The blocking file work runs in the event loop's default thread pool, as a careful aiosmtpd
deployment would do it, so one fsync does not stall the other sessions.

Usage (with aiosmtpd importable): python aiosmtpd_maildir.py PORT MAILDIR
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import time

from aiosmtpd.smtp import SMTP

_counter = itertools.count(1)
_HOST = socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def deliver(maildir: str, content: bytes) -> str:
    """The classic durable Maildir delivery; returns the new file name."""
    now = time.time_ns() // 1000
    name = f"{now // 1_000_000}.M{now % 1_000_000}P{os.getpid()}Q{next(_counter)}.{_HOST}"
    tmp_path = os.path.join(maildir, "tmp", name)
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp_path, os.path.join(maildir, "new", name))
    dir_fd = os.open(os.path.join(maildir, "new"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return name


class MaildirHandler:
    def __init__(self, maildir: str) -> None:
        self.maildir = maildir
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if not address.lower().endswith("@bench.example"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        content = b"Return-Path: <%s>\r\n" % envelope.mail_from.encode() + envelope.original_content
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, deliver, self.maildir, content)
        except OSError:
            return "451 4.3.0 Local error in processing"
        return "250 2.0.0 OK delivered"


async def serve(port: int, maildir: str) -> None:
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="aiosmtpd.bench.example", data_size_limit=40_000_000),
        host="127.0.0.1",
        port=port,
        backlog=256,
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))
