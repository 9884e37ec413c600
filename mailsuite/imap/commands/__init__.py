"""The IMAP command handlers (RFC 3501 §6 and the extensions in CAPABILITY), one module per
group, and the table that dispatches a command name to its handler in the states it is allowed.
See ``base`` for what a handler is."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from mailsuite.imap.commands import append, copy, fetch, folders, mailbox, search, session, store
from mailsuite.imap.commands.base import ANY, AUTH, NONAUTH, SELECTED, No, Session
from mailsuite.imap.parser import Reader

__all__ = ["No", "handler_for"]

# name: (handler, state needed, takes uid_mode)
COMMANDS: dict[str, tuple[Callable, str, bool]] = {
    "CAPABILITY": (session.cmd_capability, ANY, False),
    "NOOP": (session.cmd_noop, ANY, False),
    "LOGOUT": (session.cmd_logout, ANY, False),
    "ID": (session.cmd_id, ANY, False),
    "STARTTLS": (session.cmd_starttls, NONAUTH, False),
    "LOGIN": (session.cmd_login, NONAUTH, False),
    "AUTHENTICATE": (session.cmd_authenticate, NONAUTH, False),
    "SELECT": (mailbox.cmd_select, AUTH, False),
    "EXAMINE": (mailbox.cmd_examine, AUTH, False),
    "CREATE": (folders.cmd_create, AUTH, False),
    "DELETE": (folders.cmd_delete, AUTH, False),
    "RENAME": (folders.cmd_rename, AUTH, False),
    "SUBSCRIBE": (folders.cmd_subscribe, AUTH, False),
    "UNSUBSCRIBE": (folders.cmd_unsubscribe, AUTH, False),
    "LIST": (folders.cmd_list, AUTH, False),
    "LSUB": (folders.cmd_lsub, AUTH, False),
    "STATUS": (folders.cmd_status, AUTH, False),
    "APPEND": (append.cmd_append, AUTH, False),
    "NAMESPACE": (folders.cmd_namespace, AUTH, False),
    "ENABLE": (mailbox.cmd_enable, AUTH, False),
    "IDLE": (mailbox.cmd_idle, AUTH, False),
    "CHECK": (mailbox.cmd_check, SELECTED, False),
    "CLOSE": (mailbox.cmd_close, SELECTED, False),
    "UNSELECT": (mailbox.cmd_unselect, SELECTED, False),
    "EXPUNGE": (mailbox.cmd_expunge, SELECTED, False),
    "SEARCH": (search.cmd_search, SELECTED, False),
    "FETCH": (fetch.cmd_fetch, SELECTED, False),
    "STORE": (store.cmd_store, SELECTED, False),
    "COPY": (copy.cmd_copy, SELECTED, False),
    "MOVE": (copy.cmd_move, SELECTED, False),
    "UID SEARCH": (search.cmd_search, SELECTED, True),
    "UID FETCH": (fetch.cmd_fetch, SELECTED, True),
    "UID STORE": (store.cmd_store, SELECTED, True),
    "UID COPY": (copy.cmd_copy, SELECTED, True),
    "UID MOVE": (copy.cmd_move, SELECTED, True),
    "UID EXPUNGE": (mailbox.cmd_uid_expunge, SELECTED, False),
}


def handler_for(session: Session, name: str | None) -> Callable[[str, Reader], Deferred] | None:
    """The command ``name`` bound to ``session``, or None if unknown or not allowed now."""
    entry = COMMANDS.get(name or "")
    if entry is None:
        return None
    handler, needed, uid_mode = entry
    state = session.state
    if not (needed == ANY or needed == state or (needed == AUTH and state == SELECTED)):
        return None
    if uid_mode or handler in _TAKES_UID_MODE:
        return lambda tag, reader: Deferred.fromCoroutine(handler(session, tag, reader, uid_mode))
    return lambda tag, reader: Deferred.fromCoroutine(handler(session, tag, reader))


# Handlers with both forms (FETCH and UID FETCH ...): they take uid_mode either way.
_TAKES_UID_MODE = frozenset(h for h, _state, uid in COMMANDS.values() if uid)
