"""Ten clients over implicit TLS running a random command mix against one user's folders for a
bounded time, with abrupt disconnects (after LOGIN, in the middle of a FETCH) and folders
deleted and created again while others use them. Afterwards: no [SERVERBUG] was ever answered,
every connection slot came back (20 logins at once succeed), a (UIDVALIDITY, UID) pair never
named two messages, \\Recent was never seen by two read-write sessions, and no keyword reached a
client in FETCH before a FLAGS response named it."""

from __future__ import annotations

import imaplib
import itertools
import random
import re
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from conftest import PASSWORD
from imap_helpers import imaps
from twisted.logger import globalLogPublisher

CLIENTS = 10
SECONDS = 15.0
MAX_STEPS = 400  # per client: the loop also stops by count
FOLDERS = ("INBOX", "Stress", "Scratch")
KEYWORDS = ("$label1", "$label2", "$hello", "$Forwarded", "$work")
EXPECTED_NO = ("[TRYCREATE]", "[NONEXISTENT]", "[ALREADYEXISTS]", "[INUSE]")

_MESSAGE_ID = re.compile(rb"Message-ID: <([^>]+)>", re.I)
_UID = re.compile(rb"UID (\d+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


class Ledger:
    """What every client saw, checked as it goes and at the end (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.names: dict[tuple[str, int, int], str] = {}  # (folder, validity, uid) -> msg id
        self.recent_by: dict[tuple[str, int, int], int] = {}  # ... -> session number
        self.counts: defaultdict[str, int] = defaultdict(int)
        self.next_id = 0

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def message_id(self) -> str:
        with self.lock:
            self.next_id += 1
            return f"stress{self.next_id}@test"

    def named(self, folder: str, validity: int, uid: int, message_id: str) -> None:
        key = (folder, validity, uid)
        with self.lock:
            known = self.names.setdefault(key, message_id)
        if known != message_id:
            self.error(f"{key} named {known} and {message_id}")

    def recent(self, folder: str, validity: int, uid: int, session: int) -> None:
        key = (folder, validity, uid)
        with self.lock:
            owner = self.recent_by.setdefault(key, session)
        if owner != session:
            self.error(f"\\Recent {key} seen by sessions {owner} and {session}")


_session_ids = itertools.count(1)


class Session:
    """One imaplib client with the checks made after each of its commands."""

    def __init__(self, suite, ledger: Ledger, rnd: random.Random) -> None:
        self.id = next(_session_ids)
        self.ledger = ledger
        self.rnd = rnd
        self.client = imaps(suite)
        self.folder: str | None = None
        self.validity = 0
        self.readonly = False
        self.announced: set[str] = set()

    def check(self, typ: str, data) -> None:
        """Every answer: never SERVERBUG, never BAD, NO only for the expected races."""
        text = repr(data)
        responses = repr(self.client.untagged_responses)
        if "SERVERBUG" in text or "SERVERBUG" in responses:
            self.ledger.error(f"session {self.id}: SERVERBUG: {text} {responses}")
        if typ == "BAD":
            self.ledger.error(f"session {self.id}: BAD {text}")
        if typ == "NO" and not any(code in text for code in EXPECTED_NO):
            self.ledger.error(f"session {self.id}: NO {text}")
        for flags in self.client.untagged_responses.pop("FLAGS", []):
            self.announced.update(f.decode() for f in flags.strip(b"()").split())
        unsolicited = self.client.untagged_responses.pop("FETCH", [])
        for fetch in [*unsolicited, *(data or [])]:
            line = fetch[0] if isinstance(fetch, tuple) else fetch
            if not isinstance(line, bytes):
                continue
            for match in _FLAGS.finditer(line):
                for flag in match.group(1).decode().split():
                    if not flag.startswith("\\") and flag not in self.announced:
                        self.ledger.error(f"session {self.id}: keyword {flag} before FLAGS")

    def run(self, name: str, *args):
        typ, data = getattr(self.client, name)(*args)
        self.ledger.counts[name] += 1
        self.check(typ, data)
        return typ, data

    def uid(self, *args):
        typ, data = self.client.uid(*args)
        self.ledger.counts[f"uid {args[0]}"] += 1
        self.check(typ, data)
        return typ, data

    # --- the mix ------------------------------------------------------------------------------

    def select(self) -> None:
        folder = self.rnd.choice(FOLDERS)
        self.readonly = self.rnd.random() < 0.2
        self.client.untagged_responses.clear()
        typ, data = self.client.select(folder, readonly=self.readonly)
        self.ledger.counts["select"] += 1
        self.announced = set()
        if typ != "OK":
            self.check(typ, data)
            self.folder = None
            return
        validity = self.client.untagged_responses.get("UIDVALIDITY", [b"0"])[-1]
        self.check(typ, data)
        self.folder, self.validity = folder, int(validity)
        self.search_recent()

    def search_recent(self) -> None:
        if self.folder is None or self.readonly:
            return
        typ, data = self.uid("SEARCH", None, "RECENT")
        if typ == "OK" and data and data[0]:
            for uid in data[0].split():
                self.ledger.recent(self.folder, self.validity, int(uid), self.id)

    def fetch(self) -> None:
        if self.folder is None:
            return
        items = self.rnd.choice(
            [
                "(UID FLAGS)",
                "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])",
                "(UID ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE)",
                "(UID BODY.PEEK[] FLAGS)",
            ]
        )
        typ, data = self.uid("FETCH", "1:*", items)
        if typ != "OK":
            return
        for part in data:
            if not isinstance(part, tuple):
                continue
            uid, found = _UID.search(part[0]), _MESSAGE_ID.search(part[1])
            if uid and found:
                message_id = found.group(1).decode()
                self.ledger.named(self.folder, self.validity, int(uid.group(1)), message_id)

    def store(self) -> None:
        if self.folder is None or self.readonly:
            return
        flags = " ".join(self.rnd.sample(KEYWORDS + ("\\Flagged", "\\Seen"), 2))
        mode = self.rnd.choice(["+FLAGS", "-FLAGS", "FLAGS"])
        which = "1:*" if self.rnd.random() < 0.3 else self.some_uid()
        self.uid("STORE", which, mode, f"({flags})")

    def some_uid(self) -> str:
        """A UID of the selected folder, or one that may have just been expunged."""
        typ, data = self.uid("SEARCH", None, "ALL")
        uids = data[0].split() if typ == "OK" and data and data[0] else [b"1"]
        return self.rnd.choice(uids).decode()

    def expunge(self) -> None:
        if self.folder is None or self.readonly:
            return
        self.uid("STORE", self.some_uid(), "+FLAGS", "(\\Deleted)")
        self.run("expunge")

    def append(self) -> None:
        folder = self.rnd.choice(FOLDERS)
        message_id = self.ledger.message_id()
        body = f"Message-ID: <{message_id}>\r\nSubject: s\r\n\r\n{'x' * self.rnd.randint(1, 3000)}"
        typ, data = self.run("append", folder, None, None, body.encode())
        found = re.search(rb"APPENDUID (\d+) (\d+)", data[0] or b"") if typ == "OK" else None
        if found:
            self.ledger.named(folder, int(found[1]), int(found[2]), message_id)

    def copy(self) -> None:
        if self.folder is None:
            return
        target = self.rnd.choice(FOLDERS)
        command = "MOVE" if self.rnd.random() < 0.3 and not self.readonly else "COPY"
        first = int(self.some_uid())
        self.uid(command, f"{first}:{first + 3}", target)  # a few: copies of 1:* would snowball

    def noop(self) -> None:
        self.run("noop")
        self.search_recent()

    def recreate(self) -> None:
        """Delete and create the scratch folder again (ends sessions that had it selected)."""
        if self.folder == "Scratch":
            return
        self.run("delete", "Scratch")
        self.run("create", "Scratch")

    def abort_mid_fetch(self) -> None:
        """Ask for every body and leave without reading the answer."""
        if self.folder is not None:
            self.client.send(b"z1 FETCH 1:* (BODY.PEEK[])\r\n")
        self.client.shutdown()

    def logout(self) -> None:
        self.client.logout()


def _leave_during_login(suite) -> None:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", suite.port("imaps"), ssl_context=suite.tls_context(), timeout=10
    )
    client.send(f'l1 LOGIN alice@example.com "{PASSWORD}"\r\n'.encode())
    client.shutdown()


def _client(suite, ledger: Ledger, seed: int, deadline: float) -> None:
    rnd = random.Random(seed)
    session: Session | None = None
    steps = 0
    while time.monotonic() < deadline and steps < MAX_STEPS:
        steps += 1
        action = "connect"
        try:
            if session is None:
                if rnd.random() < 0.1:
                    _leave_during_login(suite)
                    ledger.counts["left during login"] += 1
                    continue
                session = Session(suite, ledger, rnd)
                session.select()
                continue
            action = rnd.choices(
                ["select", "fetch", "store", "expunge", "append", "copy", "noop", "recreate",
                 "abort", "logout"],
                weights=[8, 20, 15, 5, 15, 6, 8, 2, 3, 3],
            )[0]
            if action == "abort":
                session.abort_mid_fetch()
                session = None
                ledger.counts["abrupt disconnect"] += 1
            elif action == "logout":
                session.logout()
                session = None
            else:
                getattr(session, action)()
        except imaplib.IMAP4.abort as exc:
            # BYE: the selected folder was deleted (imaplib may report only the EOF after it)
            selected = session.folder if session is not None else None
            if selected != "Scratch" and "deleted or renamed" not in str(exc):
                ledger.error(f"{action}: connection lost: {exc}")
            session = None
        except (OSError, imaplib.IMAP4.error) as exc:
            ledger.error(f"{action}: {type(exc).__name__}: {exc}")
            session = None
    if session is not None:
        session.logout()


def _open_sessions(suite) -> int:
    return suite.reactor.call(
        lambda: suite.service.imap_context.connections.get("alice@example.com", 0)
    )


class Tracebacks:
    """Server log events that carry a failure (a traceback in the log), while in use."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, event: dict) -> None:
        failure = event.get("log_failure")
        if failure is not None:
            self.seen.append(f"{event.get('log_format')}: {failure.getTraceback()}")

    def __enter__(self) -> Tracebacks:
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc) -> None:
        globalLogPublisher.removeObserver(self)


