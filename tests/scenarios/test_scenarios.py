"""The minor dialogs of SMTP, POP3 and IMAP as transcripts: every tests/scenarios/<protocol>/
NNN-name.txt is run here, each against a real server of its own on 127.0.0.1 (the ``make_suite``
fixture of tests/conftest.py), by a line-level client (support.wire.RawClient).

A transcript is a header, then the dialog::

    # Comments start with "#", anywhere; blank lines are ignored.
    role: submission
    settings: limits.bad_commands = 3

    S: 220 mx.test.example ESMTP mailsuite
    C: EHLO client.test
    S: 250-mx.test.example
    ...

Header (``name: value`` lines before the first dialog line):

``role`` (required)
    the listener connected to: ``smtp`` (MX, port 25's role), ``submission`` (587, STARTTLS),
    ``submissions`` (465, implicit TLS), ``pop3`` (110, STLS), ``pop3s`` (995, implicit TLS),
    ``imap`` (143, STARTTLS), ``imaps`` (993, implicit TLS). The implicit-TLS roles are in TLS
    from the start, checking the server's certificate for mx.test.example.
``settings`` (any number)
    ``section.key = value``, a server setting on top of the test settings (value in JSON:
    ``0.3``, ``"text"``, ``["a", "b"]``).
``user`` (any number)
    an account to add; alice@example.com and bob@example.com always exist (the ``suite``
    fixture's users). Every account's password is "correct horse battery staple".
``alias`` (any number)
    ``alias@example.com -> alice@example.com``: an alias and its target.
``message`` (any number)
    ``alice@example.com``, followed by the message's lines, each written ``| text`` (``|``
    alone is an empty line): a message put into that user's INBOX Maildir (new/) before the
    dialog starts, with CRLF line ends, as our MDA would have delivered it.

Dialog (in order):

``C: text``
    the client sends ``text`` and CRLF. Consecutive ``C:`` lines are sent in one write, so
    several in a row are pipelined; a ``C:`` line after an ``S:`` line waits for that line.
``S: text``
    the server's next line must be ``text`` followed by CRLF, whole (see the patterns below).
``! starttls``
    the client starts TLS on the connection now (after the server's go-ahead line).
``! closed``
    the server must have closed the connection: nothing more comes.
``! reconnect``
    the client closes this connection and opens a new one to the same role (the new
    greeting is the next ``S:`` line).
``! mailbox alice@example.com has 2 messages``
    the user's INBOX Maildir holds that many message files (new/ and cur/).

Patterns and escapes, ``${...}`` (nothing in these protocols is written that way):

- in ``S:`` lines, for what varies between runs: ``${number}`` (digits), ``${hex}`` (hex
  digits), ``${word}`` (a run of non-space characters), ``${any}`` (anything, even nothing);
- in both: ``${SP}``, one space (trailing spaces would be invisible, as in "334 ");
- in ``C:`` lines: ``${TEXT * N}``, TEXT N times (``NOOP ${x * 5000}``), and ``${no CRLF}`` at
  the end, to send the line without its CRLF.

Lines are UTF-8. When the server sends something else than a transcript says, the failure shows
the transcript's file and line, the expected and the received line, and the dialog up to there.
After the last line the client just closes: end a dialog with QUIT or LOGOUT and ``! closed``
to check that nothing else came.
"""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import SUITE_USERS
from support.maildir import put_message
from support.wire import RawClient

HERE = Path(__file__).resolve().parent
TRANSCRIPTS = sorted(HERE.glob("*/*.txt"))
ROLES = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
SERVER_PATTERNS = {"number": "[0-9]+", "hex": "[0-9A-Fa-f]+", "word": r"\S+", "any": ".*"}
REPEAT = re.compile(r"(.+) \* ([0-9]+)")
NO_CRLF = "${no CRLF}"
MAILBOX = re.compile(r"mailbox (\S+@\S+) has ([0-9]+) messages?")


class TranscriptError(Exception):
    """A transcript that cannot be read: its file and line say where."""


