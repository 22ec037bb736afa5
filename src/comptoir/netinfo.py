"""The addresses this machine can be reached at: loopback, the primary LAN address, the others;
and which host names mean this machine alone."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass

# TEST-NET addresses (RFC 5737, RFC 3849): connecting a UDP socket picks the outgoing interface
# without sending a packet, and nothing could answer there anyway.
_PROBE_V4 = ("192.0.2.1", 9)
_PROBE_V6 = ("2001:db8::1", 9)
_SIOCGIFADDR = 0x8915


@dataclass(frozen=True)
class Address:
    """One address of this machine."""

    ip: str
    primary: bool = False

    @property
    def version(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.ip).version

    def host_for_url(self) -> str:
        """The address as it goes in a URL (IPv6 in brackets)."""
        return f"[{self.ip}]" if self.version == 6 else self.ip


def primary_address(family: socket.AddressFamily = socket.AF_INET) -> str | None:
    """The local address of the interface holding the default route, without sending a packet."""
    probe = _PROBE_V4 if family == socket.AF_INET else _PROBE_V6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(probe)
            ip = str(s.getsockname()[0])
    except OSError:
        return None
    if ipaddress.ip_address(ip).is_loopback or ip in ("0.0.0.0", "::"):
        return None
    return ip


def _ipv4_by_interface() -> list[str]:
    """IPv4 addresses of every interface (Linux ioctl; empty elsewhere)."""
    out: list[str] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                packed = struct.pack("256s", name.encode()[:15])
                res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, packed)
            except OSError:
                continue
            out.append(socket.inet_ntoa(res[20:24]))
    return out


def _ipv6_addresses() -> list[str]:
    """Global-scope IPv6 addresses (Linux /proc; empty elsewhere)."""
    out: list[str] = []
    with contextlib.suppress(OSError), open("/proc/net/if_inet6") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "00":  # scope 00: global
                continue
            raw = fields[0]
            out.append(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    return out


def lan_addresses(ipv6: bool = True) -> list[Address]:
    """Non-loopback addresses, the primary one(s) first and marked."""
    primary4 = primary_address(socket.AF_INET)
    primary6 = primary_address(socket.AF_INET6) if ipv6 else None
    seen: set[str] = set()
    result: list[Address] = []
    for ip, primary in (
        (primary4, True),
        *((a, False) for a in _ipv4_by_interface()),
        (primary6, primary4 is None),
        *((a, False) for a in (_ipv6_addresses() if ipv6 else [])),
    ):
        if ip is None or ip in seen:
            continue
        addr = ipaddress.ip_address(ip)
        if addr.is_loopback or addr.is_link_local or addr.is_unspecified:
            continue
        seen.add(ip)
        result.append(Address(ip, primary))
    return result


def primary_lan_address(ipv6: bool = True) -> Address | None:
    """The address other machines on the network reach this one at (the banner's primary URL),
    or None without a network. Looked up at each call: a laptop changes networks."""
    return next((a for a in lan_addresses(ipv6) if a.primary), None)


def is_loopback_host(host: str) -> bool:
    """True for a host (a Host header's name, IPv6 with or without brackets) that only ever
    leads to the machine it is typed on: a loopback or unspecified address, `localhost` or a
    name under it (RFC 6761, which browsers resolve to loopback themselves)."""
    name = host.removeprefix("[").removesuffix("]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified
