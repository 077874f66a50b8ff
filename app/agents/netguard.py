"""SSRF guard: may this URL be fetched, and at which address?

``await Guard().check(url)`` returns a :class:`Target` (the URL split into parts plus the one
address to connect to) or raises :class:`Blocked` with the reason. Rules, all of which hold:

1. Scheme ``http`` or ``https``; no userinfo (``http://good@127.0.0.1/``), no backslash,
   whitespace or control characters, no percent-encoding or zone id in the host; port 1-65535.
2. The host, normalised (lower case, IDNA, trailing dots removed), is not a local name:
   ``localhost``, ``*.localhost``, ``*.local``, ``*.internal`` (so ``metadata.google.internal``),
   ``metadata.goog``, ``*.home.arpa``.
3. An IPv4 literal in any form ``inet_aton`` accepts (``2130706433``, ``0x7f000001``,
   ``0177.0.0.1``, ``127.1``) is read as the address it means; an IPv6 literal as itself. Any
   other host is resolved, and EVERY address it resolves to must pass (one bad one blocks).
4. An address passes only if it is globally routable: loopback, private (RFC 1918, ULA
   fc00::/7), link-local (169.254/16, fe80::/10), CGNAT (100.64/10), benchmarking
   (198.18/15), documentation, multicast, unspecified, reserved and broadcast are blocked, and
   the metadata addresses (169.254.169.254, fd00:ec2::254, 100.100.100.200) by name. IPv6
   addresses that embed an IPv4 one (mapped ``::ffff:a.b.c.d``, compatible ``::a.b.c.d``,
   NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the IPv4 address; Teredo
   (2001::/32) and local-use NAT64 (64:ff9b:1::/48) are blocked outright.

The checked address is the one the fetcher connects to (``Target.ip``): the host is resolved
once per hop, so a DNS answer that changes between check and connect (rebinding) is never
used. Redirects go through :meth:`Guard.check` again (``app.agents.fetch``).

**Test seam.** ``Guard(resolver=..., allow=...)``: ``resolver`` replaces the system resolver,
and ``allow`` lists ``(ip, port)`` endpoints to treat as public although their address is not.
Tests run everything on loopback and need one "public" server (e.g. on 127.0.0.2) while the
rest of 127.0.0.0/8 stays blocked. Production code never passes ``allow``; no setting does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Endpoint = tuple[IPAddress, int]

DEFAULT_PORTS = {"http": 80, "https": 443}
BLOCKED_NAMES = frozenset({"localhost", "metadata.goog", "metadata", "instance-data"})
BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_TEREDO = ipaddress.ip_network("2001::/32")
_COMPATIBLE = ipaddress.ip_network("::/96")
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_HOST_RE = re.compile(r"^[a-z0-9_]([a-z0-9_\-]{0,62})(\.[a-z0-9_]([a-z0-9_\-]{0,62}))*$")
_V4_PART_RE = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")


class Blocked(Exception):  # a verdict, not a malfunction
    """The URL must not be fetched; ``str(exc)`` says why."""


class Unresolvable(Blocked):
    """The host has no address (or the lookup failed): nothing to connect to."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (``ip``, ``port``) and what to ask for."""

    url: str
    scheme: str
    host: str  # normalised ASCII host name (or the address's text for an IP literal)
    port: int
    path: str  # path and query, never empty
    ip: IPAddress

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host (no DNS at connect time)."""
        ip = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        return f"{self.scheme}://{ip}:{self.port}{self.path}"


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """``getaddrinfo`` in the event loop's executor; every address of every family."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
            found.append(ipaddress.ip_address(text))
        return list(dict.fromkeys(found))


class Guard:
    def __init__(
        self, resolver: Resolver | None = None, allow: frozenset[Endpoint] = frozenset()
    ) -> None:
        self.resolver: Resolver = resolver or SystemResolver()
        self.allow = allow

    async def check(self, url: str) -> Target:
        scheme, host, port, path = split_url(url)
        literal = parse_ip_literal(host)
        if literal is not None:
            addresses = [literal]
            host = str(literal)
        else:
            check_name(host)
            try:
                addresses = await self.resolver.resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise Unresolvable(f"cannot resolve {host!r}: {exc}") from None
            if not addresses:
                raise Unresolvable(f"{host!r} resolves to no address")
        for ip in addresses:
            reason = blocked_reason(ip)
            if reason and (ip, port) not in self.allow:
                via = "" if literal is not None else f" (resolved from {host!r})"
                raise Blocked(f"address {ip}{via} is blocked: {reason}")
        return Target(url, scheme, host, port, path, addresses[0])


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, normalised host, port, path with query) or :class:`Blocked`."""
    if _BAD_URL_CHARS.search(url):
        raise Blocked("URL contains whitespace, control characters or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Blocked(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise Blocked(f"scheme {scheme!r} is not allowed (http and https only)")
    if "@" in parts.netloc:
        raise Blocked("credentials (userinfo) in a URL are not allowed")
    host = normalise_host(parts.hostname or "")
    port = DEFAULT_PORTS[scheme] if port is None else port
    if not 0 < port < 65536:
        raise Blocked(f"port {port} is out of range")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, path


def normalise_host(raw: str) -> str:
    if "%" in raw:
        raise Blocked("percent-encoding or a zone id in the host is not allowed")
    host = raw.lower().rstrip(".")
    if not host:
        raise Blocked("URL has no host")
    if ":" in host:  # an IPv6 literal (urlsplit removed the brackets)
        return host
    try:
        host = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        raise Blocked(f"host {raw!r} is not a valid name") from None
    if not _HOST_RE.match(host):
        raise Blocked(f"host {raw!r} is not a valid name")
    return host


def parse_ip_literal(host: str) -> IPAddress | None:
    """An IP address the host names literally, in any form ``inet_aton`` accepts; else None."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise Blocked(f"malformed IPv6 literal {host!r}") from None
    parts = host.split(".")
    if not all(_V4_PART_RE.match(p) for p in parts):
        if re.fullmatch(r"[0-9.]+", host) or re.fullmatch(r"(0x[0-9a-z]*\.?)+", host):
            raise Blocked(f"malformed IPv4 literal {host!r}")
        return None  # a name (its last label is not numeric)
    if len(parts) > 4:
        raise Blocked(f"malformed IPv4 literal {host!r}")
    *head, last = [_v4_part(p) for p in parts]
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise Blocked(f"IPv4 literal {host!r} is out of range")
    number = 0
    for v in head:
        number = number * 256 + v
    return ipaddress.IPv4Address(number * 256 ** (4 - len(head)) + last)


def _v4_part(part: str) -> int:
    """One dotted part as ``inet_aton`` reads it: ``0x`` hex, leading ``0`` octal, decimal."""
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part)


def check_name(host: str) -> None:
    if host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES):
        raise Blocked(f"host {host!r} is a local name")


def blocked_reason(ip: IPAddress) -> str | None:
    """Why this address must not be reached, or None if it is globally routable."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{inner} (embedded in {ip})" if inner else None
        if ip in _TEREDO:
            return "Teredo"
        if ip in _NAT64_LOCAL:
            return "local-use NAT64"
    for reason, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        # fec0::/10, deprecated but still routed inside some networks; Python calls it global.
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
    ):
        if flag:
            return reason
    return None if ip.is_global else "non-global"


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a mapped, compatible, NAT64 or 6to4 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