@dataclass
class Step:
    line: int  # in the transcript file, for messages
    kind: str  # "C", "S" or "!"
    text: str
    data: bytes = b""  # C: what is sent
    pattern: re.Pattern | None = None  # S: what must come


@dataclass
class Transcript:
    path: Path
    role: str = ""
    settings: dict[str, object] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)
    messages: list[tuple[str, list[str]]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


def client_bytes(text: str, where: str) -> bytes:
    """The bytes a ``C:`` line sends: its escapes expanded, CRLF added unless ``${no CRLF}``."""
    end = "\r\n"
    if text.endswith(NO_CRLF):
        text, end = text[: -len(NO_CRLF)], ""

    def expand(match: re.Match) -> str:
        inner = match.group(1)
        if inner == "SP":
            return " "
        repeat = REPEAT.fullmatch(inner)
        if repeat is None:
            raise TranscriptError(f"{where}: unknown ${{{inner}}} in a C: line")
        return repeat.group(1) * int(repeat.group(2))

    return (PLACEHOLDER.sub(expand, text) + end).encode("utf-8")


def server_pattern(text: str, where: str) -> re.Pattern:
    """The regular expression an ``S:`` line stands for: literal text and its placeholders."""
    parts = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[position : match.start()]))
        inner = match.group(1)
        if inner == "SP":
            parts.append(" ")
        elif inner in SERVER_PATTERNS:
            parts.append(SERVER_PATTERNS[inner])
        else:
            raise TranscriptError(f"{where}: unknown ${{{inner}}} in an S: line")
        position = match.end()
    parts.append(re.escape(text[position:]))
    return re.compile("".join(parts), re.DOTALL)


def parse(path: Path) -> Transcript:
    transcript = Transcript(path)
    message: list[str] | None = None  # the lines of the message header being read
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path.relative_to(HERE)}:{number}"
        line = raw.rstrip()
        if message is not None and not transcript.steps and line.startswith("|"):
            message.append(line[2:] if line.startswith("| ") else line[1:])
            continue
        message = None
        if not line or line.startswith("#"):
            continue
        if line[:2] in ("C:", "S:"):
            kind, text = line[0], line[2:].removeprefix(" ")
            if kind == "C":
                step = Step(number, kind, text, data=client_bytes(text, where))
            else:
                step = Step(number, kind, text, pattern=server_pattern(text, where))
            transcript.steps.append(step)
        elif line.startswith("! "):
            action = line[2:].strip()
            if action not in ("starttls", "closed", "reconnect") and not MAILBOX.fullmatch(action):
                raise TranscriptError(f"{where}: unknown action {action!r}")
            transcript.steps.append(Step(number, "!", action))
        elif transcript.steps:
            raise TranscriptError(f"{where}: not a C:, S: or ! line: {line!r}")
        else:
            name, colon, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if not colon:
                raise TranscriptError(f"{where}: not a header line: {line!r}")
            if name == "role":
                if value not in ROLES:
                    raise TranscriptError(f"{where}: role must be one of {', '.join(ROLES)}")
                transcript.role = value
            elif name == "settings":
                key, equals, setting = value.partition("=")
                if not equals:
                    raise TranscriptError(f"{where}: settings: section.key = value")
                transcript.settings[key.strip()] = json.loads(setting)
            elif name == "user":
                transcript.users.append(value)
            elif name == "alias":
                alias, arrow, target = value.partition("->")
                if not arrow:
                    raise TranscriptError(f"{where}: alias: alias@domain -> target@domain")
                transcript.aliases.append((alias.strip(), target.strip()))
            elif name == "message":
                message = []
                transcript.messages.append((value, message))
            else:
                raise TranscriptError(f"{where}: unknown header {name!r}")
    if not transcript.role:
        raise TranscriptError(f"{path.relative_to(HERE)}: no role: header")
    if not transcript.steps:
        raise TranscriptError(f"{path.relative_to(HERE)}: no dialog")
    return transcript


class Mismatch(AssertionError):
    pass


