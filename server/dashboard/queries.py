"""The dashboard's reads: every list is keyset-paginated on an index, extra data for a page comes in one query.

``tenant`` is the operator's scope (None: every tenant). Figures that need a full scan (the overview's counts,
storage per bucket) are served from the app's cache and recomputed in the background (``cached_scan``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import msgspec

from mediasvc.pagination import decode_cursor, encode_cursor
from mediasvc.tables import Asset

PAGE = 50
log = logging.getLogger("mediasvc.dashboard")

STORAGE_TTL = 30.0


class Where:
    """A tiny builder for Piccolo raw SQL: conditions with ``{}`` placeholders and their arguments."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, sql: str, *args: Any) -> Where:
        self.parts.append(sql)
        self.args.extend(args)
        return self

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.parts)) if self.parts else ""


def _page(rows: list[dict[str, Any]], limit: int = PAGE) -> tuple[list[dict[str, Any]], str | None]:
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"])
    return rows, None


async def raw(sql: str, *args: Any) -> list[dict[str, Any]]:
    return await Asset.raw(sql, *args)


# --- overview ------------------------------------------------------------------------------------------------


COUNTS_TTL = 4.0  # the overview polls every 5 s: one computation per tenant scope per poll period at most


async def cached_scan(cache: dict[Any, Any], key: Any, ttl: float,
                      compute: Callable[[], Awaitable[Any]]) -> Any:
    """Stale-while-revalidate for the full scans: only the first request (an empty cache) waits for ``compute``;
    once the value is older than ``ttl`` it is still served while one background task recomputes it."""
    hit = cache.get(key)
    if hit is None:
        value = await compute()
        cache[key] = (time.monotonic(), value)
        return value
    stamp, value = hit
    refreshing: set[Any] = cache.setdefault("refreshing", set())
    if time.monotonic() - stamp >= ttl and key not in refreshing:
        refreshing.add(key)

        async def refresh() -> None:
            try:
                cache[key] = (time.monotonic(), await compute())
            except Exception:  # noqa: BLE001 - keep serving the old figures; the next request tries again
                log.exception("dashboard scan %r failed", key)
            finally:
                refreshing.discard(key)

        task = asyncio.create_task(refresh())
        cache.setdefault("tasks", set()).add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(cache["tasks"].discard)
    return value


async def overview_counts(tenant: UUID | None, cache: dict[Any, Any]) -> dict[str, Any]:
    return await cached_scan(cache, ("counts", tenant), COUNTS_TTL, lambda: _count(tenant))


async def _count(tenant: UUID | None) -> dict[str, Any]:
    scope, args = ("AND a.tenant = {}", [tenant]) if tenant else ("", [])
    step_join = "JOIN assets a ON a.id = j.asset AND a.tenant = {}" if tenant else ""
    by_status, recent, steps, sessions = await asyncio.gather(
        raw(f"SELECT status, count(*) AS n FROM assets a WHERE true {scope} GROUP BY status", *args),
        raw("SELECT count(*) AS n FROM assets a WHERE a.created_at > now() - interval '1 hour' "
            f"AND a.status <> 'pending' {scope}", *args),
        raw(f"SELECT j.status, count(*) AS n FROM processing_jobs j {step_join} "
            "WHERE j.created_at > now() - interval '1 hour' GROUP BY j.status", *args),
        raw(f"SELECT count(*) AS n FROM recording_sessions a WHERE a.status = 'active' {scope}", *args),
    )
    counts = {r["status"]: r["n"] for r in by_status}
    return {"by_status": counts, "total": sum(n for s, n in counts.items() if s != "deleted"),
            "uploads_last_hour": recent[0]["n"], "steps_last_hour": {r["status"]: r["n"] for r in steps},
            "active_sessions": sessions[0]["n"]}


async def storage_by_bucket(tenant: UUID | None, cache: dict[Any, Any]) -> list[dict[str, Any]]:
    """Bytes and objects per bucket (a full scan), served from ``cache`` (the app's) and refreshed in the
    background once older than ``STORAGE_TTL`` seconds."""
    scope, args = ("AND a.tenant = {}", [tenant]) if tenant else ("", [])
    return await cached_scan(cache, ("storage", tenant), STORAGE_TTL, lambda: raw(
        "SELECT a.bucket, count(*) + coalesce(sum(r.n), 0) AS objects, "
        "sum(a.size_bytes) + coalesce(sum(r.bytes), 0) AS bytes FROM assets a "
        "LEFT JOIN (SELECT asset, count(*) AS n, sum(size_bytes) AS bytes FROM renditions GROUP BY asset) r "
        f"ON r.asset = a.id WHERE a.status NOT IN ('deleted', 'pending') {scope} GROUP BY a.bucket ORDER BY a.bucket",
        *args))


