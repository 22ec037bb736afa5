"""Trusting the local CA: the system's store of roots and the NSS databases of Firefox/Chromium.

`comptoir ca install` writes the root where the operating system looks for extra roots and runs its
refresh command, then adds it to every NSS database found (Chromium on Linux reads
~/.pki/nssdb, Firefox its profile). Each step reports what it did or, plainly, what it could not
do; nothing is all-or-nothing. `comptoir ca uninstall` removes what install made, the links the
refresh command made to the root included. Every location can be redirected by environment
variables, which is how the tests work on temporary folders instead of the machine's real stores.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from comptoir.security.ca import LocalCA

# Overrides, for tests and unusual systems: the folder of extra roots, the command refreshing the
# system's bundle (empty: none), and the NSS databases (folders separated by os.pathsep).
TRUST_DIR_ENV = "COMPTOIR_TRUST_DIR"
TRUST_REFRESH_ENV = "COMPTOIR_TRUST_REFRESH"
NSS_DBS_ENV = "COMPTOIR_NSS_DBS"
ANCHOR_NAME = "comptoir.crt"

# (folder of extra roots, refresh command): Debian/Ubuntu/Alpine, Fedora/RHEL, Arch.
_KNOWN_STORES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/usr/local/share/ca-certificates", ("update-ca-certificates",)),
    ("/etc/pki/ca-trust/source/anchors", ("update-ca-trust", "extract")),
    ("/etc/ca-certificates/trust-source/anchors", ("trust", "extract-compat")),
)

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, check=False)


@dataclass(frozen=True)
class Outcome:
    """What one step of install/uninstall did: where, whether it worked, and a short sentence."""

    where: str
    ok: bool
    message: str


@dataclass(frozen=True)
class SystemStore:
    """Where the operating system keeps extra trusted roots, and how it is told to reload them."""

    anchor: Path
    refresh: tuple[str, ...]

    @property
    def refresh_after_removal(self) -> tuple[str, ...]:
        """The refresh command once the anchor is gone: Debian's must be asked to forget it."""
        # Debian's update-ca-certificates links each anchor into /etc/ssl/certs (name.pem, and
        # OpenSSL's <hash>.0 to that) and, without --fresh, only looks for files to add: the
        # links to a removed file would stay behind, dangling. --fresh rebuilds the links from
        # the files there are. (Alpine's update-ca-certificates, a C program of its own, ignores
        # its arguments and drops such links by itself.)
        debian = bool(self.refresh) and Path(self.refresh[0]).name == "update-ca-certificates"
        if debian and "--fresh" not in self.refresh:
            return (*self.refresh, "--fresh")
        return self.refresh


def system_store(env: Mapping[str, str] | None = None) -> SystemStore | None:
    """The system store of this machine (or the one the environment names), None if unknown."""
    env = os.environ if env is None else env
    if env.get(TRUST_DIR_ENV):
        refresh = tuple(shlex.split(env.get(TRUST_REFRESH_ENV, "")))
        return SystemStore(Path(env[TRUST_DIR_ENV]) / ANCHOR_NAME, refresh)
    if sys.platform != "linux":
        return None
    for folder, refresh in _KNOWN_STORES:
        if os.path.isdir(folder) and shutil.which(refresh[0]):
            return SystemStore(Path(folder) / ANCHOR_NAME, refresh)
    return None


