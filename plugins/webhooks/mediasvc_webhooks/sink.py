"""``WebhookSink``: POST each event, signed, to one target; map the answer to a status or a ``SinkError``."""

from __future__ import annotations

import time

import httpx
import msgspec

from mediasvc_webhooks import __version__
from mediasvc_webhooks.allowlist import AddressPolicy, BlockedAddressError
from mediasvc_webhooks.settings import WebhookSettings, WebhookTarget, event_matches
from mediasvc_webhooks.signature import sign
from mediasvc_webhooks.transport import GuardedTransport
from mediasvc.plugin import Event, SinkError

USER_AGENT = f"mediasvc-webhooks/{__version__}"
RETRYABLE_STATUSES = frozenset({408, 429})
ERROR_SNIPPET_BYTES = 200


class SharedClient:
    """One ``httpx.AsyncClient`` for every sink built from the same settings, opened on first use."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.policy = AddressPolicy(settings.allow_hosts, settings.allow_loopback)
        self.timeout = settings.timeout_seconds
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                transport=GuardedTransport(self.policy),
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class WebhookSink:
    def __init__(self, target: WebhookTarget, client: SharedClient) -> None:
        self.name = f"webhook:{target.name}"
        self.target = target
        self.client = client
        self._host = httpx.URL(target.url).host

    def accepts(self, event_type: str) -> bool:
        return event_matches(self.target.events, event_type)

    async def deliver(self, event: Event) -> int:
        body = msgspec.json.encode(event)
        msg_id = str(event.id)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.target.secret, msg_id, timestamp, body),
        }
        client = self.client.get()
        request = client.build_request("POST", self.target.url, content=body, headers=headers)
        try:
            response = await client.send(request, stream=True)  # stream: never download a huge error page
        except BlockedAddressError as exc:
            raise SinkError(f"{self.name}: refused by the allow-list: {exc}", retryable=False) from exc
        except httpx.TimeoutException as exc:
            raise SinkError(f"{self.name}: {self._host} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise SinkError(f"{self.name}: cannot reach {self._host}: {exc!r}") from exc
        try:
            status = response.status_code
            if 200 <= status < 300:
                return status
            snippet = await _read_snippet(response)
        finally:
            await response.aclose()
        retryable = status in RETRYABLE_STATUSES or status >= 500
        detail = f" (redirect to {response.headers.get('location')!r} not followed)" if 300 <= status < 400 else ""
        raise SinkError(
            f"{self.name}: {self._host} answered {status}{detail}: {snippet}", retryable=retryable, status=status
        )

    async def aclose(self) -> None:
        """Close the HTTP client this sink shares with the other webhook sinks (reopened if used again)."""
        await self.client.aclose()


async def _read_snippet(response: httpx.Response) -> str:
    collected = b""
    try:
        async for chunk in response.aiter_bytes():
            collected += chunk
            if len(collected) >= ERROR_SNIPPET_BYTES:
                break
    except httpx.HTTPError:
        pass  # the status is what matters; a broken error body is not worth failing over
    return collected[:ERROR_SNIPPET_BYTES].decode(errors="replace").strip()
