"""Events: written to the outbox in the same transaction as the change, then fanned out to every sink.

``emit()`` only inserts an outbox row: call it inside the transaction that makes the change. ``dispatch_events`` (a
job, kicked after commit and swept by cron) creates one delivery row per (event, sink) and delivers each on its own,
so one failing sink never blocks another. Failed deliveries back off exponentially until the retry window closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from mediasvc.contracts import Event, SinkError
from mediasvc.queue import housekeeping_queue
from mediasvc.tables import Event as EventRow
from mediasvc.tables import EventDelivery

if TYPE_CHECKING:
    from saq import Queue

    from mediasvc.contracts import EventSink
    from mediasvc.settings import EventSettings

log = logging.getLogger("mediasvc.events")

MEDIA_UPLOADED = "media.uploaded"
MEDIA_PROCESSED = "media.processed"
MEDIA_PROCESSING_FAILED = "media.processing_failed"
MEDIA_DELETED = "media.deleted"
CHUNK_UPLOADED = "chunk_uploaded"
SESSION_COMPLETED = "session.completed"
SESSION_FAILED = "session.failed"  # a session's join failed: payload says why (readable, no paths)
MEDIA_ORIGINAL_DELETED = "media.original_deleted"
# The types the core itself emits. Plugins declare theirs (``transcription.ready``, ``rendition.ready``…) with the
# ``register_event_types`` hook; ``PluginHost.event_types`` lists both (the dashboard's event filter).
EVENT_TYPES = (
    MEDIA_UPLOADED,
    MEDIA_PROCESSED,
    MEDIA_PROCESSING_FAILED,
    MEDIA_DELETED,
    CHUNK_UPLOADED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    MEDIA_ORIGINAL_DELETED,
)

DISPATCH_JOB = "events.dispatch"
CLAIM_LEASE = timedelta(minutes=5)  # a claimed delivery is retried by another worker if this one dies
BATCH = 100


async def emit(event_type: str, data: dict[str, Any], *, tenant_id: UUID | None) -> UUID:
    """Add an event to the outbox (part of the caller's transaction, if any). Returns the event id."""
    event_id = uuid4()
    await EventRow.insert(EventRow(id=event_id, tenant=tenant_id, type=event_type, payload=data))
    return event_id


async def kick(queue: Queue) -> None:
    """Ask a worker to dispatch soon, on the housekeeping queue (never behind a transcode). The per-second key
    collapses a burst of kicks into one job; the job loops until nothing is left and the cron sweep catches
    anything that slips between."""
    await housekeeping_queue(queue).enqueue(DISPATCH_JOB, key=f"{DISPATCH_JOB}:{int(time.time())}", timeout=300,
                                            retries=1)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def backoff(attempts: int, settings: EventSettings) -> timedelta:
    """Delay before attempt ``attempts + 1``: base * 2^(attempts-1), capped."""
    seconds = min(settings.retry_base_seconds * (2 ** max(attempts - 1, 0)), settings.retry_max_interval_seconds)
    return timedelta(seconds=seconds)


async def fan_out(sinks: dict[str, EventSink]) -> int:
    """Create delivery rows for events not yet fanned out; returns how many events were handled."""
    handled = 0
    async with EventRow._meta.db.transaction():
        rows = await EventRow.raw(  # SKIP LOCKED: two dispatchers never fan out the same event twice
            "SELECT id, type FROM events WHERE dispatched_at IS NULL ORDER BY created_at LIMIT {} "
            "FOR UPDATE SKIP LOCKED",
            BATCH,
        )
        for row in rows:
            targets = [name for name, sink in sinks.items() if sink.accepts(row["type"])]
            if targets:
                await EventDelivery.insert(*[EventDelivery(event=row["id"], sink=name) for name in targets])
            await EventRow.update({EventRow.dispatched_at: _now()}).where(EventRow.id == row["id"])
            handled += 1
    return handled


async def _claim_due() -> list[dict[str, Any]]:
    return await EventDelivery.raw(
        "UPDATE event_deliveries SET next_attempt_at = now() + {}, updated_at = now() "
        "WHERE id IN (SELECT id FROM event_deliveries WHERE status = 'pending' AND next_attempt_at <= now() "
        "ORDER BY next_attempt_at LIMIT {} FOR UPDATE SKIP LOCKED) "
        "RETURNING id, event, sink, attempts",
        CLAIM_LEASE,
        BATCH,
    )


async def _load_events(ids: set[UUID]) -> dict[UUID, Event]:
    rows = await EventRow.select().where(EventRow.id.is_in(list(ids))).output(load_json=True)
    return {
        row["id"]: Event(id=row["id"], type=row["type"], tenant_id=row["tenant"], created_at=row["created_at"],
                         data=row["payload"])
        for row in rows
    }


async def _deliver_one(delivery: dict[str, Any], event: Event, sink: EventSink | None,
                       settings: EventSettings) -> str:
    attempts = delivery["attempts"] + 1
    now = _now()
    values: dict[Any, Any] = {EventDelivery.attempts: attempts, EventDelivery.updated_at: now}
    if sink is None:
        values.update({EventDelivery.status: "failed", EventDelivery.last_error: "sink no longer installed",
                       EventDelivery.next_attempt_at: None})
        outcome = "failed"
    else:
        try:
            status = await asyncio.wait_for(sink.deliver(event), timeout=settings.sink_timeout_seconds)
        except Exception as exc:  # isolation: whatever one sink raises is recorded against that sink only
            retryable = exc.retryable if isinstance(exc, SinkError) else True
            status = exc.status if isinstance(exc, SinkError) else None
            message = str(exc) or type(exc).__name__
            next_at = now + backoff(attempts, settings)
            window_closes = event.created_at + timedelta(hours=settings.retry_window_hours)
            give_up = not retryable or next_at > window_closes
            values.update({
                EventDelivery.status: "failed" if give_up else "pending",
                EventDelivery.last_error: message[:2000],
                EventDelivery.response_status: status,
                EventDelivery.next_attempt_at: None if give_up else next_at,
            })
            outcome = "failed" if give_up else "retry"
            log.warning("delivery of %s to %s failed (attempt %d, %s): %s", event.id, delivery["sink"],
                        attempts, outcome, message)
        else:
            values.update({EventDelivery.status: "delivered", EventDelivery.delivered_at: now,
                           EventDelivery.response_status: status, EventDelivery.last_error: None,
                           EventDelivery.next_attempt_at: None})
            outcome = "delivered"
    await EventDelivery.update(values).where(EventDelivery.id == delivery["id"])
    return outcome


async def deliver_due(sinks: dict[str, EventSink], settings: EventSettings) -> dict[str, int]:
    """Deliver every due delivery once, concurrently and isolated; returns counts by outcome."""
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    while deliveries := await _claim_due():
        events = await _load_events({d["event"] for d in deliveries})
        outcomes = await asyncio.gather(*[
            _deliver_one(d, events[d["event"]], sinks.get(d["sink"]), settings) for d in deliveries
        ])
        for outcome in outcomes:
            counts[outcome] += 1
    return counts


async def next_retry_at() -> datetime | None:
    rows = await EventDelivery.raw(
        "SELECT min(next_attempt_at) AS at FROM event_deliveries WHERE status = 'pending'"
    )
    return rows[0]["at"] if rows else None


async def dispatch_events(ctx: dict[str, Any]) -> dict[str, int]:
    """The ``events.dispatch`` job: fan out new events, deliver what is due, schedule the next retry."""
    host = ctx["host"]
    sinks = host.event_sinks
    fanned, counts = 0, {"delivered": 0, "retry": 0, "failed": 0}
    while True:
        new = await fan_out(sinks)
        done = await deliver_due(sinks, host.settings.events)
        fanned += new
        counts = {k: counts[k] + done[k] for k in counts}
        if not new and not any(done.values()):
            break
    retry_at = await next_retry_at()
    if retry_at is not None:
        await housekeeping_queue(ctx["queue"]).enqueue(
            DISPATCH_JOB, key=f"{DISPATCH_JOB}:at:{int(retry_at.timestamp())}", scheduled=int(retry_at.timestamp()) + 1,
            timeout=300, retries=1,
        )
    return {"fanned_out": fanned, **counts}
