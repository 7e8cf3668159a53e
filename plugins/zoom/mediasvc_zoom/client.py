"""Zoom's REST API over Server-to-Server OAuth: one client per app, its access token cached until it expires.

Errors never escape as framework exceptions: Zoom's refusals and unreachability become ``ZoomError`` (502, in the
one error envelope, with Zoom's own message), missing credentials ``ServiceUnavailable`` (503).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from datetime import datetime, timezone
from typing import Any
from weakref import WeakKeyDictionary

import httpx
import msgspec

from mediasvc_zoom.settings import ZoomSettings, zoom_settings
from mediasvc.plugin import MediaServiceError, ServiceUnavailable

log = logging.getLogger("mediasvc.zoom")

TOKEN_MARGIN_SECONDS = 60  # refresh a token this long before Zoom says it expires


class ZoomError(MediaServiceError):
    """Zoom refused the request or could not be reached."""

    status_code, code = 502, "zoom_error"


class Meeting(msgspec.Struct):
    """The fields of Zoom's meeting object that a LiveSession keeps."""

    id: int
    uuid: str = ""
    join_url: str = ""
    start_url: str = ""


def zoom_time(when: datetime) -> str:
    """Zoom's ``start_time``: UTC, ``yyyy-MM-ddTHH:mm:ssZ``."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ZoomClient:
    def __init__(self, settings: ZoomSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(timeout=settings.timeout_seconds, transport=transport)
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- OAuth ------------------------------------------------------------------------------------------------

    async def access_token(self) -> str:
        async with self._lock:
            if self._token and time.monotonic() < self._token_expires - TOKEN_MARGIN_SECONDS:
                return self._token
            s = self.settings
            if not s.has_api_credentials:
                raise ServiceUnavailable("Zoom API credentials are not configured (plugins.zoom.account_id, "
                                         "client_id, client_secret)")
            basic = base64.b64encode(f"{s.client_id}:{s.client_secret}".encode()).decode()
            response = await self._send("POST", f"{s.oauth_base_url}/oauth/token",
                                        params={"grant_type": "account_credentials", "account_id": s.account_id},
                                        headers={"Authorization": f"Basic {basic}"})
            body = _json(response)
            if response.status_code != 200 or not body.get("access_token"):
                raise _zoom_error("OAuth token request", response, body)
            self._token = str(body["access_token"])
            self._token_expires = time.monotonic() + float(body.get("expires_in") or 3600)
            self.tokens_fetched += 1
            return self._token

    # --- meetings ---------------------------------------------------------------------------------------------

    async def create_meeting(self, *, host: str, topic: str, start_time: datetime, duration_minutes: int,
                             timezone_name: str, agenda: str = "") -> Meeting:
        body = {"topic": topic, "type": 2, "start_time": zoom_time(start_time), "duration": duration_minutes,
                "timezone": timezone_name, "agenda": agenda,
                "settings": {"join_before_host": False, "waiting_room": True}}
        data = await self._api("POST", f"/v2/users/{host}/meetings", json=body, what="create meeting")
        try:
            return msgspec.convert(data, Meeting, strict=False)
        except msgspec.ValidationError as exc:
            raise ZoomError(f"Zoom answered create meeting without a meeting: {exc}") from exc

    async def update_meeting(self, meeting_id: str, fields: dict[str, Any]) -> None:
        await self._api("PATCH", f"/v2/meetings/{meeting_id}", json=fields, what="update meeting")

    async def delete_meeting(self, meeting_id: str) -> None:
        """Delete; a meeting Zoom no longer has counts as deleted."""
        await self._api("DELETE", f"/v2/meetings/{meeting_id}", what="delete meeting", missing_ok=True)

    # --- plumbing ---------------------------------------------------------------------------------------------

    async def _api(self, method: str, path: str, *, what: str, json: Any = None,
                   missing_ok: bool = False) -> dict[str, Any]:
        url = f"{self.settings.api_base_url}{path}"
        for attempt in (1, 2):
            token = await self.access_token()
            response = await self._send(method, url, json=json, headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401 and attempt == 1:  # revoked or expired early: one fresh token
                self._token = None
                continue
            break
        if response.status_code == 404 and missing_ok:
            return {}
        body = _json(response)
        if response.status_code >= 300:
            raise _zoom_error(what, response, body)
        return body

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("Zoom unreachable: %s %s: %r", method, url, exc)
            raise ZoomError(f"Zoom could not be reached: {type(exc).__name__}",
                            details={"url": url.split("?")[0]}) from exc


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _zoom_error(what: str, response: httpx.Response, body: dict[str, Any]) -> ZoomError:
    message = body.get("message") or body.get("reason") or body.get("error") or response.reason_phrase
    return ZoomError(f"Zoom refused {what}: {message}",
                     details={"zoom_status": response.status_code, "zoom_code": body.get("code")})


_clients: WeakKeyDictionary[Any, ZoomClient] = WeakKeyDictionary()


def client_for(host: Any) -> ZoomClient:
    """The app's client (one per plugin host, so one token cache per app)."""
    client = _clients.get(host)
    if client is None:
        client = _clients[host] = ZoomClient(zoom_settings(host))
    return client


async def close_client(host: Any) -> None:
    client = _clients.pop(host, None)
    if client is not None:
        await client.aclose()
