"""The IMAP command handlers (RFC 3501 §6 and the extensions in CAPABILITY).

A handler is ``async def cmd_NAME(self, tag, reader) -> str | None``: it reads its arguments
from ``reader`` (ParseError -> BAD), raises ``No`` for a NO, and returns the text of the tagged
reply (``"OK ..."``), or None when it has answered itself. Blocking work (index, files,
password checks) is awaited from worker threads; the session runs one command at a time.
"""

from __future__ import annotations

import bisect
import calendar
import io
import os
import re
import time
from array import array
from collections.abc import Callable
from pathlib import Path

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsuite.accounts.sasl import SASLError, decode_plain
from mailsuite.imap import wire
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
from mailsuite.imap.parser import Literal, ParseError, Reader, resolve_set
from mailsuite.imap.qresync import parse_select_params, resync, vanished_earlier
from mailsuite.imap.search import BadCharset, Matcher, parse_search, uses_modseq
from mailsuite.imap.selection import Selection
from mailsuite.store.folders import (
    INBOX,
    SEPARATOR,
    FolderError,
    FolderExists,
    FolderNameError,
    FolderNotFound,
    UserFolders,
    normalize_name,
)
from mailsuite.store.index import (
    FolderGone,
    FolderIndex,
    Record,
    canonical_flag,
    merge_ranges,
)
from mailsuite.wire.session import LineTooLong

log = Logger(namespace="mailsuite.imap")

FETCH_BATCH = 1000  # messages per worker-thread hop when the index has every answer
FETCH_HEADER_BATCH = 500  # ... when answers hold whole header blocks (up to 64 KB each)
FETCH_FILE_BATCH = 100  # ... and when message files are read
STREAM_CHUNK = 256 * 1024
ANY, NONAUTH, AUTH, SELECTED = "any", "nonauth", "auth", "selected"

_COMMANDS: dict[str, tuple[str, str]] = {
    # name: (method, state needed)
    "CAPABILITY": ("capability", ANY),
    "NOOP": ("noop", ANY),
    "LOGOUT": ("logout", ANY),
    "ID": ("id", ANY),
    "STARTTLS": ("starttls", NONAUTH),
    "LOGIN": ("login", NONAUTH),
    "AUTHENTICATE": ("authenticate", NONAUTH),
    "SELECT": ("select", AUTH),
    "EXAMINE": ("examine", AUTH),
    "CREATE": ("create", AUTH),
    "DELETE": ("delete", AUTH),
    "RENAME": ("rename", AUTH),
    "SUBSCRIBE": ("subscribe", AUTH),
    "UNSUBSCRIBE": ("unsubscribe", AUTH),
    "LIST": ("list", AUTH),
    "LSUB": ("lsub", AUTH),
    "STATUS": ("status", AUTH),
    "APPEND": ("append", AUTH),
    "NAMESPACE": ("namespace", AUTH),
    "ENABLE": ("enable", AUTH),
    "IDLE": ("idle", AUTH),
    "CHECK": ("check", SELECTED),
    "CLOSE": ("close", SELECTED),
    "UNSELECT": ("unselect", SELECTED),
    "EXPUNGE": ("expunge", SELECTED),
    "SEARCH": ("search", SELECTED),
    "FETCH": ("fetch", SELECTED),
    "STORE": ("store", SELECTED),
    "COPY": ("copy", SELECTED),
    "MOVE": ("move", SELECTED),
    "UID SEARCH": ("search", SELECTED),
    "UID FETCH": ("fetch", SELECTED),
    "UID STORE": ("store", SELECTED),
    "UID COPY": ("copy", SELECTED),
    "UID MOVE": ("move", SELECTED),
    "UID EXPUNGE": ("uid_expunge", SELECTED),
}

_MONTHS = {
    m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())
}
_DATE_TIME = re.compile(
    r"\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)


class No(Exception):
    """A tagged NO; str() is the rest of the line (may start with a response code)."""


def _to_thread(fn: Callable, *args) -> Deferred:
    return threads.deferToThread(fn, *args)


def _settle_later(index: FolderIndex) -> None:
    """Write a folder's first index once the SELECT answer is out (``FolderIndex.settle``)."""
    from twisted.internet import reactor

    if not index.unwritten:  # the usual case: no thread hop
        return

    def settle() -> None:
        _to_thread(index.settle).addErrback(
            lambda failure: log.failure("writing the index of {path}", failure, path=index.path)
        )

    reactor.callLater(0, settle)


class CommandsMixin:
    """Mixed into IMAPServer; see there for the session state it uses."""

    def handler_for(self, name: str | None):
        entry = _COMMANDS.get(name or "")
        if entry is None:
            return None
        method, needed = entry
        state = self.state
        allowed = needed == ANY or needed == state or (needed == AUTH and state == SELECTED)
        if not allowed:
            return None
        coroutine = getattr(self, f"cmd_{method}")
        uid = name.startswith("UID ")
        if method in ("search", "fetch", "store", "copy", "move"):
            return lambda tag, reader: Deferred.fromCoroutine(coroutine(tag, reader, uid))
        return lambda tag, reader: Deferred.fromCoroutine(coroutine(tag, reader))

    # --- any state ----------------------------------------------------------------------------

    async def cmd_capability(self, tag: str, reader: Reader) -> str:
        reader.end()
        self.send("* CAPABILITY " + " ".join(self.capabilities()) + "\r\n")
        return "OK CAPABILITY completed"

    async def cmd_noop(self, tag: str, reader: Reader) -> str:
        reader.end()
        if self.selected is not None:
            await self.announce(True, force=True)
        return "OK NOOP completed"

    async def cmd_logout(self, tag: str, reader: Reader) -> None:
        reader.end()
        self.send("* BYE Logging out\r\n")
        self.send(f"{tag} OK LOGOUT completed\r\n")
        self.state = "logout"
        self.close_session()
        return None

    async def cmd_id(self, tag: str, reader: Reader) -> str:
        reader.sp()
        if reader.peek() == ord("("):
            reader.parenthesized(lambda r: r.string() if r.peek() != ord("N") else r.atom())
        else:
            reader.atom()  # NIL
        reader.end()
        self.send('* ID ("name" "mailsuite" "vendor" "mailsuite")\r\n')
        return "OK ID completed"

    # --- not authenticated --------------------------------------------------------------------

    async def cmd_starttls(self, tag: str, reader: Reader) -> None:
        reader.end()
        if self.tls or self.ctx.tls_options is None:
            raise No("TLS not available or already active")
        self.send(f"{tag} OK Begin TLS negotiation now\r\n")
        self.start_tls(self.ctx.tls_options)  # drops pipelined plaintext (CVE-2011-0411 class)
        return None

    async def cmd_login(self, tag: str, reader: Reader) -> str:
        reader.sp()
        user = reader.astring()
        reader.sp()
        password = reader.astring()
        reader.end()
        if not self.tls:
            raise No("[PRIVACYREQUIRED] LOGIN is disabled before STARTTLS")
        return await self._authenticate(user, password)

    async def cmd_authenticate(self, tag: str, reader: Reader) -> str:
        reader.sp()
        mechanism = reader.atom().upper()
        initial = None
        if reader.maybe_sp():
            initial = reader.atom().encode() if reader.peek() != ord("=") else b"="
            if initial == b"=":
                reader.pos += 1
        reader.end()
        if not self.tls:
            raise No("[PRIVACYREQUIRED] Authentication is disabled before STARTTLS")
        if mechanism != "PLAIN":
            raise No("Unsupported authentication mechanism")
        try:
            if initial is None:
                self.send("+ \r\n")
                initial = await self.next_line()
            user, password = decode_plain(initial)
        except LineTooLong:
            raise ParseError("Response line too long") from None
        except SASLError as exc:
            raise ParseError(str(exc)) from None
        return await self._authenticate(user, password)

    async def _authenticate(self, user: bytes, password: bytes) -> str:
        result = await self._attempts.login(user, password, self.peer)
        if result.temporary:
            raise No("[UNAVAILABLE] Authentication temporarily unavailable")
        if not result.ok:
            if result.last:
                self.send("* BYE Too many failed authentication attempts\r\n")
                self.close_session()
            raise No("[AUTHENTICATIONFAILED] Authentication failed")
        address = result.avatar.address
        if self.closing:  # the client left while its password was checked
            raise No("Connection closed")
        # The slot is taken and owned by this session (self.user) in one step on the reactor
        # thread, before anything else is awaited: connectionLost gives back exactly what was
        # taken, whenever the client leaves.
        count = self.ctx.connections.get(address, 0)
        if count >= self.limits.max_connections_per_user:
            raise No("[LIMIT] Too many connections for this user")
        self.ctx.connections[address] = count + 1
        self.user = address
        folders = UserFolders(self.ctx.store.maildir_path(address))
        try:
            await _to_thread(folders.ensure_defaults)
        except BaseException:
            self._release_slot()
            raise
        self.folders, self.state = folders, AUTH
        log.info("imap login client={client} user={user}", client=self.peer, user=address)
        return "OK [CAPABILITY " + " ".join(self.capabilities()) + "] Logged in"

    # --- folders ------------------------------------------------------------------------------

    def _folder_path(self, name: str):
        try:
            return self.folders.path(name)
        except FolderNameError as exc:
            raise No(f"[CANNOT] {exc}") from None

    async def cmd_select(self, tag: str, reader: Reader) -> str:
        return await self._select(reader, readonly=False)

    async def cmd_examine(self, tag: str, reader: Reader) -> str:
        return await self._select(reader, readonly=True)

    async def _select(self, reader: Reader, readonly: bool) -> str:
        reader.sp()
        name = reader.mailbox()
        params = parse_select_params(reader)
        reader.end()
        if params.qresync is not None and not self.qresync:
            raise ParseError("QRESYNC parameter without ENABLE QRESYNC")
        if self.selected is not None:
            self.deselect()
            # The boundary between the old folder's responses and the new one's (RFC 7162
            # §3.2.11, required of any server advertising CONDSTORE or QRESYNC).
            self.send("* OK [CLOSED] Previous folder closed\r\n")
        if self.state == SELECTED:
            self.state = AUTH
        path = self._folder_path(name)
        if not await _to_thread(self.folders.exists, name):
            raise No("[NONEXISTENT] No such folder")
        if params.condstore:
            self.condstore = True
        selection = Selection(
            name=normalize_name(name),
            path=path,
            index=None,
            readonly=readonly,
            uids=array("I"),
            modseq=0,
            condstore=self.condstore,
            qresync=self.qresync,
            version=self.ctx.hub.version(path),
        )

        def open_folder():
            index = self.ctx.registry.open(path)
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

        index, uids, status, extra, keywords, first_unseen = await _to_thread(open_folder)
        selection.index = index
        selection.uids = uids
        selection.modseq = status.highestmodseq
        selection.announced = len(uids)
        selection.keywords = keywords
        lines = [
            wire.flag_responses(keywords, readonly).decode("utf-8", "replace").rstrip("\r\n"),
            f"* {len(uids)} EXISTS",
            f"* {len(selection.recent)} RECENT",
        ]
        if first_unseen is not None:
            lines.append(f"* OK [UNSEEN {first_unseen}] First unseen")
        lines += [
            f"* OK [UIDVALIDITY {status.uidvalidity}] UIDs valid",
            f"* OK [UIDNEXT {status.uidnext}] Predicted next UID",
            f"* OK [HIGHESTMODSEQ {status.highestmodseq}] Highest",
        ]
        self.send("".join(line + "\r\n" for line in lines).encode() + extra)
        self.selected = selection
        self.state = SELECTED
        self.ctx.hub.join(path, self)
        _settle_later(index)
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        return f"OK [{mode}] {'EXAMINE' if readonly else 'SELECT'} completed"

    async def cmd_create(self, tag: str, reader: Reader) -> str:
        reader.sp()
        name = reader.mailbox().rstrip(SEPARATOR) or ""
        reader.end()
        try:
            await _to_thread(self.folders.create, name)
        except FolderExists:
            raise No("[ALREADYEXISTS] Folder already exists") from None
        except FolderError as exc:
            raise No(f"[CANNOT] {exc}") from None
        return "OK CREATE completed"

    async def cmd_delete(self, tag: str, reader: Reader) -> str:
        reader.sp()
        name = reader.mailbox()
        reader.end()
        path = self._folder_path(name)
        if self.selected is not None and self.selected.path == path:
            raise No("[INUSE] Cannot delete the selected folder")
        try:
            await _to_thread(self.folders.delete, name)
        except FolderNotFound:
            raise No("[NONEXISTENT] No such folder") from None
        except FolderError as exc:
            raise No(f"[CANNOT] {exc}") from None
        self._forget_folders([path])
        return "OK DELETE completed"

    def _forget_folders(self, paths: list[Path]) -> None:
        """Folders deleted or renamed away: end the sessions that had them selected (BYE), and
        drop their indexes (their children stay unless listed: DELETE keeps them)."""
        self.ctx.hub.gone(paths)
        for path in paths:
            self.ctx.registry.forget(path)

    async def cmd_rename(self, tag: str, reader: Reader) -> str:
        reader.sp()
        old = reader.mailbox()
        reader.sp()
        new = reader.mailbox()
        reader.end()
        path = self._folder_path(old)
        target = self._folder_path(new)
        if normalize_name(old) == INBOX:
            return await self._rename_inbox(new, target)
        selected = self.selected
        if selected is not None and (
            selected.path == path or selected.name.startswith(normalize_name(old) + SEPARATOR)
        ):
            raise No("[INUSE] Cannot rename the selected folder or its parent")
        try:
            moves = await _to_thread(self.folders.rename, old, new)
        except FolderNotFound:
            raise No("[NONEXISTENT] No such folder") from None
        except FolderExists:
            raise No("[ALREADYEXISTS] Target folder exists") from None
        except FolderError as exc:
            raise No(f"[CANNOT] {exc}") from None
        self._forget_folders([self.folders.path(source) for source, _target in moves])
        return "OK RENAME completed"

    async def _rename_inbox(self, new: str, target: Path) -> str:
        """RFC 3501 §6.3.5: INBOX's messages move to a new folder; INBOX (and its inferior
        folders) stay. Allowed while INBOX is selected: that session sees EXPUNGEs."""
        try:
            await _to_thread(self.folders.create, new)
        except FolderExists:
            raise No("[ALREADYEXISTS] Target folder exists") from None
        except FolderError as exc:
            raise No(f"[CANNOT] {exc}") from None

        def move():
            inbox = self.ctx.registry.open(self.folders.root)
            return inbox.move_all_to(self.ctx.registry.open(target))

        if await _to_thread(move):
            self.ctx.hub.changed(self.folders.root)
            self.ctx.hub.changed(target)
        return "OK RENAME completed"

    async def cmd_subscribe(self, tag: str, reader: Reader) -> str:
        reader.sp()
        name = reader.mailbox()
        reader.end()
        self._folder_path(name)
        await _to_thread(self.folders.subscribe, name)
        return "OK SUBSCRIBE completed"

    async def cmd_unsubscribe(self, tag: str, reader: Reader) -> str:
        reader.sp()
        name = reader.mailbox()
        reader.end()
        self._folder_path(name)
        await _to_thread(self.folders.unsubscribe, name)
        return "OK UNSUBSCRIBE completed"

    async def cmd_list(self, tag: str, reader: Reader) -> str:
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
            self.send(f'* LIST (\\Noselect) "{SEPARATOR}" ""\r\n')
            return "OK LIST completed"
        only_subscribed = "SUBSCRIBED" in selection_opts
        only_special = "SPECIAL-USE" in selection_opts
        return await self._list("LIST", reference, patterns, only_subscribed, only_special)

    async def cmd_lsub(self, tag: str, reader: Reader) -> str:
        reader.sp()
        reference = reader.list_mailbox()
        reader.sp()
        pattern = reader.list_mailbox()
        reader.end()
        return await self._list("LSUB", reference, [pattern], True, False)

    async def _list(
        self, verb: str, reference: str, patterns: list[str], subscribed_only: bool, special: bool
    ) -> str:
        def gather():
            return self.folders.list(), set(self.folders.subscriptions())

        infos, subscribed = await _to_thread(gather)
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
            line = f'* {verb} ({" ".join(attrs)}) "{SEPARATOR}" '.encode()
            lines.append(line + wire.mailbox_name(info.name) + b"\r\n")
        if verb == "LSUB":
            for parent in _unsubscribed_parents(subscribed, matchers):
                line = f'* LSUB (\\Noselect \\HasChildren) "{SEPARATOR}" '.encode()
                lines.append(line + wire.mailbox_name(parent) + b"\r\n")
        self.send(b"".join(lines))
        return f"OK {verb} completed"

    async def cmd_status(self, tag: str, reader: Reader) -> str:
        reader.sp()
        name = reader.mailbox()
        reader.sp()
        items = reader.parenthesized(lambda r: r.keyword())
        reader.end()
        path = self._folder_path(name)
        if not await _to_thread(self.folders.exists, name):
            raise No("[NONEXISTENT] No such folder")

        def status():
            index = self.ctx.registry.open(path)
            index.sync()
            return index.status()

        st = await _to_thread(status)
        values = {
            "MESSAGES": st.messages,
            "RECENT": st.recent,
            "UIDNEXT": st.uidnext,
            "UIDVALIDITY": st.uidvalidity,
            "UNSEEN": st.unseen,
            "HIGHESTMODSEQ": st.highestmodseq,
            "APPENDLIMIT": self.limits.max_literal,
        }
        out = []
        for item in items:
            if item not in values:
                raise ParseError(f"unknown STATUS item {item}")
            out.append(f"{item} {values[item]}")
        self.send(
            b"* STATUS "
            + wire.mailbox_name(normalize_name(name))
            + b" ("
            + " ".join(out).encode()
            + b")\r\n"
        )
        return "OK STATUS completed"

    async def cmd_namespace(self, tag: str, reader: Reader) -> str:
        reader.end()
        self.send(f'* NAMESPACE (("" "{SEPARATOR}")) NIL NIL\r\n')
        return "OK NAMESPACE completed"

    async def cmd_enable(self, tag: str, reader: Reader) -> str:
        enabled = []
        while reader.maybe_sp():
            capability = reader.atom().upper()
            if capability in ("CONDSTORE", "QRESYNC") and capability not in enabled:
                # QRESYNC enables CONDSTORE too (RFC 7162 §3.2.3).
                self.condstore = True
                self.qresync = self.qresync or capability == "QRESYNC"
                if self.selected is not None:
                    self.selected.condstore = True
                    self.selected.qresync = self.qresync
                enabled.append(capability)
        reader.end()
        self.send("* ENABLED" + "".join(f" {c}" for c in enabled) + "\r\n")
        return "OK ENABLE completed"

    async def cmd_idle(self, tag: str, reader: Reader) -> str:
        reader.end()
        if self.selected is not None:
            await self.announce(True, force=True)
        return await self.idle(tag)

    # --- APPEND -------------------------------------------------------------------------------

    async def cmd_append(self, tag: str, reader: Reader) -> str:
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
        if message.size > self.limits.max_literal:
            raise No("[TOOBIG] Message too large (APPENDLIMIT)")
        if message.size == 0:
            raise No("Empty message")
        path = self._folder_path(name)
        if not await _to_thread(self.folders.exists, name):
            raise No("[TRYCREATE] No such folder")

        def store():
            index = self.ctx.registry.open(path)
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
            index, record = await _to_thread(store)
        except FileNotFoundError:  # the folder was deleted meanwhile
            if await _to_thread(self.folders.exists, name):
                raise
            raise No("[TRYCREATE] No such folder") from None
        self.ctx.hub.changed(path, origin=self)
        return f"OK [APPENDUID {index.uidvalidity} {record.uid}] APPEND completed"

    # --- selected state -----------------------------------------------------------------------

    async def cmd_check(self, tag: str, reader: Reader) -> str:
        reader.end()
        await self.announce(True, force=True)
        return "OK CHECK completed"

    async def cmd_close(self, tag: str, reader: Reader) -> str:
        reader.end()
        selection = self.selected
        self.deselect()
        self.state = AUTH
        if not selection.readonly:
            try:
                expunged = await _to_thread(selection.index.expunge)
            except FolderGone:  # deleted by another session: nothing left to expunge
                expunged = []
            if expunged:
                self.ctx.hub.changed(selection.path, origin=self)
        return "OK CLOSE completed"

    async def cmd_unselect(self, tag: str, reader: Reader) -> str:
        reader.end()
        self.deselect()
        self.state = AUTH
        return "OK UNSELECT completed"

    async def cmd_expunge(self, tag: str, reader: Reader) -> str:
        reader.end()
        return await self._expunge(None)

    async def cmd_uid_expunge(self, tag: str, reader: Reader) -> str:
        reader.sp()
        ranges = reader.sequence_set()
        reader.end()
        return await self._expunge(self._select_uids(ranges, True))

    async def _expunge(self, uids: list[int] | None) -> str:
        selection = self._writable()
        expunged, modseq = await _to_thread(selection.index.expunge_at, uids)
        return f"OK {self._expunged(selection, expunged, modseq)}EXPUNGE completed"

    def _expunged(self, selection: Selection, uids: list[int], modseq: int) -> str:
        """Report our own expunge (EXPUNGE or VANISHED) and tell the other sessions; returns
        the response code QRESYNC wants on the tagged OK (RFC 7162 §3.2.7)."""
        for uid in uids:
            selection.pending_expunge.discard(uid)
        if not selection.pending_expunge:
            selection.expunge_horizon = None
        self.send(b"".join(selection.remove(uids)))
        if not uids:
            return ""
        self.ctx.hub.changed(selection.path, origin=self)
        return f"[HIGHESTMODSEQ {modseq}] " if selection.qresync else ""

    def _writable(self) -> Selection:
        if self.selected.readonly:
            raise No("[READ-ONLY] Folder is read-only")
        return self.selected

    def _select_uids(self, ranges, uid_mode: bool) -> list[int]:
        """UIDs of the current view addressed by a sequence set (msn or UID)."""
        view = self.selected.uids
        if uid_mode:
            largest = view[-1] if view else 0
            out: list[int] = []
            for low, high in merge_ranges(resolve_set(ranges, largest)):
                out += view[bisect.bisect_left(view, low) : bisect.bisect_right(view, high)]
            return out
        resolved = resolve_set(ranges, len(view))
        if any(high > len(view) for _low, high in resolved):
            raise ParseError("Invalid message sequence number")
        out = []
        for low, high in merge_ranges(resolved):
            out += view[low - 1 : high]
        return out

    async def cmd_search(self, tag: str, reader: Reader, uid_mode: bool) -> str:
        reader.sp()
        try:
            keys, _charset = parse_search(reader)
        except BadCharset:
            raise No("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset") from None
        selection = self.selected
        matcher = Matcher(selection.index, list(selection.uids), set(selection.recent))
        matches = await _to_thread(matcher.search, keys)
        numbers = [str(r.uid if uid_mode else msn) for msn, r in matches]
        line = "* SEARCH" + "".join(f" {n}" for n in numbers)
        if uses_modseq(keys) and matches:
            line += f" (MODSEQ {max(r.modseq for _, r in matches)})"
            if not selection.condstore:
                selection.condstore = self.condstore = True
        self.send(line + "\r\n")
        return f"OK {'UID ' if uid_mode else ''}SEARCH completed"

    async def cmd_fetch(self, tag: str, reader: Reader, uid_mode: bool) -> str:
        reader.sp()
        ranges = reader.sequence_set()
        reader.sp()
        request = parse_fetch_items(reader)
        reader.end()
        selection = self.selected
        if request.vanished and not (
            uid_mode and self.qresync and request.changed_since is not None
        ):
            raise ParseError("VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC")
        if request.changed_since is not None or "MODSEQ" in request.items:
            selection.condstore = self.condstore = True
        uids = self._select_uids(ranges, uid_mode)
        index = selection.index
        if request.vanished:  # before any FETCH response (RFC 7162 §3.2.6)
            wanted = resolve_set(ranges, 2**32 - 1)  # '*': up to UIDNEXT, clipped there
            self.send(await _to_thread(vanished_earlier, index, request.changed_since, wanted))
        if request.sets_seen and not selection.readonly and uids:
            changed, _ = await _to_thread(index.store_flags, uids, "+", ["\\Seen"])
            if changed:
                for record in changed:
                    selection.reported[record.uid] = record.modseq
                if "FLAGS" not in request.items:
                    request.items.append("FLAGS")
        complete = await self._stream_fetch(selection, uids, request, uid_mode)
        # A message of this view expunged by another session or program meanwhile is left out
        # of the answer; the client hears of its expunge at the next NOOP (RFC 5530).
        code = "" if complete else "[EXPUNGEISSUED] "
        return f"OK {code}{'UID ' if uid_mode else ''}FETCH completed"

    async def _stream_fetch(
        self, selection: Selection, uids: list[int], request: FetchRequest, uid_mode: bool
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
        fast = index_renderer(request, uid_mode)

        def render_batch(batch: list[int]):
            if wants_date:
                index.fill_internaldates(batch)
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
            return _join_bytes(out), shown_flags, gone

        complete = True
        self.start_output()
        try:
            for start in range(0, len(uids), batch_size):
                batch = uids[start : start + batch_size]
                pieces, shown, gone = await _to_thread(render_batch, batch)
                complete = complete and not gone
                if shown:  # flags went into this batch: the folder's keywords first
                    self.send(selection.flags_update())
                for record in shown:  # the client saw these flags: no unsolicited FETCH later
                    selection.note_shown(record.uid, record.modseq)
                for piece in pieces:
                    if self.closing:
                        return complete
                    if isinstance(piece, FileRange):
                        await self._stream_file(piece)
                    else:
                        self.send(piece)
                await self.writable()
        finally:
            self.end_output()
        return complete

    async def _stream_file(self, piece: FileRange) -> None:
        """Send a literal whose length is already on the wire: if the message went meanwhile,
        or shrank, pad it, so the client's parser stays in step (the expunge is told later)."""
        try:
            handle = await _to_thread(piece.open)
        except FileNotFoundError:
            handle = io.BytesIO()
        try:
            sent = 0
            while sent < piece.length and not self.closing:
                size = min(STREAM_CHUNK, piece.length - sent)
                chunk = await _to_thread(_read_at, handle, piece.start + sent, size)
                if not chunk:  # the file shrank: pad so the literal length stays right
                    chunk = b" " * size
                self.send(chunk)
                sent += len(chunk)
                await self.writable()
        finally:
            handle.close()

    async def cmd_store(self, tag: str, reader: Reader, uid_mode: bool) -> str:
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
        selection = self._writable()
        uids = self._select_uids(ranges, uid_mode)
        if unchanged_since is not None:
            selection.condstore = self.condstore = True
        index = selection.index

        changed, refused = await _to_thread(index.store_flags, uids, mode, flags, unchanged_since)
        for record in changed:
            selection.reported[record.uid] = record.modseq
            selection.pending_flags.pop(record.uid, None)
        if changed:
            # Only our own change since this session last looked: the end of the command need
            # not rescan the folder our renames just touched (10,000 names: ~20 ms before the
            # OK). The next look does; another session's change meanwhile means a look now.
            current = self.ctx.hub.version(selection.path) == selection.version
            self.ctx.hub.changed(selection.path, origin=self)
            if current:
                selection.version = self.ctx.hub.version(selection.path)
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
            items = []
            if uid_mode:
                items.append(b"UID %d" % record.uid)
            if action == "FLAGS" or not selection.condstore:
                items.append(b"FLAGS " + selection.flags_of(record))
            if selection.condstore:
                items.append(b"MODSEQ (%d)" % record.modseq)
            lines.append(b"* %d FETCH (%s)\r\n" % (msn, b" ".join(items)))
        self.send(selection.flags_update() + b"".join(lines))
        if refused:
            numbers = refused if uid_mode else [selection.msn(u) for u in refused]
            return f"OK [MODIFIED {_compact([n for n in numbers if n])}] Conditional STORE failed"
        return f"OK {'UID ' if uid_mode else ''}STORE completed"

    async def cmd_copy(self, tag: str, reader: Reader, uid_mode: bool) -> str:
        reader.sp()
        ranges = reader.sequence_set()
        reader.sp()
        name = reader.mailbox()
        reader.end()
        code, _pairs = await self._copy(ranges, name, uid_mode)
        return f"OK {code}COPY completed"

    async def cmd_move(self, tag: str, reader: Reader, uid_mode: bool) -> str:
        reader.sp()
        ranges = reader.sequence_set()
        reader.sp()
        name = reader.mailbox()
        reader.end()
        selection = self._writable()
        code, pairs = await self._copy(ranges, name, uid_mode)
        if code:
            self.send(f"* OK {code}Moved\r\n")
        sources = [src for src, _dst in pairs]
        expunged, modseq = await _to_thread(selection.index.expunge_at, sources, False)
        return f"OK {self._expunged(selection, expunged, modseq)}MOVE completed"

    async def _copy(self, ranges, name: str, uid_mode: bool) -> tuple[str, list[tuple[int, int]]]:
        selection = self.selected
        uids = self._select_uids(ranges, uid_mode)
        path = self._folder_path(name)
        if not await _to_thread(self.folders.exists, name):
            raise No("[TRYCREATE] No such folder")
        try:
            target = await _to_thread(self.ctx.registry.open, path)
            pairs = await _to_thread(selection.index.copy_to, target, uids)
        except FolderGone:  # deleted meanwhile (copies made before that stay)
            raise No("[TRYCREATE] No such folder") from None
        if pairs:
            self.ctx.hub.changed(path, origin=self)
        if not pairs:
            return "", pairs
        src = _compact([a for a, _ in pairs])
        dst = _compact([b for _, b in pairs])
        return f"[COPYUID {target.uidvalidity} {src} {dst}] ", pairs


def _store_modifier(reader: Reader) -> tuple[str, int]:
    key = reader.keyword()
    if key != "UNCHANGEDSINCE":
        raise ParseError(f"unknown STORE modifier {key}")
    reader.sp()
    return key, reader.number()


def _with_recent(record: Record) -> Record:
    uid, key, name, flags, *rest = record
    return Record(uid, key, name, flags | _RECENT, *rest)


_RECENT = frozenset({"\\Recent"})


def _join_bytes(pieces: list) -> list:
    """Runs of bytes joined into one (one transport write per batch, not per message)."""
    out: list = []
    run: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            run.append(piece)
        else:
            if run:
                out.append(b"".join(run))
                run = []
            out.append(piece)
    if run:
        out.append(b"".join(run))
    return out


def _read_at(handle, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _compact(numbers: list[int]) -> str:
    """UIDs as a uid-set in the given order: runs of consecutive numbers as a:b."""
    out: list[str] = []
    start = prev = None
    for n in numbers:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(str(start) if start == prev else f"{start}:{prev}")
            start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


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
