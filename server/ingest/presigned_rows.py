"""The ``uploads`` rows of presigned uploads: reading them (tenant-scoped), moving their status, and removing the
objects they wrote. Shared by every step of the flow (``mediasvc.ingest.presigned``)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from mediasvc.errors import Conflict, NotFound
from mediasvc.ingest.presigned_s3 import S3Multipart
from mediasvc.ingest.presigned_shapes import UploadView
from mediasvc.tables import Upload

log = logging.getLogger("mediasvc.uploads")

CONFIRM_GRACE_SECONDS = 900  # confirm is accepted this long after the URL expired; then the upload expires
# A live confirm touches its claim every CLAIM_TOUCH_SECONDS (hashing a large object takes a while); a 'confirming'
# claim not touched for STALE_CONFIRM_SECONDS was left by a killed instance, and the next confirm retakes it.
STALE_CONFIRM_SECONDS = 120
CLAIM_TOUCH_SECONDS = 20


def utcnow() -> datetime:
    return datetime.now(UTC)


def loads_metadata(value: Any) -> dict[str, Any]:
    """A row's JSONB ``metadata`` as a dict (raw queries return it as a string)."""
    if isinstance(value, str):
        return json.loads(value)
    return dict(value or {})


def to_view(row: dict[str, Any]) -> UploadView:
    return UploadView(
        id=row["id"], method=row["method"], status=row["status"], profile=row["profile"],
        original_name=row["original_name"], content_type=row["content_type"], offset=row["offset"],
        length=row["length"], asset_id=row["asset"], expires_at=row["expires_at"], created_at=row["created_at"],
    )


async def get_upload_row(upload_id: UUID, tenant_id: UUID) -> dict[str, Any]:
    """The upload if it belongs to the tenant; another tenant's upload is a 404, like a missing one."""
    row = await Upload.select().where(Upload.id == upload_id, Upload.tenant == tenant_id).first()
    if row is None:
        raise NotFound(f"Upload {upload_id} not found", details={"upload_id": str(upload_id)})
    row["metadata"] = loads_metadata(row["metadata"])
    return row


async def presigned_row(upload_id: UUID, tenant_id: UUID) -> dict[str, Any]:
    """The tenant's upload, which must be a presigned one (409 for a tus upload)."""
    row = await get_upload_row(upload_id, tenant_id)
    if row["method"] != "presigned":
        raise Conflict(f"Upload {upload_id} is a {row['method']} upload, not a presigned one",
                       details={"upload_id": str(upload_id), "method": row["method"]})
    return row


async def update_uploads(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Raw SQL on ``uploads`` (conditional updates are the flow's claims and locks)."""
    return await Upload.raw(sql, *args)


async def set_status(upload_id: UUID, status: str, *, extra: dict[str, Any] | None = None,
                     when: tuple[str, ...] | None = None) -> bool:
    """Move to ``status`` (only from a status in ``when``, if given); merge ``extra`` into metadata."""
    condition = ""
    args: list[Any] = [status, json.dumps(extra or {}), upload_id]
    if when:
        condition = " AND status = ANY({})"
        args.append(list(when))
    rows = await update_uploads(
        "UPDATE uploads SET status = {}, metadata = metadata || {}::jsonb, updated_at = now() "
        "WHERE id = {}" + condition + " RETURNING id", *args)
    return bool(rows)


async def remove_objects(services_storage: Any, row: dict[str, Any]) -> None:
    """Delete the object and abort an unfinished multipart upload; errors are logged, never raised."""
    meta = row["metadata"]
    multipart = meta.get("multipart")
    if multipart and not multipart.get("completed"):
        s3 = S3Multipart.for_storage(services_storage)
        if s3 is not None:
            try:
                await s3.abort(row["storage_key"], multipart["upload_id"])
            except Exception:
                log.warning("could not abort multipart upload of %s", row["id"], exc_info=True)
    try:
        await services_storage.delete(row["storage_key"])
    except Exception:
        log.warning("could not delete the object of upload %s", row["id"], exc_info=True)
