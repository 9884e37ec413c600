"""Thunderbird autoconfig: ``/mail/config-v1.1.xml`` (asked at ``autoconfig.D``) and
``/.well-known/autoconfig/mail/config-v1.1.xml`` (asked at ``D``), over http and https.

Thunderbird appends ``?emailaddress=user@D``; other clients (Thunderbird for Android, Geary)
send nothing, so the domain is taken from the query when it names one, else from the Host
header (``autoconfig.D`` or ``D``). The answer is the same for every address of a local domain,
existing or not; any other domain gets a 404. The XML lists every enabled incoming server
(IMAP before POP3, implicit TLS before STARTTLS: Thunderbird uses the first and offers the
others as alternatives) and both submission servers, all at ``public_hostname`` with the whole
address as user name. The Content-Type must start with text/xml or Thunderbird drops it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from mailsuite.config import Config
from mailsuite.web.domains import LocalDomains, domain_of_address, normalized, request_host
from mailsuite.web.mailservers import ListeningPort, MailServer, offered_servers
from mailsuite.web.reply import NOT_FOUND, XML, Reply, xml_document

PATHS = (b"/mail/config-v1.1.xml", b"/.well-known/autoconfig/mail/config-v1.1.xml")


def config_xml(domain: str, servers: list[MailServer]) -> bytes:
    """The clientConfig 1.1 document for ``domain``."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    ET.SubElement(provider, "domain").text = domain
    ET.SubElement(provider, "displayName").text = domain
    ET.SubElement(provider, "displayShortName").text = domain
    for server in sorted(servers, key=lambda s: not s.incoming):  # incoming first (stable)
        kind = "incomingServer" if server.incoming else "outgoingServer"
        element = ET.SubElement(provider, kind, type=server.protocol)
        ET.SubElement(element, "hostname").text = server.hostname
        ET.SubElement(element, "port").text = str(server.port)
        ET.SubElement(element, "socketType").text = server.socket_type
        ET.SubElement(element, "username").text = "%EMAILADDRESS%"
        ET.SubElement(element, "authentication").text = "password-cleartext"
    return xml_document(root)


def requested_domains(request: Request) -> list[str | None]:
    """Candidate domains, best first: the query's address, else the Host header's name with
    and without ``autoconfig.``."""
    for value in reversed(request.args.get(b"emailaddress", [])):
        domain = domain_of_address(value.decode("utf-8", "replace"))
        if domain is not None:
            return [domain]
    host = request_host(request)
    if host is not None and host.startswith("autoconfig."):
        return [normalized(host[len("autoconfig.") :]), host]
    return [host]


class Autoconfig:
    def __init__(
        self, config: Config, domains: LocalDomains, listening_port: ListeningPort | None = None
    ) -> None:
        self.config = config
        self.domains = domains
        self.listening_port = listening_port

    def get(self, request: Request) -> Reply | Deferred[Reply]:
        servers = offered_servers(self.config, self.listening_port)
        if not any(server.incoming for server in servers):
            return NOT_FOUND  # nothing a client could read mail with
        found = self.domains.first_local(requested_domains(request))
        return found.addCallback(self._answer, servers)

    @staticmethod
    def _answer(domain: str | None, servers: list[MailServer]) -> Reply:
        if domain is None:
            return NOT_FOUND
        return Reply(200, config_xml(domain, servers), XML)
