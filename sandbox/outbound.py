"""The aiohttp side of :mod:`sandbox.net`'s destination policy: the resolver hook that
judges every resolved address, and the one-off JSON fetch (a client's JWKS). Apart from the
policy so that aiohttp (~10 MB) loads with the first outbound request, not at start."""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from sandbox.net import MAX_RESPONSE, DestinationPolicy, DestinationRefused


class PolicyResolver(AbstractResolver):
    """aiohttp resolver that drops every address the policy refuses."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed, problems = [], []
        for result in results:
            problem = self._policy.address_problem(ipaddress.ip_address(result["host"]), port)
            if problem is None:
                allowed.append(result)
            else:
                problems.append(problem)
        if not allowed:
            raise DestinationRefused(f"{host} is refused: {'; '.join(problems)}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


async def fetch_json(url: str, policy: DestinationPolicy, timeout: float = 5.0) -> Any:
    """GET a small JSON document from an allowed destination (redirects not followed)."""
    problem = policy.url_problem(url)
    if problem is not None:
        raise DestinationRefused(f"{url} {problem}")
    connector = aiohttp.TCPConnector(resolver=PolicyResolver(policy), use_dns_cache=False)
    async with (
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as session,
        session.get(url, allow_redirects=False) as response,
    ):
        if response.status != 200:
            raise ValueError(f"{url} answered {response.status}")
        body = await response.content.read(MAX_RESPONSE + 1)
        if len(body) > MAX_RESPONSE:
            raise ValueError(f"{url} answered more than {MAX_RESPONSE} bytes")
        return json.loads(body)