def nss_databases(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """NSS databases (sql: format) of Chromium and Firefox that exist for this user."""
    env = os.environ if env is None else env
    if NSS_DBS_ENV in env:
        return [Path(p) for p in env[NSS_DBS_ENV].split(os.pathsep) if p]
    home = home or Path.home()
    found = []
    candidates = [home / ".pki" / "nssdb"]
    for profiles in (
        home / ".mozilla" / "firefox",
        home / "snap" / "firefox" / "common" / ".mozilla" / "firefox",
    ):
        if profiles.is_dir():
            candidates.extend(sorted(p for p in profiles.iterdir() if p.is_dir()))
    for folder in candidates:
        if (folder / "cert9.db").exists():
            found.append(folder)
    return found


def _sudo_prefix() -> list[str] | None:
    """`sudo` when it can ask for a password here (as mkcert does), else None."""
    if os.geteuid() != 0 and shutil.which("sudo") and sys.stdin.isatty():
        return ["sudo"]
    return None


def _install_system(ca: LocalCA, store: SystemStore, run: Runner) -> Outcome:
    where = f"system store ({store.anchor})"
    prefix: list[str] = []
    try:
        store.anchor.parent.mkdir(parents=True, exist_ok=True)
        store.anchor.write_bytes(ca.cert_pem())
        store.anchor.chmod(0o644)
    except PermissionError:
        sudo = _sudo_prefix()
        if sudo is None:
            return Outcome(
                where,
                False,
                "permission denied; run `sudo comptoir ca install`"
                " or copy the CA file there yourself",
            )
        prefix = sudo
        copy = run([*prefix, "install", "-m", "0644", str(ca.cert_path), str(store.anchor)])
        if copy.returncode != 0:
            return Outcome(where, False, f"could not copy the CA: {_last_line(copy)}")
    except OSError as exc:
        return Outcome(where, False, f"could not write the CA: {exc.strerror or exc}")
    return _refresh(where, store.refresh, prefix, run, "added")


def _refresh(
    where: str, refresh: tuple[str, ...], prefix: list[str], run: Runner, done: str
) -> Outcome:
    if not refresh:
        return Outcome(where, True, done)
    if not shutil.which(refresh[0]):
        return Outcome(where, False, f"{done}, but `{refresh[0]}` was not found to apply it")
    result = run([*prefix, *refresh])
    if result.returncode != 0:
        return Outcome(
            where, False, f"{done}, but `{shlex.join(refresh)}` failed: {_last_line(result)}"
        )
    return Outcome(where, True, done)


def _uninstall_system(store: SystemStore, run: Runner) -> Outcome:
    where = f"system store ({store.anchor})"
    if not store.anchor.exists():
        return Outcome(where, True, "not installed")
    prefix: list[str] = []
    try:
        store.anchor.unlink()
    except PermissionError:
        sudo = _sudo_prefix()
        if sudo is None:
            return Outcome(where, False, "permission denied; run `sudo comptoir ca uninstall`")
        prefix = sudo
        rm = run([*prefix, "rm", "-f", str(store.anchor)])
        if rm.returncode != 0:
            return Outcome(where, False, f"could not remove the CA: {_last_line(rm)}")
    except OSError as exc:
        return Outcome(where, False, f"could not remove the CA: {exc.strerror or exc}")
    return _refresh(where, store.refresh_after_removal, prefix, run, "removed")


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return text[-1] if text else f"exit code {result.returncode}"


def nss_has(ca: LocalCA, db: Path, run: Runner = _run) -> bool:
    """True if the NSS database at `db` holds the CA (under its name)."""
    if not shutil.which("certutil"):
        return False
    result = run(["certutil", "-L", "-d", f"sql:{db}", "-n", ca.name])
    return result.returncode == 0


def _install_nss(ca: LocalCA, db: Path, run: Runner) -> Outcome:
    where = f"NSS database {db}"
    # C,, : a trusted CA for TLS servers only (not for e-mail or code signing).
    cmd = ["certutil", "-A", "-d", f"sql:{db}", "-t", "C,,", "-n", ca.name, "-i", str(ca.cert_path)]
    result = run(cmd)
    if result.returncode != 0:
        return Outcome(where, False, f"certutil failed: {_last_line(result)}")
    return Outcome(where, True, "added")


def _uninstall_nss(ca: LocalCA, db: Path, run: Runner) -> Outcome:
    where = f"NSS database {db}"
    removed = False
    # A nickname can have been added more than once; delete until none is left.
    for _ in range(10):
        if not nss_has(ca, db, run):
            break
        result = run(["certutil", "-D", "-d", f"sql:{db}", "-n", ca.name])
        if result.returncode != 0:
            return Outcome(where, False, f"certutil failed: {_last_line(result)}")
        removed = True
    return Outcome(where, True, "removed" if removed else "not installed")


def _nss_missing_tool(dbs: list[Path]) -> Outcome:
    return Outcome(
        ", ".join(str(d) for d in dbs),
        False,
        "browser certificate databases found but `certutil` is missing"
        " (install libnss3-tools or nss-tools)",
    )


def unknown_store_advice(ca: LocalCA, platform: str = sys.platform) -> str:
    """What to do by hand where comptoir cannot reach the system's store of roots."""
    if platform == "darwin":
        return (
            f"the macOS keychain is not supported yet; open {ca.cert_path} in Keychain Access,"
            " add it to the System keychain and set it to Always Trust"
        )
    if platform == "win32":
        return (
            f"the Windows store is not supported yet; import {ca.cert_path} into"
            " Trusted Root Certification Authorities (certmgr.msc)"
        )
    return f"don't know this system's store; import {ca.cert_path} by hand"


def install(
    ca: LocalCA,
    store: SystemStore | None,
    nss_dbs: Sequence[Path],
    run: Runner = _run,
) -> list[Outcome]:
    """Add the CA to the system store and to each NSS database; one Outcome per place."""
    out = []
    if store is None:
        out.append(Outcome("system store", False, unknown_store_advice(ca)))
    else:
        out.append(_install_system(ca, store, run))
    if nss_dbs and not shutil.which("certutil"):
        out.append(_nss_missing_tool(list(nss_dbs)))
    else:
        out.extend(_install_nss(ca, db, run) for db in nss_dbs)
    return out


def uninstall(
    ca: LocalCA,
    store: SystemStore | None,
    nss_dbs: Sequence[Path],
    run: Runner = _run,
) -> list[Outcome]:
    """Remove the CA from the system store and from each NSS database; one Outcome per place."""
    out = []
    if store is not None:
        out.append(_uninstall_system(store, run))
    if nss_dbs and not shutil.which("certutil"):
        out.append(_nss_missing_tool(list(nss_dbs)))
    else:
        out.extend(_uninstall_nss(ca, db, run) for db in nss_dbs)
    return out


def system_has(ca: LocalCA, store: SystemStore | None) -> bool:
    """True if the system store holds this CA's certificate."""
    if store is None:
        return False
    try:
        return store.anchor.read_bytes() == ca.cert_pem()
    except OSError:
        return False


def describe(
    ca: LocalCA,
    store: SystemStore | None = None,
    nss_dbs: Sequence[Path] | None = None,
    run: Runner = _run,
) -> list[str]:
    """Lines for `comptoir ca show`: the CA and every place it is (or is not) trusted."""
    store = system_store() if store is None else store
    nss_dbs = nss_databases() if nss_dbs is None else nss_dbs
    cert = ca.cert
    lines = [
        f"file:        {ca.cert_path}",
        f"name:        {ca.name}",
        f"sha-256:     {ca.fingerprint}",
        f"valid:       {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}",
    ]
    if store is None:
        lines.append("system:      unknown store on this system")
    else:
        state = "trusted" if system_has(ca, store) else "not installed"
        lines.append(f"system:      {state} ({store.anchor})")
    for db in nss_dbs:
        state = "trusted" if nss_has(ca, db, run) else "not installed"
        lines.append(f"nss:         {state} ({db})")
    return lines
