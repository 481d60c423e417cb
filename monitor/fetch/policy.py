"""The address policy for links from feed content: only well-formed http(s) URLs
(request_url), and only globally routable addresses (is_global).

Judged by the standard library's `ipaddress` (its `is_global`, which follows IANA's
special-purpose registries), never by a list of ranges kept by hand. An IPv6 address that
carries an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``, Teredo) is judged as that IPv4 address: such an address reaches the IPv4 host
through a translator, loopback and private networks included.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import sys

import httpx

from ..errors import InvalidLink

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix
# CPython before 3.12.4 and 3.11.10 (gh-113171) calls 192.0.0.0/24 global but for two of its
# addresses, against IANA's registry; later versions answer this themselves.
_IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")
_IETF_GLOBAL = {ipaddress.ip_address("192.0.0.9"), ipaddress.ip_address("192.0.0.10")}
_OLD_STDLIB = sys.version_info < (3, 12, 4) and not (3, 11, 10) <= sys.version_info < (3, 12)


def is_global(host: str) -> bool:
    """True for an IP address a link from a feed may reach; False for loopback, private,
    link-local, shared, reserved, documentation, multicast and site-local addresses (and for
    anything that is not an IP address)."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip.is_multicast:
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if embedded is not None:
            ip = embedded
    if ip.is_multicast or not ip.is_global:
        return False
    return not (_OLD_STDLIB and ip in _IETF_PROTOCOL and ip not in _IETF_GLOBAL)


_HOST_CHARS = re.compile(r"[a-z0-9_.-]+", re.I)


@functools.lru_cache(maxsize=4096)  # a feed's URL is parsed once, not on every poll
def request_url(url: str) -> httpx.URL:
    """The URL as httpx will send it, or InvalidLink: what httpx, IDNA or the resolver would
    refuse later (empty or over-long labels, `xn--` that does not decode, NULs, lone
    surrogates, characters no host name has), refused before any request."""
    try:
        target = httpx.URL(url)
        host = target.host  # decodes IDNA: raises on a bad xn-- label
        raw = target.raw_host.decode("ascii")
        if not raw:
            raise ValueError("no host")
        if not _is_ip(raw):
            raw.encode("idna")  # what the resolver does: empty or over-long labels
            if not _HOST_CHARS.fullmatch(raw) or len(raw) > 253:
                raise ValueError(f"not a host name: {host[:100]!r}")
        if target.scheme not in ("http", "https"):
            raise ValueError(f"not http(s): {target.scheme[:20]!r}")
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise InvalidLink(url, f"invalid URL: {str(exc)[:200]}") from None
    return target



def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

