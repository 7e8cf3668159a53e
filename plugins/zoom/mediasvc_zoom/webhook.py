"""``POST /integrations/zoom/webhook``: verify, answer fast, and leave the attendance work to a job.

Every request must carry a valid ``x-zm-signature`` with a timestamp within ±5 minutes (401 otherwise, nothing
stored). ``endpoint.url_validation`` is answered at once; any other event is stored once (Zoom's retries hit the
unique dedupe key) and a ``zoom.process_event`` job is queued for the events of a known LiveSession.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

import msgspec
from litestar import Request, post

from mediasvc_zoom import zoom_events as ze
from mediasvc_zoom.settings import zoom_settings
from mediasvc_zoom.signature import encrypted_token, verify
from mediasvc_zoom.store import session_for_meeting
from mediasvc_zoom.tables import WebhookEvent
from mediasvc.plugin import BadRequest, ServicesDep, enqueue

log = logging.getLogger("mediasvc.zoom.webhook")

PROCESS_JOB = "zoom.process_event"
WEBHOOK_PATH = "/integrations/zoom/webhook"


class WebhookAck(msgspec.Struct):
    status: str  # accepted, duplicate, ignored (no LiveSession has this meeting)
    event: str


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The webhook body is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise BadRequest("The webhook body has no 'event'")
    return data


async def store_event(body: dict[str, Any], session: dict[str, Any] | None) -> Any:
    """Insert once; returns the new row's id, or None when Zoom already delivered this event."""
    rows = await WebhookEvent.raw(
        "INSERT INTO zoom_webhook_events (id, dedupe_key, event, zoom_meeting_id, live_session, event_ts, payload, "
        "received_at) VALUES ({}, {}, {}, {}, {}, {}, {}::jsonb, now()) ON CONFLICT (dedupe_key) DO NOTHING "
        "RETURNING id",
        uuid4(), ze.dedupe_key(body), body["event"][:100], ze.meeting_id(body)[:32],
        session["id"] if session else None, ze.event_time(body), msgspec.json.encode(body).decode(),
    )
    return rows[0]["id"] if rows else None


# For the OpenAPI document: the handler verifies the signature over the raw body, so it reads it itself.
WEBHOOK_DOC = {"openapi": {"errors": [400, 401, 413, 422], "parameters": [
    {"name": "x-zm-signature", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "x-zm-request-timestamp", "in": "header", "required": True, "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["event"],
        "properties": {"event": {"type": "string"}, "payload": {"type": "object"}}}}}}}}


@post(WEBHOOK_PATH, status_code=200, tags=["zoom"], opt=WEBHOOK_DOC,
      summary="Zoom event subscription endpoint (signed by Zoom)")
async def zoom_webhook(request: Request[Any, Any, Any], services: ServicesDep) -> Any:
    settings = zoom_settings(services.host)
    raw = await request.body()
    verify(settings.webhook_secret_token, signature=request.headers.get("x-zm-signature"),
           timestamp=request.headers.get("x-zm-request-timestamp"), body=raw,
           tolerance_seconds=settings.signature_tolerance_seconds)
    body = _decode(raw)
    event = body["event"]
    if event == ze.URL_VALIDATION:
        plain = (body.get("payload") or {}).get("plainToken")
        if not isinstance(plain, str) or not plain:
            raise BadRequest("endpoint.url_validation without a plainToken")
        return {"plainToken": plain, "encryptedToken": encrypted_token(settings.webhook_secret_token, plain)}
    session = await session_for_meeting(ze.meeting_id(body))
    event_id = await store_event(body, session)
    if event_id is None:
        return WebhookAck(status="duplicate", event=event)
    if session is None or event not in ze.HANDLED_EVENTS:
        log.info("zoom event %s for meeting %r stored, nothing to do", event, ze.meeting_id(body))
        return WebhookAck(status="ignored", event=event)
    await enqueue(services.queue, services.settings, PROCESS_JOB, timeout=60, retries=5,
                  event_id=str(event_id))
    return WebhookAck(status="accepted", event=event)
