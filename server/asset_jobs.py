"""Core jobs on assets."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from mediasvc.tables import Asset, ProcessingJob

log = logging.getLogger("mediasvc.assets")

PURGE_JOB = "assets.purge_storage"


async def skip_open_steps(asset_id: UUID) -> int:
    """A deleted asset's ``queued`` and ``running`` steps become ``skipped`` ("asset deleted"): nothing is left to
    run them, and a running one drops its output (its step is no longer ``running``). Returns how many."""
    rows = await ProcessingJob.update({
        ProcessingJob.status: "skipped", ProcessingJob.error: "asset deleted",
        ProcessingJob.completed_at: datetime.now(timezone.utc),
    }).where(ProcessingJob.asset == asset_id, ProcessingJob.status.is_in(["queued", "running"])).returning(
        ProcessingJob.id)
    return len(rows)


async def purge_storage(ctx: dict[str, Any], *, asset_id: str) -> dict[str, int]:
    """Remove every stored object of a soft-deleted asset (original and renditions). Safe to re-run."""
    row = await Asset.select(Asset.storage_key, Asset.status).where(Asset.id == UUID(asset_id)).first()
    if row is None or row["status"] != "deleted":
        return {"deleted": 0}
    await skip_open_steps(UUID(asset_id))  # also for assets deleted before deleting did it
    if not row["storage_key"]:
        return {"deleted": 0}
    prefix = row["storage_key"].rsplit("/", 1)[0] + "/"
    storage = ctx["storage"]
    keys = [info.key async for info in storage.list(prefix)]
    for key in keys:
        await storage.delete(key)
    log.info("purged %d objects of asset %s", len(keys), asset_id)
    return {"deleted": len(keys)}
