"""Reads for recording sessions, events and the queue (see queries.py for the conventions)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import msgspec

from mediasvc.dashboard.queries import PAGE, Where, _page, raw
from mediasvc.ingest.sessions_gaps import expected_count, inconsistent_chunks, missing_ranges
from mediasvc.pagination import decode_cursor
from mediasvc.queue import housekeeping_queue
from mediasvc.timeouts import within

# --- recording sessions --------------------------------------------------------------------------------------


async def list_sessions(tenant: UUID | None, *, status: str = "", q: str = "", cursor: str | None = None,
                        limit: int = PAGE) -> tuple[list[dict[str, Any]], str | None]:
    where = Where()
    if tenant:
        where.add("s.tenant = {}", tenant)
    if status:
        where.add("s.status = {}", status)
    if q:
        where.add("(s.interview_id = {} OR s.user_id = {} OR s.client_id = {})", q, q, q)
    if cursor:
        created, last_id = decode_cursor(cursor)
        where.add("(s.created_at, s.id) < ({}, {})", created, last_id)
    rows = await raw(
        "SELECT s.id, s.client_id, s.interview_id, s.user_id, s.profile, s.status, s.expected_chunks, s.created_at, "
        "s.completed_at, t.slug AS tenant_slug, c.n AS received, c.top, c.bytes FROM recording_sessions s "
        "JOIN tenants t ON t.id = s.tenant LEFT JOIN LATERAL (SELECT count(*) AS n, max(sequence_index) AS top, "
        f"sum(size_bytes) AS bytes FROM chunks WHERE session = s.id) c ON true{where.sql()} "
        "ORDER BY s.created_at DESC, s.id DESC LIMIT {}", *where.args, limit + 1)
    rows, next_cursor = _page(rows, limit)
    for row in rows:
        expected = max(row["expected_chunks"] or 0, (row["top"] if row["top"] is not None else -1) + 1)
        row["expected"] = expected
        row["missing"] = expected - (row["received"] or 0)
    return rows, next_cursor


async def session_detail(tenant: UUID | None, session_id: UUID) -> dict[str, Any] | None:
    where = Where().add("s.id = {}", session_id)
    if tenant:
        where.add("s.tenant = {}", tenant)
    rows = await raw(f"SELECT s.*, t.slug AS tenant_slug FROM recording_sessions s JOIN tenants t ON t.id = s.tenant"
                     f"{where.sql()}", *where.args)
    if not rows:
        return None
    row = rows[0]
    for key in ("devices", "metadata"):
        if isinstance(row.get(key), str):
            row[key] = msgspec.json.decode(row[key])
    return row


async def chunk_strip(session: dict[str, Any]) -> dict[str, Any]:
    """Every expected chunk with its state: received, missing (a gap) or inconsistent, plus the gap ranges."""
    chunks = await raw("SELECT sequence_index, size_bytes, duration_seconds, overlap_seconds, created_at "
                       "FROM chunks WHERE session = {} ORDER BY sequence_index", session["id"])
    by_index = {c["sequence_index"]: c for c in chunks}
    expected = expected_count(session["expected_chunks"], by_index)
    bad = {c["sequence_index"]: c["message"] for c in inconsistent_chunks(chunks, expected)}
    cells = []
    for index in range(expected):
        chunk = by_index.get(index)
        state = "missing" if chunk is None else ("inconsistent" if index in bad else "received")
        cells.append({"index": index, "state": state, "chunk": chunk, "why": bad.get(index, "")})
    gaps = missing_ranges(expected, by_index)
    return {"cells": cells, "expected": expected, "received": len(chunks), "gaps": gaps,
            "missing": sum(end - start + 1 for start, end in gaps), "inconsistent": len(bad),
            "bytes": sum(c["size_bytes"] or 0 for c in chunks)}


# --- events --------------------------------------------------------------------------------------------------


async def list_events(tenant: UUID | None, *, type_: str = "", delivery: str = "", cursor: str | None = None,
                      limit: int = PAGE) -> tuple[list[dict[str, Any]], str | None]:
    where = Where()
    if tenant:
        where.add("e.tenant = {}", tenant)
    if type_:
        where.add("e.type = {}", type_)
    if delivery:
        where.add("EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event = e.id AND d.status = {})", delivery)
    if cursor:
        created, last_id = decode_cursor(cursor)
        where.add("(e.created_at, e.id) < ({}, {})", created, last_id)
    rows = await raw(f"SELECT e.id, e.type, e.created_at, e.dispatched_at, e.payload, t.slug AS tenant_slug "
                     f"FROM events e LEFT JOIN tenants t ON t.id = e.tenant{where.sql()} "
                     "ORDER BY e.created_at DESC, e.id DESC LIMIT {}", *where.args, limit + 1)
    rows, next_cursor = _page(rows, limit)
    deliveries = await raw("SELECT id, event, sink, status, attempts, next_attempt_at, last_error, response_status, "
                           "delivered_at, updated_at FROM event_deliveries WHERE event = ANY({}) ORDER BY sink",
                           [r["id"] for r in rows]) if rows else []
    by_event: dict[UUID, list[dict[str, Any]]] = {}
    for d in deliveries:
        by_event.setdefault(d["event"], []).append(d)
    for row in rows:
        row["deliveries"] = by_event.get(row["id"], [])
    return rows, next_cursor


async def delivery(tenant: UUID | None, delivery_id: UUID) -> dict[str, Any] | None:
    where = Where().add("d.id = {}", delivery_id)
    if tenant:
        where.add("e.tenant = {}", tenant)
    rows = await raw("SELECT d.id, d.event, d.sink, d.status, d.attempts, d.next_attempt_at, d.last_error, "
                     "d.response_status, d.delivered_at, d.updated_at FROM event_deliveries d "
                     f"JOIN events e ON e.id = d.event{where.sql()}", *where.args)
    return rows[0] if rows else None


async def redeliver(delivery_id: UUID) -> None:
    await raw("UPDATE event_deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now() "
              "WHERE id = {}", delivery_id)


# --- queue ---------------------------------------------------------------------------------------------------


async def queue_info(queue: Any, *, jobs: bool = False, timeout: float = 2.0) -> dict[str, Any]:
    """SAQ's own figures for the processing queue: queued / active / scheduled, the workers alive, and (optionally)
    active and waiting jobs; under ``housekeeping`` the same for its housekeeping queue (cron jobs, event
    dispatch), whose jobs join the list. ``{"error": ...}`` when a queue does not answer: the page still renders."""
    other = housekeeping_queue(queue)
    if other is queue:
        return await _one_queue_info(queue, jobs=jobs, timeout=timeout)
    info, housekeeping = await asyncio.gather(_one_queue_info(queue, jobs=jobs, timeout=timeout),
                                              _one_queue_info(other, jobs=jobs, timeout=timeout))
    info["housekeeping"] = housekeeping
    info["jobs"] = [*info["jobs"], *housekeeping["jobs"]]
    return info


async def _one_queue_info(queue: Any, *, jobs: bool, timeout: float) -> dict[str, Any]:
    try:
        info = await within(queue.info(jobs=jobs, limit=50), timeout)
    except Exception as exc:  # the dashboard shows a down queue, it does not fail with it
        return {"name": queue.name, "error": type(exc).__name__, "queued": None, "active": None,
                "scheduled": None, "workers": {}, "jobs": []}
    info = dict(info)
    info["name"] = queue.name
    info["jobs"] = list(info.get("jobs") or [])
    for job in info["jobs"]:  # SAQ gives enum statuses: show their plain value
        job["status"] = getattr(job.get("status"), "value", job.get("status"))
        job["queue"] = queue.name
    return info


async def find_job(queue: Any, key: str) -> tuple[Any, Any]:
    """The job with this key on the processing queue or its housekeeping queue, with the queue that holds it."""
    for candidate in dict.fromkeys([queue, housekeeping_queue(queue)]):
        job = await candidate.job(key)
        if job is not None:
            return candidate, job
    return queue, None


async def failed_steps(tenant: UUID | None, limit: int = 20) -> list[dict[str, Any]]:
    scope, args = ("AND a.tenant = {}", [tenant]) if tenant else ("", [])
    return await raw("SELECT j.id, j.asset, j.step, j.attempts, j.error, j.completed_at, j.created_at, "
                     "a.original_name FROM processing_jobs j JOIN assets a ON a.id = j.asset "
                     f"WHERE j.status = 'failed' {scope} ORDER BY j.created_at DESC LIMIT {{}}", *args, limit)


async def gather_queue(queue: Any, tenant: UUID | None, *, jobs: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return await asyncio.gather(queue_info(queue, jobs=jobs), failed_steps(tenant))
