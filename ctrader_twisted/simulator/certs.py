"""Certificates for the simulator's TLS listeners.

At start the simulator mints a certificate authority and a server
certificate for ``localhost`` (SAN DNS ``localhost`` and IP ``127.0.0.1``),
both EC P-256, with :mod:`cryptography`. Clients trust the CA
(``Client(..., trustRoot=listening.caCertificate)``); the official SDK
verifies nothing and connects anyway.

More host names can be put in the server certificate (the simulator's
``--hostname``): with ``demo.ctraderapi.com`` among them, a host-file entry
pointing that name at 127.0.0.1 and the CA trusted (``SSL_CERT_FILE``),
code written for the real demo server runs unchanged against the
simulator.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

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


def _hostnames(hostname: Union[str, Sequence[str]]) -> list[str]:
    names = [hostname] if isinstance(hostname, str) else list(hostname)
    if not names or not all(isinstance(n, str) and n and n == n.strip() and " " not in n for n in names):
        raise ValueError(f"host names must be non-empty names without spaces, got {hostname!r}")
    return list(dict.fromkeys(n.lower() for n in names))


def certificateNames(certificatePEM: bytes) -> tuple[set[str], datetime.datetime]:
    """The DNS names of a certificate's subjectAltName, and when it expires (UTC)."""
    cert = x509.load_pem_x509_certificate(certificatePEM)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        names = set()
    expires = getattr(cert, "not_valid_after_utc", None)  # cryptography 42 and later
    if expires is None:
        expires = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return names, expires


def mintCertificates(hostname: Union[str, Sequence[str]] = "localhost", days: int = 825) -> CertificateSet:
    """Mint a CA and a server certificate for *hostname* and 127.0.0.1.

    :param hostname: the DNS name in the server certificate, or several
        (the first is also its common name).
    :param days: validity of both certificates.
    :raises ValueError: an empty name, or one with spaces.
    """
    names = _hostnames(hostname)
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
        .subject_name(_name(names[0]))
        .issuer_name(caName)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [*(x509.DNSName(n) for n in names), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
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


def loadOrMintCertificates(
    directory: str | os.PathLike[str], hostnames: Sequence[str] = ("localhost",)
) -> tuple[CertificateSet, bool]:
    """Load the certificates kept in *directory*, minting them the first
    time, and again when the kept server certificate lacks one of
    *hostnames* or expires within a day (a new CA then: trust the new
    ``ca.pem``).

    The directory gets ``ca.pem`` (give it to clients as their trust root),
    ``server.pem`` and ``server.key`` (readable by the owner only); new files
    replace old ones only once all are written.

    :returns: the certificates and whether they were minted now.
    """
    wanted = _hostnames(hostnames)
    path = Path(directory).expanduser()
    files = [path / CA_FILE, path / CERT_FILE, path / KEY_FILE]
    if all(f.exists() for f in files):
        kept = CertificateSet(*(f.read_bytes() for f in files))
        try:
            names, expires = certificateNames(kept.certificatePEM)
        except ValueError:  # not a certificate: mint anew
            names, expires = set(), datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        if set(wanted) <= names and expires > soon:
            return kept, False
    certs = mintCertificates(wanted)
    path.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, Path]] = []
    try:
        for target, data in ((path / CA_FILE, certs.caPEM), (path / CERT_FILE, certs.certificatePEM),
                             (path / KEY_FILE, certs.keyPEM)):
            fd, temporary = tempfile.mkstemp(dir=path, prefix=f".{target.name}.", suffix=".part")  # mode 0600
            written.append((temporary, target))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for temporary, target in written:
            if target.name != KEY_FILE:
                os.chmod(temporary, 0o644)
            os.replace(temporary, target)
    finally:
        for temporary, _ in written:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return certs, True
