"""The queue survives SIGKILL: `twistd -n mailsuite` is killed while deliveries are under way,
restarted, and every recipient ends up delivered exactly once."""

from __future__ import annotations

import json
import signal
import smtplib
import ssl
import subprocess
from pathlib import Path

from conftest import start_twistd
from queue_helpers import instance_settings
from support import PASSWORD
from support.config import merge, to_toml
from support.net import free_port
from support.sink import SinkBehaviour
from support.wait import wait_until

from mailsuite.accounts.database import SQLiteUserDatabase
from mailsuite.accounts.passwords import hash_password


class Server:
    def __init__(self, directory: Path, settings: dict) -> None:
        self.directory = directory
        self.data_dir = directory / "data"
        self.config = directory / "mailsuite.toml"
        self.config.write_text(to_toml(settings))
        self.submission_port = int(settings["submission"]["listen"][0].rsplit(":", 1)[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = start_twistd(self.config, self.data_dir, self.directory)

        def listening():
            assert self.process.poll() is None, self.process.stdout.read()
            try:
                smtplib.SMTP("127.0.0.1", self.submission_port, timeout=2).quit()
                return True
            except OSError:
                return False

        wait_until(listening, timeout=30, what="the server to listen")

    def kill(self) -> str:
        self.process.send_signal(signal.SIGKILL)
        out, _ = self.process.communicate(timeout=20)
        return out

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=20)
        return out

    def envelopes(self) -> list[dict]:
        """The queue's envelopes now; one the running server removes meanwhile is left out."""
        found = []
        for path in sorted((self.data_dir / "queue").glob("*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except FileNotFoundError:
                continue  # delivered and removed between the listing and the read
        return found


def test_killed_mid_queue_and_restarted_delivers_each_recipient_once(zone, start_sink, tmp_path):
    quick = start_sink()
    slow = start_sink(SinkBehaviour(hold_data=True))
    zone.mx("d1.test", (10, "mx.d1.test"))
    zone.a("mx.d1.test", "127.0.0.1")
    settings = merge(
        instance_settings("mx.a.test", zone.port, mx_port=quick.port),
        {
            "smtp.listen": [f"127.0.0.1:{free_port()}"],
            "submission.listen": [f"127.0.0.1:{free_port()}"],
            "transport.map": {"d2.test": f"127.0.0.1:{slow.port}"},
            "client.data_end_timeout": 60,
        },
    )
    server = Server(tmp_path, settings)
    database = SQLiteUserDatabase(server.data_dir / "mailsuite.db")
    database.add_domain("a.test")
    database.add_user("alice@a.test", hash_password(PASSWORD))
    database.close()
    server.start()
    try:
        context = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "cert.pem"))
        recipients = ["x1@d1.test", "x2@d1.test", "y1@d2.test", "y2@d2.test"]
        with smtplib.SMTP("127.0.0.1", server.submission_port, timeout=10) as client:
            client.starttls(context=context)
            client.login("alice@a.test", PASSWORD)
            for n in range(3):
                body = f"Subject: message {n}\r\n\r\nbody of message {n}\r\n".encode()
                client.sendmail("alice@a.test", recipients, body)

        def d1_done_d2_in_flight():
            states = [
                (r["address"], r["state"]) for e in server.envelopes() for r in e["recipients"]
            ]
            delivered = [a for a, s in states if s == "delivered"]
            return len(delivered) == 6 and len(slow.held) == 3

        wait_until(d1_done_d2_in_flight, what="d1.test delivered and d2.test in DATA")
        server.kill()  # while three transactions wait for the answer to their final dot
        wait_until(lambda: not slow.held, what="the dropped transactions")
        assert slow.transactions == []
        slow.behaviour.hold_data = False

        server.start()
        wait_until(lambda: len(slow.transactions) == 3, what="redelivery to d2.test")
        wait_until(lambda: not server.envelopes(), what="the queue to empty")
    finally:
        log = server.stop()

    delivered = sorted(
        (txn.data.split(b"Subject: ")[1].split(b"\r\n")[0].decode(), rcpt)
        for sink in (quick, slow)
        for txn in sink.transactions
        for rcpt in txn.recipients
    )
    assert delivered == sorted((f"message {n}", r) for n in range(3) for r in recipients), log
