"""Housekeeping never waits behind processing (issue 15, item 11): cron jobs and event dispatch run on
``<name>-housekeeping`` with slots of their own, served by every worker beside the processing queue. With the only
processing slot held by a long step, an event is still delivered within seconds, on the Redis queue of
production and on the Postgres queue of ``mediasvc dev``."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import pytest

from mediasvc import events
from mediasvc.app import create_app
from mediasvc.auth import get_or_create_tenant
from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
from mediasvc.queue import housekeeping_queue
from mediasvc.tables import Event as EventRow
from mediasvc.tables import ProcessingJob
from mediasvc.testing import EventCollector
from mediasvc.hookspecs import hookimpl
from tests.conftest import REDIS_URL, serve_in_process

PDF = b"%PDF-1.4\n" + b"x" * 2000
DELIVERY_BOUND = 5.0  # seconds; before the housekeeping queue it waited for the step (here up to 60 s)


class Sleeper:
    """A processor that holds its slot until released (a long transcode)."""

    name = "sleeper"
    kinds = frozenset({"document"})
    timeout_seconds = 120

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, ctx):
        self.started.set()
        await asyncio.wait_for(self.release.wait(), timeout=60)
        return []


class SleeperPlugin:
    def __init__(self) -> None:
        self.sleeper = Sleeper()

    @hookimpl
    def register_processors(self, settings):
        return [self.sleeper]


@pytest.mark.parametrize("backend", ["redis", "postgres"])
async def test_an_event_is_delivered_while_the_only_processing_slot_is_busy(make_settings, database_url, backend):
    plugin, collector = SleeperPlugin(), EventCollector()
    settings = make_settings(**{
        "run_worker_in_app": True,
        "queue.url": REDIS_URL if backend == "redis" else database_url,
        "queue.name": f"hk-{uuid.uuid4().hex[:8]}",
        "queue.concurrency": 1,
        "profiles": {"slow_doc": {"kind": "document", "formats": ["pdf"], "max_bytes": 1_000_000,
                                  "bucket": "docs", "steps": ["sleeper"]}},
    })
    app = create_app(settings, extra_plugins=[plugin, collector])
    async with serve_in_process(app):
        services = app.state.services
        try:
            tenant = await get_or_create_tenant(f"hk-{uuid.uuid4().hex[:6]}")
            asset_id, key = reserve_key("hk", settings.profiles["slow_doc"], "pdf")
            await services.storage.put(key, PDF)
            await create_uploaded_asset(services, asset_id=asset_id, tenant_id=tenant, profile_name="slow_doc",
                                        original_name="slow.pdf", storage_key=key, size_bytes=len(PDF),
                                        sha256=hashlib.sha256(PDF).hexdigest(), content_type="application/pdf",
                                        method="test")
            await asyncio.wait_for(plugin.sleeper.started.wait(), timeout=30)  # the one slot is taken now

            ping = f"ping-{uuid.uuid4().hex[:8]}"
            started = time.monotonic()
            async with EventRow._meta.db.transaction():
                await events.emit("test.ping", {"ping": ping}, tenant_id=tenant)
            await events.kick(services.queue)
            await collector.wait_for("test.ping", ping=ping, timeout=DELIVERY_BOUND)
            waited = time.monotonic() - started

            step = await ProcessingJob.select().where(ProcessingJob.asset == asset_id).first()
            assert step["status"] == "running"  # delivered while the step still held the slot
            assert waited < DELIVERY_BOUND
            # the housekeeping queue has its own worker; the processing queue runs the step and no cron job
            info = await housekeeping_queue(services.queue).info()
            assert info["name"] == f"{settings.queue.name}-housekeeping" and len(info["workers"]) == 1
            assert services.worker.cron_jobs == []
        finally:
            plugin.sleeper.release.set()
