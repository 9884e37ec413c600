"""The SMTP client (through the delivery agent) against a scriptable sink on 127.0.0.1."""

from __future__ import annotations

import pytest
from support.sink import SinkBehaviour, tls_server
from support.wait import wait_until
from twisted.internet.defer import ensureDeferred
from twisted.internet.protocol import Factory, Protocol

from mailsuite.config import ListenAddress
from mailsuite.queue.client import Timeouts
from mailsuite.queue.message import inspect_message
from mailsuite.queue.routing import DNSResolver, RoutingTable
from mailsuite.queue.transport import Attempt, DeliveryAgent, DeliveryRequest

FAST = Timeouts(connect=2, greeting=2, command=2, data_init=2, data_block=2, data_end=2)
BODY = b"Subject: test\r\n\r\n.\r\n..two dots\r\nend\r\n"


@pytest.fixture
def deliver(reactor_thread, tmp_path):
    """deliver(port, recipients, body=BODY, ...) -> {recipient: Outcome}."""

    def run(port, recipients, body=BODY, sender="a@a.test", timeouts=FAST, require_tls=False):
        message = tmp_path / "message.eml"
        message.write_bytes(body)
        routing = RoutingTable(
            transport_map={"x.test": ListenAddress("127.0.0.1", port)},
            require_tls=("x.test",) if require_tls else (),
        )
        agent = DeliveryAgent(routing, DNSResolver(), timeouts, "client.a.test")
        request = DeliveryRequest(
            sender, tuple(recipients), routing.destination("x.test"), inspect_message(message, 0)
        )
        return reactor_thread.call(lambda: ensureDeferred(agent.deliver(request, Attempt())))

    return run


def states(outcomes):
    return {address: outcome.state for address, outcome in outcomes.items()}


def test_pipelined_transaction_and_exact_body(start_sink, deliver):
    sink = start_sink()
    outcomes = deliver(sink.port, ["b@x.test", "c@x.test"])
    assert states(outcomes) == {"b@x.test": "delivered", "c@x.test": "delivered"}
    assert outcomes["b@x.test"].response == "250 2.0.0 Ok: queued"
    assert outcomes["b@x.test"].remote_ip == "127.0.0.1"
    [txn] = sink.transactions
    assert txn.data == BODY
    assert sink.batches[1][:2] == [f"MAIL FROM:<a@a.test> SIZE={len(BODY)}", "RCPT TO:<b@x.test>"]
    assert sink.batches[1][-1] == "DATA"
    wait_until(lambda: sink.batches[-1] == ["QUIT"], what="QUIT after the transaction")


def test_without_pipelining_one_command_at_a_time(start_sink, deliver):
    sink = start_sink(SinkBehaviour(extensions=["8BITMIME"]))
    assert states(deliver(sink.port, ["b@x.test", "c@x.test"])) == {
        "b@x.test": "delivered",
        "c@x.test": "delivered",
    }
    assert sink.batches[1:5] == [
        ["MAIL FROM:<a@a.test>"],
        ["RCPT TO:<b@x.test>"],
        ["RCPT TO:<c@x.test>"],
        ["DATA"],
    ]


def test_helo_fallback(start_sink, deliver):
    sink = start_sink(SinkBehaviour(ehlo=False))
    assert states(deliver(sink.port, ["b@x.test"])) == {"b@x.test": "delivered"}
    assert sink.transactions[0].helo == "client.a.test"
    outcomes = deliver(sink.port, ["b@x.test"], body="Subject: é\r\n\r\n".encode())
    assert (outcomes["b@x.test"].state, outcomes["b@x.test"].status) == ("failed", "5.6.3")


def test_per_recipient_results(start_sink, deliver):
    sink = start_sink(
        SinkBehaviour(rcpt_replies={"t@x.test": "450 4.2.1 busy", "p@x.test": "550 5.1.1 no"})
    )
    outcomes = deliver(sink.port, ["ok@x.test", "t@x.test", "p@x.test"])
    assert states(outcomes) == {
        "ok@x.test": "delivered",
        "t@x.test": "deferred",
        "p@x.test": "failed",
    }
    assert (outcomes["p@x.test"].stage, outcomes["p@x.test"].response) == (
        "RCPT TO",
        "550 5.1.1 no",
    )
    assert sink.recipients() == ["ok@x.test"]


@pytest.mark.parametrize(
    "behaviour, state, stage",
    [
        (SinkBehaviour(mail_replies=["553 5.7.1 sender refused"]), "failed", "MAIL FROM"),
        (SinkBehaviour(mail_replies=["451 4.3.0 later"]), "deferred", "MAIL FROM"),
        (SinkBehaviour(data_replies=["554 5.7.1 spam"]), "failed", "end of DATA"),
        (SinkBehaviour(data_replies=["451 4.3.0 disk full"]), "deferred", "end of DATA"),
        (SinkBehaviour(greetings=["554 5.7.1 go away"]), "failed", "greeting"),
    ],
)
def test_transaction_level_replies(start_sink, deliver, behaviour, state, stage):
    sink = start_sink(behaviour)
    outcomes = deliver(sink.port, ["b@x.test", "c@x.test"])
    assert {o.state for o in outcomes.values()} == {state}
    assert {o.stage for o in outcomes.values()} == {stage}
    assert sink.transactions == []


