"""The HTTP send API (``/api/v1/messages`` on the http/https roles, when ``[api] enabled``).

endpoints.py   the routes: POST a message, GET its delivery status; errors as JSON
keys.py        ``Authorization: Bearer ms_...``: the caller's key (accounts/apikeys.py)
compose.py     a message from JSON fields (EmailMessage, SMTP policy)
rawmessage.py  a message sent whole (message/rfc822): envelope from query or headers, no Bcc:
mailboxes.py   addresses as clients write them, checked like SMTP envelope addresses
draft.py       what either form asks for, the one input of the send path
submit.py      the submission policy and the durable commit, as on the submission port
records.py     what is kept of each accepted message for its status
status.py      the status: local deliveries, the queue entry's recipients
errors.py      APIError and the JSON shapes of answers

``make_send_api`` builds it from the running server's parts; ``SendAPI.routes(router)`` puts it
on the Site.
"""

from __future__ import annotations

from typing import Any

from mailsuite.web.api.endpoints import SendAPI
from mailsuite.web.api.keys import KeyChecker
from mailsuite.web.api.records import SentRecords
from mailsuite.web.api.submit import Submitter

__all__ = ["SendAPI", "make_send_api"]


def make_send_api(suite: Any) -> SendAPI:
    """The API over a MailSuite's parts (its accounts, commit path, DKIM signer, queue, hub)."""
    config = suite.config
    smtp = suite.smtp_context
    authentication = smtp.authentication
    submitter = Submitter(
        config.hostname,
        config.limits.message_size,
        config.limits.recipients,
        suite.accounts,
        smtp.router,
        config.spool_dir,
        signer=authentication.signer if authentication is not None else None,
        events=suite.events,
    )
    records = SentRecords(config.data_dir / "api" / "messages")
    return SendAPI(KeyChecker(suite.database), submitter, records, suite.queue)
