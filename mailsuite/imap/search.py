"""SEARCH (RFC 3501 §6.4.4, CONDSTORE's MODSEQ key): parsing keys and matching messages.

Matching runs in a worker thread. Flag, size, date and UID keys use only the in-memory records;
header keys read the cached header block; BODY/TEXT read the message (decoding base64 and
quoted-printable text parts), so only those cost file I/O.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime
import email.errors
import email.header
import email.utils
import quopri
import re
from dataclasses import dataclass
from typing import Any

from mailsuite.imap.parser import ParseError, Reader, in_ranges, resolve_set
from mailsuite.store import address_list, mime
from mailsuite.store.index import FolderIndex, Record
from mailsuite.store.names import canonical_flag

MAX_DEPTH = 16
CHARSETS = ("UTF-8", "US-ASCII")

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
# Fields whose keys match addresses as well as the raw text: the address with comments, quotes
# and folding removed (``From: <user (c)@ (c) host>`` is found by FROM user@host).
_ADDRESS_FIELDS = frozenset(("bcc", "cc", "from", "to"))
# In an address, comments, quotes, routes and whitespace may stand between these characters.
_ADDRESS_SEPARATORS = re.compile(r'[\s\0@.<>"\\()]+')
# Where comments or quoted pairs may join pieces of an address the raw text keeps apart: a
# header with one of these is always a candidate for an address key (see ``_candidates``).
_ADDRESS_JOINS = re.compile(rb"\\|[^\s(]\(|\)[^\s)]")
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_MONTHS = {
    m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())
}


class BadCharset(Exception):
    pass


@dataclass
class Key:
    name: str
    value: Any = None
    other: Any = None


def parse_search(reader: Reader) -> tuple[list[Key], str]:
    """The search program after ``SEARCH``: (keys, charset)."""
    charset = "US-ASCII"
    if reader.peek() in (ord("C"), ord("c")):
        start = (reader.index, reader.pos)
        if reader.keyword() == "CHARSET":
            reader.sp()
            charset = reader.astring().decode("ascii", "replace").upper()
            if charset not in CHARSETS:
                raise BadCharset(charset)
            reader.sp()
        else:
            reader.index, reader.pos = start
    keys = [_key(reader, 0)]
    while reader.maybe_sp():
        keys.append(_key(reader, 0))
    reader.end()
    return keys, charset


def _key(reader: Reader, depth: int) -> Key:
    if depth > MAX_DEPTH:
        raise ParseError("search keys nested too deeply")
    char = reader.peek()
    if char == ord("("):
        return Key("AND", reader.parenthesized(lambda r: _key(r, depth + 1)))
    if char is not None and (0x30 <= char <= 0x39 or char == ord("*")):
        return Key("SEQ", reader.sequence_set())
    name = reader.keyword()
    if name in ("ALL", "NEW", "OLD", "RECENT") or name in _FLAG_KEYS:
        return Key(name)
    reader.sp()
    if name == "NOT":
        return Key("NOT", _key(reader, depth + 1))
    if name == "OR":
        first = _key(reader, depth + 1)
        reader.sp()
        return Key("OR", first, _key(reader, depth + 1))
    if name in _HEADER_KEYS or name in ("BODY", "TEXT"):
        return Key(name, _text(reader))
    if name == "HEADER":
        field = reader.astring().decode("ascii", "replace").lower()
        reader.sp()
        return Key(name, field, _text(reader))
    if name in ("KEYWORD", "UNKEYWORD"):
        return Key(name, canonical_flag(reader.flag()))
    if name in ("LARGER", "SMALLER"):
        return Key(name, reader.number())
    if name == "UID":
        return Key(name, reader.sequence_set())
    if name in _DATE_KEYS:
        return Key(name, _date(reader))
    if name == "MODSEQ":
        if reader.peek() == ord('"'):  # entry-name and entry-type-req (ignored: one modseq)
            reader.quoted()
            reader.sp()
            reader.atom()
            reader.sp()
        return Key(name, reader.number())
    raise ParseError(f"unknown search key {name}")


def _text(reader: Reader) -> str:
    return reader.astring().decode("utf-8", "replace").casefold()


def _date(reader: Reader) -> datetime.date:
    raw = reader.astring().decode("ascii", "replace")
    try:
        day, month, year = raw.split("-")
        return datetime.date(int(year), _MONTHS[month.upper()], int(day))
    except (ValueError, KeyError):
        raise ParseError(f"bad date {raw!r}") from None


def uses_modseq(keys: list[Key]) -> bool:
    for key in keys:
        if key.name == "MODSEQ":
            return True
        if key.name == "AND" and uses_modseq(key.value):
            return True
        if key.name == "NOT" and uses_modseq([key.value]):
            return True
        if key.name == "OR" and uses_modseq([key.value, key.other]):
            return True
    return False


class Matcher:
    """Evaluates keys for the messages of one session's view (in a worker thread)."""

    def __init__(self, index: FolderIndex, uids: list[int], recent: set[int]) -> None:
        self.index = index
        self.uids = uids
        self.recent = recent
        self._headers: dict[int, list[tuple[str, str]]] = {}
        self._blocks: dict[int, bytes] = {}  # cached header blocks of the current chunk

    def search(self, keys: list[Key]) -> list[tuple[int, Record]]:
        """(message sequence number, record) of every match, in order."""
        matches = []
        get = self.index.get
        prefetch = _needs_header(keys)
        if _needs(keys, _DATE_NAMES):
            self.index.fill_internaldates(self.uids)
        if _needs(keys, _SIZE_NAMES):
            self.index.fill_sizes(self.uids)
        # Tokens every match must contain somewhere in its header (top-level header keys).
        tokens = [t for t in map(_required_token, keys) if t is not None]
        address = any(k.name in _HEADER_KEYS and _HEADER_KEYS[k.name] in _ADDRESS_FIELDS
                      for k in keys)
        for start in range(0, len(self.uids), HEADER_CHUNK):
            chunk = self.uids[start : start + HEADER_CHUNK]
            maybe = None
            if prefetch:  # one query for the chunk's headers instead of one per message
                self._blocks = self.index.headers(list(chunk))
                self._headers = {}
                if tokens:
                    maybe = _candidates(self._blocks, tokens, address)
            for msn, uid in enumerate(chunk, start + 1):
                if maybe is not None and uid not in maybe and uid in self._blocks:
                    continue  # its header cannot contain a required token: no match
                record = get(uid)
                if record is None:
                    continue  # expunged meanwhile, not yet announced: never matches
                try:
                    if all(self._match(key, msn, record) for key in keys):
                        matches.append((msn, record))
                except FileNotFoundError:  # expunged while its header or body was read
                    continue
        self._blocks = {}
        return matches

    def _match(self, key: Key, msn: int, record: Record) -> bool:
        name = key.name
        if name == "ALL":
            return True
        if name == "AND":
            return all(self._match(k, msn, record) for k in key.value)
        if name == "NOT":
            return not self._match(key.value, msn, record)
        if name == "OR":
            return self._match(key.value, msn, record) or self._match(key.other, msn, record)
        if name in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[name]
            return (flag in record.flags) == present
        if name == "KEYWORD":
            return key.value in record.flags
        if name == "UNKEYWORD":
            return key.value not in record.flags
        if name == "RECENT":
            return record.uid in self.recent
        if name == "NEW":
            return record.uid in self.recent and "\\Seen" not in record.flags
        if name == "OLD":
            return record.uid not in self.recent
        if name == "LARGER":
            return record.size > key.value
        if name == "SMALLER":
            return record.size < key.value
        if name == "SEQ":
            return in_ranges(msn, resolve_set(key.value, len(self.uids)))
        if name == "UID":
            largest = self.uids[-1] if self.uids else 0
            return in_ranges(record.uid, resolve_set(key.value, largest))
        if name == "MODSEQ":
            return record.modseq >= key.value
        if name in ("BEFORE", "ON", "SINCE"):
            return _compare(name, datetime.date.fromtimestamp(record.internaldate), key.value)
        if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            sent = self._sent_date(record)
            return sent is not None and _compare(name[4:], sent, key.value)
        if name in _HEADER_KEYS:
            return self._header_contains(record, _HEADER_KEYS[name], key.value)
        if name == "HEADER":
            return self._header_contains(record, key.value, key.other)
        if name == "BODY":
            return self._body_contains(record, key.value, include_header=False)
        if name == "TEXT":
            return self._body_contains(record, key.value, include_header=True)
        raise ParseError(f"unknown search key {name}")

    def _block(self, record: Record) -> bytes:
        block = self._blocks.get(record.uid)
        return block if block is not None else self.index.header(record.uid)

    def _fields(self, record: Record) -> list[tuple[str, str]]:
        fields = self._headers.get(record.uid)
        if fields is None:
            fields = mime.parse_header_fields(self._block(record))
            self._headers[record.uid] = fields
        return fields

    def _header_contains(self, record: Record, field: str, needle: str) -> bool:
        fields = self._headers.get(record.uid)
        if fields is not None:
            values = [v for n, v in fields if n == field]
        else:
            block = self._block(record)
            if needle and _cannot_contain(block, needle, field in _ADDRESS_FIELDS):
                return False
            values = mime.field_values(block, field)  # that field only, not the whole header
        if not needle:
            return bool(values)
        if any(needle in _decoded(v) for v in values):
            return True
        return field in _ADDRESS_FIELDS and any(needle in _decoded(_addresses(v)) for v in values)

    def _sent_date(self, record: Record) -> datetime.date | None:
        value = mime.first(self._fields(record), "date")
        try:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError, IndexError):
            return None
        return parsed.date() if parsed else None

    def _body_contains(self, record: Record, needle: str, include_header: bool) -> bool:
        if include_header and any(needle in _decoded(v) for _, v in self._fields(record)):
            return True
        try:
            content = self.index.content(record)
        except FileNotFoundError:
            return False
        try:
            tree = self.index.structure(record.uid)
            for node in _leaves(tree):
                body = bytes(content[node["bs"] : node["end"]])
                if node["enc"] == "base64":
                    try:
                        body = base64.b64decode(body)
                    except (binascii.Error, ValueError):
                        pass
                elif node["enc"] == "quoted-printable":
                    body = quopri.decodestring(body)
                charset = dict(node["params"]).get("charset", "utf-8")
                try:
                    text = body.decode(charset, "replace")
                except LookupError:
                    text = body.decode("utf-8", "replace")
                if needle in text.casefold():
                    return True
            return False
        finally:
            if hasattr(content, "close"):
                content.close()


