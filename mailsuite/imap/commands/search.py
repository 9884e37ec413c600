"""SEARCH and UID SEARCH (the matching itself is mailsuite/imap/search.py)."""

from __future__ import annotations

from twisted.logger import Logger

from mailsuite.imap.commands.base import (
    No,
    Session,
    to_thread,
)
from mailsuite.imap.parser import Reader
from mailsuite.imap.search import BadCharset, Matcher, parse_search, uses_modseq

log = Logger(namespace="mailsuite.imap")


async def cmd_search(session: Session, tag: str, reader: Reader, uid_mode: bool) -> str:
    reader.sp()
    try:
        keys, _charset = parse_search(reader)
    except BadCharset:
        raise No("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset") from None
    selection = session.selected
    matcher = Matcher(selection.index, list(selection.uids), set(selection.recent))
    matches = await to_thread(matcher.search, keys)
    numbers = [str(r.uid if uid_mode else msn) for msn, r in matches]
    line = "* SEARCH" + "".join(f" {n}" for n in numbers)
    if uses_modseq(keys) and matches:
        line += f" (MODSEQ {max(r.modseq for _, r in matches)})"
        if not selection.condstore:
            selection.condstore = session.condstore = True
    session.send(line + "\r\n")
    return f"OK {'UID ' if uid_mode else ''}SEARCH completed"
