"""An httpx transport that checks the allow-list where it connects, so DNS cannot change between check and use.

httpcore's network backend is asked to open each TCP connection by hostname; ``GuardedBackend`` resolves the name
itself, refuses it through the ``AddressPolicy`` and connects to the vetted address. TLS still verifies against
the hostname (httpcore passes it as ``server_hostname``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from mediasvc_webhooks.allowlist import AddressPolicy


class GuardedBackend(AsyncNetworkBackend):
    def __init__(self, policy: AddressPolicy, inner: AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self.policy.resolve(host, port), timeout)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:  # socket.gaierror included
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks never connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``AsyncHTTPTransport`` whose connection pool opens connections through ``GuardedBackend``."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a network_backend argument, so swap in one that has it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy),
        )
