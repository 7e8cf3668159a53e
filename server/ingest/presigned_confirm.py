"""Finishing a presigned upload: S3 multipart completion, then ``confirm``, which checks the stored object (size,
sniffed type) and makes the asset, once (a second confirm returns the same asset)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any
from uuid import UUID

from mediasvc.errors import Conflict, MediaServiceError, UnsupportedMediaType, ValidationFailed
from mediasvc.ingest.assets import create_uploaded_asset
from mediasvc.ingest.presigned_rows import (
    CLAIM_TOUCH_SECONDS,
    CONFIRM_GRACE_SECONDS,
    STALE_CONFIRM_SECONDS,
    get_upload_row,
    log,
    presigned_row,
    remove_objects,
    set_status,
    to_view,
    update_uploads,
    utcnow,
)
from mediasvc.ingest.presigned_s3 import Part, S3Multipart
from mediasvc.ingest.presigned_shapes import UploadConfirmed, UploadView
from mediasvc.ingest.validation import SNIFF_BYTES, check_content, extension_of
from mediasvc.services import Services
from mediasvc.tables import Asset, Upload


async def complete_multipart(services: Services, tenant_id: UUID, upload_id: UUID) -> UploadView:
    row = await presigned_row(upload_id, tenant_id)
    if row["status"] not in ("uploading", "confirming", "complete"):
        raise Conflict(f"Upload {upload_id} is {row['status']}", details={"status": row["status"]})
    if row["status"] == "uploading":
        await _complete_multipart_row(services, row)
    return to_view(await get_upload_row(upload_id, tenant_id))


async def _complete_multipart_row(services: Services, row: dict[str, Any]) -> None:
    """Check every part is there with its planned size, then complete. Idempotent."""
    multipart = row["metadata"].get("multipart")
    if not multipart:
        raise Conflict("This upload is a single PUT, not a multipart upload")
    if multipart.get("completed"):
        return
    s3 = S3Multipart.for_storage(services.storage)
    if s3 is None:
        raise Conflict("The storage backend no longer supports this multipart upload")
    key, size = row["storage_key"], row["length"]
    parts = await s3.list_parts(key, multipart["upload_id"])
    if parts is None:  # completed by a concurrent call (or aborted): the object tells which
        info = await services.storage.head(key)
        if info is None:
            raise Conflict("The multipart upload no longer exists", details={"upload_id": str(row["id"])})
    else:
        _check_parts(parts, multipart["part_size"], multipart["parts"], size)
        await s3.complete(key, multipart["upload_id"], parts)
    multipart = {**multipart, "completed": True}
    await update_uploads("UPDATE uploads SET metadata = metadata || {}::jsonb, updated_at = now() WHERE id = {}",
                         json.dumps({"multipart": multipart}), row["id"])
    row["metadata"]["multipart"] = multipart


def _check_parts(parts: list[Part], part_size: int, count: int, size: int) -> None:
    by_number = {p.part_number: p for p in parts}
    missing = [n for n in range(1, count + 1) if n not in by_number]
    extra = sorted(n for n in by_number if not 1 <= n <= count)
    wrong = [n for n in range(1, count + 1) if n in by_number
             and by_number[n].size != min(part_size, size - (n - 1) * part_size)]
    if missing or extra or wrong:
        raise Conflict("The multipart upload is not complete: some parts are missing or have the wrong size",
                       details={"missing": missing[:100], "unexpected": extra[:100], "wrong_size": wrong[:100]})


# --- confirm ----------------------------------------------------------------------------------------------------


async def confirm(services: Services, tenant_id: UUID, upload_id: UUID) -> UploadConfirmed:
    row = await presigned_row(upload_id, tenant_id)
    if row["status"] == "complete":
        return await _confirmed(row)
    _check_confirmable(row)  # a 'confirming' row gets past it only when its claim is stale
    claimed = await update_uploads(
        "UPDATE uploads SET status = 'confirming', updated_at = now() WHERE id = {} AND "
        "(status = 'uploading' OR (status = 'confirming' AND updated_at < now() - {} * interval '1 second')) "
        "RETURNING id", upload_id, STALE_CONFIRM_SECONDS)
    if not claimed:
        row = await presigned_row(upload_id, tenant_id)
        if row["status"] == "complete":
            return await _confirmed(row)
        raise Conflict(f"Upload {upload_id} is {row['status']}", details={"status": row["status"]})
    toucher = asyncio.create_task(_touch_claim(upload_id))
    try:
        return await _confirm_claimed(services, row)
    except _Rejected as rejected:
        await remove_objects(services.storage, row)
        await set_status(upload_id, "failed", extra={"error": {"code": rejected.error.code,
                                                               "message": rejected.error.message}})
        raise rejected.error from None
    except BaseException:  # nothing decided: let the client confirm again
        await asyncio.shield(set_status(upload_id, "uploading", when=("confirming",)))
        raise
    finally:
        toucher.cancel()


async def _touch_claim(upload_id: UUID) -> None:
    """Keep this confirm's claim fresh while it works, so only a claim whose instance died goes stale."""
    while True:
        await asyncio.sleep(CLAIM_TOUCH_SECONDS)
        try:
            await update_uploads("UPDATE uploads SET updated_at = now() WHERE id = {} AND status = 'confirming'",
                                 upload_id)
        except Exception:  # noqa: BLE001 - a missed touch only shortens the claim; the next one retries
            log.warning("could not refresh the confirm claim of upload %s", upload_id, exc_info=True)


