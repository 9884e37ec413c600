"""Just enough RFC 5322 / MIME parsing for a mail store: header fields, the envelope, and the part
tree with byte offsets.

The part tree records where each part's header and body start and end in the (CRLF) message, so
a part can later be served straight from the file without holding the message in memory; it is
computed once per message and cached by the index as JSON. Values stay raw bytes-as-text
(latin-1-free: UTF-8 with surrogateescape), never decoded from encoded-words: IMAP sends them
as they are.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterator
from typing import Any

from mailsuite.store import address_list

MAX_DEPTH = 20  # nested multiparts / message/rfc822 beyond this are treated as opaque
MAX_PARTS = 2000

_CRLFCRLF = b"\r\n\r\n"


def text_of(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def header_block_end(data: Any, start: int, end: int) -> int:
    """Offset where the body starts (after the blank line); ``end`` if there is no body."""
    if data[start : start + 2] == b"\r\n":
        return start + 2
    found = data.find(_CRLFCRLF, start, end)
    return end if found < 0 else found + 4


def parse_header_fields(block: bytes) -> list[tuple[str, str]]:
    """(lowercase name, unfolded value) for each field of a header block, in order."""
    return list(_fields(block, None))


def field_values(block: bytes, wanted: str) -> list[str]:
    """``[v for n, v in parse_header_fields(block) if n == wanted]`` (``wanted`` in lower
    case), unfolding only that field: SEARCH SUBJECT over a folder reads one field of each
    candidate header, not all of them."""
    return [value for _name, value in _fields(block, (wanted,))]


def _fields(block: bytes, keep: Container[str] | None) -> Iterator[tuple[str, str]]:
    """The fields of a header block whose lowercase name is in ``keep`` (all if None), in
    order; only those are unfolded. A line with no colon, an empty name or a space inside the
    name is no field, and its continuation lines go with it."""
    name: str | None = None  # the kept field being collected
    value: list[str] = []
    for line in text_of(block).split("\r\n"):
        if not line:
            continue
        if line[0] in " \t":
            if name is not None:
                value.append(line)
            continue
        if name is not None:
            yield name, _unfold(value)
            name = None
        field_name, sep, rest = line.partition(":")
        if not sep or not field_name:
            continue
        key = field_name.strip().lower()
        if " " not in key and (keep is None or key in keep):
            name, value = key, [rest]
    if name is not None:
        yield name, _unfold(value)


def _unfold(lines: list[str]) -> str:
    if len(lines) == 1:  # most fields: the same result without a join
        return lines[0].strip()
    return " ".join(v.strip() for v in lines).strip()


def first(fields: list[tuple[str, str]], name: str) -> str | None:
    for field_name, value in fields:
        if field_name == name:
            return value
    return None


_TOKEN = re.compile(r'\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parse_params(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``value; a=b; c="d"`` -> ("value", [("a", "b"), ("c", "d")])."""
    value, _, rest = text.partition(";")
    params: list[tuple[str, str]] = []
    pos = 0
    while pos < len(rest):
        match = _TOKEN.match(rest, pos)
        if match is None:
            nxt = rest.find(";", pos)
            if nxt < 0:
                break
            pos = nxt + 1
            continue
        key, raw = match.group(1), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.append((key.lower(), raw))
        pos = match.end()
        nxt = rest.find(";", pos)
        if nxt < 0:
            break
        pos = nxt + 1
    return value.strip(), params


# The common forms of an address list item, ``Display Name <local@domain>``, ``"Name, Quoted"
# <local@domain>`` and ``local@domain``, with a dot-atom address (no comments, groups, escapes
# or domain literals: values with any of those go to address_list, which is slower).
_WS = r"[ \t\r\n]"  # RFC 5322 whitespace (str.split() would split at more)
_WORD = r"[^ \t\r\n<>@,;:\\\"()\[\]]+"
_DOT_ATOM = r"[^ \t\r\n<>@,;:\\\"()\[\].]+(?:\.[^ \t\r\n<>@,;:\\\"()\[\].]+)*"
_SIMPLE_ITEM = re.compile(
    rf"{_WS}*(?:(?:\"(?P<quoted>[^\"\\\r\n]*)\"|(?P<words>{_WORD}(?:{_WS}+{_WORD})*)){_WS}*)?"
    rf"<(?P<a>{_DOT_ATOM}@{_DOT_ATOM})>{_WS}*(?:,|$)"
    rf"|{_WS}*(?P<b>{_DOT_ATOM}@{_DOT_ATOM}){_WS}*(?:,|$)"
)
_SPACES = re.compile(f"{_WS}+")
_NOT_SIMPLE = re.compile(r"[\\()\[\]:;]")


