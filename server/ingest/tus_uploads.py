"""tus upload records: the ``uploads`` row of a tus upload, its offset commits, completion into an asset,
failure, termination and expiry. The HTTP layer is ``server/api/tus.py``; bytes are
``server/ingest/tus_store.py``.

``uploads.metadata`` of a tus upload::

    {"upload_metadata": {"filename": "a.mp4", "profile": "video_response", ...},  # as sent, decoded
     "tus": {"raw_metadata": "<the Upload-Metadata header>", "asset_id": "<reserved id>", "extension": "mp4",
             "concat": null | "partial" | "final", "partials": [...], "concat_urls": [...],
             "segments": [[offset, size, key], ...],    # object stores only
             "owner": "", "session": "", "error": "...",
             "profile_chosen_by": "metadata" | "setting" | "auto"}}   # mediasvc.ingest.tus_profile
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from mediasvc.errors import Conflict, NotFound, UnsupportedMediaType, ValidationFailed
from mediasvc.ingest.assets import create_uploaded_asset
from mediasvc.ingest.tus_errors import Gone, Locked
from mediasvc.ingest.tus_lock import upload_lock
from mediasvc.ingest.tus_settings import tus_settings
from mediasvc.ingest.tus_store import (
    Appended,
    Segment,
    TusStore,
    forget_sha_state,
    remember_sha_state,
    store_for,
)
from mediasvc.ingest.validation import SNIFF_BYTES, check_content
from mediasvc.services import Services
from mediasvc.settings import Settings
from mediasvc.tables import Asset, Upload

log = logging.getLogger("mediasvc.tus")

GONE_STATUSES = {"aborted": "terminated", "expired": "expired", "failed": "failed"}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def tus_state(row: dict[str, Any]) -> dict[str, Any]:
    return row["metadata"].setdefault("tus", {})


def is_partial(row: dict[str, Any]) -> bool:
    return tus_state(row).get("concat") == "partial"


def is_final(row: dict[str, Any]) -> bool:
    return tus_state(row).get("concat") == "final"


def max_upload_size(settings: Settings) -> int:
    """Tus-Max-Size: the largest upload any profile accepts."""
    return max((profile.max_bytes for profile in settings.profiles.values()), default=0)


def size_limit(settings: Settings, row: dict[str, Any]) -> int:
    """The most bytes this upload may hold: its length when known, else its profile's limit."""
    if row["length"] is not None:
        return row["length"]
    profile = settings.profiles.get(row["profile"])
    return profile.max_bytes if profile is not None else max_upload_size(settings)


def expiry(settings: Settings, now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=tus_settings(settings).expiration_seconds)


def expired(row: dict[str, Any], now: datetime | None = None) -> bool:
    return row["expires_at"] is not None and row["expires_at"] <= (now or utcnow())


async def load_row(upload_id: UUID, tenant_id: UUID) -> dict[str, Any]:
    """The caller's tus upload; another tenant's (or a presigned upload) is a 404 like a missing one."""
    row = await Upload.select().where(
        Upload.id == upload_id, Upload.tenant == tenant_id, Upload.method == "tus"
    ).output(load_json=True).first()
    if row is None:
        raise NotFound(f"Upload {upload_id} not found", details={"upload_id": str(upload_id)})
    if not isinstance(row["metadata"], dict):
        row["metadata"] = {}
    return row


def ensure_alive(row: dict[str, Any], now: datetime | None = None) -> None:
    """410 for an upload that was terminated, expired (whether or not the cleanup job ran yet) or failed."""
    status = row["status"]
    if status in GONE_STATUSES:
        reason = GONE_STATUSES[status]
        message = f"Upload {row['id']} was {reason}"
        if status == "failed" and tus_state(row).get("error"):
            message += f": {tus_state(row)['error']}"
        raise Gone(message, details={"upload_id": str(row["id"]), "status": status})
    if expired(row, now) and (status == "uploading" or is_partial(row)):
        raise Gone(f"Upload {row['id']} expired at {row['expires_at'].isoformat()}",
                   details={"upload_id": str(row["id"]), "status": "expired"})


