"""Turning stored bytes into an Asset: one transaction writes the row, the `media.uploaded` event and the profile's
step rows (``queued``); after the commit the first step is enqueued. A crash between the two leaves queued steps
that ``processing.recover`` (mediasvc.processing_recovery) enqueues. Every upload path ends here."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

from mediasvc import events
from mediasvc.processing import create_steps, start_next_step
from mediasvc.profiles import Profile
from mediasvc.services import Services
from mediasvc.storage_keys import original_key
from mediasvc.tables import Asset


def reserve_key(tenant_slug: str, profile: Profile, extension: str) -> tuple[UUID, str]:
    """An asset id and the key its original will have, chosen before the first byte is written (no copy later)."""
    asset_id = uuid4()
    return asset_id, original_key(tenant_slug, profile.kind, asset_id, extension)


async def create_uploaded_asset(
    services: Services,
    *,
    asset_id: UUID,
    tenant_id: UUID,
    profile_name: str,
    original_name: str,
    storage_key: str,
    size_bytes: int,
    sha256: str,
    content_type: str,
    method: str,
    owner: str = "",
    metadata: dict[str, Any] | None = None,
) -> UUID:
    """Record a complete original with its step rows and `media.uploaded`, then start the first step. Returns the
    id."""
    profile = services.settings.profiles[profile_name]
    now = datetime.now(timezone.utc)
    async with Asset._meta.db.transaction():
        await Asset.insert(Asset(
            id=asset_id, tenant=tenant_id, owner=owner, profile=profile_name, kind=profile.kind,
            original_name=original_name, content_type=content_type, size_bytes=size_bytes, sha256=sha256,
            bucket=profile.bucket, storage_key=storage_key, status="uploaded", metadata=metadata or {},
            created_at=now, updated_at=now,
        ))
        await events.emit(events.MEDIA_UPLOADED, {
            "asset_id": str(asset_id), "profile": profile_name, "kind": profile.kind, "size_bytes": size_bytes,
            "sha256": sha256, "original_name": original_name, "method": method,
        }, tenant_id=tenant_id)
        await create_steps(services.settings, services.host, asset_id)
    services.metrics.uploads.labels(profile=profile_name, method=method).inc()
    await start_next_step(services.queue, services.settings, services.host, asset_id)
    await events.kick(services.queue)
    return asset_id
