"""Certificates for the simulator's TLS listeners.

At start the simulator mints a certificate authority and a server
certificate for ``localhost`` (SAN DNS ``localhost`` and IP ``127.0.0.1``),
both EC P-256, with :mod:`cryptography`. Clients trust the CA
(``Client(..., trustRoot=listening.caCertificate)``); the official SDK
verifies nothing and connects anyway.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateSet", "mintCertificates", "loadOrMintCertificates"]


@dataclass(frozen=True)
class CertificateSet:
    """PEM bytes of a CA certificate and of a server certificate with its key.

    ``caPEM`` may equal ``certificatePEM`` for a self-signed server
    certificate supplied by the user.
    """

    caPEM: bytes
    certificatePEM: bytes
    keyPEM: bytes

    def __repr__(self) -> str:  # never show the private key
        return "<CertificateSet>"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _keyPEM(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def mintCertificates(hostname: str = "localhost", days: int = 825) -> CertificateSet:
    """Mint a CA and a server certificate for *hostname* and 127.0.0.1.

    :param hostname: the DNS name in the server certificate.
    :param days: validity of both certificates.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(days=1)
    end = now + datetime.timedelta(days=days)
    caKey = ec.generate_private_key(ec.SECP256R1())
    caName = _name("ctrader-twisted simulator CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(caName)
        .issuer_name(caName)
        .public_key(caKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(caKey.public_key()), critical=False)
        .sign(caKey, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname))
        .issuer_name(caName)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()), critical=False
        )
        .sign(caKey, hashes.SHA256())
    )
    return CertificateSet(
        caPEM=ca.public_bytes(serialization.Encoding.PEM),
        certificatePEM=cert.public_bytes(serialization.Encoding.PEM),
        keyPEM=_keyPEM(key),
    )


#: File names used by :func:`loadOrMintCertificates`.
CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server.key"


def loadOrMintCertificates(directory: str | os.PathLike[str]) -> tuple[CertificateSet, bool]:
    """Load the certificates kept in *directory*, minting them the first time.

    The directory gets ``ca.pem`` (give it to clients as their trust root),
    ``server.pem`` and ``server.key`` (readable by the owner only).

    :returns: the certificates and whether they were minted now.
    """
    path = Path(directory).expanduser()
    files = [path / CA_FILE, path / CERT_FILE, path / KEY_FILE]
    if all(f.exists() for f in files):
        return CertificateSet(*(f.read_bytes() for f in files)), False
    certs = mintCertificates()
    path.mkdir(parents=True, exist_ok=True)
    (path / CA_FILE).write_bytes(certs.caPEM)
    (path / CERT_FILE).write_bytes(certs.certificatePEM)
    keyFile = path / KEY_FILE
    fd = os.open(keyFile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(certs.keyPEM)
    return certs, True