def simple_addresses(value: str) -> list[list[str | None]] | None:
    """The addresses of a list made only of the common forms, in one regex per item (a
    folder's first FETCH ENVELOPE parses every From/To/Cc: this is most of its cost); None
    for anything else (groups, routes, comments, escapes), which ``address_list`` parses."""
    if not value or _NOT_SIMPLE.search(value):
        return None
    out: list[list[str | None]] = []
    end = len(value)
    match = _SIMPLE_ITEM.match(value)
    while match is not None:
        words = match["words"]
        name = _SPACES.sub(" ", words) if words else match["quoted"]
        mailbox, _, host = (match["a"] or match["b"]).rpartition("@")
        out.append([name or None, None, mailbox, host])
        if match.end() == end and value[-1] != ",":
            return out
        match = _SIMPLE_ITEM.match(value, match.end())
    return None


def _addresses(value: str | None) -> list[list[str | None]] | None:
    if not value:
        return None
    found = simple_addresses(value)
    if found is None:
        found = address_list.parse(value)
    return found or None


def envelope(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """The RFC 3501 ENVELOPE as plain data (strings or None; address lists of 4-lists)."""
    firsts: dict[str, str] = {}
    for name, value in fields:  # the first of each name, as ``first`` gives (one pass)
        if name in _ENVELOPE_FIELDS and name not in firsts:
            firsts[name] = value
    return _envelope(firsts)


def envelope_of(block: bytes) -> dict[str, Any]:
    """``envelope(parse_header_fields(block))`` without unfolding the fields ENVELOPE does not
    read (Received, DKIM-Signature...: most of a header's lines). A folder's first FETCH
    ENVELOPE does this for every message."""
    firsts: dict[str, str] = {}
    for name, value in _fields(block, _ENVELOPE_FIELDS):
        firsts.setdefault(name, value)
    return _envelope(firsts)


def _envelope(firsts: dict[str, str]) -> dict[str, Any]:
    get = firsts.get
    sender = _addresses(get("from"))
    return {
        "date": get("date"),
        "subject": get("subject"),
        "from": sender,
        "sender": _addresses(get("sender")) or sender,
        "reply_to": _addresses(get("reply-to")) or sender,
        "to": _addresses(get("to")),
        "cc": _addresses(get("cc")),
        "bcc": _addresses(get("bcc")),
        "in_reply_to": get("in-reply-to"),
        "message_id": get("message-id"),
    }


_ENVELOPE_FIELDS = frozenset(
    ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to")
) | {"message-id"}


def imap_string(value: str | bytes | None) -> bytes:
    """An IMAP quoted string or literal (NIL for None), as ENVELOPE and BODYSTRUCTURE use."""
    if value is None:
        return b"NIL"
    if isinstance(value, str) and len(value) < 1024 and _PLAIN_QUOTABLE.fullmatch(value):
        return b'"%s"' % value.encode("ascii")  # the common case, in one regex
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(raw) < 1024 and raw.isascii() and not _CTL.search(raw):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n%s" % (len(raw), raw)


_CTL = re.compile(rb"[\x00-\x1f\x7f]")
_PLAIN_QUOTABLE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")  # printable ASCII but " and \


def _imap_addresses(value: list | None) -> bytes:
    if not value:
        return b"NIL"
    return b"(%s)" % b"".join([b"(%s)" % b" ".join(map(imap_string, a)) for a in value])


def envelope_imap(env: dict[str, Any]) -> bytes:
    """The ENVELOPE of ``envelope()`` data as IMAP sends it (RFC 3501 §7.4.2).

    Here rather than in the IMAP package because the index caches these bytes, so a FETCH
    ENVELOPE of a whole folder is a copy from the cache instead of a re-serialisation.
    """
    get = env.get
    sender = get("from")
    wire_from = _imap_addresses(sender)
    # Sender and Reply-To default to From (``envelope``): serialised once then.
    return b"(%s)" % b" ".join(
        [
            imap_string(get("date")),
            imap_string(get("subject")),
            wire_from,
            wire_from if get("sender") == sender else _imap_addresses(get("sender")),
            wire_from if get("reply_to") == sender else _imap_addresses(get("reply_to")),
            _imap_addresses(get("to")),
            _imap_addresses(get("cc")),
            _imap_addresses(get("bcc")),
            imap_string(get("in_reply_to")),
            imap_string(get("message_id")),
        ]
    )


def _lines(data: Any, start: int, end: int) -> int:
    """Text lines of a body, as IMAP's body-fld-lines counts them."""
    if end <= start:
        return 0
    if isinstance(data, bytes | bytearray):
        count = data.count(b"\n", start, end)
    else:  # mmap: count without copying the part
        count, pos = 0, start
        while (pos := data.find(b"\n", pos, end)) >= 0:
            count += 1
            pos += 1
    return count + (0 if data[end - 1 : end] == b"\n" else 1)


class _Budget:
    def __init__(self) -> None:
        self.parts = 0


def parse_structure(data: Any, start: int = 0, end: int | None = None) -> dict[str, Any]:
    """The part tree of the message in ``data`` (bytes or mmap, CRLF line ends)."""
    return _part(data, start, len(data) if end is None else end, ("text", "plain"), 0, _Budget())


def _part(
    data: Any, hs: int, end: int, default: tuple[str, str], depth: int, budget: _Budget
) -> dict[str, Any]:
    budget.parts += 1
    bs = header_block_end(data, hs, end)
    fields = parse_header_fields(bytes(data[hs:bs]))
    ctype = first(fields, "content-type")
    maintype, subtype = default
    params: list[tuple[str, str]] = []
    if ctype:
        value, params = parse_params(ctype)
        major, slash, minor = value.partition("/")
        if slash and major.strip() and minor.strip():
            maintype, subtype = major.strip().lower(), minor.strip().lower()
        else:
            maintype, subtype, params = "text", "plain", []
    if maintype == "text" and not any(k == "charset" for k, _ in params):
        params.append(("charset", "us-ascii"))
    disposition = first(fields, "content-disposition")
    node: dict[str, Any] = {
        "hs": hs,
        "bs": bs,
        "end": end,
        "type": maintype,
        "subtype": subtype,
        "params": params,
        "id": first(fields, "content-id"),
        "desc": first(fields, "content-description"),
        "enc": (first(fields, "content-transfer-encoding") or "7bit").strip().lower(),
        "md5": first(fields, "content-md5"),
        "disp": list(parse_params(disposition)) if disposition else None,
        "lang": first(fields, "content-language"),
        "loc": first(fields, "content-location"),
    }
    opaque = depth >= MAX_DEPTH or budget.parts >= MAX_PARTS
    if maintype == "multipart" and not opaque:
        boundary = dict(params).get("boundary")
        if boundary:
            child_default = ("message", "rfc822") if subtype == "digest" else ("text", "plain")
            node["parts"] = [
                _part(data, s, e, child_default, depth + 1, budget)
                for s, e in _split_multipart(data, bs, end, boundary.encode("utf-8", "replace"))
            ]
        if not node.get("parts"):
            # RFC 3501 needs at least one part: an empty text/plain one stands in.
            node["parts"] = [_empty_part(bs)]
    elif maintype == "message" and subtype in ("rfc822", "global") and not opaque:
        inner = _part(data, bs, end, ("text", "plain"), depth + 1, budget)
        inner_fields = parse_header_fields(bytes(data[bs : inner["bs"]]))
        node["message"] = {"envelope": envelope(inner_fields), "structure": inner}
        node["lines"] = _lines(data, bs, end)
    if maintype == "text":
        node["lines"] = _lines(data, bs, end)
    return node


def _empty_part(offset: int) -> dict[str, Any]:
    return {
        "hs": offset,
        "bs": offset,
        "end": offset,
        "type": "text",
        "subtype": "plain",
        "params": [("charset", "us-ascii")],
        "id": None,
        "desc": None,
        "enc": "7bit",
        "md5": None,
        "disp": None,
        "lang": None,
        "loc": None,
        "lines": 0,
    }


def _split_multipart(data: Any, bs: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """(start, end) of each body part between ``--boundary`` delimiter lines (RFC 2046 §5.1.1)."""
    delimiter = b"--" + boundary
    ranges: list[tuple[int, int]] = []
    part_start: int | None = None
    pos = bs
    while pos < end:
        found = data.find(delimiter, pos, end)
        if found < 0:
            break
        at_line_start = found == bs or data[found - 2 : found] == b"\r\n"
        if not at_line_start:
            pos = found + 1
            continue
        line_end = data.find(b"\r\n", found, end)
        next_line = end if line_end < 0 else line_end + 2
        closing = data[found + len(delimiter) : found + len(delimiter) + 2] == b"--"
        rest = bytes(data[found + len(delimiter) + (2 if closing else 0) : next_line]).strip()
        if rest:
            pos = found + 1  # a longer boundary that merely starts with ours
            continue
        if part_start is not None:
            ranges.append((part_start, max(part_start, found - 2)))
        if closing or len(ranges) >= MAX_PARTS:
            return ranges
        part_start = next_line
        pos = next_line
    if part_start is not None and part_start < end:
        ranges.append((part_start, end))
    return ranges
