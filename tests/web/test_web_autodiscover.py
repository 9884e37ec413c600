"""Autodiscover (Outlook POX) from a running server: the answer Thunderbird and Outlook read,
and questions it refuses (too big, not XML, entity definitions, wrong schema)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from web_fixtures import PUBLIC_PORTS
from webclient import curl, fetch, raw

pytest_plugins = ["web_fixtures"]  # web

PATH = "/autodiscover/autodiscover.xml"
NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
HOST = "autodiscover.example.com"
STANDARD_PORTS = {
    "imaps": 993,
    "imap": 143,
    "pop3s": 995,
    "pop3": 110,
    "submissions": 465,
    "submission": 587,
}


def question(address: str, schema: str = NS[1:-1]) -> bytes:
    """What Thunderbird posts (ExchangeAutoDiscover.sys.mjs)."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
    <Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
      <Request>
        <EMailAddress>{address}</EMailAddress>
        <AcceptableResponseSchema>{schema}</AcceptableResponseSchema>
      </Request>
    </Autodiscover>""".encode()


def ask(web, body: bytes, path: str = PATH, host: str = HOST):
    return fetch(
        web.port("http"),
        path,
        host,
        method="POST",
        body=body,
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )


def protocols(body: bytes) -> list[dict[str, str]]:
    account = ET.fromstring(body).find(f"{NS}Response/{NS}Account")
    assert account.findtext(f"{NS}AccountType") == "email"
    assert account.findtext(f"{NS}Action") == "settings"
    return [
        {child.tag.removeprefix(NS): child.text for child in protocol}
        for protocol in account.findall(f"{NS}Protocol")
    ]


def thunderbird_reads(entry: dict[str, str]) -> tuple[str, int, str]:
    """(type, port, socket type) as Thunderbird's readAutoDiscoverXML derives them."""
    port = int(entry["Port"])
    if entry.get("SSL", "").lower() == "off" or entry.get("Encryption", "").lower() == "none":
        socket_type = "plain"
    elif port in (143, 110, 25, 587):
        socket_type = "STARTTLS"
    else:
        socket_type = "SSL"
    return entry["Type"], port, socket_type


@pytest.mark.parametrize("path", [PATH, "/Autodiscover/Autodiscover.xml"])
def test_implicit_tls_servers_in_the_answer(web, path):
    answer = ask(web, question("alice@example.com"), path)
    assert answer.status == 200
    assert answer.content_type == "text/xml; charset=utf-8"
    entries = protocols(answer.body)
    # The STARTTLS listeners are on non-standard ports (1143, 1110, 1587), which Thunderbird
    # would read as implicit TLS: only the implicit-TLS listeners are described.
    assert [thunderbird_reads(e) for e in entries] == [
        ("IMAP", PUBLIC_PORTS["imaps"], "SSL"),
        ("POP3", PUBLIC_PORTS["pop3s"], "SSL"),
        ("SMTP", PUBLIC_PORTS["submissions"], "SSL"),
    ]
    for entry in entries:
        assert entry["SSL"] == "on" and entry["Encryption"] == "TLS"
        assert entry["Server"] == web.config.public_hostname
        assert entry["LoginName"] == "alice@example.com"
        assert entry["SPA"] == "off" and entry["AuthRequired"] == "on"
    assert b">off</SSL>" not in answer.body and b"None" not in answer.body


def test_standard_ports_include_starttls_after_implicit_tls(make_suite):
    web = make_suite({"public.ports": STANDARD_PORTS})
    web.db.add_domain("example.com")
    answer = ask(web, question("alice@example.com"))
    assert answer.status == 200
    entries = protocols(answer.body)
    assert [thunderbird_reads(e) for e in entries] == [
        ("IMAP", 993, "SSL"),
        ("IMAP", 143, "STARTTLS"),
        ("POP3", 995, "SSL"),
        ("POP3", 110, "STARTTLS"),
        ("SMTP", 465, "SSL"),
        ("SMTP", 587, "STARTTLS"),
    ]
    for entry in entries:
        assert entry["SSL"] == "on"
        assert ("Encryption" in entry) == (entry["Port"] in ("993", "995", "465"))


