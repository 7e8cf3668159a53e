"""A worker killed mid-transcode: real ``mediasvc worker`` processes on Redis, one SIGKILLed while the ``mp4`` step
runs; a new worker retries the step (its heartbeat lapsed) and the asset ends ``ready`` with exactly one set of
renditions, in the table and in storage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mediasvc.app import create_app
from mediasvc.auth import get_or_create_tenant
from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
from mediasvc.tables import Asset, Event, ProcessingJob, Rendition
from tests.conftest import REDIS_URL, serve_in_process
from tests.test_mp4_remux import encode

ROOT = Path(__file__).resolve().parent.parent
PROFILE = {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "clips", "steps": ["mp4", "hls"]}
HEARTBEAT_SECONDS = 2  # a killed worker's job counts as lost this soon (production: 30 s)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    # long enough that the mp4 step (preset medium) runs for a few seconds even on a fast machine; 4:4:4, so the
    # mp4 step re-encodes it (a browser-ready H.264 4:2:0 upload is copied in a flash: tests/test_mp4_remux.py)
    return encode(tmp_path_factory.mktemp("recovery") / "clip.mp4", seconds=12, width=640, height=360, fps=25,
                  pix_fmt="yuv444p", options={"preset": "ultrafast"}, noise=False)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | env
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mediasvc.cli", "worker"], env=full_env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_for(predicate, timeout: float, what: str, workers=()):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if (found := await predicate()) is not None:
            return found
        if any(w.poll() is not None for w in workers):
            raise AssertionError(f"a worker exited while waiting for {what}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_worker_killed_mid_transcode_is_recovered(make_settings, database_url, tmp_path, source):
    queue_name = f"recovery-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "data"
    settings = make_settings(**{"data_dir": str(data_dir), "queue.name": queue_name,
                                "queue.heartbeat_seconds": HEARTBEAT_SECONDS, "profiles": {"clip": PROFILE}})
    env = {"MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_QUEUE__URL": REDIS_URL,
           "MEDIASVC_QUEUE__NAME": queue_name, "MEDIASVC_QUEUE__HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
           "MEDIASVC_DATA_DIR": str(data_dir), "MEDIASVC_SECRET_KEY": "test-secret-key",
           "MEDIASVC_PROFILES": json.dumps({"clip": PROFILE}), "MEDIASVC_LOG_FORMAT": "text"}
    log = tmp_path / "workers.log"
    app = create_app(settings)  # the API side: creates the asset and enqueues its first step; runs no jobs
    async with serve_in_process(app):
        services = app.state.services
        first = start_worker(env, log)
        second = None
        try:
            data = source.read_bytes()
            tenant = await get_or_create_tenant(f"rec-{uuid.uuid4().hex[:6]}")
            asset_id, key = reserve_key("rec", settings.profiles["clip"], "mp4")
            await services.storage.put(key, data)
            await create_uploaded_asset(services, asset_id=asset_id, tenant_id=tenant, profile_name="clip",
                                        original_name="clip.mp4", storage_key=key, size_bytes=len(data),
                                        sha256=hashlib.sha256(data).hexdigest(), content_type="video/mp4",
                                        method="test")

            async def mp4_under_way():
                row = await ProcessingJob.select().where(ProcessingJob.asset == asset_id,
                                                         ProcessingJob.step == "mp4").first()
                return row if row["status"] == "running" and 0 < row["progress"] < 90 else None

            running = await wait_for(mp4_under_way, 90, "the mp4 step to make progress", [first])
            first.send_signal(signal.SIGKILL)  # mid-transcode: no cleanup, no status update
            first.wait()
            assert running["attempts"] == 1
            assert (await Asset.select(Asset.status).where(Asset.id == asset_id).first())["status"] == "processing"

            second = start_worker(env, log)

            async def finished():
                row = await Asset.select().where(Asset.id == asset_id).first()
                return row if row["status"] in ("ready", "failed") else None

            asset = await wait_for(finished, 120, "the asset to finish", [second])
            assert asset["status"] == "ready", (asset["error"], log.read_text()[-3000:])
        finally:
            for worker in (first, second):
                if worker is not None:
                    stop(worker)

        jobs = {j["step"]: j for j in await ProcessingJob.select().where(ProcessingJob.asset == asset_id)}
        assert {s: (j["status"], j["progress"]) for s, j in jobs.items()} == {
            "mp4": ("succeeded", 100.0), "hls": ("succeeded", 100.0)}
        # retried once, not looped; hls runs beside mp4 (both need only the probe), so the kill may have hit it too
        assert jobs["mp4"]["attempts"] == 2 and jobs["hls"]["attempts"] in (1, 2)

        renditions = await Rendition.select().where(Rendition.asset == asset_id)
        names = sorted((r["kind"], r["name"]) for r in renditions)
        assert names == [("hls", "360p"), ("hls", "master"), ("mp4", "default")]  # one set, no duplicates

        # storage holds exactly the original and that one set: no second copy, no partial or temp file
        folder = key.rsplit("/", 1)[0]
        expected = {key, *(r["storage_key"] for r in renditions)}
        playlist = (await services.storage.get_bytes(f"{folder}/hls/360p/index.m3u8")).decode()
        expected |= {f"{folder}/hls/360p/{line}" for line in playlist.splitlines() if line.endswith(".ts")}
        root = Path(str(services.storage.local_path(key))[:-len(key)])
        on_disk = {p.relative_to(root).as_posix() for p in (root / folder).rglob("*") if p.is_file()}
        assert on_disk == expected

        events = await Event.raw("SELECT type FROM events WHERE payload->>'asset_id' = {} ORDER BY created_at",
                                 str(asset_id))
        assert [e["type"] for e in events].count("media.processed") == 1
        assert "media.processing_failed" not in [e["type"] for e in events]
