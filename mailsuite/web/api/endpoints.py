"""The send API's routes: ``POST /api/v1/messages`` and ``GET /api/v1/messages/<id>``.

Each handler is a coroutine that returns a Reply or raises APIError; ``_answer`` turns both,
and any unexpected failure (logged, answered 500 without details), into JSON. The request
body was read whole by twisted.web before the handler runs, capped by the BodyAllowance given
here: a message of ``limits.message_size`` as base64 in JSON, for requests that carry a
well-formed key (others keep the listener's 64 KiB). The body (tens of MB at most) is copied,
parsed and built into a message in worker threads, never on the reactor.
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import UTC, datetime
from io import SEEK_END, BytesIO
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request

from mailsuite.queue.spool import QueueSpool
from mailsuite.web.api.compose import draft_from_json
from mailsuite.web.api.errors import APIError, error_body, error_reply, json_reply, refusal
from mailsuite.web.api.keys import KeyChecker, has_key
from mailsuite.web.api.rawmessage import draft_from_raw
from mailsuite.web.api.records import SentRecords, is_message_id
from mailsuite.web.api.status import delivery_status
from mailsuite.web.api.submit import Accepted, Caller, Submitter
from mailsuite.web.limits import BodyAllowance
from mailsuite.web.reply import Reply
from mailsuite.web.router import Router

PATH = b"/api/v1/messages"
PREFIX = PATH + b"/"
UPLOAD_SECONDS = 600.0  # to send a request body of the largest allowed size
JSON_OVERHEAD = 1024 * 1024  # beyond the base64 of a largest message: fields, escapes

log = Logger(namespace="mailsuite.api")


def _media_type(request: Request) -> str:
    raw = request.getHeader(b"content-type") or b""
    return raw.split(b";", 1)[0].strip().lower().decode("latin-1")


class SendAPI:
    """The API over the server's parts: the key check, the submitter, the records, the queue."""

    def __init__(
        self,
        keys: KeyChecker,
        submitter: Submitter,
        records: SentRecords,
        queue: QueueSpool,
    ) -> None:
        self.keys = keys
        self.submitter = submitter
        self.records = records
        self.queue = queue
        max_body = submitter.max_size * 4 // 3 + JSON_OVERHEAD
        self.allowance = BodyAllowance(max_body, UPLOAD_SECONDS, refusal, admits=has_key)

    def routes(self, router: Router) -> None:
        router.route(PATH, {b"POST": self.post})
        router.route_prefix(PREFIX, {b"GET": self.get})
        router.allow_bodies(PATH, self.allowance)

    # --- the edge: coroutine -> Reply -----------------------------------------------------

    def post(self, request: Request) -> Deferred[Reply]:
        return self._answer(request, self._post(request))

    def get(self, request: Request) -> Deferred[Reply]:
        return self._answer(request, self._get(request))

    @staticmethod
    def _answer(request: Request, work: Coroutine[Any, Any, Reply]) -> Deferred[Reply]:
        def failed(failure: Failure) -> Reply:
            if failure.check(APIError):
                return error_reply(failure.value)
            log.failure(
                "API {method} {path} failed", failure, method=request.method, path=request.path
            )
            return json_reply(500, error_body("internal_error", "internal error"))

        return Deferred.fromCoroutine(work).addErrback(failed)

    # --- the handlers ---------------------------------------------------------------------

    async def _post(self, request: Request) -> Reply:
        key = await self.keys.check(request.requestHeaders)
        content = request.content if request.content is not None else BytesIO()
        media_type = _media_type(request)
        if media_type == "application/json" or media_type.endswith("+json"):
            draft = await threads.deferToThread(lambda: draft_from_json(content.getvalue()))
        elif media_type == "message/rfc822":
            if content.seek(0, SEEK_END) > self.submitter.max_size:
                raise APIError(
                    413,
                    "message_too_large",
                    f"the message is larger than {self.submitter.max_size} bytes",
                )
            query = dict(request.args)
            draft = await threads.deferToThread(lambda: draft_from_raw(content.getvalue(), query))
        else:
            raise APIError(
                415,
                "unsupported_media_type",
                "send Content-Type: application/json or message/rfc822",
            )
        caller = Caller(key.user, key.id, request.getClientAddress().host, request.isSecure())
        accepted = await self.submitter.submit(caller, draft)
        await self._remember(caller, accepted)
        location = PREFIX + accepted.id.encode()
        return json_reply(
            202,
            {
                "id": accepted.id,
                "message_id": accepted.message_id,
                "queue_id": accepted.queue_id,
                "recipients": list(accepted.recipients),
            },
            ((b"location", location),),
        )

    async def _remember(self, caller: Caller, accepted: Accepted) -> None:
        """Keep the status record; the message is sent whatever happens here."""
        record = {
            "id": accepted.id,
            "user": caller.user,
            "key": caller.key_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "message_id": accepted.message_id,
            "queue_id": accepted.queue_id,
            "recipients": list(accepted.recipients),
            "local": list(accepted.local),
            "remote": list(accepted.remote),
        }
        try:
            await threads.deferToThread(self.records.save, record)
        except Exception:
            log.failure("API message {id}: its status record was not kept", id=accepted.id)

    async def _get(self, request: Request) -> Reply:
        key = await self.keys.check(request.requestHeaders)
        ident = request.path[len(PREFIX) :].decode("latin-1")
        if not is_message_id(ident):
            raise APIError(404, "not_found", "no such message")
        record = await threads.deferToThread(self.records.load, ident)
        if record is None or record.get("user") != key.user:
            raise APIError(404, "not_found", "no such message")
        status = await threads.deferToThread(delivery_status, record, self.queue)
        return json_reply(200, status)
