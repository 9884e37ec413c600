"""FETCH (RFC 3501 §6.4.5): parsing the item list, and rendering one message's response.

Rendering runs in a worker thread (it reads the index and message files). A literal bigger than
``STREAM_THRESHOLD`` is not read: it becomes a ``FileRange`` that the session streams from the
file in chunks, so a 30 MB attachment is never held in memory.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from mailsuite.imap import wire
from mailsuite.imap.parser import ParseError, Reader
from mailsuite.store import mime
from mailsuite.store.index import FolderIndex, Record

STREAM_THRESHOLD = 256 * 1024
HEADER_CHUNK = 250  # header blocks read from the index at once for HEADER.FIELDS

_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
_SIMPLE = {
    "ENVELOPE",
    "FLAGS",
    "INTERNALDATE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.SIZE",
    "RFC822.TEXT",
    "BODY",
    "BODYSTRUCTURE",
    "UID",
    "MODSEQ",
}


_FROM_FILE = {"RFC822", "RFC822.TEXT", "BODY", "BODYSTRUCTURE"}
# Top-level sections the index answers from its cached header block.
_HEADER_TEXTS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


@dataclass(frozen=True)
class Section:
    """``BODY[<parts>.<text> (<fields>)]<<origin>.<count>>``."""

    parts: tuple[int, ...] = ()
    text: str | None = None  # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()
    origin: int | None = None
    count: int | None = None
    peek: bool = False
    label: bytes = b""  # how the response names it, e.g. b"BODY[HEADER.FIELDS (FROM)]<0>"


@dataclass
class FetchRequest:
    items: list[str] = field(default_factory=list)  # simple items, upper-case
    sections: list[Section] = field(default_factory=list)
    changed_since: int | None = None
    vanished: bool = False  # QRESYNC's UID FETCH modifier (RFC 7162 §3.2.6)

    @property
    def reads_files(self) -> bool:
        """Does answering need the message files (not only the index)?"""
        return any(s.parts or s.text not in _HEADER_TEXTS for s in self.sections) or any(
            i in _FROM_FILE for i in self.items
        )

    @property
    def sends_header_blocks(self) -> bool:
        """Does the answer carry (nearly) whole header blocks, up to MAX_CACHED_HEADER each?
        HEADER.FIELDS alone sends a few lines of each."""
        return "RFC822.HEADER" in self.items or any(
            s.text in ("HEADER", "HEADER.FIELDS.NOT") for s in self.sections
        )

    @property
    def sets_seen(self) -> bool:
        return any(not s.peek for s in self.sections) or any(
            i in ("RFC822", "RFC822.TEXT") for i in self.items
        )


def parse_fetch_items(reader: Reader) -> FetchRequest:
    request = FetchRequest()
    if reader.peek() == ord("("):
        reader.parenthesized(lambda r: _item(r, request))
    else:
        name = reader.keyword()
        if name in _MACROS:
            request.items.extend(_MACROS[name])
        else:
            _named_item(reader, name, request)
    if reader.maybe_sp():
        modifiers = reader.parenthesized(_modifier)
        for key, value in modifiers:
            if key == "CHANGEDSINCE":
                request.changed_since = value
            else:
                request.vanished = True
    if request.changed_since is not None and "MODSEQ" not in request.items:
        request.items.append("MODSEQ")
    return request


def _modifier(reader: Reader) -> tuple[str, int | None]:
    key = reader.keyword()
    if key == "VANISHED":
        return key, None
    if key != "CHANGEDSINCE":
        raise ParseError(f"unknown FETCH modifier {key}")
    reader.sp()
    return key, reader.number()


def _item(reader: Reader, request: FetchRequest) -> None:
    _named_item(reader, reader.keyword(), request)


def _named_item(reader: Reader, name: str, request: FetchRequest) -> None:
    # BINARY[...] / BINARY.SIZE (RFC 3516) are not advertised, so they are unknown items (BAD)
    # rather than quietly answered as BODY[...] with the content-transfer-encoding left on.
    if name in ("BODY", "BODY.PEEK") and reader.peek() == ord("["):
        request.sections.append(_section(reader, peek=name.endswith(".PEEK")))
    elif name in _SIMPLE:
        if name not in request.items:
            request.items.append(name)
    else:
        raise ParseError(f"unknown FETCH item {name}")


def _section(reader: Reader, peek: bool) -> Section:
    reader.expect(b"[")
    parts: list[int] = []
    text: str | None = None
    fields: list[str] = []
    while reader.peek() is not None and reader.peek() != ord("]"):
        if 0x30 <= reader.peek() <= 0x39:
            parts.append(reader.number(nonzero=True))
            if not reader.accept(b"."):
                break
            continue
        text = reader.keyword()
        if text not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
            raise ParseError(f"bad section {text}")
        if text == "MIME" and not parts:
            raise ParseError("MIME needs a part number")
        if text.startswith("HEADER.FIELDS"):
            reader.sp()
            fields = [
                f.decode("ascii", "replace").lower()
                for f in reader.parenthesized(lambda r: r.astring())
            ]
            if not fields:
                raise ParseError("empty header field list")
        break
    reader.expect(b"]")
    origin = count = None
    if reader.accept(b"<"):
        origin = reader.number()
        reader.expect(b".")
        count = reader.number(nonzero=True)
        reader.expect(b">")
    label = "BODY["
    label += ".".join(str(p) for p in parts)
    if text:
        label += ("." if parts else "") + text
        if fields:
            label += " (" + " ".join(f.upper() for f in fields) + ")"
    label += "]"
    if origin is not None:
        label += f"<{origin}>"
    return Section(tuple(parts), text, tuple(fields), origin, count, peek, label.encode())


@dataclass(frozen=True)
class FileRange:
    """Bytes ``start``..``start+length`` of a message file, to be streamed. ``open`` finds the
    file when it is streamed, even if another session renamed it (flags) since rendering; it
    raises FileNotFoundError if the message was expunged meanwhile."""

    open: Callable[[], BinaryIO]
    start: int
    length: int


Piece = bytes | FileRange


def index_renderer(request: FetchRequest, uid_command: bool) -> IndexRenderer | None:
    """A renderer for a request the index answers alone (UID, FLAGS, INTERNALDATE,
    RFC822.SIZE, MODSEQ, ENVELOPE, top-level HEADER.FIELDS[.NOT]): the item list is turned into
    one function per item once per FETCH, instead of a chain of comparisons per item and
    message, which was most of the time a 10,000-message header sync spent. None: a request
    ``render`` has to answer."""
    names = request.items
    if uid_command and "UID" not in names:
        names = ["UID", *names]
    steps = []
    for name in names:
        step = _INDEX_ITEMS.get(name)
        if step is None:
            return None
        steps.append(step)
    sections = list(enumerate(request.sections))
    if any(s.parts or s.text not in ("HEADER.FIELDS", "HEADER.FIELDS.NOT") for _, s in sections):
        return None
    wants_envelope = "ENVELOPE" in names

    def render_one(
        record: Record, msn: int, envelope: bytes | None, fields: dict[int, bytes] | None
    ) -> bytes | None:
        """The response line, or None when a cached value is missing (``render`` then)."""
        if wants_envelope and envelope is None:
            return None
        parts = [step(record, envelope) for step in steps]
        for position, section in sections:
            data = fields.get(position) if fields else None
            if data is None:
                return None
            parts.append(section.label + b" " + _literal(_partial(data, section)))
        return b"* %d FETCH (%s)\r\n" % (msn, b" ".join(parts))

    return render_one


IndexRenderer = Callable[[Record, int, "bytes | None", "dict[int, bytes] | None"], "bytes | None"]
_INDEX_ITEMS: dict[str, Callable[[Record, Any], bytes]] = {
    "UID": lambda r, _e: b"UID %d" % r.uid,
    "FLAGS": lambda r, _e: b"FLAGS " + wire.flag_list(r.flags),
    "INTERNALDATE": lambda r, _e: b"INTERNALDATE " + wire.internal_date(r.internaldate),
    "RFC822.SIZE": lambda r, _e: b"RFC822.SIZE %d" % r.size,
    "MODSEQ": lambda r, _e: b"MODSEQ (%d)" % r.modseq,
    "ENVELOPE": lambda _r, envelope: b"ENVELOPE " + envelope,
}


def render(
    index: FolderIndex,
    record: Record,
    msn: int,
    request: FetchRequest,
    uid_command: bool,
    envelope: bytes | None = None,
    header: bytes | None = None,
    fields: dict[int, bytes] | None = None,
) -> list[Piece]:
    """The ``* n FETCH (...)`` response of one message, as bytes and FileRanges.

    ``envelope`` (IMAP bytes) and ``header`` are the cached values when the caller fetched
    them for many messages at once; otherwise they are read from the index here.
    """
    elements: list[list[Piece]] = []  # one per item, joined with spaces
    names = request.items
    if uid_command and "UID" not in names:
        names = ["UID", *names]
    content = None
    tree = None
    try:
        for name in names:
            if name == "UID":
                elements.append([b"UID %d" % record.uid])
            elif name == "FLAGS":
                elements.append([b"FLAGS " + wire.flag_list(record.flags)])
            elif name == "INTERNALDATE":
                elements.append([b"INTERNALDATE " + wire.internal_date(record.internaldate)])
            elif name == "RFC822.SIZE":
                elements.append([b"RFC822.SIZE %d" % record.size])
            elif name == "MODSEQ":
                elements.append([b"MODSEQ (%d)" % record.modseq])
            elif name == "ENVELOPE":
                if envelope is None:
                    envelope = wire.envelope(index.envelope(record.uid))
                elements.append([b"ENVELOPE " + envelope])
            elif name in ("BODYSTRUCTURE", "BODY"):
                tree = tree or index.structure(record.uid)
                rendered = wire.body_structure(tree, name == "BODYSTRUCTURE")
                elements.append([name.encode() + b" " + rendered])
            elif name == "RFC822.HEADER":
                if header is None:
                    header = index.header(record.uid)
                elements.append([b"RFC822.HEADER " + _literal(header)])
            elif name in ("RFC822", "RFC822.TEXT"):
                if content is None:
                    content = index.content(record)
                start = 0 if name == "RFC822" else mime.header_block_end(content, 0, len(content))
                elements.append(
                    [name.encode() + b" ", *_range(index, record, content, start, len(content))]
                )
        for position, section in enumerate(request.sections):
            if section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT") and not (
                section.parts
            ):
                if fields is not None and position in fields:
                    data = fields[position]
                else:
                    if header is None:
                        header = index.header(record.uid)
                    data = _header_section(header, section)
                elements.append([section.label + b" " + _literal(_partial(data, section))])
                continue
            if content is None:
                content = index.content(record)
            if section.parts or section.text in ("TEXT", "MIME"):
                tree = tree or index.structure(record.uid)
            start, end, header_only = _locate(content, tree, section)
            if header_only:
                data = _header_section(bytes(content[start:end]), section)
                elements.append([section.label + b" " + _literal(_partial(data, section))])
            else:
                if section.origin is not None:
                    start = min(end, start + section.origin)
                    end = min(end, start + section.count)
                elements.append([section.label + b" ", *_range(index, record, content, start, end)])
    finally:
        if content is not None and hasattr(content, "close"):
            content.close()
    if all(len(element) == 1 and isinstance(element[0], bytes) for element in elements):
        return [b"* %d FETCH (%s)\r\n" % (msn, b" ".join([e[0] for e in elements]))]
    out: list[Piece] = [b"* %d FETCH (" % msn]
    for i, element in enumerate(elements):
        if i:
            out.append(b" ")
        out += element
    out.append(b")\r\n")
    return _merge(out)


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def _partial(data: bytes, section: Section) -> bytes:
    if section.origin is None:
        return data
    return data[section.origin : section.origin + section.count]


def _range(index: FolderIndex, record: Record, content: Any, start: int, end: int) -> list[Piece]:
    length = max(0, end - start)
    if length > STREAM_THRESHOLD and record.crlf:
        opener = functools.partial(index.open_message, record)
        return [b"{%d}\r\n" % length, FileRange(opener, start, length)]
    return [b"{%d}\r\n" % length + bytes(content[start:end])]


def _merge(pieces: list[Piece]) -> list[Piece]:
    merged: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def field_sections(request: FetchRequest) -> list[tuple[int, Section]]:
    """(position, section) of the request's top-level HEADER.FIELDS[.NOT] sections."""
    return [
        (position, section)
        for position, section in enumerate(request.sections)
        if not section.parts and section.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT")
    ]


