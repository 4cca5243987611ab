"""A keyed hash of the client's network, logged with each search so suggestions can count
distinct addresses (webapp.services.suggestions) without the log holding an address.

The network, not the address: an IPv4 /24 or an IPv6 /48 is what one client can easily hold
many addresses of, so a poisoner rotating through them still counts once. The key is the app's
SECRET_KEY, so the hash cannot be reversed by hashing every address without it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from flask import current_app, has_request_context, request

HASH_CHARS = 16  # 64 bits: collisions between real networks are negligible at a shop's scale


def network_of(address: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network an address belongs to; unparseable text is its own network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def client_hash(address: str, key: str) -> str:
    """The keyed hash of an address's network, as stored on a search (HASH_CHARS hex digits)."""
    digest = hmac.new(key.encode(), network_of(address).encode(), hashlib.sha256).hexdigest()
    return digest[:HASH_CHARS]


def request_client_hash() -> str | None:
    """The current request's client hash; None outside a request (the CLI, tasks)."""
    if not has_request_context() or not request.remote_addr:
        return None
    return client_hash(request.remote_addr, current_app.config["SECRET_KEY"])
