"""APPEND (RFC 3501 §6.3.11, UIDPLUS's APPENDUID, APPENDLIMIT)."""

from __future__ import annotations

import calendar
import os
import re
import time

from twisted.logger import Logger

from mailsuite.imap.commands.base import (
    No,
    Session,
    folder_path,
    to_thread,
)
from mailsuite.imap.parser import Literal, ParseError, Reader
from mailsuite.store.index import FolderGone
from mailsuite.store.names import canonical_flag

log = Logger(namespace="mailsuite.imap")

_MONTHS = {
    m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())
}
_DATE_TIME = re.compile(
    r"\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)


async def cmd_append(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    name = reader.mailbox()
    reader.sp()
    flags: list[str] = []
    date: float | None = None
    if reader.peek() == ord("("):
        flags = [canonical_flag(f) for f in reader.flag_list()]
        reader.sp()
    if reader.peek() == ord('"'):
        date = _parse_date_time(reader.quoted().decode("ascii", "replace"))
        reader.sp()
    message = reader.string_or_literal()
    reader.end()
    if not isinstance(message, Literal):
        message = Literal(len(message), data=message)
    if message.size > session.limits.max_literal:
        raise No("[TOOBIG] Message too large (APPENDLIMIT)")
    if message.size == 0:
        raise No("Empty message")
    path = folder_path(session, name)
    if not await to_thread(session.folders.exists, name):
        raise No("[TRYCREATE] No such folder")

    def store():
        try:
            return add()
        except FileNotFoundError:  # only our own files are involved: the folder went
            raise FolderGone(f"no folder at {path}") from None

    def add():
        index = session.account.index(path)
        if message.incoming is not None:
            source = message.incoming.finalize()
            try:
                return index, index.add_file(source, flags, date)
            finally:
                message.incoming.remove()
        tmp = path / "tmp" / f"append.{os.getpid()}.{time.time_ns()}"
        with open(tmp, "xb") as fh:
            fh.write(message.data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            return index, index.add_file(tmp, flags, date)
        finally:
            tmp.unlink(missing_ok=True)

    try:
        index, record = await to_thread(store)
    except FolderGone:  # deleted meanwhile (perhaps created again since: not this one)
        raise No("[TRYCREATE] No such folder") from None
    session.ctx.hub.changed(path, origin=session)
    return f"OK [APPENDUID {index.uidvalidity} {record.uid}] APPEND completed"


def _parse_date_time(text: str) -> float:
    match = _DATE_TIME.fullmatch(text)
    if match is None or match.group(2).title() not in _MONTHS:
        raise ParseError("bad date-time")
    day, month, year, hh, mm, ss, sign, zh, zm = match.groups()
    try:
        stamp = calendar.timegm(
            (int(year), _MONTHS[month.title()], int(day), int(hh), int(mm), int(ss))
        )
    except (ValueError, OverflowError):
        raise ParseError("bad date-time") from None
    offset = (int(zh) * 60 + int(zm)) * 60
    return stamp - offset if sign == "+" else stamp + offset