HEADER_CHUNK = 500
_HEADER_NAMES = {"SENTBEFORE", "SENTON", "SENTSINCE", "HEADER", "TEXT", *_HEADER_KEYS}


_DATE_NAMES = {"BEFORE", "ON", "SINCE"}
_SIZE_NAMES = {"LARGER", "SMALLER"}


def _needs_header(keys: list[Key]) -> bool:
    return _needs(keys, _HEADER_NAMES)


def _needs(keys: list[Key], names: set[str]) -> bool:
    """Does any of ``keys``, at any depth, have one of these ``names``?"""
    for key in keys:
        if key.name in names:
            return True
        if key.name == "AND" and _needs(key.value, names):
            return True
        if key.name == "NOT" and _needs([key.value], names):
            return True
        if key.name == "OR" and _needs([key.value, key.other], names):
            return True
    return False


def _token(needle: str, address: bool = False) -> str:
    """The longest run of ``needle`` without whitespace or NUL (see ``_cannot_contain``); for an
    address key, without the characters an address's comments and quotes may come between."""
    if address:
        return max(_ADDRESS_SEPARATORS.split(needle), key=len, default="")
    return max(needle.replace("\0", " ").split(), key=len, default="")


def _addresses(value: str) -> str:
    """The addresses of a From/To/Cc/Bcc value as SEARCH compares them: ``name <box@host>`` (or
    ``box@host``), comments, quotes and folding gone, joined by NUL."""
    found = mime.simple_addresses(value)
    if found is None:
        found = address_list.mailboxes(value)
    forms = []
    for name, _route, mailbox, host in found:
        address = f"{mailbox}@{host}" if host else mailbox
        forms.append(f"{name} <{address}>" if name else address)
    return "\0".join(forms)