def test_too_many_recipients_go_in_further_transactions(start_sink, deliver):
    sink = start_sink(SinkBehaviour(max_recipients=2))
    recipients = [f"r{n}@x.test" for n in range(5)]
    assert set(states(deliver(sink.port, recipients)).values()) == {"delivered"}
    assert [t.recipients for t in sink.transactions] == [
        recipients[:2],
        recipients[2:4],
        recipients[4:],
    ]
    assert sink.connections == 1


def test_smtputf8_needed_and_offered(start_sink, deliver):
    plain = start_sink()
    outcomes = deliver(plain.port, ["josé@x.test"])
    assert outcomes["josé@x.test"].status == "5.6.7"
    utf8 = start_sink(SinkBehaviour(extensions=["PIPELINING", "8BITMIME", "SMTPUTF8"]))
    assert states(deliver(utf8.port, ["josé@x.test"])) == {"josé@x.test": "delivered"}
    assert "SMTPUTF8" in utf8.transactions[0].params


def test_large_message_streams_intact(start_sink, deliver):
    sink = start_sink()
    body = b"Subject: big\r\n\r\n" + b"".join(b".line %d\r\n" % i for i in range(100_000))
    assert states(deliver(sink.port, ["b@x.test"], body=body)) == {"b@x.test": "delivered"}
    assert sink.transactions[0].data == body


def test_silent_server_times_out(reactor_thread, deliver):
    port = reactor_thread.call(
        lambda: reactor_thread.reactor.listenTCP(
            0, Factory.forProtocol(Protocol), interface="127.0.0.1"
        )
    )
    try:
        quick = Timeouts(connect=2, greeting=0.3, command=2, data_init=2, data_block=2, data_end=2)
        outcome = deliver(port.getHost().port, ["b@x.test"], timeouts=quick)["b@x.test"]
    finally:
        reactor_thread.call(port.stopListening)
    assert (outcome.state, outcome.stage) == ("deferred", "greeting")
    assert "timeout" in outcome.response


def test_unanswered_final_dot_is_not_a_delivery(start_sink, deliver):
    sink = start_sink(SinkBehaviour(hold_data=True))
    quick = Timeouts(connect=2, greeting=2, command=2, data_init=2, data_block=2, data_end=0.3)
    outcome = deliver(sink.port, ["b@x.test"], timeouts=quick)["b@x.test"]
    assert (outcome.state, outcome.stage) == ("deferred", "end of DATA")
    assert sink.transactions == []


def test_malformed_reply_is_a_temporary_failure(reactor_thread, deliver):
    class Babbler(Protocol):
        def connectionMade(self):
            self.transport.write(b"hello, I am not an SMTP server\r\n")

    port = reactor_thread.call(
        lambda: reactor_thread.reactor.listenTCP(
            0, Factory.forProtocol(Babbler), interface="127.0.0.1"
        )
    )
    try:
        outcome = deliver(port.getHost().port, ["b@x.test"])["b@x.test"]
    finally:
        reactor_thread.call(port.stopListening)
    assert outcome.state == "deferred"
    assert "protocol error" in outcome.response


def test_opportunistic_tls_falls_back_to_plaintext_when_the_handshake_fails(start_sink, deliver):
    sink = start_sink(SinkBehaviour(broken_tls=True))
    assert states(deliver(sink.port, ["b@x.test"])) == {"b@x.test": "delivered"}
    assert sink.connections == 2
    assert sink.transactions[0].tls is False


def test_required_tls_never_falls_back(start_sink, deliver):
    sink = start_sink(SinkBehaviour(broken_tls=True))
    outcome = deliver(sink.port, ["b@x.test"], require_tls=True)["b@x.test"]
    assert outcome.state == "deferred"
    assert "TLS" in outcome.response
    assert sink.transactions == []


def test_starttls_then_ehlo_again(start_sink, deliver, tmp_path):
    options, _ = tls_server(tmp_path)
    sink = start_sink(SinkBehaviour(tls_options=options))
    outcome = deliver(sink.port, ["b@x.test"], require_tls=True)["b@x.test"]
    assert outcome.state == "delivered"
    assert outcome.tls in ("TLSv1.2", "TLSv1.3")
    assert sink.transactions[0].tls is True
    ehlos = [c for batch in sink.batches for c in batch if c.startswith("EHLO")]
    assert ehlos == ["EHLO client.a.test", "EHLO client.a.test"]


def test_plaintext_injected_after_the_starttls_reply_is_ignored(start_sink, deliver, tmp_path):
    options, _ = tls_server(tmp_path)
    sink = start_sink(SinkBehaviour(tls_options=options, inject_after_starttls="250 injected"))
    outcome = deliver(sink.port, ["b@x.test"])["b@x.test"]
    assert (outcome.state, outcome.tls is not None) == ("delivered", True)
    mail_batch = next(batch for batch in sink.batches if batch[0].startswith("MAIL"))
    assert mail_batch[-1] == "DATA"  # PIPELINING learnt from the real EHLO reply over TLS
