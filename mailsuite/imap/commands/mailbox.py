"""Selecting a folder and the commands about the selection as a whole: SELECT, EXAMINE, ENABLE,
IDLE, CHECK, CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE."""

from __future__ import annotations

from array import array

from twisted.logger import Logger

from mailsuite.imap import wire
from mailsuite.imap.commands.base import (
    AUTH,
    SELECTED,
    No,
    Session,
    folder_path,
    report_expunged,
    select_uids,
    settle_later,
    to_thread,
    writable,
)
from mailsuite.imap.parser import ParseError, Reader
from mailsuite.imap.qresync import parse_select_params, resync
from mailsuite.imap.selection import Selection
from mailsuite.store.folders import (
    normalize_name,
)
from mailsuite.store.index import FolderGone

log = Logger(namespace="mailsuite.imap")


async def cmd_select(session: Session, tag: str, reader: Reader) -> str:
    return await _select(session, reader, readonly=False)


async def cmd_examine(session: Session, tag: str, reader: Reader) -> str:
    return await _select(session, reader, readonly=True)


async def _select(session: Session, reader: Reader, readonly: bool) -> str:
    reader.sp()
    name = reader.mailbox()
    params = parse_select_params(reader)
    reader.end()
    if params.qresync is not None and not session.qresync:
        raise ParseError("QRESYNC parameter without ENABLE QRESYNC")
    if session.selected is not None:
        session.deselect()
        # The boundary between the old folder's responses and the new one's (RFC 7162
        # §3.2.11, required of any server advertising CONDSTORE or QRESYNC).
        session.send("* OK [CLOSED] Previous folder closed\r\n")
    if session.state == SELECTED:
        session.state = AUTH
    path = folder_path(session, name)
    if not await to_thread(session.folders.exists, name):
        raise No("[NONEXISTENT] No such folder")
    if params.condstore:
        session.condstore = True
    selection = Selection(
        name=normalize_name(name),
        path=path,
        index=None,
        readonly=readonly,
        uids=array("I"),
        modseq=0,
        condstore=session.condstore,
        qresync=session.qresync,
        version=session.ctx.hub.version(path),
    )

    def open_folder():
        index = session.account.index(path)
        index.sync()
        with index.lock:  # one snapshot: no change may fall between these reads
            status = index.status()
            recent = index.claim_recent(claim=not readonly)
            records = index.records()
            uids = index.uid_array()
            selection.recent = {r.uid for r in records if r.uid in recent}
            extra = b""
            if params.qresync is not None:
                extra = resync(index, records, params.qresync, selection.flags_of)
            # Only what the answer needs: the records list is not kept by the session.
            first_unseen = next(
                (i for i, r in enumerate(records, 1) if "\\Seen" not in r.flags), None
            )
            return index, uids, status, extra, index.keywords, first_unseen

    index, uids, status, extra, keywords, first_unseen = await to_thread(open_folder)
    selection.index = index
    selection.uids = uids
    selection.modseq = status.highestmodseq
    selection.announced = len(uids)
    selection.keywords = keywords
    answer = wire.select_answer(
        keywords, readonly, len(uids), len(selection.recent), first_unseen, status
    )
    session.send(answer + extra)
    session.selected = selection
    session.state = SELECTED
    session.ctx.hub.join(path, session)
    settle_later(index)
    mode = "READ-ONLY" if readonly else "READ-WRITE"
    return f"OK [{mode}] {'EXAMINE' if readonly else 'SELECT'} completed"


async def cmd_enable(session: Session, tag: str, reader: Reader) -> str:
    enabled = []
    while reader.maybe_sp():
        capability = reader.atom().upper()
        if capability in ("CONDSTORE", "QRESYNC") and capability not in enabled:
            # QRESYNC enables CONDSTORE too (RFC 7162 §3.2.3).
            session.condstore = True
            session.qresync = session.qresync or capability == "QRESYNC"
            if session.selected is not None:
                session.selected.condstore = True
                session.selected.qresync = session.qresync
            enabled.append(capability)
    reader.end()
    session.send("* ENABLED" + "".join(f" {c}" for c in enabled) + "\r\n")
    return "OK ENABLE completed"


async def cmd_idle(session: Session, tag: str, reader: Reader) -> str:
    reader.end()
    if session.selected is not None:
        await session.announce(True, force=True)
    return await session.idle(tag)


async def cmd_check(session: Session, tag: str, reader: Reader) -> str:
    reader.end()
    await session.announce(True, force=True)
    return "OK CHECK completed"


async def cmd_close(session: Session, tag: str, reader: Reader) -> str:
    reader.end()
    selection = session.selected
    session.deselect()
    session.state = AUTH
    if not selection.readonly:
        try:
            expunged = await to_thread(selection.index.expunge)
        except FolderGone:  # deleted by another session: nothing left to expunge
            expunged = []
        if expunged:
            session.ctx.hub.changed(selection.path, origin=session)
    return "OK CLOSE completed"


async def cmd_unselect(session: Session, tag: str, reader: Reader) -> str:
    reader.end()
    session.deselect()
    session.state = AUTH
    return "OK UNSELECT completed"


async def cmd_expunge(session: Session, tag: str, reader: Reader) -> str:
    reader.end()
    return await _expunge(session, None)


async def cmd_uid_expunge(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    ranges = reader.sequence_set()
    reader.end()
    return await _expunge(session, select_uids(session, ranges, True))


async def _expunge(session: Session, uids: list[int] | None) -> str:
    selection = writable(session)
    expunged, modseq = await to_thread(selection.index.expunge_at, uids)
    return f"OK {report_expunged(session, selection, expunged, modseq)}EXPUNGE completed"