def needs_header_block(request: FetchRequest) -> bool:
    """Whether rendering needs whole header blocks, beyond what header_fields() provides."""
    return "RFC822.HEADER" in request.items or any(
        not s.parts and s.text == "HEADER" for s in request.sections
    )


def header_fields(
    index: FolderIndex, uids: list[int], sections: list[tuple[int, Section]]
) -> dict[int, dict[int, bytes]]:
    """uid -> {section position -> the section's data}, from the folder's memo.

    Clients ask for the same few header fields of every message at each sync (Thunderbird's
    list of columns), so the filtered blocks are kept per folder and reused by every session;
    only messages not seen before are read from the index and filtered.
    """
    found: dict[int, dict[int, bytes]] = {}
    for position, section in sections:
        memo = index.memo(("fields", section.text, section.fields))
        missing = [uid for uid in uids if uid not in memo]
        # A few hundred blocks at a time: at most MAX_CACHED_HEADER each, only lines kept.
        for start in range(0, len(missing), HEADER_CHUNK):
            for uid, block in index.headers(missing[start : start + HEADER_CHUNK]).items():
                memo[uid] = _header_section(block, section)
        for uid in uids:
            data = memo.get(uid)
            if data is not None:
                found.setdefault(uid, {})[position] = data
    return found