def test_same_answer_for_any_user_of_the_domain(web):
    web.add_user("alice@example.com")  # exists; nobody@ does not
    known = ask(web, question("alice@example.com"))
    unknown = ask(web, question("nobody@example.com"), host="example.com")
    assert known.status == unknown.status == 200
    assert unknown.body == known.body.replace(b"alice@example.com", b"nobody@example.com")


def test_unknown_domain_is_404(web):
    for address in ("alice@example.org", "alice@sub.example.com", "alice@[127.0.0.1]"):
        answer = ask(web, question(address))
        assert answer.status in (400, 404), address
        assert b"Protocol" not in answer.body


MALFORMED = [
    b"",
    b"not xml at all",
    b"<Autodiscover><Request></Request></Autodiscover>",  # no address
    question("no-at-sign"),
    question("alice@example.com")[:-20],  # cut short
    b"<a>" * 100 + b"alice@example.com" + b"</a>" * 100,  # deep nesting
]


def test_malformed_questions_get_an_outlook_error(web):
    for body in MALFORMED:
        answer = ask(web, body)
        assert answer.status == 400, body
        root = ET.fromstring(answer.body)
        assert root.findtext(".//{*}ErrorCode") == "600"
        assert b"Traceback" not in answer.body


def test_entity_definitions_are_refused_at_once(web):
    lol = [b'<!ENTITY lol "lol">'] + [
        b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
        for i in range(1, 10)
    ]
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE Autodiscover [\n' + b"\n".join(lol) + b"\n]>\n"
        b"<Autodiscover><Request><EMailAddress>&lol9;@example.com</EMailAddress>"
        b"</Request></Autodiscover>"
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<Autodiscover><Request><EMailAddress>&x;@example.com</EMailAddress>"
        b"</Request></Autodiscover>"
    )
    utf16 = bomb.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
    for body in (bomb, external, utf16.decode().encode("utf-16")):
        answer = ask(web, body)  # urllib's 10 s timeout bounds "at once"
        assert answer.status == 400
        assert b"lol" not in answer.body and b"root:" not in answer.body
    assert ask(web, question("alice@example.com")).status == 200


def test_other_schemas_get_error_601(web):
    mobilesync = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
    answer = ask(web, question("alice@example.com", mobilesync))
    assert answer.status == 200
    assert ET.fromstring(answer.body).findtext(".//{*}ErrorCode") == "601"


def test_huge_bodies_are_refused(web):
    port = web.port("http")
    # Announced: refused from the headers, before a byte of the body is sent.
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/xml\r\n"
        "Content-Length: 100000000\r\n\r\n"
    ).encode()
    assert raw(port, head).status == 413
    # Sent in full by a client that does not wait for an answer.
    answer = ask(web, question("alice@example.com") + b" " * 200_000)
    assert answer.status == 413
    # Chunked: counted as it arrives.
    chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
    chunked = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + chunk * 8
        + b"0\r\n\r\n"
    )
    assert raw(port, chunked).status == 413
    assert ask(web, question("alice@example.com")).status == 200


def test_chunked_question_within_the_limit(web):
    body = question("alice@example.com")
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    answer = raw(web.port("http"), request)
    assert answer.status == 200 and len(protocols(answer.body)) == 3


def test_get_is_not_allowed(web):
    answer = fetch(web.port("http"), PATH, HOST)
    assert answer.status == 405
    assert answer.headers["allow"] == "POST"


def test_curl_posts_the_question(web):
    port = web.port("http")
    code, out = curl(
        "--resolve",
        f"{HOST}:{port}:127.0.0.1",
        "-H",
        "Content-Type: text/xml; charset=utf-8",
        "--data-binary",
        question("alice@example.com").decode(),
        "-w",
        "\n%{http_code}",
        f"http://{HOST}:{port}/autodiscover/autodiscover.xml",
    )
    assert code == 0
    body, _, status = out.rpartition("\n")
    assert status == "200"
    assert thunderbird_reads(protocols(body.encode())[0])[2] == "SSL"
