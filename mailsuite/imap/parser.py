"""Reading IMAP command arguments (RFC 3501 §9 grammar) from an assembled command.

The protocol assembles a command as line pieces with the literals that followed them (a piece
ending in ``{n}`` is followed by literal n). ``Reader`` walks that with one cursor and raises
``ParseError`` (answered ``BAD``) on anything malformed; nesting depth is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailsuite.store import mutf7

MAX_DEPTH = 16

_ATOM_SPECIALS = set(b'(){ %*"\\]') | set(range(0x20)) | {0x7F}
_ASTRING_SPECIALS = _ATOM_SPECIALS - {ord("]")}


class ParseError(Exception):
    """Malformed arguments: the command gets BAD, the session goes on."""


@dataclass
class Literal:
    """A literal's content: bytes in memory, or a spooled file (``incoming``) for a big APPEND."""

    size: int
    data: bytes | None = None
    incoming: Any = None  # mailsuite.store.incoming.IncomingMessage

    def bytes(self) -> bytes:
        if self.data is None:
            raise ParseError("literal too large here")
        return self.data


class Reader:
    """A cursor over ``pieces`` (bytes) interleaved with ``literals``."""

    def __init__(self, pieces: list[bytes], literals: list[Literal]) -> None:
        self.pieces = pieces
        self.literals = literals
        self.index = 0
        self.pos = 0

    @property
    def _piece(self) -> bytes:
        return self.pieces[self.index]

    def peek(self) -> int | None:
        piece = self._piece
        return piece[self.pos] if self.pos < len(piece) else None

    def at_end(self) -> bool:
        return self.index == len(self.pieces) - 1 and self.pos >= len(self._piece)

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("unexpected extra arguments")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise ParseError("expected a space")
        self.pos += 1

    def maybe_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def expect(self, char: bytes) -> None:
        if self.peek() != char[0]:
            raise ParseError(f"expected {char.decode()!r}")
        self.pos += 1

    def accept(self, char: bytes) -> bool:
        if self.peek() == char[0]:
            self.pos += 1
            return True
        return False

    def _take(self, specials: set[int]) -> bytes:
        piece, start = self._piece, self.pos
        end = start
        while end < len(piece) and piece[end] not in specials:
            end += 1
        self.pos = end
        return piece[start:end]

    def atom(self) -> str:
        raw = self._take(_ATOM_SPECIALS)
        if not raw:
            raise ParseError("expected an atom")
        return raw.decode("ascii", "replace")

    def keyword(self) -> str:
        """An atom, upper-cased (command names, search keys, fetch items)."""
        piece, start = self._piece, self.pos
        end = start
        while end < len(piece) and (chr(piece[end]).isalnum() or piece[end] in b".-_"):
            end += 1
        if end == start:
            raise ParseError("expected a keyword")
        self.pos = end
        return piece[start:end].decode("ascii").upper()

    def number(self, nonzero: bool = False) -> int:
        piece, start = self._piece, self.pos
        end = start
        while end < len(piece) and 0x30 <= piece[end] <= 0x39:
            end += 1
        if end == start or end - start > 20:
            raise ParseError("expected a number")
        self.pos = end
        value = int(piece[start:end])
        if nonzero and value == 0 or value > 2**63 - 1:
            raise ParseError("number out of range")
        return value

    def _literal(self) -> Literal | None:
        """If the cursor is at this piece's trailing ``{n}``, consume it and return the literal."""
        piece = self._piece
        if (
            self.peek() == ord("{")
            and piece.endswith(b"}")
            and self.index < len(self.literals)
            and piece.find(b"}", self.pos) == len(piece) - 1
        ):
            literal = self.literals[self.index]
            self.index += 1
            self.pos = 0
            return literal
        return None

    def quoted(self) -> bytes:
        self.expect(b'"')
        piece = self._piece
        out = bytearray()
        pos = self.pos
        while pos < len(piece):
            char = piece[pos]
            if char == 0x22:
                self.pos = pos + 1
                return bytes(out)
            if char == 0x5C:
                pos += 1
                if pos >= len(piece) or piece[pos] not in b'"\\':
                    raise ParseError("bad escape in quoted string")
                char = piece[pos]
            elif char in (0x0D, 0x0A):
                break
            out.append(char)
            pos += 1
        raise ParseError("unterminated quoted string")

    def string_or_literal(self) -> bytes | Literal:
        literal = self._literal()
        if literal is not None:
            return literal
        if self.peek() == ord('"'):
            return self.quoted()
        raise ParseError("expected a string")

    def string(self) -> bytes:
        value = self.string_or_literal()
        return value.bytes() if isinstance(value, Literal) else value

    def astring(self) -> bytes:
        if self.peek() in (ord('"'), ord("{")):
            return self.string()
        raw = self._take(_ASTRING_SPECIALS)
        if not raw:
            raise ParseError("expected an atom or string")
        return raw

    def text_astring(self) -> str:
        try:
            return self.astring().decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("string is not valid UTF-8") from None

    def mailbox(self) -> str:
        """A folder name argument, decoded from modified UTF-7 (RFC 3501 §5.1.3)."""
        raw = self.astring()
        try:
            text = raw.decode("ascii")
            name = mutf7.decode(text)
        except (UnicodeDecodeError, mutf7.MUTF7Error):
            try:  # be lenient with clients that send raw UTF-8 (RFC 9051 / UTF8=ACCEPT style)
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError("folder name is not modified UTF-7") from None
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        """LIST's pattern argument: like astring, with '%' and '*' allowed in atoms."""
        if self.peek() in (ord('"'), ord("{")):
            raw = self.string()
        else:
            raw = self._take(_ATOM_SPECIALS - set(b"%*]"))
        try:
            return mutf7.decode(raw.decode("ascii"))
        except (UnicodeDecodeError, mutf7.MUTF7Error):
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError("pattern is not modified UTF-7") from None

    def flag(self) -> str:
        if self.accept(b"\\"):
            if self.accept(b"*"):
                return "\\*"
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> list[str]:
        self.expect(b"(")
        flags: list[str] = []
        if self.accept(b")"):
            return flags
        while True:
            flags.append(self.flag())
            if self.accept(b")"):
                return flags
            self.sp()

    def sequence_set(self) -> list[tuple[int | None, int | None]]:
        """``1:3,7,9:*`` -> [(1, 3), (7, 7), (9, None)] (None stands for ``*``)."""
        ranges: list[tuple[int | None, int | None]] = []
        while True:
            start = self._seq_number()
            end = start
            if self.accept(b":"):
                end = self._seq_number()
            ranges.append((start, end))
            if not self.accept(b","):
                return ranges

    def _seq_number(self) -> int | None:
        if self.accept(b"*"):
            return None
        return self.number(nonzero=True)

    def parenthesized(self, item, depth: int = 0) -> list:
        """``(item SP item ...)``; ``item(reader)`` reads one element."""
        if depth > MAX_DEPTH:
            raise ParseError("nested too deeply")
        self.expect(b"(")
        items = []
        if self.accept(b")"):
            return items
        while True:
            items.append(item(self))
            if self.accept(b")"):
                return items
            self.sp()


def split_tag(line: bytes) -> tuple[str | None, str | None]:
    """(tag, upper-cased command) of a command's first line, for early decisions."""
    tag, _, rest = line.partition(b" ")
    if not tag or any(c in _ASTRING_SPECIALS or c == ord("+") for c in tag):
        return None, None
    command = rest.split(b" ", 2)
    name = command[0].upper()
    if name == b"UID" and len(command) > 1:
        name = b"UID " + command[1].upper()
    try:
        return tag.decode("ascii"), name.decode("ascii")
    except UnicodeDecodeError:
        return None, None


def resolve_set(ranges: list[tuple[int | None, int | None]], largest: int) -> list[tuple[int, int]]:
    """Replace ``*`` by ``largest`` and order each range's ends."""
    resolved = []
    for start, end in ranges:
        a = largest if start is None else start
        b = largest if end is None else end
        resolved.append((min(a, b), max(a, b)))
    return resolved


def in_ranges(value: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= value <= b for a, b in ranges)
