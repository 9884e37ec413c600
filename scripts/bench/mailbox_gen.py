"""A deterministic, realistic Maildir INBOX for the IMAP/POP3 yardstick.

Sizes 2-50 KB (log-normal around 8 KB), half plain text, the rest multipart/alternative (text +
HTML), some of those inside multipart/mixed with a small base64 attachment; varied senders,
subjects (some RFC 2047 encoded), dates two years apart, system flags in the file names (older
mail read, the newest unread, some flagged or answered). Every file is in ``cur/`` with CRLF
line ends (what mailsuite's own MDA writes), named ``<date>.M<n>P<seed>.bench,S=<size>,W=<size>
:2,<flags>`` so both servers order them by date alone, and its mtime (INTERNALDATE) is its
Date. The same seed gives the same bytes, so every server reads the same tree (``copy_tree``).

    python scripts/bench/mailbox_gen.py DIR [--messages 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

SEARCH_WORD = "invoice"  # in about 3 % of subjects, in no other vocabulary word
EPOCH = 1672531200  # 2023-01-01T00:00:00Z

FIRST = "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy".split()
LAST = "Smith Jones Garcia Miller Davis Lopez Wilson Martin Clark Lewis Walker Young King".split()
DOMAINS = ["example.org", "example.net", "lists.example.com", "corp.example", "mail.example.de"]
TOPICS = (
    "meeting agenda report release budget review schedule update proposal draft notes lunch "
    "deploy outage ticket request feedback contract travel conference question summary plan "
    "weekly monthly project server backup migration holiday party training reminder"
).split()
ENCODED_SUBJECTS = ["Réunion d'équipe", "Grüße aus Köln", "Café demain ?", "Año nuevo", "Ξ update"]
WORDS = (
    "the of and to in is that for it as with was on be by this are from at or an have not but "
    "which they you were all we can their has there been if more when will would who so no "
    "system data mail server message client folder index protocol network memory thread queue "
    "release review change issue test result value report number people time year work"
).split()


@dataclass
class MailboxInfo:
    """What was generated, in the order both servers number the messages (1..count)."""

    count: int
    sizes: list[int] = field(default_factory=list)  # octets of message n at index n - 1
    unseen: int = 0
    search_word: str = SEARCH_WORD
    search_matches: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)


def _paragraphs(rng: random.Random, n: int = 300) -> list[str]:
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(20, 120))]
        lines, line = [], ""
        for word in words:
            if len(line) + len(word) + 1 > 72:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
        out.append("\r\n".join(lines).capitalize() + ".")
    return out


def _text(rng: random.Random, paragraphs: list[str], size: int) -> list[str]:
    chosen, total = [], 0
    while total < size:
        para = rng.choice(paragraphs)
        chosen.append(para)
        total += len(para) + 4
    return chosen


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first} {last}", f"{first.lower()}.{last.lower()}@{rng.choice(DOMAINS)}"


def _subject(rng: random.Random, n: int) -> tuple[str, bool]:
    """(header value, contains SEARCH_WORD)."""
    if rng.random() < 0.05:
        text = rng.choice(ENCODED_SUBJECTS)
        encoded = base64.b64encode(text.encode()).decode()
        return f"=?UTF-8?B?{encoded}?=", False
    words = [rng.choice(TOPICS) for _ in range(rng.randint(2, 6))]
    hit = rng.random() < 0.03
    if hit:
        words.insert(rng.randrange(len(words) + 1), SEARCH_WORD.capitalize())
    prefix = rng.choice(["", "", "", "Re: ", "Fwd: ", "[team] "])
    return f"{prefix}{' '.join(words).capitalize()} #{n}", hit


def make_message(
    rng: random.Random, paragraphs: list[str], n: int, date: int
) -> tuple[bytes, bool]:
    """One message (CRLF) and whether its subject holds SEARCH_WORD."""
    target = int(min(50_000, max(2_000, rng.lognormvariate(8.99, 0.75))))  # median ~8 KB
    name, address = _person(rng)
    subject, hit = _subject(rng, n)
    headers = [
        f"Return-Path: <{address}>",
        f"Received: from mx.{address.split('@')[1]} (mx [192.0.2.{n % 250 + 1}])",
        f"\tby mx.bench.example with ESMTPS id {n:08x}; {email.utils.formatdate(date)}",
        f"From: {name} <{address}>",
        "To: Bench User <bench@bench.example>",
    ]
    if rng.random() < 0.3:
        cc_name, cc_address = _person(rng)
        headers.append(f"Cc: {cc_name} <{cc_address}>")
    headers += [
        f"Subject: {subject}",
        f"Date: {email.utils.formatdate(date)}",
        f"Message-ID: <{n}.{date}@{address.split('@')[1]}>",
        "MIME-Version: 1.0",
    ]
    kind = rng.random()
    if kind < 0.5:
        body = "\r\n\r\n".join(_text(rng, paragraphs, target - 700))
        headers.append("Content-Type: text/plain; charset=utf-8")
        return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode(), hit
    attachment = b""
    if kind >= 0.85:
        attachment = rng.randbytes(rng.randint(1_000, 6_000))
    share = (target - 900 - len(attachment) * 4 // 3) // 2
    paras = _text(rng, paragraphs, max(share, 300))
    plain = "\r\n\r\n".join(paras)
    html = "<html><body>\r\n" + "\r\n".join(f"<p>{p}</p>" for p in paras) + "\r\n</body></html>"
    alt = f"alt-{n}-{date}"
    alternative = (
        f"--{alt}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}\r\n"
        f"--{alt}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{alt}--\r\n"
    )
    if not attachment:
        headers.append(f'Content-Type: multipart/alternative; boundary="{alt}"')
        body = alternative
    else:
        mixed = f"mix-{n}-{date}"
        headers.append(f'Content-Type: multipart/mixed; boundary="{mixed}"')
        b64 = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
        body = (
            f'--{mixed}\r\nContent-Type: multipart/alternative; boundary="{alt}"\r\n\r\n'
            f"{alternative}"
            f'--{mixed}\r\nContent-Type: application/pdf; name="doc{n}.pdf"\r\n'
            f'Content-Disposition: attachment; filename="doc{n}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{b64}--{mixed}--\r\n"
        )
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode(), hit


def _flags(rng: random.Random, n: int, count: int) -> str:
    letters = set()
    if n <= count - count // 12 and rng.random() > 0.01:  # the newest ~8 % unread
        letters.add("S")
    if rng.random() < 0.1:
        letters.add("R")
    if rng.random() < 0.03:
        letters.add("F")
    return "".join(sorted(letters))


def generate(root: Path, count: int, seed: int = 1) -> MailboxInfo:
    """Write ``count`` messages into the Maildir ``root`` (tmp/new/cur) and describe them."""
    rng = random.Random(seed)
    paragraphs = _paragraphs(rng)
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    info = MailboxInfo(count)
    date = EPOCH
    for n in range(1, count + 1):
        date += rng.randint(60, 6_000)
        data, hit = make_message(rng, paragraphs, n, date)
        flags = _flags(rng, n, count)
        info.sizes.append(len(data))
        info.unseen += "S" not in flags
        info.search_matches += hit
        size = len(data)
        path = root / "cur" / f"{date}.M{n:06d}P{seed}.bench,S={size},W={size}:2,{flags}"
        path.write_bytes(data)
        os.utime(path, (date, date))
    return info


def copy_tree(source: Path, target: Path) -> None:
    """Copy the Maildir (file mtimes kept: they are the INTERNALDATE)."""
    shutil.copytree(source, target, copy_function=shutil.copy2, dirs_exist_ok=True)


def spread(count: int, wanted: int) -> list[int]:
    """``wanted`` message numbers spread evenly over 1..count (every k-th message)."""
    if count <= 0:
        return []
    step = max(1, count // max(1, wanted))
    return list(range(1, count + 1, step))[:wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    info = generate(args.root, args.messages, args.seed)
    print(
        f"{info.count} messages, {info.total_bytes / 1e6:.1f} MB, {info.unseen} unseen, "
        f"{info.search_matches} subjects with {info.search_word!r}"
    )


if __name__ == "__main__":
    main()
