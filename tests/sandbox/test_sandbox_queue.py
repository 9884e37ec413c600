"""Sandbox mode and the outbound queue: whatever reaches the queue anyway (entries from before
the switch, another producer) is captured by the sandbox's delivery agent, never relayed; its
simulated failures come back as the queue's ordinary DSN, captured in turn."""

from __future__ import annotations

from sandbox_clients import captured
from support.wait import wait_until

pytest_plugins = ["sandbox_fixtures"]  # sandbox


def test_a_queued_message_is_captured_not_relayed(sandbox, tmp_path):
    message = tmp_path / "queued.eml"
    message.write_bytes(b"Return-Path: <app@app.example>\r\nSubject: from the queue\r\n\r\nhi\r\n")
    offset = len(b"Return-Path: <app@app.example>\r\n")
    queue = sandbox.service.queue
    recipients = ["ok@remote.example", "reject-1@remote.example", "bounce-2@remote.example"]
    queue_id = queue.enqueue_file(message, "app@app.example", recipients, {"body_offset": offset})
    sandbox.reactor.call(sandbox.service.scheduler.wake, queue_id)

    def settled():
        messages = captured(sandbox)
        return len(messages) == 2 and not queue.list_ids() and messages

    copy, notice = wait_until(settled, what="the capture and the notice, and an empty queue")
    assert copy.startswith(
        b"Return-Path: <app@app.example>\r\n"
        b"X-Sandbox-Envelope-From: <app@app.example>\r\n"
        b"X-Sandbox-Envelope-To: <ok@remote.example>\r\n"
        b"X-Sandbox-Envelope-To: <bounce-2@remote.example>\r\n"
        b"Subject: from the queue\r\n"
    )
    assert b"X-Sandbox-Envelope-From: <>\r\nX-Sandbox-Envelope-To: <app@app.example>" in notice
    assert b"Final-Recipient: rfc822; reject-1@remote.example" in notice
    assert b"Final-Recipient: rfc822; bounce-2@remote.example" in notice
    assert b"Final-Recipient: rfc822; ok@remote.example" not in notice