def _required_token(key: Key) -> bytes | None:
    """For a top-level header key with a needle: its token, lower-case ASCII bytes."""
    address = False
    if key.name in _HEADER_KEYS:
        needle = key.value
        address = _HEADER_KEYS[key.name] in _ADDRESS_FIELDS
    elif key.name == "HEADER":
        needle = key.other
    else:
        return None
    token = _token(needle, address) if needle else ""
    if not token:
        return None
    return token.encode() if token.isascii() else b"\x80"  # non-ASCII: only 8-bit headers


def _candidates(blocks: dict[int, bytes], tokens: list[bytes], address: bool) -> set[int]:
    """UIDs of ``blocks`` that may match every token: the same proof as ``_cannot_contain``,
    made over one joined buffer per chunk, so a folder-wide SUBJECT search costs a few scans
    in C instead of per-message Python work."""
    uids = list(blocks)
    parts = [blocks[uid] for uid in uids]
    starts: list[int] = []
    offset = 0
    for part in parts:
        starts.append(offset)
        offset += len(part) + 1
    joined = b"\0".join(parts)
    # Blocks with encoded words or 8-bit bytes: always candidates (decoding may match).
    special: set[int] = set()
    if not joined.isascii():
        special.update(uid for uid, part in zip(uids, parts, strict=True) if not part.isascii())
    pos = 0
    while (pos := joined.find(b"=?", pos)) >= 0:
        at = bisect.bisect_right(starts, pos) - 1
        special.add(uids[at])
        pos = starts[at + 1] if at + 1 < len(starts) else len(joined)
    if address:  # comments or quoted pairs that may join an address's pieces
        for match in _ADDRESS_JOINS.finditer(joined):
            special.add(uids[bisect.bisect_right(starts, match.start()) - 1])
    lowered = joined.lower()
    found: set[int] | None = None
    for token in tokens:
        hits: set[int] = set()
        pos = 0
        while (pos := lowered.find(token, pos)) >= 0:
            at = bisect.bisect_right(starts, pos) - 1
            hits.add(uids[at])
            pos = starts[at + 1] if at + 1 < len(starts) else len(lowered)
        found = hits if found is None else found & hits
    return (found or set()) | special


