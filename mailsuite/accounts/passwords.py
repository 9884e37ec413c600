"""Password hashing: argon2id for new hashes, bcrypt accepted for imported accounts.

The argon2id parameters are the OWASP minimum (19 MiB, 2 passes, 1 lane): a verification costs
tens of milliseconds, which keeps a login storm from exhausting the thread pool while still making
offline guessing expensive. Hashes made with other parameters or with bcrypt verify and are
reported for re-hashing, so the database converges on the current setting as users log in.
"""

from __future__ import annotations

from passlib.context import CryptContext
from passlib.exc import MissingBackendError
from twisted.logger import Logger

_log = Logger()

_context = CryptContext(
    schemes=["argon2", "bcrypt"],
    deprecated="auto",
    argon2__type="ID",
    argon2__memory_cost=19456,
    argon2__time_cost=2,
    argon2__parallelism=1,
)


def hash_password(password: str) -> str:
    """Hash a password with the current scheme and parameters."""
    return _context.hash(password)


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """Check ``password`` against ``hashed``: (ok, replacement hash if ``hashed`` is outdated).

    A malformed or unknown hash is a failed login, not an exception.
    """
    try:
        return _context.verify_and_update(password, hashed)
    except MissingBackendError as exc:
        _log.error("cannot verify a stored password hash: {error}", error=exc)
    except (ValueError, TypeError):
        pass
    return False, None


# A hash with the current parameters (a test keeps it current), verified when a user is unknown.
DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$4jyntPa+996b874X4hwD4A"
    "$lafHKWoi9hAnKswvpMMaKueUSheslVi5HmYpx08OPLE"
)


def needs_update(hashed: str) -> bool:
    """True when ``hashed`` was made with an outdated scheme or parameters."""
    return _context.needs_update(hashed)


def dummy_verify() -> None:
    """Spend the time of one verification, so unknown users answer as slowly as known ones."""
    _context.verify("not the dummy password", DUMMY_HASH)
