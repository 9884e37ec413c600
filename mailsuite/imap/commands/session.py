"""Commands of any state and of the not-authenticated state: CAPABILITY, NOOP, LOGOUT, ID,
STARTTLS, LOGIN, AUTHENTICATE."""

from __future__ import annotations

from twisted.logger import Logger

from mailsuite.accounts.sasl import SASLError, decode_plain
from mailsuite.imap.commands.base import (
    AUTH,
    No,
    Session,
    to_thread,
)
from mailsuite.imap.parser import ParseError, Reader
from mailsuite.store.interfaces import IMailAccount
from mailsuite.wire.session import LineTooLong

log = Logger(namespace="mailsuite.imap")


async def cmd_capability(session: Session, tag: str, reader: Reader) -> str:
    reader.end()
    session.send("* CAPABILITY " + " ".join(session.capabilities()) + "\r\n")
    return "OK CAPABILITY completed"


async def cmd_noop(session: Session, tag: str, reader: Reader) -> str:
    reader.end()
    if session.selected is not None:
        await session.announce(True, force=True)
    return "OK NOOP completed"


async def cmd_logout(session: Session, tag: str, reader: Reader) -> None:
    reader.end()
    session.send("* BYE Logging out\r\n")
    session.send(f"{tag} OK LOGOUT completed\r\n")
    session.state = "logout"
    session.close_session()
    return None


async def cmd_id(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    if reader.peek() == ord("("):
        reader.parenthesized(lambda r: r.string() if r.peek() != ord("N") else r.atom())
    else:
        reader.atom()  # NIL
    reader.end()
    session.send('* ID ("name" "mailsuite" "vendor" "mailsuite")\r\n')
    return "OK ID completed"


async def cmd_starttls(session: Session, tag: str, reader: Reader) -> None:
    reader.end()
    if session.tls or session.ctx.tls_options is None:
        raise No("TLS not available or already active")
    session.send(f"{tag} OK Begin TLS negotiation now\r\n")
    session.start_tls(session.ctx.tls_options)  # drops pipelined plaintext (CVE-2011-0411 class)
    return None


async def cmd_login(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    user = reader.astring()
    reader.sp()
    password = reader.astring()
    reader.end()
    if not session.tls:
        raise No("[PRIVACYREQUIRED] LOGIN is disabled before STARTTLS")
    return await _log_in(session, user, password)


async def cmd_authenticate(session: Session, tag: str, reader: Reader) -> str:
    reader.sp()
    mechanism = reader.atom().upper()
    initial = None
    if reader.maybe_sp():
        initial = reader.atom().encode() if reader.peek() != ord("=") else b"="
        if initial == b"=":
            reader.pos += 1
    reader.end()
    if not session.tls:
        raise No("[PRIVACYREQUIRED] Authentication is disabled before STARTTLS")
    if mechanism != "PLAIN":
        raise No("Unsupported authentication mechanism")
    try:
        if initial is None:
            session.send("+ \r\n")
            initial = await session.next_line()
        user, password = decode_plain(initial)
    except LineTooLong:
        raise ParseError("Response line too long") from None
    except SASLError as exc:
        raise ParseError(str(exc)) from None
    return await _log_in(session, user, password)


async def _log_in(session: Session, user: bytes, password: bytes) -> str:
    result = await session.attempts.login(user, password, session.peer, IMailAccount)
    if result.temporary:
        raise No("[UNAVAILABLE] Authentication temporarily unavailable")
    if not result.ok:
        if result.last:  # answered, then the session ends
            session.farewell = "Too many failed authentication attempts"
        raise No("[AUTHENTICATIONFAILED] Authentication failed")
    address = result.avatar.address
    if session.closing:  # the client left while its password was checked
        raise No("Connection closed")
    # The slot is taken and owned by this session (session.user) in one step on the reactor
    # thread, before anything else is awaited: connectionLost gives back exactly what was
    # taken, whenever the client leaves.
    count = session.ctx.connections.get(address, 0)
    if count >= session.limits.max_connections_per_user:
        raise No("[LIMIT] Too many connections for this user")
    session.ctx.connections[address] = count + 1
    session.user = address
    account = result.avatar
    try:
        await to_thread(lambda: account.folders.ensure_defaults())
    except BaseException:
        session.release_slot()
        raise
    session.account, session.folders, session.state = account, account.folders, AUTH
    log.info("imap login client={client} user={user}", client=session.peer, user=address)
    return "OK [CAPABILITY " + " ".join(session.capabilities()) + "] Logged in"
