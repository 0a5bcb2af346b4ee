"""Fast checks of bare IoC values: their TI type and normalised form (shared by ``hb.ti`` and the feeds).

Normalised as :mod:`huntbook.entities` does: IPv6 compressed, domains lower-case without the trailing dot,
hashes lower-case, URLs with lower-case scheme and host.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["canonical", "is_hex", "maybe_defanged", "normalise"]

_HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX_DIGITS = "0123456789abcdefABCDEF"
_DOMAIN = re.compile(r"(?:[\w-]{1,63}\.)+[\w-]{1,63}")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


def is_hex(text: str) -> bool:
    return bool(text) and not text.strip(_HEX_DIGITS)


def maybe_defanged(text: str) -> bool:
    """False when ``text`` surely holds no defanged form (each has a bracket or ``xp``: ``[.]``, ``hxxp``)."""
    return "[" in text or "(" in text or "{" in text or "xp" in text.lower()


def normalise(text: str) -> tuple[str, str] | None:
    """A bare (refanged) value's type (a TI type or ``cidr``) and normalised form, or None."""
    if not text or " " in text or "\t" in text:
        return None
    if text[0].isdigit() and _IPV4.fullmatch(text):
        return "ipv4", text
    if "://" in text:
        url = canonical("url", text)
        return None if url is None else ("url", url)
    if "@" in text:
        address = canonical("email", text)
        return None if address is None else ("email", address)
    kind = _HASH_LENGTHS.get(len(text))
    if kind is not None and is_hex(text):
        return kind, text.lower()
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        if network.prefixlen == network.max_prefixlen:  # a single address
            return f"ipv{network.version}", network.network_address.compressed
        return "cidr", network.compressed
    if ":" in text:
        try:
            ip = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            return None
        return f"ipv{ip.version}", ip.compressed
    if text.replace(".", "").isdigit():  # digits and dots, yet no address
        return None
    domain = canonical("dns", text)
    return None if domain is None else ("dns", domain)


def canonical(kind: str, text: str) -> str | None:
    """``text`` normalised as a ``kind`` value (as :mod:`huntbook.entities` does), or None if not one."""
    text = text.strip()
    if kind == "ipv4" and _IPV4.fullmatch(text):
        return text
    if kind in ("ipv4", "ipv6"):
        try:
            return ipaddress.ip_address(text.strip("[]")).compressed
        except ValueError:
            return None
    if kind == "dns":
        domain = text.lower().rstrip(".")
        return domain if len(domain) <= 253 and _DOMAIN.fullmatch(domain) else None
    if kind == "url":
        scheme, sep, rest = text.partition("://")
        if not sep or not scheme or not rest:
            return None
        cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
        tail = rest[cut:]
        if not tail.startswith("/"):
            tail = "/" + tail
        return f"{scheme.lower()}://{rest[:cut].lower()}{tail}"
    if kind == "email":
        address = text.lower()
        user, at, domain = address.rpartition("@")
        return address if at and user and "." in domain else None
    if kind in ("md5", "sha1", "sha256"):
        digest = text.lower()
        return digest if _HASH_LENGTHS.get(len(digest)) == kind and is_hex(digest) else None
    return None
