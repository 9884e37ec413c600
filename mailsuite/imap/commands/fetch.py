"""FETCH and UID FETCH: rendered in worker-thread batches, big literals streamed from the files."""

from __future__ import annotations

import bisect
import io

from twisted.logger import Logger

from mailsuite.imap import wire
from mailsuite.imap.commands.base import (
    Session,
    select_uids,
    to_thread,
)
from mailsuite.imap.fetch import (
    FetchRequest,
    FileRange,
    field_sections,
    header_fields,
    index_renderer,
    needs_header_block,
    parse_fetch_items,
    render,
)
from mailsuite.imap.parser import ParseError, Reader, resolve_set
from mailsuite.imap.qresync import vanished_earlier
from mailsuite.imap.selection import Selection
from mailsuite.store.index import Record

log = Logger(namespace="mailsuite.imap")

FETCH_BATCH = 1000  # messages per worker-thread hop when the index has every answer
FETCH_HEADER_BATCH = 500  # ... when answers hold whole header blocks (up to 64 KB each)
FETCH_FILE_BATCH = 100  # ... and when message files are read
STREAM_CHUNK = 256 * 1024
_RECENT = frozenset({"\\Recent"})


async def cmd_fetch(session: Session, tag: str, reader: Reader, uid_mode: bool) -> str:
    reader.sp()
    ranges = reader.sequence_set()
    reader.sp()
    request = parse_fetch_items(reader)
    reader.end()
    selection = session.selected
    if request.vanished and not (
        uid_mode and session.qresync and request.changed_since is not None
    ):
        raise ParseError("VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC")
    if request.changed_since is not None or "MODSEQ" in request.items:
        selection.condstore = session.condstore = True
    uids = select_uids(session, ranges, uid_mode)
    index = selection.index
    if request.vanished:  # before any FETCH response (RFC 7162 §3.2.6)
        wanted = resolve_set(ranges, 2**32 - 1)  # '*': up to UIDNEXT, clipped there
        session.send(await to_thread(vanished_earlier, index, request.changed_since, wanted))
    if request.sets_seen and not selection.readonly and uids:
        changed, _ = await to_thread(index.store_flags, uids, "+", ["\\Seen"])
        if changed:
            for record in changed:
                selection.reported[record.uid] = record.modseq
            if "FLAGS" not in request.items:
                request.items.append("FLAGS")
    complete = await _stream_fetch(session, selection, uids, request, uid_mode)
    # A message of this view expunged by another session or program meanwhile is left out
    # of the answer; the client hears of its expunge at the next NOOP (RFC 5530).
    code = "" if complete else "[EXPUNGEISSUED] "
    return f"OK {code}{'UID ' if uid_mode else ''}FETCH completed"


async def _stream_fetch(
    session: Session, selection: Selection, uids: list[int], request: FetchRequest, uid_mode: bool
) -> bool:
    """Send the FETCH responses; False if some message was expunged before it was read."""
    index = selection.index
    wants_envelope = "ENVELOPE" in request.items
    field_secs = field_sections(request)
    wants_block = needs_header_block(request)
    wants_flags = "FLAGS" in request.items
    # Answers from the index alone are small: big batches, few thread hops. Answers from
    # the files hold message text: small batches bound the memory of one response.
    if request.reads_files:
        batch_size = FETCH_FILE_BATCH
    elif request.sends_header_blocks:
        batch_size = FETCH_HEADER_BATCH
    else:
        batch_size = FETCH_BATCH
    changed_since = request.changed_since
    recent = selection.recent

    wants_date = "INTERNALDATE" in request.items
    wants_size = "RFC822.SIZE" in request.items
    fast = index_renderer(request, uid_mode)

    def render_batch(batch: list[int]):
        if wants_date:
            index.fill_internaldates(batch)
        if wants_size:
            index.fill_sizes(batch)
        get = index.get
        records = [r for r in map(get, batch) if r is not None]
        gone = len(records) < len(batch)
        if changed_since is not None:
            records = [r for r in records if r.modseq > changed_since]
        wanted = [r.uid for r in records]
        envelopes = index.envelopes_wire(wanted) if wants_envelope else {}
        fields = header_fields(index, wanted, field_secs) if field_secs else {}
        headers = index.headers(wanted) if wants_block else {}
        out: list = []
        shown_flags: list[Record] = []
        view = selection.uids
        end = len(view)
        at = 0
        for record in records:
            uid = record.uid
            # Ascending UIDs: each search starts where the last one ended.
            at = bisect.bisect_left(view, uid, at)
            if at == end or view[at] != uid:
                continue
            msn = at + 1
            shown = _with_recent(record) if uid in recent and wants_flags else record
            if fast is not None:
                line = fast(shown, msn, envelopes.get(uid), fields.get(uid))
                if line is not None:
                    out.append(line)
                    if wants_flags:
                        shown_flags.append(record)
                    continue
            try:
                out += render(
                    index,
                    shown,
                    msn,
                    request,
                    uid_mode,
                    envelopes.get(uid),
                    headers.get(uid),
                    fields.get(uid),
                )
            except FileNotFoundError:  # expunged meanwhile: the next update reports it
                gone = True
                continue
            if wants_flags:
                shown_flags.append(record)
        return wire.join_runs(out), shown_flags, gone

    complete = True
    session.start_output()
    try:
        for start in range(0, len(uids), batch_size):
            batch = uids[start : start + batch_size]
            pieces, shown, gone = await to_thread(render_batch, batch)
            complete = complete and not gone
            if shown:  # flags went into this batch: the folder's keywords first
                session.send(selection.flags_update())
            for record in shown:  # the client saw these flags: no unsolicited FETCH later
                selection.note_shown(record.uid, record.modseq)
            for piece in pieces:
                if session.closing:
                    return complete
                if isinstance(piece, FileRange):
                    await _stream_file(session, piece)
                else:
                    session.send(piece)
            await session.writable()
    finally:
        session.end_output()
    return complete


async def _stream_file(session: Session, piece: FileRange) -> None:
    """Send a literal whose length is already on the wire: if the message went meanwhile,
    or shrank, pad it, so the client's parser stays in step (the expunge is told later)."""
    try:
        handle = await to_thread(piece.open)
    except FileNotFoundError:
        handle = io.BytesIO()
    try:
        sent = 0
        while sent < piece.length and not session.closing:
            size = min(STREAM_CHUNK, piece.length - sent)
            chunk = await to_thread(_read_at, handle, piece.start + sent, size)
            if not chunk:  # the file shrank: pad so the literal length stays right
                chunk = b" " * size
            session.send(chunk)
            sent += len(chunk)
            await session.writable()
    finally:
        handle.close()


def _with_recent(record: Record) -> Record:
    uid, key, name, flags, *rest = record
    return Record(uid, key, name, flags | _RECENT, *rest)


def _read_at(handle, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)
