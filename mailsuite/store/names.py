"""Maildir file names: the one codec every part of the store reads and writes them with.

A Maildir file name is ``<unique>[,<field>=<value>...][:2,<letters>]``:

- ``<unique>``: ours is ``<sec>.M<usec, 6 digits>P<pid><tag><counter>.<host>`` (``NameMaker``),
  tag ``Q`` from our MDA and ``X`` from an IMAP APPEND or COPY; Dovecot's is
  ``<sec>.M<usec>P<pid>.<host>``; Courier adds ``V<dev>I<inode>``; other programs write what
  they like, often just ``<sec>.<something>.<host>``.
- comma fields after it: ``S=<size on disk>`` and ``W=<size with CRLF line ends>`` (Dovecot's
  convention, which ours follows for S=).
- ``:2,<letters>``: the info part, one letter per IMAP system flag, in ASCII order
  (``FLAG_LETTERS``); files in ``new/`` usually have none.

The *base name* (everything before the first ":", which a unique name never contains) is a
message's identity: the IMAP index's key and, when RFC 1939 allows it as it is, the POP3 UIDL
(``uidl_for``). It never changes when a file moves from new/ to cur/ or changes its flags.

Sizes are read from names so that a cold IMAP SELECT and a POP3 login read directories, not
files: ``name_facts`` (the index) and ``crlf_size_from_name`` (POP3) answer the two usual forms
with one regex (``USUAL_NAME``) and any other name field by field. They sit in loops over every
file of a folder: keep them free of per-name allocations and extra regex passes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterable

# --- our unique names -----------------------------------------------------------------------

# The tag after P<pid>: whoever wrote the file. Our MDA stores SMTP DATA with every line end CRLF
# and ending with CRLF, so S= on its names is the CRLF size too (``written_by_us``); APPEND and
# COPY store the client's bytes as they came, so their names must not claim that.
MDA_TAG = "Q"
APPEND_TAG = "X"

# What our MDA makes: "<sec>.M<usec>P<pid>Q<n>.<host>". Nobody else uses "Q<n>" there
# (Dovecot: "<sec>.M<usec>P<pid>.<host>"; Courier adds V/I).
_OUR_MDA = re.compile(rf"\d+\.M\d+P\d+{MDA_TAG}\d+\.")
# Names our MDA gives (``NameMaker`` with MDA_TAG); a key read back from a delivery journal must
# match before it becomes a path.
DELIVERY_NAME = re.compile(rf"[0-9]+\.M[0-9]+P[0-9]+{MDA_TAG}[0-9]+\.[^/:\x00]+,S=[0-9]+")


def encode_host(hostname: str) -> str:
    """Hostname as the Maildir spec wants it inside a file name."""
    return hostname.replace("/", r"\057").replace(":", r"\072")


class NameMaker:
    """Unique Maildir base names for the files one writer of this process adds; thread-safe.

    ``pid``: the process id to put in names, fixed at creation; None asks ``os.getpid()`` for
    each name. (The MDA has always fixed it, APPEND/COPY always asked: kept as they were.)
    """

    def __init__(self, tag: str, hostname: str, pid: int | None = None) -> None:
        self._tag = tag
        self._host = encode_host(hostname or "localhost")
        self._pid = pid
        self._lock = threading.Lock()
        self._counter = 0

    def make(self, size: int) -> str:
        """``<sec>.M<usec, 6 digits>P<pid><tag><counter>.<host>,S=<size>``."""
        with self._lock:
            self._counter += 1
            counter = self._counter
        seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
        pid = self._pid or os.getpid()
        # Zero-padded microseconds: names of one second sort (and get UIDs) in delivery order.
        return f"{seconds}.M{micros:06d}P{pid}{self._tag}{counter}.{self._host},S={size}"


# --- the info part: flags ----------------------------------------------------------------------

INFO_SEPARATOR = ":2,"

# IMAP system flag <-> Maildir info letter (letters must stay in ASCII order in file names).
FLAG_LETTERS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "$Forwarded": "P",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}
SYSTEM_FLAGS = {flag.lower(): flag for flag in FLAG_LETTERS}
SEEN = FLAG_LETTERS["\\Seen"]
_SYSTEM_FLAGS = frozenset(FLAG_LETTERS)


def canonical_flag(flag: str) -> str:
    """System flags in their canonical case; keywords unchanged."""
    return SYSTEM_FLAGS.get(flag.lower(), flag)


def split_info(name: str) -> tuple[str, str | None]:
    """``base:2,FLAGS`` -> ``(base, "FLAGS")``; a name without ``:2,`` info -> ``(base, None)``.

    The base ends at the first ":" (a Maildir unique name never contains one), the same rule
    as ``split_flags``, so POP3 and the IMAP index agree on every file name.
    """
    base, _sep, info = name.partition(":")
    return base, (info[2:] if info.startswith("2,") else None)


def split_flags(name: str) -> tuple[str, frozenset[str]]:
    """Maildir file name -> (key, system flags from its ``:2,`` info)."""
    key, sep, info = name.partition(":")
    flags: set[str] = set()
    if sep and info.startswith("2,"):
        flags = {LETTER_FLAGS[c] for c in info[2:] if c in LETTER_FLAGS}
    return key, frozenset(flags)


def system_flags(flags: Iterable[str]) -> frozenset[str]:
    """The flags of ``flags`` that a file name carries."""
    return _SYSTEM_FLAGS.intersection(flags)


def keyword_flags(flags: Iterable[str]) -> frozenset[str]:
    """The flags of ``flags`` that only the index keeps."""
    return frozenset(f for f in flags if f not in FLAG_LETTERS)


@functools.lru_cache(maxsize=64)  # 2**6 sets of system flags
def flag_letters(system: frozenset[str]) -> str:
    """The info letters of a set of system flags (``system_flags``), in ASCII order."""
    return "".join(sorted(FLAG_LETTERS[f] for f in system))


def cur_name(key: str, flags: Iterable[str]) -> str:
    """The path, relative to the folder, of message ``key`` in cur/ carrying ``flags``."""
    return f"cur/{key}:2,{flag_letters(system_flags(flags))}"


# --- the base name: time, sizes, identity ----------------------------------------------------

# Our MDA's names start with "<seconds>.M<microseconds>"; others at least with "<seconds>.".
TIME_PREFIX = re.compile(r"(\d+)\.(?:M(\d+))?")
# The two usual base names, read by one regex instead of field by field: ours
# ("<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>") and Dovecot's ("<unique>,S=<size>,W=<crlf size>").
# Any other name goes through ``name_sizes``.
USUAL_NAME = re.compile(
    rf"(?:\d+\.M\d+P\d+{MDA_TAG}\d+\.[^,]*,S=(?P<ours>\d+)|[^,]*,S=(?P<s>\d+),W=(?P<w>\d+))\Z",
    re.ASCII,
)
# RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
_UIDL_OK = re.compile(r"[\x21-\x7e]{1,70}")


def uidl_for(base: str) -> str:
    """The POP3 unique-id of a message: its base name when RFC 1939 allows that as it is.

    Our own names always fit. A base name that does not (longer than 70 characters, or with
    bytes outside 0x21-0x7E, say from a non-ASCII hostname) gets a stable digest instead; the
    ':' in it cannot occur in a Maildir base name, so the two forms never collide.
    """
    if _UIDL_OK.fullmatch(base):
        return base
    digest = hashlib.sha256(base.encode("utf-8", "surrogateescape")).hexdigest()
    return f"H:{digest[:64]}"


def written_by_us(base: str) -> bool:
    """Was this base name made by our MDA (so its file is CRLF-only)?"""
    return _OUR_MDA.match(base) is not None


def name_sizes(base: str) -> tuple[int | None, int | None]:
    """The ``,S=<n>`` and ``,W=<n>`` fields of a Maildir base name (None where absent).

    S= is the file's size on disk, W= its size with CRLF line ends (the fields follow the
    unique part, comma-separated: ``<unique>,S=1234,W=1260``).
    """
    comma = base.find(",")
    if comma < 0:
        return None, None
    s = w = None
    for part in base[comma + 1 :].split(","):
        field, value = part[:2], part[2:]
        if field == "S=" and value.isdecimal():  # isdigit() lets "²" through to int()
            s = int(value)
        elif field == "W=" and value.isdecimal():
            w = int(value)
    return s, w


def crlf_size_from_name(base: str) -> int | None:
    """The size with CRLF line ends that the name vouches for, without reading the file.

    W= says so by convention. S= does only on a file our MDA delivered: SMTP DATA is stored with
    every line end CRLF and ends with CRLF, so size on disk and CRLF size are one. Anything
    else (S= from Courier or an IMAP APPEND, which may hold bare LF) has to be measured.
    """
    usual = USUAL_NAME.match(base)
    if usual is not None:
        return int(usual["ours"] or usual["w"])
    return _crlf_size_any(base)


def _crlf_size_any(base: str) -> int | None:
    """``crlf_size_from_name`` for any name: each comma field looked at."""
    s, w = name_sizes(base)
    if w is not None:
        return w
    if s is not None and written_by_us(base):
        return s
    return None


def name_facts(key: str) -> tuple[int, bool] | None:
    """(RFC822.SIZE, CRLF-only?) from a base name alone, when the name vouches for both: ``,S=``
    (size on disk) with ``,W=`` (CRLF size) by Dovecot's convention, the file holding bare LF
    exactly when they differ; or ``,S=`` on a name our MDA wrote (CRLF-only). None: ask the file.
    """
    common = USUAL_NAME.match(key)
    if common is not None:  # one regex for the two usual forms instead of split-and-scan
        ours, w = common["ours"], common["w"]
        if ours is not None:
            return int(ours), True
        s, w = int(common["s"]), int(w)
        return (w, w == s) if w >= s else None
    return _name_facts_any(key)


def _name_facts_any(key: str) -> tuple[int, bool] | None:
    """``name_facts`` for any name: each comma field looked at."""
    s, w = name_sizes(key)
    if s is None:
        return None
    if w is not None:
        return (w, w == s) if w >= s else None  # smaller would be a name that lies
    return (s, True) if written_by_us(key) else None
