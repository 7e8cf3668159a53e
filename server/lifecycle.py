"""Lifecycle cron jobs: originals past their profile's retention, and orphaned storage objects.

* ``lifecycle.delete_originals``: for a profile with ``original_retention_days``, the original of an asset that is
  ``ready`` and older than that (counted from its upload) is deleted from storage; renditions stay. The asset keeps
  its row and records ``metadata["original_deleted_at"]``; ``media.original_deleted`` is emitted in the same
  transaction. An asset still processing, failed, or whose original a rendition points at is never touched.
* ``lifecycle.sweep_orphans``: objects older than ``orphan_grace_hours`` that belong to nothing live are deleted,
  in batches. Ownership follows the key layout (``mediasvc.storage_keys``, ``mediasvc.ingest.tus_store``): a whole
  ``{tenant}/{kind}/{asset_id}/`` folder (original, ``hls/`` segments, thumbnails...) belongs to its asset unless
  the asset is ``deleted``; ``{tenant}/sessions/{session_id}/`` to its recording session; ``{tenant}/tus/{upload_id}/``
  to its upload until it expired, was aborted or failed; and a key an upload in flight will complete into to that
  upload. Keys outside these layouts are never deleted (counted as ``unrecognized``).

Expired uploads (``uploads.expire``, ``tus.expire``) and steps whose worker died (``processing.sweep_stale``) have
their own jobs; ``mediasvc.core_plugin`` schedules all four. Settings: ``[plugins.lifecycle]`` (``LifecycleSettings``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import Meta

from mediasvc import events
from mediasvc.tables import Asset

log = logging.getLogger("mediasvc.lifecycle")

SECTION = "lifecycle"
RETENTION_JOB = "lifecycle.delete_originals"
ORPHANS_JOB = "lifecycle.sweep_orphans"
DEAD_UPLOAD_STATUSES = ("expired", "aborted", "failed")
DELETE_CONCURRENCY = 16


class LifecycleSettings(msgspec.Struct, forbid_unknown_fields=True):
    """``[plugins.lifecycle]``: env ``MEDIASVC_PLUGINS__LIFECYCLE__<KEY>``."""

    orphan_grace_hours: Annotated[float, Meta(ge=0)] = 24.0  # younger objects are never orphans (uploads in flight)
    batch_size: Annotated[int, Meta(ge=1, le=10_000)] = 500  # rows / objects handled per query or delete batch


def lifecycle_settings(ctx: dict[str, Any]) -> LifecycleSettings:
    host = ctx.get("host")
    found = host.plugin_settings.get(SECTION) if host is not None else None
    return found if isinstance(found, LifecycleSettings) else LifecycleSettings()


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- originals past their retention ------------------------------------------------------------------------------


async def _expired_originals(profile: str, days: int, limit: int) -> list[dict[str, Any]]:
    return await Asset.raw(
        "SELECT a.id FROM assets a WHERE a.profile = {} AND a.status = 'ready' AND a.storage_key <> '' "
        "AND a.created_at < now() - {} * interval '1 day' AND a.metadata->>'original_deleted_at' IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM renditions r WHERE r.asset = a.id AND r.storage_key = a.storage_key) "
        "ORDER BY a.created_at LIMIT {}",
        profile, days, limit,
    )


async def _delete_original(storage: Any, asset_id: UUID, days: int) -> bool:
    """Delete one original, holding the asset row so a reprocess cannot start meanwhile. False when it no longer
    qualifies (it started processing or was deleted since it was selected)."""
    async with Asset._meta.db.transaction():
        rows = await Asset.raw(
            "SELECT id, tenant, profile, storage_key FROM assets WHERE id = {} AND status = 'ready' "
            "AND metadata->>'original_deleted_at' IS NULL FOR UPDATE",
            asset_id,
        )
        if not rows:
            return False
        row = rows[0]
        await storage.delete(row["storage_key"])  # a failure rolls back: the asset is never marked wrongly
        deleted_at = _now().isoformat()
        await Asset.raw("UPDATE assets SET metadata = metadata || {}::jsonb, updated_at = now() WHERE id = {}",
                        json.dumps({"original_deleted_at": deleted_at}), asset_id)
        await events.emit(events.MEDIA_ORIGINAL_DELETED, {
            "asset_id": str(asset_id), "profile": row["profile"], "storage_key": row["storage_key"],
            "retention_days": days, "deleted_at": deleted_at,
        }, tenant_id=row["tenant"])
    return True


async def _try_delete_original(storage: Any, asset_id: UUID, days: int) -> bool:
    """One asset whose storage refuses the delete must not hold up the others; the next run tries it again."""
    try:
        return await _delete_original(storage, asset_id, days)
    except Exception as exc:  # noqa: BLE001 - logged and retried by the next run
        log.warning("could not delete the original of asset %s: %s", asset_id, exc)
        return False


async def delete_expired_originals(ctx: dict[str, Any]) -> dict[str, int]:
    """The ``lifecycle.delete_originals`` cron job. Safe to re-run; returns how many originals were deleted."""
    settings = ctx["settings"]
    batch = lifecycle_settings(ctx).batch_size
    deleted = 0
    for name, profile in settings.profiles.items():
        days = profile.original_retention_days
        if days is None:
            continue
        while rows := await _expired_originals(name, days, batch):
            done = [await _try_delete_original(ctx["storage"], row["id"], days) for row in rows]
            deleted += sum(done)
            if len(rows) < batch or not any(done):
                break
    if deleted:
        log.info("deleted %d originals past their retention", deleted)
        if "queue" in ctx:
            await events.kick(ctx["queue"])
    _count(ctx, "original", deleted)
    return {"deleted": deleted}


# --- orphaned storage objects --------------------------------------------------------------------------------------


class Owner(msgspec.Struct, frozen=True):
    area: str  # asset, session, upload
    id: UUID


def owner_of(key: str) -> Owner | None:
    """Who a key would belong to, from its layout; None for a key outside the service's layouts."""
    parts = key.split("/")
    if len(parts) < 4 or not all(parts[:4]):
        return None
    try:
        owner_id = UUID(parts[2])
    except ValueError:
        return None
    area = {"sessions": "session", "tus": "upload"}.get(parts[1], "asset")
    return Owner(area, owner_id)