async def recent_failures(tenant: UUID | None, limit: int = 8) -> list[dict[str, Any]]:
    scope, args = ("AND tenant = {}", [tenant]) if tenant else ("", [])
    return await raw("SELECT id, original_name, profile, error, updated_at FROM assets WHERE status = 'failed' "
                     f"{scope} ORDER BY updated_at DESC LIMIT {{}}", *args, limit)


# --- assets --------------------------------------------------------------------------------------------------


async def list_assets(tenant: UUID | None, *, q: str = "", status: str = "", profile: str = "", kind: str = "",
                      cursor: str | None = None, limit: int = PAGE) -> tuple[list[dict[str, Any]], str | None]:
    where = Where()
    if tenant:
        where.add("a.tenant = {}", tenant)
    where.add("a.status = {}", status) if status else where.add("a.status <> 'deleted'")
    if profile:
        where.add("a.profile = {}", profile)
    if kind:
        where.add("a.kind = {}", kind)
    if q:
        try:
            where.add("a.id = {}", UUID(q.strip()))
        except ValueError:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.add("a.original_name ILIKE {}", f"%{escaped}%")
    if cursor:
        created, last_id = decode_cursor(cursor)
        where.add("(a.created_at, a.id) < ({}, {})", created, last_id)
    rows = await raw(
        "SELECT a.id, a.original_name, a.profile, a.kind, a.status, a.size_bytes, a.created_at, a.error, "
        f"t.slug AS tenant_slug FROM assets a JOIN tenants t ON t.id = a.tenant{where.sql()} "
        f"ORDER BY a.created_at DESC, a.id DESC LIMIT {{}}", *where.args, limit + 1)
    rows, next_cursor = _page(rows, limit)
    progress = await progress_for([r["id"] for r in rows if r["status"] in ("uploaded", "processing")])
    for row in rows:
        row["progress"] = progress.get(row["id"], 0.0)
    return rows, next_cursor


async def progress_for(asset_ids: list[UUID]) -> dict[UUID, float]:
    """Overall progress of many assets in one query: the newest run of each step, skipped steps left out."""
    if not asset_ids:
        return {}
    rows = await raw(
        "SELECT asset, avg(CASE WHEN status IN ('succeeded', 'failed') THEN 100 ELSE progress END) AS p FROM "
        "(SELECT DISTINCT ON (asset, step) asset, status, progress FROM processing_jobs WHERE asset = ANY({}) "
        "ORDER BY asset, step, created_at DESC) latest WHERE status <> 'skipped' GROUP BY asset", asset_ids)
    return {r["asset"]: round(float(r["p"] or 0), 1) for r in rows}


async def asset_detail(tenant: UUID | None, asset_id: UUID) -> dict[str, Any] | None:
    where = Where().add("a.id = {}", asset_id)
    if tenant:
        where.add("a.tenant = {}", tenant)
    rows = await Asset.raw(f"SELECT a.*, t.slug AS tenant_slug FROM assets a JOIN tenants t ON t.id = a.tenant"
                           f"{where.sql()}", *where.args)
    if not rows:
        return None
    row = rows[0]
    if isinstance(row.get("metadata"), str):
        row["metadata"] = msgspec.json.decode(row["metadata"])
    return row


async def renditions(asset_id: UUID) -> list[dict[str, Any]]:
    return await raw("SELECT kind, name, content_type, size_bytes, width, height, duration_seconds, bitrate, "
                     "storage_key FROM renditions WHERE asset = {} ORDER BY kind, name", asset_id)


async def transcript_for(*, asset_id: UUID | None = None, session_id: UUID | None = None) -> dict[str, Any] | None:
    column, value = ("asset", asset_id) if asset_id else ("session", session_id)
    rows = await raw(f"SELECT language, text, segments, model FROM transcripts WHERE {column} = {{}} "
                     "ORDER BY created_at DESC LIMIT 1", value)
    if not rows:
        return None
    row = rows[0]
    if isinstance(row["segments"], str):
        row["segments"] = msgspec.json.decode(row["segments"])
    return row

