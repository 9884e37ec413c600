"""The composition root: ``prepare`` does the start-up I/O, ``MailSuite`` only wires objects."""

from __future__ import annotations

from mailsuite.config import load_config
from mailsuite.imap.server import IMAPLimits
from mailsuite.pop3.server import MIN_IDLE_TIMEOUT, POP3Limits
from mailsuite.service import MailSuite, prepare
from mailsuite.smtp.server import Limits


def test_building_the_service_touches_no_disk(tmp_path):
    foundations = prepare(load_config(None, tmp_path / "prepared"))
    assert (tmp_path / "prepared" / "tls" / "cert.pem").is_file()
    assert (tmp_path / "prepared" / "mailsuite.db").is_file()
    service = MailSuite(load_config(None, tmp_path / "elsewhere"), foundations)
    assert service.database is foundations.database
    assert not (tmp_path / "elsewhere").exists()


def test_each_protocol_takes_its_limits_from_the_config_one_way(tmp_path):
    config_file = tmp_path / "mailsuite.toml"
    config_file.write_text(
        "[limits]\ncommand_line = 1000\nbad_commands = 7\nidle_timeout = 42\n"
        "message_size = 12345\nrecipients = 9\n"
        "[imap]\ncommand_line = 8000\nidle_timeout = 900\nmax_connections_per_user = 4\n"
    )
    config = load_config(config_file, tmp_path / "data")
    smtp, imap, pop3 = (
        Limits.from_config(config),
        IMAPLimits.from_config(config),
        POP3Limits.from_config(config),
    )
    assert (smtp.max_line, smtp.max_bad_commands, smtp.idle_timeout) == (1000, 7, 42)
    assert (smtp.max_message_size, smtp.max_recipients) == (12345, 9)
    assert (imap.max_line, imap.max_bad_commands, imap.idle_timeout) == (8000, 7, 900)
    assert (imap.max_literal, imap.max_connections_per_user) == (12345, 4)
    # RFC 1939 §3: a POP3 autologout timer is at least ten minutes.
    assert (pop3.max_line, pop3.idle_timeout) == (1000, MIN_IDLE_TIMEOUT)
