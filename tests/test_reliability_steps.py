"""Steps that never wedge and never leak: a progress write that swallows its cancellation cannot hang a step, a
step whose progress stops moving is failed and retried with the reason, and scratch files live under the data
dir, per step, and are removed after the step and when a worker starts."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mediasvc_video import media
from mediasvc_video.media import run_with_progress

from mediasvc import step_watch
from mediasvc.app import create_app
from mediasvc.auth import get_or_create_tenant
from mediasvc.hookspecs import hookimpl
from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
from mediasvc.plugin import PermanentProcessingError, ProcessorResult, scratch_dir
from mediasvc.tables import Asset, ProcessingJob
from tests.conftest import serve_in_process

PDF = b"%PDF-1.4\n" + b"x" * 5000


class SwallowingContext:
    """A ctx whose first progress write blocks and swallows the cancellation it gets (a DB update caught
    mid-cancel), then blocks again: the race seen on a loaded worker, made certain."""

    def __init__(self) -> None:
        self.calls = 0
        self.swallowed = 0
        self.released = False  # set by the test at the end, so no task outlives it

    async def progress(self, percent: float, message: str = "") -> None:
        self.calls += 1
        while not self.released:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                self.swallowed += 1  # swallowed: the write "goes on"


async def test_a_progress_write_that_swallows_cancellation_does_not_wedge_the_step(monkeypatch):
    monkeypatch.setattr(media, "FORWARDER_GRACE", 0.5)
    ctx = SwallowingContext()

    def work(report):
        report(50.0)
        time.sleep(0.6)  # the forwarder picks 50 up and gets stuck in ctx.progress
        return "done"

    task = asyncio.create_task(run_with_progress(ctx, work))
    started = time.monotonic()
    done, _ = await asyncio.wait({task}, timeout=15)
    try:
        assert task in done, "run_with_progress hung on its progress forwarder"
        assert task.result() == "done"
        assert ctx.calls == 1 and ctx.swallowed >= 1  # the wedge really happened and was bounded
        assert time.monotonic() - started < 5
    finally:
        ctx.released = True
        task.cancel()
        await asyncio.sleep(0.5)  # the forwarder left behind ends on its stop flag once the write returns


# --- a step whose progress stops moving --------------------------------------------------------------------


class Steps:
    """Processors for the test profiles, recording what they saw."""

    def __init__(self) -> None:
        self.scratch_seen: list[tuple[Path, bool]] = []
        self.wedged_attempts = 0
        self.release = False

    @hookimpl
    def register_processors(self, settings):
        steps = self

        class Stuck:
            """Reports 10 %, then waits forever on something that never comes (the event loop stays healthy)."""
            name = "stuck"
            kinds = frozenset({"document"})
            timeout_seconds = 60

            async def run(self, ctx):
                await ctx.progress(10)
                await asyncio.sleep(3600)

        class Wedged:
            """Reports 10 %, then swallows every cancellation until the test releases it: the wedge itself."""
            name = "wedged"
            kinds = frozenset({"document"})
            timeout_seconds = 60

            async def run(self, ctx):
                steps.wedged_attempts += 1
                await ctx.progress(10)
                while not steps.release:
                    try:
                        await asyncio.sleep(0.05)
                    except asyncio.CancelledError:
                        pass
                return ProcessorResult()

        class UsesScratch:
            """Keeps a partial output in its scratch folder; fails for a document named fail.pdf."""
            name = "uses_scratch"
            kinds = frozenset({"document"})
            timeout_seconds = 30

            async def run(self, ctx):
                folder = scratch_dir(ctx)
                (folder / "partial.bin").write_bytes(b"x" * 1000)
                steps.scratch_seen.append((folder, (folder / "partial.bin").is_file()))
                await ctx.progress(100)
                if ctx.asset["original_name"] == "fail.pdf":
                    raise PermanentProcessingError("this one fails")
                return ProcessorResult()

        return [Stuck(), Wedged(), UsesScratch()]


DOC = {"kind": "document", "formats": ["pdf"], "max_bytes": 10_000_000, "bucket": "rel-docs"}


@pytest.fixture
async def worker(make_settings, tmp_path, monkeypatch):
    monkeypatch.setattr(step_watch, "CANCEL_GRACE", 0.5)
    steps = Steps()
    data_dir = tmp_path / "data"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = data_dir / "scratch" / f"{socket.gethostname()}-{int(dead.stdout)}" / "step-x"  # a killed worker's
    stale.mkdir(parents=True)
    (stale / "in-1.mp4").write_bytes(b"partial input copy")
    elsewhere = data_dir / "scratch" / "another-host-1"  # a worker on another host sharing the data dir
    elsewhere.mkdir()
    settings = make_settings(**{
        "data_dir": str(data_dir), "run_worker_in_app": True, "queue.name": f"rel-{uuid.uuid4().hex[:8]}",
        "queue.default_retries": 2, "queue.heartbeat_seconds": 1, "queue.stall_seconds": 1,
        "profiles": {"stuck": {**DOC, "steps": ["stuck"]}, "wedged": {**DOC, "steps": ["wedged"]},
                     "scratch": {**DOC, "steps": ["uses_scratch"]}},
    })
    app = create_app(settings, extra_plugins=[steps])
    async with serve_in_process(app):
        yield app.state.services, steps, {"stale": stale.parent, "elsewhere": elsewhere}
    steps.release = True


async def upload(services, profile: str, name: str = "cv.pdf") -> uuid.UUID:
    tenant = await get_or_create_tenant(f"rel-{uuid.uuid4().hex[:6]}")
    asset_id, key = reserve_key("rel", services.settings.profiles[profile], "pdf")
    await services.storage.put(key, PDF)
    return await create_uploaded_asset(
        services, asset_id=asset_id, tenant_id=tenant, profile_name=profile, original_name=name,
        storage_key=key, size_bytes=len(PDF), sha256=hashlib.sha256(PDF).hexdigest(),
        content_type="application/pdf", method="test")


async def finished(asset_id, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        row = await Asset.select().where(Asset.id == asset_id).first()
        if row["status"] in ("ready", "failed"):
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"asset still {row['status']}")


@pytest.mark.parametrize("profile", ["stuck", "wedged"])
async def test_a_step_whose_progress_stops_is_failed_and_retried_with_the_reason(worker, profile):
    services, steps, _ = worker
    asset_id = await upload(services, profile)
    asset = await finished(asset_id)
    job = await ProcessingJob.select().where(ProcessingJob.asset == asset_id).first()
    assert (job["status"], job["attempts"], job["error"]) == ("failed", 2, "no progress for 1 s")  # retried once
    assert asset["status"] == "failed" and "no progress for 1 s" in asset["error"]
    if profile == "wedged":
        assert steps.wedged_attempts == 2  # a processor that swallowed its cancellation did not hang the step


async def test_a_steps_scratch_folder_is_under_the_data_dir_and_gone_after(worker):
    services, steps, folders = worker
    root = Path(services.settings.data_dir).resolve() / "scratch"
    ok, bad = await upload(services, "scratch"), await upload(services, "scratch", "fail.pdf")
    assert (await finished(ok))["status"] == "ready"
    assert (await finished(bad))["status"] == "failed"
    # the worker's start (done: it ran the steps) removed a killed worker's leftovers, not another host's folder
    assert not folders["stale"].exists()
    assert folders["elsewhere"].is_dir()
    assert len(steps.scratch_seen) == 2
    for folder, had_file in steps.scratch_seen:
        assert had_file and folder.is_relative_to(root) and folder.name.startswith("step-")
        assert not folder.exists()  # removed when the step ended, success or failure


# --- a deleted asset's steps -------------------------------------------------------------------------------


async def test_deleting_an_asset_skips_its_queued_and_running_steps(client, auth):
    created = await client.post("/api/v1/assets", headers=auth, json={
        "profile": "video_response", "original_name": "answer.mp4", "size_bytes": 1000})
    asset_id = uuid.UUID(created.json()["id"])
    await ProcessingJob.insert(
        ProcessingJob(asset=asset_id, step="probe", status="succeeded", progress=100.0),
        ProcessingJob(asset=asset_id, step="mp4", status="running", progress=40.0, attempts=1),
        ProcessingJob(asset=asset_id, step="hls", status="queued"),
    )
    response = await client.delete(f"/api/v1/assets/{asset_id}", headers=auth)
    assert response.status_code == 202
    rows = {r["step"]: r for r in await ProcessingJob.select().where(ProcessingJob.asset == asset_id)}
    assert {s: (r["status"], r["error"]) for s, r in rows.items()} == {
        "probe": ("succeeded", None), "mp4": ("skipped", "asset deleted"), "hls": ("skipped", "asset deleted")}
    assert rows["hls"]["completed_at"] is not None
