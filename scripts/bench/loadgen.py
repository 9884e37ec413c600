"""The load generator: an asyncio SMTP client that talks strictly lock-step.

Each session sends EHLO (and, for submission, STARTTLS, EHLO, AUTH PLAIN), then up to
``per_session`` messages as MAIL / RCPT / DATA / body, waiting for every reply before the next
command (no PIPELINING: every peer gets the same round trips), then QUIT. ``concurrency``
sessions run at once until ``total`` messages were attempted or the deadline passed. Each message
carries a unique ``X-Bench-Token`` header so the caller can check which accepted messages really
reached the recipient's Maildir.

Run as a script it takes one JSON object (LoadSpec fields) as argv[1] and prints a JSON result,
so the load runs in its own process and its CPU use is measured separately from the servers'.
"""

from __future__ import annotations

import asyncio
import base64
import json
import resource
import ssl
import sys
import time
from dataclasses import asdict, dataclass, field

FILLER_LINE = b"The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\r\n"


@dataclass
class LoadSpec:
    port: int
    total: int
    concurrency: int
    size: int  # approximate message size in bytes (headers + body)
    recipient: str
    sender: str
    token_prefix: str
    host: str = "127.0.0.1"
    per_session: int = 10
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    reply_timeout: float = 60.0
    deadline: float = 600.0  # seconds for the whole load


@dataclass
class LoadResult:
    accepted: list[str] = field(default_factory=list)  # tokens of messages that got 250
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the report
    sessions: int = 0
    elapsed: float = 0.0
    client_cpu: float = 0.0

    def error(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text)


class SMTPError(Exception):
    pass


def message_bytes(spec: LoadSpec, token: str, filler: bytes) -> bytes:
    headers = (
        f"X-Bench-Token: {token}\r\n"
        f"From: <{spec.sender}>\r\n"
        f"To: <{spec.recipient}>\r\n"
        f"Subject: bench {token}\r\n"
        f"Message-ID: <{token}@bench.example>\r\n"
        "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
        "\r\n"
    ).encode()
    return headers + filler + b".\r\n"


def make_filler(size: int) -> bytes:
    """Body lines to bring a message to about ``size`` bytes (none start with a dot)."""
    lines = max(1, (size - 200) // len(FILLER_LINE))
    return FILLER_LINE * lines


class Session:
    def __init__(self, spec: LoadSpec, reader, writer) -> None:
        self.spec = spec
        self.reader = reader
        self.writer = writer

    async def reply(self) -> tuple[int, bytes]:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), self.spec.reply_timeout)
            if not line:
                raise SMTPError("connection closed by server")
            lines.append(line)
            if line[3:4] != b"-":
                break
        try:
            return int(lines[-1][:3]), b"".join(lines)
        except ValueError:
            raise SMTPError(f"bad reply {lines[-1][:80]!r}") from None

    async def command(self, line: bytes, expect: int) -> bytes:
        self.writer.write(line)
        code, text = await self.reply()
        if code != expect:
            raise SMTPError(f"{line[:40]!r} -> {text[:120]!r}")
        return text

    async def open(self) -> None:
        code, text = await self.reply()
        if code != 220:
            raise SMTPError(f"greeting {text[:120]!r}")
        await self.command(b"EHLO loadgen.bench.example\r\n", 250)
        if self.spec.starttls:
            await self.command(b"STARTTLS\r\n", 220)
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            await self.writer.start_tls(context)
            await self.command(b"EHLO loadgen.bench.example\r\n", 250)
        if self.spec.username is not None:
            secret = f"\0{self.spec.username}\0{self.spec.password}".encode()
            await self.command(b"AUTH PLAIN " + base64.b64encode(secret) + b"\r\n", 235)

    async def send(self, message: bytes) -> None:
        await self.command(f"MAIL FROM:<{self.spec.sender}>\r\n".encode(), 250)
        await self.command(f"RCPT TO:<{self.spec.recipient}>\r\n".encode(), 250)
        await self.command(b"DATA\r\n", 354)
        await self.command(message, 250)

    async def close(self) -> None:
        try:
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.reply(), 5)
        except (TimeoutError, OSError, SMTPError):
            pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (TimeoutError, OSError, ssl.SSLError):
            pass


async def run_load(spec: LoadSpec) -> LoadResult:
    """Send ``spec.total`` messages; returns what was accepted (never raises for SMTP errors)."""
    result = LoadResult()
    filler = make_filler(spec.size)
    next_index = 0

    def take() -> list[int]:
        nonlocal next_index
        count = min(spec.per_session, spec.total - next_index)
        batch = list(range(next_index, next_index + count))
        next_index += count
        return batch

    async def worker() -> None:
        while batch := take():
            result.sessions += 1
            session = None
            done = 0
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(spec.host, spec.port), spec.reply_timeout
                )
                session = Session(spec, reader, writer)
                await session.open()
                for index in batch:
                    token = f"{spec.token_prefix}-{index:07d}"
                    await session.send(message_bytes(spec, token, filler))
                    result.accepted.append(token)
                    done += 1
            except (TimeoutError, OSError, SMTPError, ssl.SSLError) as exc:
                result.failed += len(batch) - done
                result.error(f"{type(exc).__name__}: {exc}")
            finally:
                if session is not None:
                    await session.close()

    started = time.monotonic()
    tasks = [asyncio.ensure_future(worker()) for _ in range(spec.concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=spec.deadline)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        result.error(f"deadline of {spec.deadline:.0f} s reached")
        result.failed = spec.total - len(result.accepted)
    result.elapsed = time.monotonic() - started
    return result


def main() -> None:
    spec = LoadSpec(**json.loads(sys.argv[1]))
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(run_load(spec))
    after = resource.getrusage(resource.RUSAGE_SELF)
    # Only the load itself, not the interpreter's start-up.
    result.client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