def _cannot_contain(block: bytes, needle: str, address: bool = False) -> bool:
    """A cheap proof that no field of the ASCII header ``block`` can match ``needle``.

    Without encoded words a field's decoded text is its raw value, which is made of pieces of
    the block joined by spaces (unfolding) and a NUL (see ``_decoded``); so the longest run of
    the (casefolded) needle without whitespace or NUL must occur in the block as it is, in
    lower case (casefold is lower for ASCII). False means "maybe": do the exact check.
    """
    if b"=?" in block or not block.isascii():
        return False
    if address and _ADDRESS_JOINS.search(block):
        return False
    token = _token(needle, address)
    if not token:
        return False
    if not token.isascii():
        return True
    return token.encode() not in block.lower()


def _leaves(node: dict):
    if "parts" in node:
        for part in node["parts"]:
            yield from _leaves(part)
    elif "message" in node:
        yield from _leaves(node["message"]["structure"])
    elif node["type"] in ("text", "message"):
        yield node


def _decoded(value: str) -> str:
    if "=?" not in value:  # no encoded words: decoding would return the value as it is
        return (value + "\0" + value).casefold()
    try:
        parts = email.header.decode_header(value)
        text = str(email.header.make_header(parts))
    except (ValueError, LookupError, UnicodeDecodeError, email.errors.HeaderParseError):
        text = value
    return (text + "\0" + value).casefold()


def _compare(op: str, left: datetime.date, right: datetime.date) -> bool:
    if op == "BEFORE":
        return left < right
    if op == "ON":
        return left == right
    return left >= right
