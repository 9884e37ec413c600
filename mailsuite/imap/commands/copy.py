"""COPY, MOVE and their UID forms (UIDPLUS's COPYUID, RFC 6851)."""

from __future__ import annotations

from twisted.logger import Logger

from mailsuite.imap import wire
from mailsuite.imap.commands.base import (
    No,
    Session,
    folder_path,
    report_expunged,
    select_uids,
    to_thread,
    writable,
)
from mailsuite.imap.parser import Reader
from mailsuite.store.index import FolderGone

log = Logger(namespace="mailsuite.imap")


def _arguments(reader: Reader) -> tuple[list, str]:
    """``<sequence set> <folder>``, the arguments of COPY and MOVE."""
    reader.sp()
    ranges = reader.sequence_set()
    reader.sp()
    name = reader.mailbox()
    reader.end()
    return ranges, name


async def cmd_copy(session: Session, tag: str, reader: Reader, uid_mode: bool) -> str:
    ranges, name = _arguments(reader)
    code, _pairs = await _copy(session, ranges, name, uid_mode)
    return f"OK {code}COPY completed"


async def cmd_move(session: Session, tag: str, reader: Reader, uid_mode: bool) -> str:
    ranges, name = _arguments(reader)
    selection = writable(session)
    code, pairs = await _copy(session, ranges, name, uid_mode)
    if code:
        session.send(f"* OK {code}Moved\r\n")
    sources = [src for src, _dst in pairs]
    expunged, modseq = await to_thread(selection.index.expunge_at, sources, False)
    return f"OK {report_expunged(session, selection, expunged, modseq)}MOVE completed"


async def _copy(
    session: Session, ranges, name: str, uid_mode: bool
) -> tuple[str, list[tuple[int, int]]]:
    selection = session.selected
    uids = select_uids(session, ranges, uid_mode)
    path = folder_path(session, name)
    if not await to_thread(session.folders.exists, name):
        raise No("[TRYCREATE] No such folder")
    try:
        target = await to_thread(session.account.index, path)
        pairs = await to_thread(selection.index.copy_to, target, uids)
    except FolderGone:  # deleted meanwhile (copies made before that stay)
        raise No("[TRYCREATE] No such folder") from None
    if pairs:
        session.ctx.hub.changed(path, origin=session)
    if not pairs:
        return "", pairs
    src = wire.compact_uids([a for a, _ in pairs])
    dst = wire.compact_uids([b for _, b in pairs])
    return f"[COPYUID {target.uidvalidity} {src} {dst}] ", pairs