class Player:
    """Runs one transcript's dialog against a started server."""

    def __init__(self, transcript: Transcript, server) -> None:
        self.transcript = transcript
        self.server = server
        self.log: list[str] = []  # the dialog so far, for failure messages
        self.pending: list[bytes] = []  # C: lines not sent yet
        self.client = self.connect()

    def connect(self) -> RawClient:
        self.log.append(f"-- connected to {self.transcript.role}")
        return RawClient.connect(self.server, self.transcript.role)

    def fail(self, step: Step, problem: str) -> None:
        where = f"{self.transcript.path.relative_to(HERE)}:{step.line}"
        dialog = "\n".join(self.log[-30:])
        raise Mismatch(f"{where}: {problem}\n--- the dialog up to there:\n{dialog}")

    def flush(self) -> None:
        if self.pending:
            self.client.send(b"".join(self.pending))
            self.pending = []

    def receive(self, step: Step) -> bytes:
        self.flush()
        try:
            return self.client.line()
        except (ConnectionError, ssl.SSLError) as exc:
            self.log.append(f"-- {exc!r}")
            return b""
        except TimeoutError:  # socket.timeout: a reply that never came (not a time check)
            self.fail(step, f"no line from the server, expected: {step.text}")

    def play(self) -> None:
        try:
            handlers = {"C": self.step_client, "S": self.step_server, "!": self.step_action}
            for step in self.transcript.steps:
                handlers[step.kind](step)
            self.flush()
        finally:
            self.client.close()

    def step_client(self, step: Step) -> None:
        self.pending.append(step.data)
        self.log.append(f"C: {step.text}")

    def step_server(self, step: Step) -> None:
        line = self.receive(step)
        if not line:
            self.fail(step, f"the server closed the connection, expected: {step.text}")
        text = line.decode("utf-8", "backslashreplace")
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            self.fail(step, f"a line not ended by CRLF alone: {line!r}")
        text = text[:-2]
        if not step.pattern.fullmatch(text):
            self.fail(step, f"expected: {step.text}\n     got: {text}")
        self.log.append(f"S: {text}")

    def step_action(self, step: Step) -> None:
        action = step.text
        if action == "starttls":
            self.flush()
            self.client.starttls(self.server.tls_context())
        elif action == "closed":
            line = self.receive(step)
            if line:
                text = line.decode("utf-8", "backslashreplace").rstrip("\r\n")
                self.fail(step, f"expected the connection closed, got: {text}")
        elif action == "reconnect":
            self.flush()
            self.client.close()
            self.client = self.connect()
        else:
            address, count = MAILBOX.fullmatch(action).groups()
            self.flush()
            root = self.server.maildir(address)
            subdirs = [root / "new", root / "cur"]
            files = [path for sub in subdirs if sub.is_dir() for path in sub.iterdir()]
            if len(files) != int(count):
                self.fail(step, f"{address} has {len(files)} messages, expected {count}")
        self.log.append(f"! {action}")


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_transcript(path: Path, make_suite) -> None:
    transcript = parse(path)
    server = make_suite(transcript.settings)
    for user in (*SUITE_USERS, *transcript.users):
        server.add_user(user)
    for alias, target in transcript.aliases:
        server.db.add_alias(alias, target)
    for address, lines in transcript.messages:
        put_message(server, address, "".join(f"{line}\r\n" for line in lines).encode())
    Player(transcript, server).play()


def test_every_transcript_is_numbered_once_per_protocol() -> None:
    """NNN-name.txt, one number per protocol directory (the order they are read in)."""
    seen: dict[tuple[str, str], Path] = {}
    for path in TRANSCRIPTS:
        number = path.stem.split("-", 1)[0]
        assert re.fullmatch(r"[0-9]{3}", number) and "-" in path.stem, path
        assert (path.parent.name, number) not in seen, (path, seen[path.parent.name, number])
        seen[path.parent.name, number] = path
    assert {path.parent.name for path in TRANSCRIPTS} == {"smtp", "pop3", "imap"}