async def commit_offset(settings: Settings, row: dict[str, Any], appended: Appended, *,
                        length: int | None = None) -> None:
    """Move the offset over bytes that ``TusStore.append`` made durable (with the segment list that holds
    them). Called under the upload's lock; ``row`` is updated in place."""
    old = row["offset"]
    new = old + appended.received
    now = utcnow()
    values: dict[Any, Any] = {Upload.offset: new, Upload.updated_at: now}
    if row["status"] == "uploading":
        values[Upload.expires_at] = expiry(settings, now)  # expiry counts from the last accepted chunk
    if length is not None:
        values[Upload.length] = length
    if appended.segments is not None:
        tus_state(row)["segments"] = [[s.offset, s.size, s.key] for s in appended.segments]
        values[Upload.metadata] = row["metadata"]
    if appended.received or length is not None or appended.segments is not None:
        updated = await Upload.update(values).where(Upload.id == row["id"], Upload.offset == old).returning(
            Upload.id
        )
        if not updated:  # only possible if someone wrote without the lock
            raise Conflict(f"Upload {row['id']} moved while this request wrote to it; HEAD and retry",
                           details={"upload_id": str(row["id"])})
        row.update(offset=new, updated_at=now, expires_at=values.get(Upload.expires_at, row["expires_at"]))
        if length is not None:
            row["length"] = length
    if appended.received:  # nothing new: the running hash (if any) still matches the unchanged offset
        remember_sha_state(row["id"], new, appended.sha_state)


async def save_segments(row: dict[str, Any], segments: list[Segment]) -> None:
    tus_state(row)["segments"] = [[s.offset, s.size, s.key] for s in segments]
    await Upload.update({Upload.metadata: row["metadata"], Upload.updated_at: utcnow()}).where(
        Upload.id == row["id"]
    )


async def confirm_head(settings: Settings, store: TusStore, row: dict[str, Any], before: int) -> None:
    """Once the first bytes are in (the commit that moved the offset from ``before`` past ``SNIFF_BYTES``),
    sniff them against a profile the client did not name (chosen by ``default_profile``): content it does not
    take is a 415 at once, the upload ``failed``, its bytes removed, rather than after the whole file. A named
    profile, and the last byte's commit, are checked by ``complete``, the same way."""
    offset, length = row["offset"], row["length"]
    if (row["status"] != "uploading" or tus_state(row).get("profile_chosen_by", "metadata") == "metadata"
            or not before < SNIFF_BYTES <= offset or (length is not None and offset >= length)):
        return
    profile = settings.profiles.get(row["profile"])
    if profile is None:  # complete() reports it
        return
    head = await store.read_head(row, SNIFF_BYTES)
    try:
        check_content(row["profile"], profile, tus_state(row).get("extension", ""), head)
    except UnsupportedMediaType as exc:
        await fail(store, row, exc.message)
        raise


async def complete(services: Services, store: TusStore, row: dict[str, Any]) -> UUID | None:
    """offset == length: a partial upload is simply done; anything else is sniffed, made whole at its final
    key, hashed and recorded as an asset (``create_uploaded_asset``). Idempotent: a completion cut short
    (crash) is finished by the next PATCH or by the sweep (``finish_stalled``). Wrong content is a 415, the
    upload ``failed``, bytes removed."""
    state = tus_state(row)
    now = utcnow()
    if state.get("concat") == "partial":
        await Upload.update({Upload.status: "complete", Upload.updated_at: now}).where(Upload.id == row["id"])
        row["status"] = "complete"
        forget_sha_state(row["id"])
        return None
    profile_name = row["profile"]
    profile = services.settings.profiles.get(profile_name)
    if profile is None:
        error = ValidationFailed(f"Profile {profile_name!r} is no longer configured",
                                 details={"profile": profile_name})
        await fail(store, row, error.message)
        raise error
    head = await store.read_head(row, SNIFF_BYTES)
    try:
        sniffed = check_content(profile_name, profile, state.get("extension", ""), head)
    except UnsupportedMediaType as exc:
        await fail(store, row, exc.message)
        raise
    sha256, segments = await store.finalize(row)
    if segments is not None:
        await save_segments(row, segments)
    asset_id = UUID(state["asset_id"])
    if not await Asset.exists().where(Asset.id == asset_id):
        extra = {"upload_id": str(row["id"])}
        if state.get("session"):
            extra["session"] = state["session"]
        await create_uploaded_asset(
            services, asset_id=asset_id, tenant_id=row["tenant"], profile_name=profile_name,
            original_name=row["original_name"], storage_key=row["storage_key"], size_bytes=row["length"],
            sha256=sha256, content_type=sniffed.mime, method="tus", owner=state.get("owner", ""),
            metadata=extra,
        )
    await Upload.update({
        Upload.status: "complete", Upload.asset: asset_id, Upload.content_type: sniffed.mime,
        Upload.expires_at: None, Upload.updated_at: utcnow(),
    }).where(Upload.id == row["id"])
    row.update(status="complete", asset=asset_id, content_type=sniffed.mime, expires_at=None)
    await store.cleanup(row)
    forget_sha_state(row["id"])
    return asset_id


