"""One blocking ACME run (RFC 8555) with certbot's ``acme`` library: account, order, HTTP-01,
finalize, download. Every call here does network I/O and sleeps while polling, so it runs in a
thread (mailsuite/acme/renewal.py), never in the reactor.

A new account key is EC P-256 (ES256): small, fast, and accepted by every ACME CA; an RSA key
put there (an account moved from elsewhere) is used with RS256. The certificate
key is RSA 2048, like the generated certificate's (see mailsuite/runtime/tls.py: the long tail of
old MTAs), and a new one is made for every issue so a renewal also rotates the key.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import josepy
from acme import challenges, crypto_util, errors, messages
from acme import client as acme_client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailsuite.acme.files import ACMEFiles
from mailsuite.safeio import makedirs_durable, write_file_atomic

USER_AGENT = "mailsuite"
NETWORK_TIMEOUT = 30  # seconds per HTTP request to the CA
ORDER_TIMEOUT = datetime.timedelta(seconds=120)  # validation + finalization, all names


class ValidationFailed(Exception):
    """The CA could not validate some names (their HTTP-01 challenge failed)."""

    def __init__(self, names: list[str], detail: str) -> None:
        super().__init__(f"validation failed for {', '.join(names)}: {detail}")
        self.names = names


@dataclass(frozen=True)
class Issued:
    fullchain_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ACMEAccount:
    """Where the CA is and who we are to it."""

    directory_url: str
    email: str  # "" for no contact address
    ca_file: Path | None  # trust for the CA's own HTTPS (None: the system's)


def issue(account: ACMEAccount, files: ACMEFiles, names: list[str]) -> Issued:
    """Get a certificate for ``names``. Raises ValidationFailed naming the names that failed,
    or acme's / requests' errors for anything else (the CA unreachable, a refused order)."""
    key, algorithm = _account_key(files.account_key)
    client = _client(account, key, algorithm)
    _register(client, account.email)
    cert_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = cert_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    order = client.new_order(crypto_util.make_csr(key_pem, names))
    tokens: list[str] = []
    try:
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # the CA remembers an earlier validation of this name
            challenge = _http01(authorization)
            response, validation = challenge.response_and_validation(key)
            token = challenge.chall.encode("token")
            files.write_challenge(token, validation)
            tokens.append(token)
            client.answer_challenge(challenge, response)
        deadline = datetime.datetime.now() + ORDER_TIMEOUT
        try:
            order = client.poll_and_finalize(order, deadline)
        except errors.ValidationError as exc:
            failed = [a.body.identifier.value for a in exc.failed_authzrs]
            raise ValidationFailed(failed, str(exc)) from None
    finally:
        for token in tokens:
            files.remove_challenge(token)
    return Issued(order.fullchain_pem.encode("ascii"), key_pem)


def _client(
    account: ACMEAccount, key: josepy.JWK, algorithm: josepy.JWASignature
) -> acme_client.ClientV2:
    verify: bool | str = str(account.ca_file) if account.ca_file is not None else True
    network = acme_client.ClientNetwork(
        key, alg=algorithm, verify_ssl=verify, user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT
    )
    directory = acme_client.ClientV2.get_directory(account.directory_url, network)
    return acme_client.ClientV2(directory, network)


def _register(client: acme_client.ClientV2, email: str) -> None:
    """Create the account, or find it: newAccount with a known key answers with its URL
    (RFC 8555 §7.3.1), which the library reports as a conflict."""
    registration = messages.NewRegistration.from_data(
        email=email or None, terms_of_service_agreed=True
    )
    try:
        client.new_account(registration)
    except errors.ConflictError as exc:
        client.net.account = messages.RegistrationResource(
            uri=exc.location, body=messages.Registration()
        )


def _http01(authorization: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    name = authorization.body.identifier.value
    raise ValidationFailed([name], "the CA offers no http-01 challenge")


def _account_key(path: Path) -> tuple[josepy.JWK, josepy.JWASignature]:
    """The account key and its JWS algorithm; an EC P-256 key is made on first use (0600)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        makedirs_durable(path.parent)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_file_atomic(path, pem, mode=0o600)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return josepy.JWKEC(key=key), josepy.ES256
    if isinstance(key, rsa.RSAPrivateKey):
        return josepy.JWKRSA(key=key), josepy.RS256
    raise ValueError(f"{path} is neither an EC P-256 nor an RSA account key")
