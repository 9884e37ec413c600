"""STORE and UID STORE, with CONDSTORE's UNCHANGEDSINCE."""

from __future__ import annotations

from twisted.logger import Logger

from mailsuite.imap import wire
from mailsuite.imap.commands.base import (
    Session,
    select_uids,
    to_thread,
    writable,
)
from mailsuite.imap.parser import ParseError, Reader

log = Logger(namespace="mailsuite.imap")


async def cmd_store(session: Session, tag: str, reader: Reader, uid_mode: bool) -> str:
    reader.sp()
    ranges = reader.sequence_set()
    reader.sp()
    unchanged_since = None
    if reader.peek() == ord("("):
        unchanged_since = dict(reader.parenthesized(_store_modifier)).get("UNCHANGEDSINCE")
        reader.sp()
    mode = "+" if reader.accept(b"+") else "-" if reader.accept(b"-") else "="
    action = reader.keyword()
    if action not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("expected FLAGS, +FLAGS or -FLAGS")
    reader.sp()
    if reader.peek() == ord("("):
        flags = reader.flag_list()
    else:
        flags = [reader.flag()]
        while reader.maybe_sp():
            flags.append(reader.flag())
    reader.end()
    selection = writable(session)
    uids = select_uids(session, ranges, uid_mode)
    if unchanged_since is not None:
        selection.condstore = session.condstore = True
    index = selection.index

    changed, refused = await to_thread(index.store_flags, uids, mode, flags, unchanged_since)
    for record in changed:
        selection.reported[record.uid] = record.modseq
        selection.pending_flags.pop(record.uid, None)
    if changed:
        # Only our own change since this session last looked: the end of the command need
        # not rescan the folder our renames just touched (10,000 names: ~20 ms before the
        # OK). The next look does; another session's change meanwhile means a look now.
        current = session.ctx.hub.version(selection.path) == selection.version
        session.ctx.hub.changed(selection.path, origin=session)
        if current:
            selection.version = session.ctx.hub.version(selection.path)
    # Only messages whose flags changed are answered, as Dovecot does (RFC 3501 §6.4.6
    # lets the server omit the others; the client already knows their flags, and a change
    # made by another session still reaches it as an unsolicited FETCH). Under CONDSTORE
    # a changed message is answered even for .SILENT, with its new MODSEQ (RFC 7162
    # §3.1.3); an unchanged one kept its MODSEQ, so there is nothing new to tell.
    shown = changed if action == "FLAGS" or selection.condstore else []
    lines = []
    for record in shown:
        msn = selection.msn(record.uid)
        if msn is None:
            continue
        show_flags = action == "FLAGS" or not selection.condstore
        lines.append(
            wire.flags_fetch(
                msn,
                record.uid if uid_mode else None,
                selection.flags_of(record) if show_flags else None,
                record.modseq if selection.condstore else None,
            )
        )
    session.send(selection.flags_update() + b"".join(lines))
    if refused:
        numbers = refused if uid_mode else [selection.msn(u) for u in refused]
        return (
            f"OK [MODIFIED {wire.compact_uids([n for n in numbers if n])}] Conditional STORE failed"
        )
    return f"OK {'UID ' if uid_mode else ''}STORE completed"


def _store_modifier(reader: Reader) -> tuple[str, int]:
    key = reader.keyword()
    if key != "UNCHANGEDSINCE":
        raise ParseError(f"unknown STORE modifier {key}")
    reader.sp()
    return key, reader.number()
