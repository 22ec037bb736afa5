"""The local certificate authority: one root per user, made on first use, and a fresh leaf per run.

This is what mkcert and Caddy do for local HTTPS. The root (ECDSA P-256, ten years, allowed to sign
leaves only: path length 0) lives in the user's data directory with its key readable by the user
alone; trusting it once (`comptoir ca install`) makes every later run trusted. Each start issues a
short-lived leaf for every name the server may be reached by, so a stolen leaf is soon worthless and
new LAN addresses or host names are always covered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from comptoir.errors import ConfigError

DATA_DIR_ENV = "COMPTOIR_DATA_DIR"
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=30)
# Leaves start an hour in the past: a client whose clock is a little behind still accepts them.
CLOCK_SKEW = dt.timedelta(hours=1)


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user data folder: $COMPTOIR_DATA_DIR, else under $XDG_DATA_HOME or ~/.local/share."""
    env = os.environ if env is None else env
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "comptoir"


def write_secret(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (mode 0600), atomically replacing any previous one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    # The mode is given at creation so the key is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _owner_label() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        # No passwd entry (some containers): the uid still tells users apart.
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class LocalCA:
    """The root certificate and key of the local CA, and where the certificate file is."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path

    @property
    def name(self) -> str:
        """The CA's common name, e.g. `comptoir local CA alice@laptop`."""
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else "comptoir local CA"

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the certificate, as colon-separated hex pairs."""
        digest = self.cert.fingerprint(hashes.SHA256()).hex().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    def cert_pem(self) -> bytes:
        """The root certificate in PEM form."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _make_root(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "comptoir local CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"comptoir local CA {_owner_label()}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Two servers started at once must not each make a CA and overwrite the other's files.
    fd = os.open(directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_ca(directory: Path | None = None) -> LocalCA | None:
    """The local CA stored in `directory` (default: the data folder), or None if there is none."""
    directory = directory or data_dir()
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if not cert_path.exists() and not key_path.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"the local CA in {directory} is unreadable ({exc}); remove it to make a new one"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ConfigError(
            f"the local CA key in {directory} does not match its certificate;"
            " remove both files to make a new CA"
        )
    return LocalCA(cert, key, cert_path)


def load_or_create_ca(directory: Path | None = None, now: dt.datetime | None = None) -> LocalCA:
    """The local CA, made on first use (directory 0700, key file 0600)."""
    directory = directory or data_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(directory):
            existing = load_ca(directory)
            if existing is not None:
                return existing
            cert, key = _make_root(now or dt.datetime.now(dt.UTC))
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # Key first: a certificate file never exists without its key.
            write_secret(directory / CA_KEY_FILE, key_pem)
            cert_path = directory / CA_CERT_FILE
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            return LocalCA(cert, key, cert_path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the local CA in {directory}: {exc.strerror or exc}"
        ) from None


def _general_names(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip().strip("[]").rstrip(".").lower()
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        try:
            ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
        except UnicodeError:
            # Not a host name a certificate can carry; the other names still work.
            continue
        out.append(x509.DNSName(ascii_name))
    return out


def issue_leaf(
    ca: LocalCA,
    names: Iterable[str],
    now: dt.datetime | None = None,
    validity: dt.timedelta = LEAF_VALIDITY,
) -> tuple[bytes, bytes]:
    """A fresh server certificate for `names` (host names and IP addresses): (cert PEM, key PEM)."""
    now = now or dt.datetime.now(dt.UTC)
    if ca.cert.not_valid_after_utc <= now + CLOCK_SKEW:
        # Ten years on (or a clock far ahead): a leaf can no longer be valid under it.
        expired = ca.cert.not_valid_after_utc.date().isoformat()
        raise ConfigError(
            f"the local CA expired on {expired}; remove {ca.cert_path} and its key to make a new"
            " one (then trust the new one again: comptoir ca install)"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = _general_names(names)
    if not sans:
        sans = [x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "comptoir")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # The subject is empty of host names on purpose: clients read names from here only.
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
