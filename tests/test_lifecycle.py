"""Lifecycle cron jobs on a real database and the local backend: originals deleted after their profile's retention
(only for ready assets, renditions kept), the orphan sweep (asset folders, sessions, uploads in flight, the grace
period), and the schedule of every lifecycle job."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from mediasvc.jobs.worker import worker_settings
from mediasvc.app import create_app
from mediasvc.auth import get_or_create_tenant
from mediasvc.lifecycle import delete_expired_originals, owner_of, sweep_orphans
from mediasvc.plugins import PluginHost
from mediasvc.processing import PermanentProcessingError
from mediasvc.profiles import Profile
from mediasvc.settings import SettingsError, load_settings
from mediasvc.tables import Asset, Event, RecordingSession, Rendition, Upload
from mediasvc.testing import make_context
from mediasvc.worker_options import housekeeping_options
from tests.conftest import serve_in_process

VIDEO = {"kind": "video", "formats": ["mp4"], "max_bytes": 10_000_000, "bucket": "clips"}


@pytest.fixture
async def services(make_settings):
    suffix = uuid.uuid4().hex[:8]
    settings = make_settings(**{
        "profiles": {f"raw_{suffix}": {**VIDEO, "original_retention_days": 7}, f"keep_{suffix}": VIDEO},
        "plugins.lifecycle.orphan_grace_hours": 1,
        "plugins.lifecycle.batch_size": 2,  # several batches even with a handful of objects
    })
    app = create_app(settings)
    async with serve_in_process(app):
        yield app.state.services, suffix


def job_ctx(services) -> dict[str, Any]:
    return {"settings": services.settings, "host": services.host, "storage": services.storage}


async def make_asset(services, profile: str, *, status: str, age_days: float, tenant: uuid.UUID) -> dict[str, Any]:
    """An asset with an original and two renditions (an MP4 and an HLS segment) in storage."""
    asset_id = uuid.uuid4()
    folder = f"lc/video/{asset_id}"
    keys = {"original": f"{folder}/original.mp4", "mp4": f"{folder}/video.mp4",
            "segment": f"{folder}/hls/360p/seg_000.ts"}
    for key in keys.values():
        await services.storage.put(key, b"bytes of " + key.encode())
    created = datetime.now(timezone.utc) - timedelta(days=age_days)
    await Asset.insert(Asset(id=asset_id, tenant=tenant, profile=profile, kind="video", storage_key=keys["original"],
                             status=status, created_at=created, size_bytes=10))
    await Rendition.insert(Rendition(asset=asset_id, kind="mp4", name="default", storage_key=keys["mp4"],
                                     content_type="video/mp4"))
    return {"id": asset_id, **keys}


async def exists(services, key: str) -> bool:
    return await services.storage.head(key) is not None


async def test_originals_are_deleted_after_retention_only_for_ready_assets(services):
    services, suffix = services
    raw, keep = f"raw_{suffix}", f"keep_{suffix}"
    tenant = await get_or_create_tenant(f"lc-{suffix}")
    expired = await make_asset(services, raw, status="ready", age_days=8, tenant=tenant)
    processing = await make_asset(services, raw, status="processing", age_days=8, tenant=tenant)
    failed = await make_asset(services, raw, status="failed", age_days=8, tenant=tenant)
    recent = await make_asset(services, raw, status="ready", age_days=2, tenant=tenant)
    forever = await make_asset(services, keep, status="ready", age_days=400, tenant=tenant)
    passthrough = await make_asset(services, raw, status="ready", age_days=8, tenant=tenant)
    await Rendition.insert(Rendition(asset=passthrough["id"], kind="image", name="large",  # served as is
                                     storage_key=passthrough["original"], content_type="video/mp4"))

    assert await delete_expired_originals(job_ctx(services)) == {"deleted": 1}

    assert not await exists(services, expired["original"])
    assert await exists(services, expired["mp4"]) and await exists(services, expired["segment"])
    assert len(await Rendition.select().where(Rendition.asset == expired["id"])) == 1
    row = await Asset.select().where(Asset.id == expired["id"]).output(load_json=True).first()
    assert row["status"] == "ready"
    deleted_at = datetime.fromisoformat(row["metadata"]["original_deleted_at"])
    assert abs((datetime.now(timezone.utc) - deleted_at).total_seconds()) < 60
    for kept in (processing, failed, recent, forever, passthrough):
        assert await exists(services, kept["original"]), kept
        meta = (await Asset.select(Asset.metadata).where(Asset.id == kept["id"]).output(load_json=True).first())
        assert "original_deleted_at" not in meta["metadata"]

    events = await Event.raw("SELECT type, tenant, payload FROM events WHERE payload->>'asset_id' = {}",
                             str(expired["id"]))
    assert [e["type"] for e in events] == ["media.original_deleted"]
    payload = events[0]["payload"]
    payload = payload if isinstance(payload, dict) else json.loads(payload)
    assert payload["storage_key"] == expired["original"] and payload["retention_days"] == 7
    assert events[0]["tenant"] == tenant

    assert await delete_expired_originals(job_ctx(services)) == {"deleted": 0}  # idempotent
    # once processing finishes the waiting asset qualifies too
    await Asset.update({Asset.status: "ready"}).where(Asset.id == processing["id"])
    assert await delete_expired_originals(job_ctx(services)) == {"deleted": 1}
    assert not await exists(services, processing["original"])


async def test_a_processor_refuses_an_original_deleted_by_retention():
    from mediasvc_video.media import local_input

    ctx = await make_context(b"", kind="video", extension="mp4",
                             metadata={"original_deleted_at": "2026-01-01T00:00:00+00:00"})
    with pytest.raises(PermanentProcessingError, match="retention"):  # permanent: no retries on a missing file
        async with local_input(ctx):
            pass


def test_retention_must_be_a_positive_number_of_days():
    assert Profile(**VIDEO).original_retention_days is None
    with pytest.raises(SettingsError, match="original_retention_days"):
        load_settings(env={}, secret_key="x", profiles={"bad": {**VIDEO, "original_retention_days": 0}})


def age(services, key: str, hours: float) -> None:
    path = services.storage.local_path(key)
    stamp = time.time() - hours * 3600
    os.utime(path, (stamp, stamp))


async def test_orphan_sweep_deletes_only_old_unreferenced_objects(services):
    services, suffix = services
    tenant = await get_or_create_tenant(f"orph-{suffix}")
    live = await make_asset(services, f"keep_{suffix}", status="ready", age_days=30, tenant=tenant)
    gone = await make_asset(services, f"keep_{suffix}", status="deleted", age_days=30, tenant=tenant)
    session_id, upload_id, reserved_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await RecordingSession.insert(RecordingSession(id=session_id, tenant=tenant))
    in_flight_key = f"lc/video/{reserved_id}/original.mp4"  # an upload writes where its asset will be
    await Upload.insert(Upload(id=upload_id, tenant=tenant, method="tus", profile=f"keep_{suffix}",
                               status="uploading", storage_key=in_flight_key))
    dead_upload = uuid.uuid4()
    await Upload.insert(Upload(id=dead_upload, tenant=tenant, method="tus", profile=f"keep_{suffix}",
                               status="expired", storage_key=f"lc/video/{uuid.uuid4()}/original.mp4"))
    keep = {
        live["original"], live["mp4"], live["segment"], f"lc/video/{live['id']}/hls/360p/index.m3u8",
        f"lc/sessions/{session_id}/chunk_0000.webm", in_flight_key, f"lc/tus/{upload_id}/seg-00000000000000000000",
        "notes/readme.txt",  # outside the service's key layouts: never touched
    }
    orphans = {
        gone["original"], gone["mp4"], gone["segment"],
        f"lc/video/{uuid.uuid4()}/original.mp4", f"lc/video/{uuid.uuid4()}/hls/720p/seg_003.ts",
        f"lc/sessions/{uuid.uuid4()}/chunk_0001.webm", f"lc/tus/{dead_upload}/seg-00000000000000000000",
    }
    for key in keep | orphans:
        if not await exists(services, key):
            await services.storage.put(key, b"x")
        age(services, key, hours=3)
    young = f"lc/video/{uuid.uuid4()}/original.mp4"  # written a moment ago: maybe an upload about to register
    await services.storage.put(young, b"x")

    counts = await sweep_orphans(job_ctx(services))
    assert counts == {"scanned": len(keep) + len(orphans) + 1, "young": 1, "unrecognized": 1,
                      "deleted": len(orphans)}
    remaining = {info.key async for info in services.storage.list("")}
    assert remaining == keep | {young}
    assert (await sweep_orphans(job_ctx(services)))["deleted"] == 0


def test_owner_of_follows_the_key_layouts():
    asset_id = uuid.uuid4()
    assert owner_of(f"t/video/{asset_id}/hls/720p/seg_001.ts") == owner_of(f"t/video/{asset_id}/original.mp4")
    assert owner_of(f"t/video/{asset_id}/original.mp4").area == "asset"
    assert owner_of(f"t/sessions/{asset_id}/chunk_0001.webm").area == "session"
    assert owner_of(f"t/tus/{asset_id}/data").area == "upload"
    assert owner_of("t/video/not-a-uuid/original.mp4") is None
    assert owner_of(f"t/video/{asset_id}") is None  # a folder name, not an object inside one
    assert owner_of("secret_key") is None


def test_every_lifecycle_job_is_scheduled(settings):
    options = worker_settings(settings)
    assert options["cron_jobs"] == []  # they run on the housekeeping queue, never behind a transcode
    housekeeping = housekeeping_options(settings, PluginHost(settings), options["queue"])
    assert housekeeping["queue"].name == f"{settings.queue.name}-housekeeping"
    crons = {cron.function.__qualname__: cron for cron in housekeeping["cron_jobs"]}
    assert {"lifecycle.delete_originals", "lifecycle.sweep_orphans", "uploads.expire", "tus.expire",
            "processing.sweep_stale", "processing.recover", "events.dispatch"} <= set(crons)
    assert all(cron.timeout and cron.timeout >= 60 for cron in crons.values())
    assert crons["processing.sweep_stale"].cron.split()[-1] == "*/15"  # a killed worker's step comes back fast
