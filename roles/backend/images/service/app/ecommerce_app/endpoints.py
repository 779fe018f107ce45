"""Where a service name points: every address of its replicas, re-resolved on a short TTL,
tried round robin, with the ones that just failed left out for a while (passive health).
The gateway and the services' calls to each other (peers.py) share it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Awaitable, Callable, Dict, List, Optional
from urllib.parse import urlsplit

from yarl import URL

DNS_TTL_S = 2.0

ResolverHook = Callable[[str, int], Awaitable[List[str]]]


class Resolver:
    """Host name -> list of IP addresses, cached ``ttl`` seconds; ``hook`` replaces getaddrinfo."""

    def __init__(self, hook: Optional[ResolverHook] = None, ttl: float = DNS_TTL_S):
        self.hook = hook
        self.ttl = ttl
        self._cache: Dict[tuple, tuple] = {}

    async def resolve(self, host: str, port: int) -> List[str]:
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        key = (host, port)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        if self.hook is not None:
            addresses = list(await self.hook(host, port))
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = []
            for _family, _type, _proto, _name, sockaddr in infos:
                if sockaddr[0] not in addresses:
                    addresses.append(sockaddr[0])
        if not addresses:
            raise OSError(f"{host} has no address")
        self._cache[key] = (now + self.ttl, addresses)
        return addresses


class Upstream:
    def __init__(self, name: str, url: str):
        parts = urlsplit(url)
        self.name = name
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname or name
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        default_port = (self.scheme == "http" and self.port == 80) or (self.scheme == "https" and self.port == 443)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.url = url.rstrip("/")
        self._next = 0
        self._ejected: Dict[str, float] = {}  # address -> monotonic time it may be tried again

    def order(self, addresses: List[str]) -> List[str]:
        """The addresses to try: the ones not ejected first, rotated round robin, then the
        ejected ones (soonest back first), so a request is tried even when all are out."""
        now = time.monotonic()
        for address in [a for a, until in self._ejected.items() if until <= now or a not in addresses]:
            del self._ejected[address]
        start = self._next % len(addresses)
        self._next += 1
        rotated = addresses[start:] + addresses[:start]
        ejected = sorted((a for a in rotated if a in self._ejected), key=self._ejected.get)
        return [a for a in rotated if a not in self._ejected] + ejected

    def eject(self, address: str, seconds: float) -> bool:
        """Leave ``address`` out for ``seconds``; True when it was not out already."""
        if seconds <= 0:
            return False
        fresh = self._ejected.get(address, 0.0) <= time.monotonic()
        self._ejected[address] = time.monotonic() + seconds
        return fresh

    def target(self, address: str, raw_path: str, raw_query: str) -> URL:
        host = f"[{address}]" if ":" in address else address
        url = f"{self.scheme}://{host}:{self.port}{self.base_path}{raw_path}"
        if raw_query:
            url += "?" + raw_query
        return URL(url, encoded=True)
