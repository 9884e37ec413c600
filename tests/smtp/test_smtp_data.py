"""DATA over raw sockets: smuggling, dot-stuffing, long lines, big messages; TLS versions.
(Pipelining and STARTTLS injection are transcripts: tests/scenarios/smtp.)"""

import socket
import ssl

import pytest
from support.wire import RawClient


@pytest.fixture
def raw(suite):
    clients = []

    def connect(role="smtp"):
        client = RawClient.connect(suite, role)
        assert client.reply()[0] == 220
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


SMUGGLED = (
    b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
    b"Subject: forged\r\n\r\nforged\r\n"
)


@pytest.mark.parametrize("marker", [b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r.\r"])
def test_smuggling_variants_make_one_message(suite, raw, marker):
    client = raw()
    client.send(
        b"EHLO client.test\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
    )
    assert client.replies(4) == [250, 250, 250, 354]
    client.send(b"Subject: real\r\n\r\nreal" + marker + SMUGGLED + b".\r\n")
    assert client.reply()[0] == 250
    client.send(b"QUIT\r\n")
    assert client.reply()[0] == 221
    [stored] = suite.messages("bob@example.com")
    assert b"Subject: real" in stored and b"forged" in stored
    # Stored with CRLF only: no bare CR or LF survives into the Maildir.
    assert stored.count(b"\r") == stored.count(b"\n") == stored.count(b"\r\n")


def test_dot_stuffing_round_trips_byte_exact(suite):
    body = (
        b"Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\n \r\n.\tx\r\nend.\r\n.."
        b"\r\n\xc3\xa9 8bit\r\n"
    )
    import smtplib

    with smtplib.SMTP("127.0.0.1", suite.port("smtp")) as client:
        client.sendmail("x@remote.example", ["alice@example.com"], body, ["BODY=8BITMIME"])
    [stored] = suite.messages("alice@example.com")
    assert stored.endswith(body)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.0/1.1 on purpose
def test_tls_1_1_refused(suite):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with socket.create_connection(("127.0.0.1", suite.port("submissions")), timeout=10) as sock:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            context.wrap_socket(sock).recv(10)


def test_large_message_streams_through_spool(suite):
    import smtplib

    line = b"z" * 76 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * 8000  # ~624 KB, above the in-memory threshold
    with smtplib.SMTP("127.0.0.1", suite.port("smtp")) as client:
        client.sendmail("x@remote.example", ["alice@example.com", "bob@example.com"], body)
    [a] = suite.messages("alice@example.com")
    [b] = suite.messages("bob@example.com")
    assert a == b and a.endswith(body)
    assert list(suite.config.spool_dir.glob("*.incoming")) == []


def test_long_data_line_stays_in_the_body(suite, raw):
    """twisted.mail.smtp answered 500 to a >16 KiB DATA line and ran the rest as commands."""
    client = raw()
    client.send(
        b"EHLO c\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
    )
    assert client.replies(4) == [250, 250, 250, 354]
    long_line = b"A" * 70_000 + b"\r\n"
    client.send(b"Subject: long\r\n\r\n" + long_line + SMUGGLED + b".\r\n")
    assert client.reply()[0] == 250
    client.send(b"QUIT\r\n")
    assert client.reply()[0] == 221
    assert suite.messages("bob@example.com") == []
    [stored] = suite.messages("alice@example.com")
    assert long_line + SMUGGLED in stored
