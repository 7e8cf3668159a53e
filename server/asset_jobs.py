"""Core jobs on assets."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from mediasvc.tables import Asset

log = logging.getLogger("mediasvc.assets")

PURGE_JOB = "assets.purge_storage"


async def purge_storage(ctx: dict[str, Any], *, asset_id: str) -> dict[str, int]:
    """Remove every stored object of a soft-deleted asset (original and renditions). Safe to re-run."""
    row = await Asset.select(Asset.storage_key, Asset.status).where(Asset.id == UUID(asset_id)).first()
    if row is None or row["status"] != "deleted" or not row["storage_key"]:
        return {"deleted": 0}
    prefix = row["storage_key"].rsplit("/", 1)[0] + "/"
    storage = ctx["storage"]
    keys = [info.key async for info in storage.list(prefix)]
    for key in keys:
        await storage.delete(key)
    log.info("purged %d objects of asset %s", len(keys), asset_id)
    return {"deleted": len(keys)}
