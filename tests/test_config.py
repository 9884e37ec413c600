"""Configuration: embedded defaults, the documented example, and errors that name the key."""

from pathlib import Path

import pytest

from mailsuite.config import SCHEMA, ConfigError, ListenAddress, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "etc" / "mailsuite.toml"


def test_defaults_need_no_file(tmp_path):
    config = load_config(None, tmp_path)
    assert config.data_dir == tmp_path.resolve()
    assert config.smtp.listen == (ListenAddress("127.0.0.1", 2525),)
    assert config.submission.listen == (ListenAddress("127.0.0.1", 2587),)
    assert config.submissions.listen == (ListenAddress("127.0.0.1", 2465),)
    assert config.imap.listen == (ListenAddress("127.0.0.1", 2143),)
    assert config.tls.cert_file is None and config.hostname


def test_example_file_documents_every_key_and_loads():
    text = EXAMPLE.read_text()
    config = load_config(EXAMPLE)
    assert config.smtp.listen[0] == ListenAddress("0.0.0.0", 25)
    assert config.smtp.listen[1] == ListenAddress("::", 25)
    for key in SCHEMA:
        section, name = key.split(".")
        assert f"[{section}]" in text and f"\n{name} = " in text, key


@pytest.mark.parametrize(
    "toml, key",
    [
        ("[server]\nbogus = 1\n", "server.bogus"),
        ("[nosuch]\nx = 1\n", "nosuch"),
        ("[limits]\nrecipients = 0\n", "limits.recipients"),
        ('[limits]\nidle_timeout = "5m"\n', "limits.idle_timeout"),
        ('[smtp]\nlisten = ["127.0.0.1"]\n', "smtp.listen"),
        ('[smtp]\nlisten = "127.0.0.1:25"\n', "smtp.listen"),
        ('[smtp]\noffer_auth = "yes"\n', "smtp.offer_auth"),
        ('[tls]\ncert_file = "/x.pem"\n', "tls.cert_file"),
        ("server = 1\n", "server"),
    ],
)
def test_errors_name_the_key(tmp_path, toml, key):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert key in str(info.value) and "\n" not in str(info.value)


def test_invalid_toml_is_reported(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