def _header_section(block: bytes, section: Section) -> bytes:
    if section.text not in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return block
    exclude = section.text == "HEADER.FIELDS.NOT"
    if not exclude and (pattern := _fields_pattern(section.fields)) is not None:
        kept = pattern.findall(b"\r\n" + block)
        return b"\r\n".join(kept) + b"\r\n\r\n" if kept else b"\r\n"
    return _header_lines(block, set(section.fields), exclude)


def _header_lines(block: bytes, wanted: set[str], exclude: bool) -> bytes:
    """HEADER.FIELDS[.NOT] line by line: a field's name is what precedes its colon, stripped
    and lower-cased; continuation lines follow their field."""
    kept: list[bytes] = []
    keep = False
    for line in block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        name = line.partition(b":")[0].strip().lower().decode("ascii", "replace")
        keep = (name in wanted) != exclude
        if keep:
            kept.append(line)
    return b"".join(line + b"\r\n" for line in kept) + b"\r\n"


@functools.lru_cache(maxsize=32)
def _fields_pattern(fields: tuple[str, ...]) -> re.Pattern[bytes] | None:
    """One regex that finds the wanted fields with their continuation lines (a line being
    what ends at CRLF) in a block preceded by CRLF: a header block is searched in one C call
    instead of line by line. None for names a regex cannot take literally (non-ASCII: the
    line loop decides those)."""
    if not all(f.isascii() and f.isprintable() and f for f in fields):
        return None
    names = b"|".join(re.escape(f.encode()) for f in fields)
    line_rest = rb"[^\r]*(?:\r(?!\n)[^\r]*)*"  # up to the CRLF that ends the line
    name = rb"(?:" + names + rb")[ \t\x0b\x0c]*:"  # blanks as bytes.strip() drops them
    return re.compile(
        rb"\r\n(" + name + line_rest + rb"(?:\r\n[ \t]" + line_rest + rb")*)", re.IGNORECASE
    )


def _locate(content: Any, tree: dict | None, section: Section) -> tuple[int, int, bool]:
    """(start, end, is_header) of a section in the CRLF message; empty range if absent."""
    size = len(content)
    if not section.parts:
        if section.text == "TEXT":
            return mime.header_block_end(content, 0, size), size, False
        return 0, size, False
    node, message_node = _walk(tree, section.parts)
    if node is None:
        return 0, 0, False
    if section.text == "MIME":
        return node["hs"], node["bs"], True
    if section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
        inner = (node.get("message") or {}).get("structure")
        if inner is None:
            return 0, 0, False
        if section.text == "TEXT":
            return inner["bs"], inner["end"], False
        return inner["hs"], inner["bs"], True
    return node["bs"], node["end"], False


def _walk(tree: dict, parts: tuple[int, ...]) -> tuple[dict | None, bool]:
    node = tree
    in_message = True  # node stands for a whole message (its body holds part 1...)
    for number in parts:
        if not in_message and "message" in node:
            node, in_message = node["message"]["structure"], True
        if "parts" in node:
            if number > len(node["parts"]):
                return None, False
            node = node["parts"][number - 1]
        elif not in_message or number != 1:
            return None, False
        in_message = False
    return node, in_message