def test_random_command_mix_from_ten_clients(suite):
    setup = imaps(suite)
    setup.create("Stress")
    setup.create("Scratch")
    setup.logout()
    ledger = Ledger()
    deadline = time.monotonic() + SECONDS
    with Tracebacks() as tracebacks, ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(_client, suite, ledger, seed, deadline) for seed in range(CLIENTS)]
        for future in futures:
            future.result(timeout=SECONDS + 60)
    assert not tracebacks.seen, tracebacks.seen[:3]
    assert not ledger.errors, (ledger.errors[:20], len(ledger.errors), dict(ledger.counts))
    # Enough happened for the checks to mean something.
    counts = ledger.counts
    assert counts["uid FETCH"] > 50 and counts["uid STORE"] > 30, dict(counts)
    assert counts["append"] > 30 and counts["expunge"] > 10, dict(counts)
    assert counts["abrupt disconnect"] > 3 and counts["left during login"] > 3, dict(counts)
    assert len(ledger.names) > 30
    # Every slot came back: all 20 allowed sessions log in at once.
    stop = time.monotonic() + 10
    while _open_sessions(suite) and time.monotonic() < stop:
        time.sleep(0.05)
    assert _open_sessions(suite) == 0
    with ThreadPoolExecutor(20) as pool:
        clients = list(pool.map(lambda _: imaps(suite), range(20)))
    assert _open_sessions(suite) == 20
    for client in clients:
        client.logout()
