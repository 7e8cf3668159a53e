"""Removing what presigned uploads left behind: ``abort`` (the client's) and ``expire_presigned_uploads`` (the
``uploads.expire`` cron job, for uploads never confirmed, and a last sweep of aborted and failed ones)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from mediasvc.errors import Conflict
from mediasvc.ingest.presigned_rows import (
    CONFIRM_GRACE_SECONDS,
    STALE_CONFIRM_SECONDS,
    get_upload_row,
    loads_metadata,
    log,
    presigned_row,
    remove_objects,
    set_status,
    to_view,
    update_uploads,
)
from mediasvc.ingest.presigned_shapes import UploadView
from mediasvc.services import Services

EXPIRE_JOB = "uploads.expire"
EXPIRE_BATCH = 500
_SWEPT = json.dumps({"swept": True})


async def abort(services: Services, tenant_id: UUID, upload_id: UUID) -> UploadView:
    """Remove what was written. Aborting an upload that already ended (aborted, expired, failed) changes nothing;
    a confirmed or confirming one is a 409."""
    row = await presigned_row(upload_id, tenant_id)
    if row["status"] in ("complete", "confirming"):
        raise Conflict(f"Upload {upload_id} is {row['status']}: delete the asset instead",
                       details={"status": row["status"]})
    if await set_status(upload_id, "aborted", when=("uploading",)):
        await remove_objects(services.storage, row)
    elif (current := await get_upload_row(upload_id, tenant_id))["status"] in ("complete", "confirming"):
        raise Conflict(f"Upload {upload_id} is {current['status']}", details={"status": current["status"]})
    return to_view(await get_upload_row(upload_id, tenant_id))


async def expire_presigned_uploads(ctx: dict[str, Any]) -> dict[str, int]:
    """The ``uploads.expire`` cron job: uploads not confirmed ``CONFIRM_GRACE_SECONDS`` after their URL expired
    become ``expired`` and their objects are removed. Aborted and failed uploads get their objects removed once
    more after the URL expired (a client may have PUT again with the still-valid URL). Safe to re-run."""
    storage = ctx["storage"]
    expired = swept = 0
    while True:
        rows = await update_uploads(
            "UPDATE uploads SET status = 'expired', updated_at = now(), "
            "metadata = metadata || {}::jsonb "
            "WHERE id IN (SELECT u.id FROM uploads u WHERE u.method = 'presigned' "
            "  AND u.expires_at < now() - {} * interval '1 second' AND (u.status = 'uploading' "
            "  OR (u.status = 'confirming' AND u.updated_at < now() - {} * interval '1 second' "
            "      AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.id::text = u.metadata->>'asset_id'))) "
            "  LIMIT {} FOR UPDATE SKIP LOCKED) "
            "RETURNING id, storage_key, metadata",
            _SWEPT, CONFIRM_GRACE_SECONDS, STALE_CONFIRM_SECONDS, EXPIRE_BATCH)
        for row in rows:
            row["metadata"] = loads_metadata(row["metadata"])
            await remove_objects(storage, row)
        expired += len(rows)
        if len(rows) < EXPIRE_BATCH:
            break
    while True:
        rows = await update_uploads(
            "UPDATE uploads SET updated_at = now(), metadata = metadata || {}::jsonb "
            "WHERE id IN (SELECT u.id FROM uploads u WHERE u.method = 'presigned' "
            "  AND u.status IN ('aborted', 'failed') AND u.expires_at < now() "
            "  AND NOT (u.metadata ? 'swept') LIMIT {} FOR UPDATE SKIP LOCKED) "
            "RETURNING id, storage_key, metadata", _SWEPT, EXPIRE_BATCH)
        for row in rows:
            row["metadata"] = loads_metadata(row["metadata"])
            await remove_objects(storage, row)
        swept += len(rows)
        if len(rows) < EXPIRE_BATCH:
            break
    if expired or swept:
        log.info("presigned uploads: %d expired, %d swept", expired, swept)
    return {"expired": expired, "swept": swept}