async def _ids(sql: str, ids: list[UUID]) -> set[UUID]:
    if not ids:
        return set()
    return {row["id"] for row in await Asset.raw(sql, ids)}


async def _unowned(batch: list[tuple[str, Owner]]) -> list[str]:
    """The keys of ``batch`` whose owner is gone (or deleted) and that no upload in flight will complete into."""
    def of(area: str) -> list[UUID]:
        return list({owner.id for _, owner in batch if owner.area == area})

    dead = "(" + ", ".join(f"'{status}'" for status in DEAD_UPLOAD_STATUSES) + ")"
    live = (await _ids("SELECT id FROM assets WHERE id = ANY({}) AND status <> 'deleted'", of("asset"))
            | await _ids("SELECT id FROM recording_sessions WHERE id = ANY({}) AND status <> 'deleted'",
                         of("session"))
            | await _ids(f"SELECT id FROM uploads WHERE id = ANY({{}}) AND status NOT IN {dead}", of("upload")))
    keys = [key for key, owner in batch if owner.id not in live]
    if not keys:
        return []
    reserved = {row["storage_key"] for row in await Asset.raw(
        f"SELECT storage_key FROM uploads WHERE storage_key = ANY({{}}) AND status NOT IN {dead}", keys)}
    return [key for key in keys if key not in reserved]


async def sweep_orphans(ctx: dict[str, Any]) -> dict[str, int]:
    """The ``lifecycle.sweep_orphans`` cron job: list every object once, find the orphans batch by batch, then delete
    them in batches (after the listing, so a local directory walk never sees its own deletions)."""
    options = lifecycle_settings(ctx)
    storage = ctx["storage"]
    cutoff = _now() - timedelta(hours=options.orphan_grace_hours)
    counts = {"scanned": 0, "young": 0, "unrecognized": 0, "deleted": 0}
    orphans: list[str] = []
    batch: list[tuple[str, Owner]] = []
    async for info in storage.list(""):
        counts["scanned"] += 1
        owner = owner_of(info.key)
        if owner is None:
            counts["unrecognized"] += 1
        elif info.last_modified is None or info.last_modified > cutoff:
            counts["young"] += 1
        else:
            batch.append((info.key, owner))
            if len(batch) >= options.batch_size:
                orphans += await _unowned(batch)
                batch = []
    if batch:
        orphans += await _unowned(batch)
    limit = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def delete(key: str) -> None:
        async with limit:
            await storage.delete(key)

    for start in range(0, len(orphans), options.batch_size):
        chunk = orphans[start:start + options.batch_size]
        await asyncio.gather(*(delete(key) for key in chunk))
        counts["deleted"] += len(chunk)
    log.info("orphan sweep: %(scanned)d objects scanned, %(deleted)d orphans deleted, %(young)d inside the grace "
             "period, %(unrecognized)d outside the key layouts", counts)
    _count(ctx, "orphan", counts["deleted"])
    return counts


# --- metrics -------------------------------------------------------------------------------------------------------


def _count(ctx: dict[str, Any], what: str, value: int) -> None:
    """``media_lifecycle_deleted_total{what}``, registered once on the worker's metrics registry."""
    metrics = ctx.get("metrics")
    if metrics is None:
        return
    counter = getattr(metrics, "lifecycle_deleted", None)
    if counter is None:
        from prometheus_client import Counter

        counter = Counter("media_lifecycle_deleted", "Objects deleted by lifecycle jobs (originals, orphans)",
                          ["what"], registry=metrics.registry)
        metrics.lifecycle_deleted = counter
    counter.labels(what=what).inc(value)
