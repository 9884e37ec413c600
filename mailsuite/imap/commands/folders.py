"""Folder commands of the authenticated state: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
LIST, LSUB, STATUS, NAMESPACE."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.logger import Logger

from mailsuite.imap import wire
from mailsuite.imap.commands.base import (
    No,
    Session,
    folder_path,
    forget_folders,
    to_thread,
)
from mailsuite.imap.parser import ParseError, Reader
from mailsuite.store.folders import (
    INBOX,
    SEPARATOR,
    FolderError,
    FolderExists,
    FolderNotFound,
    normalize_name,
)

log = Logger(namespace="mailsuite.imap")


async def cmd_create(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    name = reader.mailbox().rstrip(SEPARATOR) or ""
    reader.end()
    try:
        await to_thread(session.folders.create, name)
    except FolderExists:
        raise No("[ALREADYEXISTS] Folder already exists") from None
    except FolderError as exc:
        raise No(f"[CANNOT] {exc}") from None
    return "OK CREATE completed"


async def cmd_delete(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    name = reader.mailbox()
    reader.end()
    path = folder_path(session, name)
    if session.selected is not None and session.selected.path == path:
        raise No("[INUSE] Cannot delete the selected folder")
    try:
        await to_thread(session.folders.delete, name)
    except FolderNotFound:
        raise No("[NONEXISTENT] No such folder") from None
    except FolderError as exc:
        raise No(f"[CANNOT] {exc}") from None
    forget_folders(session, [path])
    return "OK DELETE completed"


async def cmd_rename(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    old = reader.mailbox()
    reader.sp()
    new = reader.mailbox()
    reader.end()
    path = folder_path(session, old)
    target = folder_path(session, new)
    if normalize_name(old) == INBOX:
        return await _rename_inbox(session, new, target)
    selected = session.selected
    if selected is not None and (
        selected.path == path or selected.name.startswith(normalize_name(old) + SEPARATOR)
    ):
        raise No("[INUSE] Cannot rename the selected folder or its parent")
    try:
        moves = await to_thread(session.folders.rename, old, new)
    except FolderNotFound:
        raise No("[NONEXISTENT] No such folder") from None
    except FolderExists:
        raise No("[ALREADYEXISTS] Target folder exists") from None
    except FolderError as exc:
        raise No(f"[CANNOT] {exc}") from None
    forget_folders(session, [session.folders.path(source) for source, _target in moves])
    return "OK RENAME completed"


async def _rename_inbox(session: Session, new: str, target: Path) -> str:
    """RFC 3501 §6.3.5: INBOX's messages move to a new folder; INBOX (and its inferior
    folders) stay. Allowed while INBOX is selected: that session sees EXPUNGEs."""
    try:
        await to_thread(session.folders.create, new)
    except FolderExists:
        raise No("[ALREADYEXISTS] Target folder exists") from None
    except FolderError as exc:
        raise No(f"[CANNOT] {exc}") from None

    def move():
        inbox = session.account.index(session.folders.root)
        return inbox.move_all_to(session.account.index(target))

    if await to_thread(move):
        session.ctx.hub.changed(session.folders.root)
        session.ctx.hub.changed(target)
    return "OK RENAME completed"


async def cmd_subscribe(session: Session, tag: str, reader: Reader) -> str:
    await _subscription(session, reader, session.folders.subscribe)
    return "OK SUBSCRIBE completed"


async def cmd_unsubscribe(session: Session, tag: str, reader: Reader) -> str:
    await _subscription(session, reader, session.folders.unsubscribe)
    return "OK UNSUBSCRIBE completed"


async def _subscription(session: Session, reader: Reader, change) -> None:
    """SUBSCRIBE/UNSUBSCRIBE: any valid name, existing or not (RFC 3501 §6.3.6)."""
    reader.sp()
    name = reader.mailbox()
    reader.end()
    folder_path(session, name)
    await to_thread(change, name)


async def cmd_list(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    selection_opts: list[str] = []
    if reader.peek() == ord("("):  # LIST-EXTENDED selection options (RFC 5258), leniently
        selection_opts = reader.parenthesized(lambda r: r.keyword())
        reader.sp()
    reference = reader.list_mailbox()
    reader.sp()
    if reader.peek() == ord("("):
        patterns = reader.parenthesized(lambda r: r.list_mailbox())
    else:
        patterns = [reader.list_mailbox()]
    if reader.maybe_sp():
        if reader.keyword() != "RETURN":
            raise ParseError("expected RETURN")
        reader.sp()
        reader.parenthesized(lambda r: r.keyword())
    reader.end()
    if patterns == [""]:
        session.send(f'* LIST (\\Noselect) "{SEPARATOR}" ""\r\n')
        return "OK LIST completed"
    only_subscribed = "SUBSCRIBED" in selection_opts
    only_special = "SPECIAL-USE" in selection_opts
    return await _list(session, "LIST", reference, patterns, only_subscribed, only_special)


async def cmd_lsub(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    reference = reader.list_mailbox()
    reader.sp()
    pattern = reader.list_mailbox()
    reader.end()
    return await _list(session, "LSUB", reference, [pattern], True, False)


async def _list(
    session: Session,
    verb: str,
    reference: str,
    patterns: list[str],
    subscribed_only: bool,
    special: bool,
) -> str:
    def gather():
        return session.folders.list(), set(session.folders.subscriptions())

    infos, subscribed = await to_thread(gather)
    matchers = [_pattern(reference + p) for p in patterns]
    lines = []
    for info in infos:
        if not any(m.fullmatch(info.name) for m in matchers):
            continue
        if subscribed_only and info.name not in subscribed:
            continue
        if special and not info.special_use:
            continue
        attrs = []
        if not info.selectable:
            attrs.append("\\Noselect")
        attrs.append("\\HasChildren" if info.has_children else "\\HasNoChildren")
        if info.special_use and verb == "LIST":
            attrs.append(info.special_use)
        if verb == "LIST" and subscribed_only:
            attrs.append("\\Subscribed")
        lines.append(wire.list_line(verb, attrs, SEPARATOR, info.name))
    if verb == "LSUB":
        for parent in _unsubscribed_parents(subscribed, matchers):
            lines.append(wire.list_line(verb, ["\\Noselect", "\\HasChildren"], SEPARATOR, parent))
    session.send(b"".join(lines))
    return f"OK {verb} completed"


async def cmd_status(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    name = reader.mailbox()
    reader.sp()
    items = reader.parenthesized(lambda r: r.keyword())
    reader.end()
    path = folder_path(session, name)
    if not await to_thread(session.folders.exists, name):
        raise No("[NONEXISTENT] No such folder")

    def status():
        index = session.account.index(path)
        index.sync()
        return index.status()

    st = await to_thread(status)
    values = {
        "MESSAGES": st.messages,
        "RECENT": st.recent,
        "UIDNEXT": st.uidnext,
        "UIDVALIDITY": st.uidvalidity,
        "UNSEEN": st.unseen,
        "HIGHESTMODSEQ": st.highestmodseq,
        "APPENDLIMIT": session.limits.max_literal,
    }
    for item in items:
        if item not in values:
            raise ParseError(f"unknown STATUS item {item}")
    session.send(wire.status_line(normalize_name(name), [(i, values[i]) for i in items]))
    return "OK STATUS completed"


async def cmd_namespace(session: Session, tag: str, reader: Reader) -> str:
    reader.end()
    session.send(f'* NAMESPACE (("" "{SEPARATOR}")) NIL NIL\r\n')
    return "OK NAMESPACE completed"


def _pattern(pattern: str) -> re.Pattern:
    """LIST wildcard pattern -> regex: '*' anything, '%' anything but the separator."""
    out = []
    for char in pattern:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append(f"[^{re.escape(SEPARATOR)}]*")
        else:
            out.append(re.escape(char))
    regex = "".join(out)
    if pattern.upper().startswith(INBOX):
        regex = "(?i:INBOX)" + "".join(out[len(INBOX) :])
    return re.compile(regex, re.DOTALL)


def _unsubscribed_parents(subscribed: set[str], matchers: list[re.Pattern]) -> list[str]:
    """LSUB with ``%``: a folder that is not subscribed but has subscribed children the pattern
    does not reach is listed, as \\Noselect, so the client can walk down to them (RFC 3501
    §6.3.9: "foo/bar" subscribed, "foo" not, ``LSUB "" %`` returns "foo" \\Noselect)."""
    parents: set[str] = set()
    for name in subscribed:
        if any(m.fullmatch(name) for m in matchers):
            continue
        parts = name.split(SEPARATOR)
        for depth in range(1, len(parts)):
            parent = SEPARATOR.join(parts[:depth])
            if parent not in subscribed and any(m.fullmatch(parent) for m in matchers):
                parents.add(parent)
    return sorted(parents)
