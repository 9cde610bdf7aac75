"""TLS for the web UI and the API (and, as defence in depth, for peer traffic that is already end to end encrypted).

An operator either gives a certificate from its own CA (`tls_cert`, `tls_key` in `seajust.toml`) or lets
`seajust init --tls` make a self-signed one, whose SHA-256 fingerprint is printed so officers can check
what their browser shows the first time. The private key is kept encrypted with the node's passphrase
(PKCS#8, the passphrase-derived key of the `cryptography` library), like every other key of the node.

Peers reaching a node whose certificate no public CA signed cannot verify it. `peer_tls = "encrypt-only"`
makes this node accept any certificate from peers: the link is still encrypted against observers, and
every sync message, attachment request and relay request is signed and sealed end to end anyway, so an
interposed server learns and changes nothing. The default, "verify", checks peers' certificates.
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node.errors import ConfigError

CERT_NAME: Final = "tls/cert.pem"
KEY_NAME: Final = "tls/key.pem"
VALID_DAYS: Final = 825  # the longest browsers accept for a server certificate


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate, as browsers show it: AA:BB:..."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    digest = cert.fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def make_self_signed(home: Path, *, hosts: list[str], name: str, passphrase: str) -> str:
    """Write HOME/tls/cert.pem and the passphrase-encrypted HOME/tls/key.pem; return the fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "SEAJust node")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = home / "tls"
    folder.mkdir(mode=0o700, exist_ok=True)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    key_path = folder / "key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
        )
    )
    return fingerprint(cert_pem)


def _resolve(home: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else home / path


def server_context(home: Path, cert: str, key: str, passphrase: str) -> ssl.SSLContext:
    """The context the node serves with; a clear `ConfigError` for a missing or mismatched pair."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(_resolve(home, cert), _resolve(home, key), password=passphrase)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS certificate or key not found: {exc.filename}") from None
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"TLS certificate and key cannot be used together: {exc}") from None
    return context


def cert_fingerprint(home: Path, cert: str) -> str:
    return fingerprint(_resolve(home, cert).read_bytes())


def client_ssl(peer_tls: str) -> bool:
    """What aiohttp's client gets as `ssl=`: True verifies peers' certificates, False only encrypts."""
    return peer_tls != "encrypt-only"


def client_session(peer_tls: str) -> aiohttp.ClientSession:
    """The HTTP client for talking to peers and relays, with this node's certificate policy for them."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(peer_tls)))


def hosts_for(url: str, listen_host: str) -> list[str]:
    """The names a self-signed certificate should carry: the URL's host, the listen address, and loopback."""
    from urllib.parse import urlsplit

    hosts = [h for h in (urlsplit(url).hostname, listen_host) if h and h not in ("0.0.0.0", "::")]
    return [*hosts, "localhost", "127.0.0.1"]
