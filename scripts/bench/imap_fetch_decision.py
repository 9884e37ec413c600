"""Decide: extend twisted.mail.imap4.IMAP4Server, or our own protocol on Protocol?

Both servers run side by side in this process over the same 10,000-message Maildir folder and
the same persistent index (mailsuite.store.index): Twisted's IMAP4Server through a minimal
IMailbox adapter, ours as shipped. A raw-socket client logs in, selects INBOX and times
``UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)``, Thunderbird's first sync of a folder.

    PYTHONPATH=. python scripts/bench/imap_fetch_decision.py [--messages 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread
from twisted.mail import imap4
from zope.interface import implementer

from mailsuite.accounts.login import Authenticator
from mailsuite.accounts.throttle import AuthThrottle
from mailsuite.config import load_config
from mailsuite.imap.server import IMAPContext, IMAPFactory, IMAPLimits
from mailsuite.store.accounts import MaildirAccounts
from mailsuite.store.index import FolderIndex
from mailsuite.store.interfaces import IMailAccount
from mailsuite.store.maildir import MaildirStore

USER, PASSWORD = "bench@example.com", "secret"
COMMAND = b"UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"


def make_folder(root: Path, count: int) -> None:
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        body = (
            f"Return-Path: <sender{i % 50}@example.org>\r\n"
            "Received: from client.example.org by mx.example.com;\r\n"
            " Mon, 7 Feb 2022 10:00:00 +0000\r\n"
            f"From: Sender {i % 50} <sender{i % 50}@example.org>\r\n"
            f"To: Bench <{USER}>\r\nCc: other@example.net\r\n"
            f"Subject: Message number {i} about things\r\n"
            f"Date: Mon, 7 Feb 2022 10:{i % 60:02d}:00 +0000\r\n"
            f"Message-ID: <{i}.bench@example.org>\r\n"
            f"\r\n" + "Some body text.\r\n" * 20
        ).encode()
        flags = ":2,S" if i % 3 else ":2,"
        (root / "cur" / f"{1644000000 + i}.M{i}P1Q{i}.bench,S={len(body)}{flags}").write_bytes(body)


# --- Twisted's IMAP4Server over the same index (the adapter we would have to maintain) ---------


@implementer(imap4.IMessage)
class TwistedMessage:
    def __init__(self, index: FolderIndex, record) -> None:
        self.index, self.record = index, record

    def getUID(self):
        return self.record.uid

    def getFlags(self):
        return list(self.record.flags)

    def getInternalDate(self):
        return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(self.record.internaldate))

    def getSize(self):
        return self.record.size

    def getHeaders(self, negate, *names):
        from mailsuite.store import mime

        fields = mime.parse_header_fields(self.index.header(self.record.uid))
        wanted = {n.lower() for n in names}
        out = {}
        for name, value in fields:
            if (name in wanted) != negate and name not in out:
                out[name] = value
        return out

    def isMultipart(self):
        return False


@implementer(imap4.IMailbox)
class TwistedMailbox:
    def __init__(self, index: FolderIndex) -> None:
        self.index = index

    def getUIDValidity(self):
        return self.index.uidvalidity

    def getUIDNext(self):
        return self.index.status().uidnext

    def getMessageCount(self):
        return self.index.status().messages

    def getRecentCount(self):
        return 0

    def getUnseenCount(self):
        return self.index.status().unseen

    def isWriteable(self):
        return True

    def getFlags(self):
        return ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]

    def getHierarchicalDelimiter(self):
        return "/"

    def addListener(self, listener):
        pass

    def removeListener(self, listener):
        pass

    def requestStatus(self, names):
        return {}

    def fetch(self, messages, uid):
        records = self.index.records()
        if uid:
            messages.last = records[-1].uid if records else 0
            return [
                (i, TwistedMessage(self.index, r))
                for i, r in enumerate(records, 1)
                if r.uid in messages
            ]
        messages.last = len(records)
        return [(i, TwistedMessage(self.index, records[i - 1])) for i in messages]


@implementer(imap4.IAccount)
class TwistedAccount:
    def __init__(self, index: FolderIndex) -> None:
        self.index = index

    def select(self, name, rw=True):
        return TwistedMailbox(self.index) if name.upper() == "INBOX" else None

    def listMailboxes(self, ref, wildcard):
        return [("INBOX", TwistedMailbox(self.index))]


@implementer(IRealm)
class TwistedRealm:
    def __init__(self, index: FolderIndex) -> None:
        self.index = index

    def requestAvatar(self, avatar_id, mind, *interfaces):
        return imap4.IAccount, TwistedAccount(self.index), lambda: None


def twisted_factory(portal: Portal):
    from twisted.internet.protocol import Factory

    class F(Factory):
        def buildProtocol(self, addr):
            proto = imap4.IMAP4Server()
            proto.portal = portal
            proto.factory = self
            return proto

    return F()


# --- the client ---------------------------------------------------------------------------------


def run_session(port: int) -> tuple[float, int]:
    """Seconds for the FETCH (after LOGIN + SELECT) and the bytes it returned."""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        reader = sock.makefile("rb")
        reader.readline()

        def command(tag: bytes, line: bytes) -> int:
            sock.sendall(tag + b" " + line + b"\r\n")
            total = 0
            while True:
                response = reader.readline()
                total += len(response)
                if response.startswith(tag + b" "):
                    assert response.startswith(tag + b" OK"), response
                    return total
                if response.rstrip().endswith(b"}"):
                    size = int(response.rstrip()[:-1].rsplit(b"{", 1)[1])
                    total += len(reader.read(size))

        command(b"a", b'LOGIN "%s" "%s"' % (USER.encode(), PASSWORD.encode()))
        command(b"b", b"SELECT INBOX")
        started = time.perf_counter()
        size = command(b"c", COMMAND)
        elapsed = time.perf_counter() - started
        command(b"d", b"LOGOUT")
        return elapsed, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imap-bench-"))
    try:
        store = MaildirStore(work / "mail", "bench")
        root = store.maildir_path(USER)
        print(f"creating {args.messages} messages in {root} ...")
        make_folder(root, args.messages)
        started = time.perf_counter()
        avatars = MaildirAccounts(store)
        index = avatars.indexes.open(root)
        index.sync(force=True)
        print(f"first index build: {time.perf_counter() - started:.2f} s")

        checker = InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD.encode()})

        @implementer(IRealm)
        class Realm:
            def requestAvatar(self, avatar_id, mind, *interfaces):
                return IMailAccount, avatars(USER), lambda: None

        ours_ctx = IMAPContext(
            hostname="bench",
            limits=IMAPLimits.from_config(load_config()),
            authenticator=Authenticator(Portal(Realm(), [checker]), AuthThrottle(0, 0), 3),
            store=store,
            spool_dir=work / "spool",
        )
        theirs_portal = Portal(TwistedRealm(index), [checker])
        thread = threading.Thread(
            target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
        )
        thread.start()
        # Ours requires TLS before LOGIN: the factory's flag marks the session as already secure
        # (the benchmark measures the protocol, not TLS).
        ours = blockingCallFromThread(
            reactor, reactor.listenTCP, 0, IMAPFactory(ours_ctx, True), interface="127.0.0.1"
        )
        theirs = blockingCallFromThread(
            reactor, reactor.listenTCP, 0, twisted_factory(theirs_portal), interface="127.0.0.1"
        )
        results: dict[str, list[float]] = {"mailsuite": [], "twisted IMAP4Server": []}
        sizes: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, port in (
                ("mailsuite", ours.getHost().port),
                ("twisted IMAP4Server", theirs.getHost().port),
            ):
                elapsed, size = run_session(port)
                results[name].append(elapsed)
                sizes[name] = size
        print(f"\n{COMMAND.decode()} over {args.messages} messages, best of {args.rounds}:")
        best = {name: min(times) for name, times in results.items()}
        for name, seconds in best.items():
            print(f"  {name:22s} {seconds:7.3f} s  ({sizes[name] / 1e6:.1f} MB of responses)")
        ratio = best["twisted IMAP4Server"] / best["mailsuite"]
        print(f"  ratio twisted/mailsuite: {ratio:.1f}x")
        reactor.callFromThread(reactor.stop)
        thread.join(10)
    finally:
        # The disk is mounted with discard: move the files aside, delete them last.
        shutil.rmtree(work, ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    main()
