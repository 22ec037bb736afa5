"""Passwords: read once in the main process, kept only as a slow hash, compared in constant time.

The password comes from `--password` (a hidden prompt), `--password-file FILE` or the
`COMPTOIR_PASSWORD` variable. The main process hashes it with scrypt (memory-hard, in the standard
library) and puts only the hash in the Config the workers receive; the plain text never reaches a
worker. The hash string carries its parameters, so they can be raised later without breaking
stored hashes (sites.toml may hold one: `password-hash = "scrypt$…"`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

from comptoir.config import ServerOptions
from comptoir.errors import ConfigError

PASSWORD_ENV = "COMPTOIR_PASSWORD"
# scrypt cost: 32 MiB and about 0.1 s per check here, a brute force of a few guesses per second
# per core; n=2**17 (OWASP's figure) took 0.9 s on a 2-core machine, too slow for a login page.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_MAXMEM = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(
    password: str,
    *,
    n: int = SCRYPT_N,
    r: int = SCRYPT_R,
    p: int = SCRYPT_P,
    salt: bytes | None = None,
) -> str:
    """The scrypt hash of `password` with a random salt, as `scrypt$n$r$p$salt$hash`."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=HASH_BYTES
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a comptoir password hash (scrypt$n$r$p$salt$hash)")
    n, r, p = (int(x) for x in parts[1:4])
    if n < 2 or n & (n - 1) or not (1 <= r <= 64 and 1 <= p <= 16):
        raise ValueError("bad scrypt parameters in the password hash")
    return n, r, p, _unb64(parts[4]), _unb64(parts[5])


def check_hash(stored: str) -> None:
    """Raise ValueError if `stored` is not a usable password hash."""
    try:
        _parse(stored)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc) or "malformed password hash") from None


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches the stored hash (constant-time comparison)."""
    n, r, p, salt, expected = _parse(stored)
    # A client may send bytes that are not UTF-8 (kept as surrogate escapes): the bytes it sent
    # are what is compared, never an error.
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=_MAXMEM,
        dklen=len(expected),
    )
    return hmac.compare_digest(digest, expected)


def _prompt_terminal() -> str:
    import click

    if not sys.stdin.isatty():
        # A pipe: `echo secret | comptoir serve --password` reads one line, no confirmation.
        return sys.stdin.readline().rstrip("\r\n")
    # The prompt goes to stderr: with --quiet, stdout carries only URLs.
    value: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt=True, err=True, type=str
    )
    return value


def _read_password_file(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as f:
            line = f.readline()
    except OSError as exc:
        raise ConfigError(f"cannot read --password-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--password-file {path} is not UTF-8 text") from None
    return line.rstrip("\r\n")


def password_problems(options: ServerOptions) -> list[str]:
    """What `resolve_password` would refuse (a file missing, a bad hash), asking nothing."""
    try:
        resolve_password(options, env={}, prompt=lambda: "not asked")
    except ConfigError as exc:
        return [str(exc)]
    return []


def resolve_password(
    options: ServerOptions,
    env: MutableMapping[str, str] | None = None,
    prompt: Callable[[], str] = _prompt_terminal,
) -> ServerOptions:
    """Options with the password read (prompt, file or environment) and replaced by its hash.

    Done once, in the main process. The variable is removed from the environment afterwards so
    the worker processes never inherit the plain text.
    """
    env = os.environ if env is None else env
    from_env = env.pop(PASSWORD_ENV, None) or None
    sources = [
        name
        for name, given in (
            ("--password", options.password),
            ("--password-file", options.password_file is not None),
            ("password-hash", options.password_hash is not None),
        )
        if given
    ]
    if len(sources) > 1:
        raise ConfigError(f"give the password one way only, not {' and '.join(sources)}")
    if options.password_hash is not None:
        try:
            check_hash(options.password_hash)
        except ValueError as exc:
            raise ConfigError(f"password-hash: {exc}") from None
        return options
    if options.password:
        # A script (or a container) can answer the prompt in advance with the variable.
        password = from_env if from_env is not None else prompt()
    elif options.password_file is not None:
        password = _read_password_file(options.password_file)
    elif from_env is not None:
        password = from_env
    else:
        return options
    if not password:
        raise ConfigError("the password must not be empty")
    return dataclasses.replace(
        options, password=False, password_file=None, password_hash=hash_password(password)
    )
