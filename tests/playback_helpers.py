"""Helpers for the playback tests: a video asset processed to HLS by the real job runner."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

from mediasvc.auth import create_api_key, get_or_create_tenant
from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
from mediasvc.tables import Asset, ProcessingJob

CLIP_PROFILES = {
    "clip": {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "clips",
             "steps": ["probe", "hls", "thumbnail"]},
    "promo": {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "promos",
              "steps": ["probe", "hls"], "public": True},
}


async def tenant_with_key() -> tuple[uuid.UUID, str, str]:
    """(tenant id, tenant slug, API key) for a fresh tenant."""
    slug = f"play-{uuid.uuid4().hex[:8]}"
    key, _ = await create_api_key(slug)
    return await get_or_create_tenant(slug), slug, key


async def processed_video(services: Any, tenant_id: uuid.UUID, source: Path, *, profile: str = "clip",
                          timeout: float = 150) -> dict[str, Any]:
    """Store ``source`` as an uploaded asset of ``profile`` and wait until its processing is done."""
    settings = services.settings
    data = source.read_bytes()
    asset_id, key = reserve_key("play", settings.profiles[profile], "mp4")
    await services.storage.put(key, data)
    await create_uploaded_asset(services, asset_id=asset_id, tenant_id=tenant_id, profile_name=profile,
                                original_name=source.name, storage_key=key, size_bytes=len(data),
                                sha256=hashlib.sha256(data).hexdigest(), content_type="video/mp4", method="test")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        row = await Asset.select().where(Asset.id == asset_id).output(load_json=True).first()
        if row["status"] in ("ready", "failed") or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    if row["status"] != "ready":
        jobs = await ProcessingJob.select(ProcessingJob.step, ProcessingJob.status, ProcessingJob.error).where(
            ProcessingJob.asset == asset_id)
        raise AssertionError(f"asset {row['status']}: {row['error']}; jobs {jobs}")
    return row
