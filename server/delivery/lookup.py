"""What the HLS proxy needs to know about an asset, cached for a few seconds per process.

Segment requests arrive by the hundred per viewer; one row lookup each would make the database the bottleneck.
A deleted asset keeps playing for at most ``TTL_SECONDS`` on an instance that cached it (tokens are short-lived
anyway).
"""

from __future__ import annotations

import time
from posixpath import dirname
from uuid import UUID

import msgspec

from mediasvc.tables import Asset, Rendition

TTL_SECONDS = 10.0
SHORT_TTL_SECONDS = 1.0  # an asset still processing gains rungs (and turns ready) any moment: ask again soon
MAX_ENTRIES = 10_000


class PlaybackTarget(msgspec.Struct, frozen=True):
    asset_id: UUID
    tenant_id: UUID
    status: str
    profile: str
    hls_base: str | None  # storage key of the folder holding master.m3u8, None before HLS exists


_cache: dict[UUID, tuple[float, PlaybackTarget | None]] = {}


async def playback_target(asset_id: UUID) -> PlaybackTarget | None:
    now = time.monotonic()
    hit = _cache.get(asset_id)
    if hit and hit[0] > now:
        return hit[1]
    target = await _load(asset_id)
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    settled = target is not None and target.hls_base is not None and target.status == "ready"
    ttl = TTL_SECONDS if settled else SHORT_TTL_SECONDS
    _cache[asset_id] = (now + ttl, target)
    return target


def playlist_cache_control(target: PlaybackTarget, max_age: int) -> str:
    """Playlists of an asset still processing change (the master gains rungs): players must not keep them."""
    return f"private, max-age={max_age}" if target.status == "ready" else "no-cache"


def cached_target(asset_id: UUID) -> PlaybackTarget | None:
    """The cached entry if it is fresh, without touching the database (None: unknown or stale)."""
    hit = _cache.get(asset_id)
    return hit[1] if hit and hit[0] > time.monotonic() else None


def forget(asset_id: UUID) -> None:
    _cache.pop(asset_id, None)


async def _load(asset_id: UUID) -> PlaybackTarget | None:
    row = await Asset.select(Asset.id, Asset.tenant, Asset.status, Asset.profile).where(Asset.id == asset_id).first()
    if row is None or row["status"] == "deleted":
        return None
    master = await Rendition.select(Rendition.storage_key).where(
        Rendition.asset == asset_id, Rendition.kind == "hls", Rendition.name == "master").first()
    return PlaybackTarget(asset_id=row["id"], tenant_id=row["tenant"], status=row["status"], profile=row["profile"],
                          hls_base=dirname(master["storage_key"]) if master else None)
