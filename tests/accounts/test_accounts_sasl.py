"""The one set of SASL response rules SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH share."""

from __future__ import annotations

import base64

import pytest

from mailsuite.accounts.sasl import SASLCancelled, SASLError, decode_plain, decode_response


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_plain_gives_user_and_password():
    assert decode_plain(b64(b"\0alice@example.com\0pw")) == (b"alice@example.com", b"pw")
    assert decode_plain(b64(b"alice\0alice\0pw")) == (b"alice", b"pw")  # authzid = authcid


@pytest.mark.parametrize(
    "raw",
    [b64(b"bob\0alice\0pw"), b64(b"alice\0pw"), b64(b"a\0b\0c\0d"), b"=", b"not base64!"],
)
def test_plain_refuses_other_identities_and_malformed_answers(raw):
    with pytest.raises(SASLError) as caught:
        decode_plain(raw)
    assert not isinstance(caught.value, SASLCancelled)


def test_star_cancels_and_equals_is_empty():
    with pytest.raises(SASLCancelled):
        decode_response(b"*")
    assert decode_response(b"=") == b""
    assert decode_response(b64(b"user") + b"\r") == b"user"
