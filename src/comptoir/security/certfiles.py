"""A certificate the user brings (`--cert`, `--key`): read, checked, and its key normalised.

Keys come in many PEM forms (PKCS#8, traditional "EC PRIVATE KEY" / "RSA PRIVATE KEY", encrypted or
not, or inside the certificate file). They are loaded with cryptography and written back as
unencrypted PKCS#8 into the run's private folder, the one form granian is sure to read. Every
problem is one clear line (ConfigError) before anything starts.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from comptoir.errors import ConfigError
from comptoir.security.tls import KEY_PASSWORD_ENV


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {flag} {path}: {exc.strerror or exc}") from None


_KEY_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----")


ServerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def load_private_key(data: bytes, password: str | None, where: str) -> ServerKey:
    """A private key from PEM text in any common form (PKCS#8, EC, RSA; encrypted or not)."""
    if not _KEY_BLOCK.search(data):
        raise ConfigError(f"{where} holds no private key in PEM form")
    secret = password.encode() if password is not None else None
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except TypeError:
        if secret is None:
            raise ConfigError(
                f"{where} is encrypted: give --key-password or {KEY_PASSWORD_ENV}"
            ) from None
        # A password was given for a key that has none: the key is usable as it is.
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        if secret is not None and b"ENCRYPTED" in data:
            raise ConfigError(f"wrong --key-password for {where}") from None
        raise ConfigError(f"{where}: the private key cannot be read") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for exotic keys
        raise ConfigError(f"{where}: unsupported private key ({exc})") from None
    if not isinstance(key, ServerKey):
        raise ConfigError(f"{where}: only EC, RSA and Ed25519 keys can serve TLS")
    return key


def load_user_certificate(
    cert_file: Path,
    key_file: Path | None,
    password: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """Check a user's certificate chain and key; return (chain PEM, unencrypted PKCS#8 key PEM).

    The key may sit in the certificate file itself when `key_file` is None.
    """
    cert_data = _read(cert_file, "--cert")
    try:
        chain = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise ConfigError(f"--cert {cert_file} holds no certificate in PEM form") from None
    if key_file is None:
        if not _KEY_BLOCK.search(cert_data):
            raise ConfigError(f"--cert {cert_file} holds no private key: give --key FILE")
        key = load_private_key(cert_data, password, f"--cert {cert_file}")
        key_where = f"the key in --cert {cert_file}"
    else:
        key = load_private_key(_read(key_file, "--key"), password, f"--key {key_file}")
        key_where = f"--key {key_file}"
    leaf = chain[0]
    if key.public_key() != leaf.public_key():
        raise ConfigError(f"{key_where} does not match the certificate in --cert {cert_file}")
    now = now or dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        raise ConfigError(f"--cert {cert_file} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    pem_chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_chain, key_pem