async def fail(store: TusStore, row: dict[str, Any], message: str) -> None:
    """The upload can never become an asset: its bytes go, the row says why."""
    await store.discard(row)
    tus_state(row)["error"] = message
    await Upload.update({Upload.status: "failed", Upload.metadata: row["metadata"], Upload.expires_at: None,
                         Upload.updated_at: utcnow()}).where(Upload.id == row["id"])
    row["status"] = "failed"
    forget_sha_state(row["id"])


async def terminate(store: TusStore, row: dict[str, Any]) -> None:
    """tus termination: bytes removed, upload ``aborted`` (answered 410 from now on)."""
    if row["status"] == "complete" and not is_partial(row):
        raise Conflict(f"Upload {row['id']} is complete; delete its asset instead",
                       details={"upload_id": str(row["id"]), "asset_id": str(row["asset"])})
    await store.discard(row)
    await Upload.update({
        Upload.status: "aborted", Upload.expires_at: None, Upload.updated_at: utcnow(),
    }).where(Upload.id == row["id"])
    row["status"] = "aborted"
    forget_sha_state(row["id"])


# --- the sweep (the `tus.expire` job) -----------------------------------------------------------------------

STALLED_SECONDS = 60


async def finish_stalled(services: Services, *, now: datetime | None = None) -> dict[str, int]:
    """Complete uploads whose last byte was committed but whose completion never finished (the process died
    between the offset commit and the asset): a client that sees offset == length sends nothing more."""
    now = now or utcnow()
    rows = await Upload.select().where(
        Upload.method == "tus", Upload.status == "uploading", Upload.length.is_not_null(),
        Upload.offset == Upload.length, Upload.updated_at <= now - timedelta(seconds=STALLED_SECONDS),
    ).output(load_json=True)
    store = store_for(services.storage, services.settings)
    done = failed = 0
    for row in rows:
        try:
            async with upload_lock(services.settings.database_url, row["id"]):
                fresh = await Upload.select().where(Upload.id == row["id"]).output(load_json=True).first()
                if fresh is None or fresh["status"] != "uploading" or fresh["offset"] != fresh["length"]:
                    continue
                await complete(services, store, fresh)
                done += 1
        except Locked:
            continue
        except Exception:  # a 415 marks the upload failed itself; anything else is retried on the next run
            log.exception("could not finish tus upload %s", row["id"])
            failed += 1
    return {"finished": done, "not_finished": failed}




async def expire_uploads(storage: Any, settings: Settings, *, now: datetime | None = None) -> dict[str, int]:
    """Delete the bytes of every tus upload past its expiry (unfinished ones, and partial uploads kept for a
    concatenation) and mark it ``expired``. An upload being written right now is left for the next run."""
    now = now or utcnow()
    store = store_for(storage, settings)
    rows = await Upload.select().where(
        Upload.method == "tus", Upload.expires_at.is_not_null(), Upload.expires_at <= now,
        Upload.status.is_in(["uploading", "complete"]),
    ).output(load_json=True)
    done = skipped = 0
    for row in rows:
        try:
            async with upload_lock(settings.database_url, row["id"]):
                fresh = await Upload.select().where(Upload.id == row["id"]).output(load_json=True).first()
                if fresh is None or not expired(fresh, now):
                    continue
                kept_partial = fresh["status"] == "complete" and is_partial(fresh)
                if not (fresh["status"] == "uploading" or kept_partial):
                    continue
                await store.discard(fresh)
                await Upload.update({Upload.status: "expired", Upload.updated_at: utcnow()}).where(
                    Upload.id == fresh["id"]
                )
                forget_sha_state(fresh["id"])
                done += 1
        except Locked:
            skipped += 1
        except Exception:  # one broken upload must not stop the sweep
            log.exception("could not expire tus upload %s", row["id"])
            skipped += 1
    if done or skipped:
        log.info("expired %d tus uploads (%d left for the next run)", done, skipped)
    return {"expired": done, "skipped": skipped}


__all__ = [
    "commit_offset", "complete", "confirm_head", "ensure_alive", "expire_uploads", "fail", "load_row",
    "max_upload_size", "size_limit", "store_for", "terminate",
]
