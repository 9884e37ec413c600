"""Sandbox mode: the "fake SMTP server" applications are tested against.

With ``[sandbox] enabled`` (or ``twistd mailsuite --sandbox``) every message any SMTP role
accepts, for any recipient at any domain, lands in one capture Maildir and nothing is queued for
delivery elsewhere; the capture is read over IMAP/POP3 with the fixed sandbox login and over the
HTTP API (mailsuite/web/sandbox_api.py). One module per job:

settings.py   where the capture mailbox is, and the --sandbox switch
outcomes.py   simulated outcomes chosen by the recipient's local part (bounce-, defer-, reject-)
envelope.py   the X-Sandbox-Envelope-* header fields that keep the envelope (BCC too)
capture.py    the capture Maildir's read side: list, read, delete (blocking: run in threads)
describe.py   a captured message as JSON (the stdlib email package)
intake.py     durable delivery into the capture of what the sandbox makes or takes itself
bounces.py    the DSN (RFC 3464) a bounce- recipient produces, delivered into the capture
login.py      the cred checker and realm: the sandbox login, or any login for submission
smtp.py       what the SMTP server asks in sandbox mode (its hooks are marked "sandbox")
relay.py      the queue's delivery agent in sandbox mode: whatever reaches the queue is captured
wiring.py     builds the above for mailsuite/service.py
"""
