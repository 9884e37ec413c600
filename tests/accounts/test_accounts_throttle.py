"""Authentication failures slow down the guessing address only."""

import base64
import smtplib
import ssl

from mailsuite.accounts.throttle import AuthThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_doubles_per_address_and_is_capped():
    clock = FakeClock()
    throttle = AuthThrottle(1.0, 5.0, clock)
    assert [throttle.failure_delay("10.0.0.1") for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert throttle.failure_delay("10.0.0.2") == 1.0  # another client starts afresh
    clock.now += AuthThrottle.FORGET_AFTER + 1
    assert throttle.failure_delay("10.0.0.1") == 1.0  # old failures are forgotten
    throttle.failure_delay("10.0.0.2")
    throttle.success("10.0.0.2")
    assert throttle.failure_delay("10.0.0.2") == 1.0


def test_a_delayed_failure_does_not_stall_other_clients(make_suite):
    running = make_suite({"auth.failure_delay": 3.0, "auth.max_delay": 3.0})
    running.add_user("alice@example.com")
    guesser = smtplib.SMTP("127.0.0.1", running.port("submission"), timeout=10)
    guesser.starttls(context=running.tls_context())
    guesser.ehlo()
    credentials = base64.b64encode(b"\0alice@example.com\0wrong").decode()
    guesser.send(f"AUTH PLAIN {credentials}\r\n".encode())
    # While the guesser waits for its 535, a second client logs in and delivers a message.
    with running.submission("alice@example.com") as client:
        client.sendmail("alice@example.com", ["alice@example.com"], b"Subject: x\r\n\r\ny\r\n")
    assert len(running.messages("alice@example.com")) == 1
    guesser.sock.setblocking(False)
    try:
        pending = guesser.sock.recv(100)
    except ssl.SSLWantReadError:
        pending = b""
    assert pending == b""  # the guesser's answer is still held back
    guesser.sock.setblocking(True)
    code, text = guesser.getreply()
    assert (code, text[:5]) == (535, b"5.7.8")
    guesser.close()