def _check_confirmable(row: dict[str, Any]) -> None:
    status = row["status"]
    if status == "confirming" and not _stale_claim(row):
        raise Conflict("This upload is being confirmed", details={"status": status})
    if status not in ("uploading", "confirming"):
        raise Conflict(f"Upload {row['id']} is {status}", details={"status": status})
    if status == "confirming":  # the first confirm came in time; the retake finishes it (or the expiry job ends it)
        return
    if row["expires_at"] is not None and row["expires_at"] + timedelta(seconds=CONFIRM_GRACE_SECONDS) < utcnow():
        raise Conflict(f"Upload {row['id']} has expired", details={"status": "expired",
                                                                  "expires_at": row["expires_at"].isoformat()})


def _stale_claim(row: dict[str, Any]) -> bool:
    """A 'confirming' claim not touched for ``STALE_CONFIRM_SECONDS``: its instance was killed mid-confirm."""
    return row["updated_at"] is not None and row["updated_at"] < utcnow() - timedelta(seconds=STALE_CONFIRM_SECONDS)


class _Rejected(Exception):
    """The bytes are wrong for good: the object is removed and the upload fails."""

    def __init__(self, error: MediaServiceError) -> None:
        super().__init__(error.message)
        self.error = error


async def _confirm_claimed(services: Services, row: dict[str, Any]) -> UploadConfirmed:
    storage, meta = services.storage, row["metadata"]
    upload_id, key, declared = row["id"], row["storage_key"], row["length"]
    asset_id = UUID(meta["asset_id"])
    existing = await Asset.select(Asset.id).where(Asset.id == asset_id).first()
    if existing is None:  # (it exists only when an earlier confirm died after creating it)
        profile_name = row["profile"]
        profile = services.settings.profiles.get(profile_name)
        if profile is None:
            raise _Rejected(ValidationFailed(f"Profile {profile_name!r} is no longer configured"))
        if meta.get("multipart"):
            await _complete_multipart_row(services, row)
        info = await storage.head(key)
        if info is None:
            raise Conflict("Nothing has been uploaded for this upload yet", details={"upload_id": str(upload_id)})
        if info.size != declared:
            raise _Rejected(ValidationFailed(
                f"The uploaded object has {info.size} bytes, not the {declared} declared",
                details={"declared": declared, "actual": info.size}))
        head = await storage.get_bytes(key, start=0, end=SNIFF_BYTES)
        try:
            sniffed = check_content(profile_name, profile, extension_of(row["original_name"]), head)
        except UnsupportedMediaType as exc:
            raise _Rejected(exc) from None
        sha256, size = await _digest(storage, key)
        if size != declared:  # replaced between the head and the read
            raise _Rejected(ValidationFailed(f"The uploaded object changed size ({size} bytes) while it was "
                                             "checked", details={"declared": declared, "actual": size}))
        await create_uploaded_asset(
            services, asset_id=asset_id, tenant_id=row["tenant"], profile_name=profile_name,
            original_name=row["original_name"], storage_key=key, size_bytes=size, sha256=sha256,
            content_type=sniffed.mime, method="presigned", owner=meta.get("owner") or "",
            metadata=meta.get("metadata") or {},
        )
    await update_uploads("UPDATE uploads SET status = 'complete', asset = {}, \"offset\" = length, "
                         "updated_at = now() WHERE id = {}", asset_id, upload_id)
    row = await Upload.select().where(Upload.id == upload_id).first()
    return await _confirmed(row)


async def _confirmed(row: dict[str, Any]) -> UploadConfirmed:
    asset = await Asset.select(Asset.id, Asset.size_bytes, Asset.sha256, Asset.content_type).where(
        Asset.id == row["asset"]).first()
    if asset is None:
        raise Conflict("The asset of this upload no longer exists", details={"upload_id": str(row["id"])})
    return UploadConfirmed(upload_id=row["id"], asset_id=asset["id"], status="complete",
                           size_bytes=asset["size_bytes"], sha256=asset["sha256"],
                           content_type=asset["content_type"])


async def _digest(storage: Any, key: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    async for chunk in storage.get_stream(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
