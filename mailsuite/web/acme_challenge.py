"""ACME HTTP-01 challenges (RFC 8555 §8.3): ``/.well-known/acme-challenge/<token>``.

The ACME client writes the key authorization of each pending challenge to
``<acme_dir>/challenges/<token>``; the CA then fetches it over plain http on port 80 for every
name being validated, so this answers on any Host and on both roles. The token is the raw
(still percent-encoded) rest of the path and must be base64url characters only, so it can
never name anything outside the challenges directory (``..%2f``, ``%2e%2e`` and ``/`` fail the
check). The small file is read in a thread: the reactor never waits for a disk.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.web.server import Request

from mailsuite.config import Config
from mailsuite.web.reply import NOT_FOUND, Reply

PREFIX = b"/.well-known/acme-challenge/"
TOKEN = re.compile(rb"[A-Za-z0-9_-]{1,255}")
MAX_SIZE = 4096  # a key authorization is token "." thumbprint: under 300 bytes


def read_challenge(path: Path) -> bytes | None:
    """The content of the regular file ``path`` (no symlink followed), None when absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        content = os.read(fd, MAX_SIZE + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return content if len(content) <= MAX_SIZE else None


class ACMEChallenge:
    def __init__(self, config: Config) -> None:
        self.directory = config.acme_dir / "challenges"

    def get(self, request: Request) -> Reply | Deferred[Reply]:
        token = request.path[len(PREFIX) :]
        if not TOKEN.fullmatch(token):
            return NOT_FOUND
        found = deferToThread(read_challenge, self.directory / token.decode("ascii"))
        return found.addCallback(self._answer)

    @staticmethod
    def _answer(content: bytes | None) -> Reply:
        if content is None:
            return NOT_FOUND
        return Reply(200, content, b"application/octet-stream")
