"""Autodiscover (Outlook's "POX" protocol): POST ``/autodiscover/autodiscover.xml``.

Thunderbird asks it in parallel with autoconfig (https://autodiscover.D, https://D, and
http://autodiscover.D), Outlook and many phones ask only this. The question is a small XML
document naming an <EMailAddress>; the answer, for a local domain only, lists the IMAP, POP3
and SMTP servers as Account/Protocol entries of the Outlook response schema 2006a, the same
for every address of the domain (the Basic credentials Thunderbird sends are ignored: checking
them would make this an unthrottled password oracle).

How Thunderbird reads an entry: SSL=off (or Encryption=None) means plaintext; otherwise ports
143, 110, 25 and 587 mean STARTTLS and every other port implicit TLS. So implicit TLS is written
``<SSL>on</SSL><Encryption>TLS</Encryption>``, STARTTLS ``<SSL>on</SSL>`` alone, and a STARTTLS
listener on another port is left out, since Thunderbird would take it for implicit TLS. It uses
the first IMAP/POP3 entry and the first SMTP entry and offers the rest as alternatives, so the
entries come in mailservers.PREFERENCE order (implicit TLS first).

The question is parsed with expat directly: bodies are capped (limits.MAX_BODY), and a document
type declaration, which is where entity definitions (billion laughs, external entities) live, is
refused the moment it starts.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
import zlib
from xml.parsers import expat

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from mailsuite.config import Config
from mailsuite.web.domains import LocalDomains, domain_of_address
from mailsuite.web.limits import MAX_BODY
from mailsuite.web.mailservers import ListeningPort, MailServer, offered_servers
from mailsuite.web.reply import NOT_FOUND, XML, Reply, text, xml_document

PATH = b"/autodiscover/autodiscover.xml"  # served in any case (Outlook: /Autodiscover/...)
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
STARTTLS_PORTS = frozenset({143, 110, 25, 587})  # Thunderbird reads "SSL on" there as STARTTLS
PROTOCOL_TYPES = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}


class BadRequest(Exception):
    """The body is no autodiscover question this server can read."""


def parse_request(body: bytes) -> tuple[str, str | None]:
    """(EMailAddress, AcceptableResponseSchema or None) of an autodiscover question."""
    texts: dict[str, list[str]] = {}
    stack: list[str] = []

    def start(name: str, attributes: object) -> None:
        stack.append(name.rpartition(" ")[2])  # "namespace localname" -> localname
        if len(stack) > 16:
            raise BadRequest("nested too deeply")

    def end(name: str) -> None:
        stack.pop()

    def data(chunk: str) -> None:
        if stack and stack[-1] in ("EMailAddress", "AcceptableResponseSchema"):
            texts.setdefault(stack[-1], []).append(chunk)

    def doctype(*args: object) -> None:
        raise BadRequest("a document type declaration is not accepted")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise BadRequest(f"not well-formed XML: {exc}") from None
    address = "".join(texts.get("EMailAddress", [])).strip()
    if not address:
        raise BadRequest("no EMailAddress")
    schema = "".join(texts.get("AcceptableResponseSchema", [])).strip() or None
    return address, schema


def _protocol(account: ET.Element, server: MailServer, address: str) -> None:
    protocol = ET.SubElement(account, "Protocol")
    ET.SubElement(protocol, "Type").text = PROTOCOL_TYPES[server.protocol]
    ET.SubElement(protocol, "Server").text = server.hostname
    ET.SubElement(protocol, "Port").text = str(server.port)
    ET.SubElement(protocol, "DomainRequired").text = "off"
    ET.SubElement(protocol, "LoginName").text = address
    ET.SubElement(protocol, "SPA").text = "off"
    ET.SubElement(protocol, "SSL").text = "on"
    if server.implicit_tls:
        ET.SubElement(protocol, "Encryption").text = "TLS"
    ET.SubElement(protocol, "AuthRequired").text = "on"


def describable(servers: list[MailServer]) -> list[MailServer]:
    """The servers an autodiscover answer can describe without being misread."""
    return [s for s in servers if s.implicit_tls or s.port in STARTTLS_PORTS]


def settings_xml(address: str, servers: list[MailServer]) -> bytes:
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    account = ET.SubElement(response, "Account")
    ET.SubElement(account, "AccountType").text = "email"
    ET.SubElement(account, "Action").text = "settings"
    for server in servers:
        _protocol(account, server, address)
    return xml_document(root)


def error_xml(code: int, message: str, server_id: str) -> bytes:
    """An Outlook-style error answer (600: invalid request, 601: schema not offered)."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response")
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
    error = ET.SubElement(response, "Error", Time=stamp, Id=server_id)
    ET.SubElement(error, "ErrorCode").text = str(code)
    ET.SubElement(error, "Message").text = message
    ET.SubElement(error, "DebugData")
    return xml_document(root)


class Autodiscover:
    def __init__(
        self, config: Config, domains: LocalDomains, listening_port: ListeningPort | None = None
    ) -> None:
        self.config = config
        self.domains = domains
        self.listening_port = listening_port
        # Exchange puts a hash of the server's name here; so do we.
        self.server_id = str(zlib.crc32(config.public_hostname.encode("utf-8")))

    def post(self, request: Request) -> Reply | Deferred[Reply]:
        body = request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return text(413, "content too large")
        try:
            address, schema = parse_request(body)
        except BadRequest:
            return Reply(400, error_xml(600, "Invalid Request", self.server_id), XML)
        domain = domain_of_address(address)
        if domain is None:
            return Reply(400, error_xml(600, "Invalid Request", self.server_id), XML)
        if schema is not None and schema != OUTLOOK_NS:
            # e.g. ActiveSync's mobilesync schema: this server speaks IMAP, POP3 and SMTP only.
            return Reply(200, error_xml(601, "Provider is not available", self.server_id), XML)
        found = self.domains.is_local(domain)
        return found.addCallback(self._answer, address)

    def _answer(self, local: bool, address: str) -> Reply:
        servers = describable(offered_servers(self.config, self.listening_port))
        if not local or not servers:
            return NOT_FOUND
        return Reply(200, settings_xml(address, servers), XML)
