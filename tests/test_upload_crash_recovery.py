"""Crash windows of the upload paths (issue 15, item 2).

- An upload whose process dies right after the asset's commit, before its first step is enqueued: the asset and
  its steps were written in one transaction, and ``processing.recover`` enqueues the waiting step (once, however
  often it runs), so the asset ends ``ready`` with exactly one set of renditions.
- ``uploaded`` assets with no steps at all, and a waiting step whose SAQ job already ended, are recovered too.
- A presigned ``confirm`` killed mid-way leaves a ``confirming`` claim: a retry retakes it once it is stale, while
  a fresh claim still answers 409.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image
from saq.job import Status

from mediasvc.app import create_app
from mediasvc.auth import get_or_create_tenant
from mediasvc.ingest.assets import reserve_key
from mediasvc.processing_recovery import recover_unstarted
from mediasvc.tables import Asset, Event, ProcessingJob, Rendition
from mediasvc.tables import Upload as UploadRow
from tests.conftest import REDIS_URL, serve_in_process
from tests.test_api_uploads import MP4, assert_envelope, put_local, ticket_for

ROOT = Path(__file__).resolve().parent.parent
PROFILE = "avatar"  # the images plugin's `image` step: an `avatar` and a `thumbnail` rendition

# Runs the real upload-completing function in a process that dies (os._exit: no cleanup, no finally) right after
# the commit, where the first step would be enqueued. The patch lives in this child only.
KILLED_UPLOAD = textwrap.dedent('''
    import asyncio, hashlib, os, sys

    from mediasvc.app import create_app
    from mediasvc.auth import get_or_create_tenant
    from mediasvc.ingest import assets as ingest

    def killed(*args, **kwargs):
        os._exit(17)

    ingest.start_next_step = killed

    async def main():
        app = create_app()
        async with app.lifespan():
            services = app.state.services
            tenant = await get_or_create_tenant(sys.argv[1])
            data = open(sys.argv[2], "rb").read()
            asset_id, key = ingest.reserve_key(sys.argv[1], services.settings.profiles["avatar"], "jpg")
            await services.storage.put(key, data)
            print(asset_id, flush=True)
            await ingest.create_uploaded_asset(
                services, asset_id=asset_id, tenant_id=tenant, profile_name="avatar", original_name="me.jpg",
                storage_key=key, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                content_type="image/jpeg", method="test")

    asyncio.run(main())
''')


def jpeg(width: int = 400, height: int = 300) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata([((x * 7) % 256, (y * 5) % 256, (x + y) % 256) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


async def wait_ready(asset_id: uuid.UUID, timeout: float = 60.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await Asset.select().where(Asset.id == asset_id).first()
        if row["status"] in ("ready", "failed"):
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"asset {asset_id} still {row['status']}")
        await asyncio.sleep(0.1)


async def backdate(asset_id: uuid.UUID, minutes: int = 5) -> None:
    """What the recovery's grace period would otherwise wait for."""
    await Asset.raw("UPDATE assets SET created_at = created_at - {}::interval WHERE id = {}",
                    timedelta(minutes=minutes), asset_id)
    await Asset.raw("UPDATE processing_jobs SET created_at = created_at - {}::interval WHERE asset = {}",
                    timedelta(minutes=minutes), asset_id)


async def one_set_of_renditions(services, asset_id: uuid.UUID) -> list[dict]:
    renditions = await Rendition.select().where(Rendition.asset == asset_id)
    assert sorted((r["kind"], r["name"]) for r in renditions) == [("image", "avatar"), ("image", "thumbnail")]
    for rendition in renditions:
        assert await services.storage.head(rendition["storage_key"]) is not None
    return renditions


def recovery_ctx(services) -> dict:
    return {"queue": services.queue, "settings": services.settings, "host": services.host}


async def test_an_upload_killed_between_commit_and_enqueue_ends_ready(make_settings, database_url, tmp_path):
    queue_name = f"crash-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "data"
    source = tmp_path / "me.jpg"
    source.write_bytes(jpeg())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | {
        "MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_QUEUE__URL": REDIS_URL, "MEDIASVC_QUEUE__NAME": queue_name,
        "MEDIASVC_DATA_DIR": str(data_dir), "MEDIASVC_SECRET_KEY": "test-secret-key", "MEDIASVC_LOG_FORMAT": "text"}
    tenant = f"crash-{uuid.uuid4().hex[:6]}"
    child = subprocess.run([sys.executable, "-c", KILLED_UPLOAD, tenant, str(source)], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 17, child.stderr  # it died where it should, not earlier
    asset_id = uuid.UUID(child.stdout.split()[0])

    settings = make_settings(**{"data_dir": str(data_dir), "queue.name": queue_name})
    api = create_app(settings)  # an API instance: no worker, so the queue shows exactly what was enqueued
    async with serve_in_process(api):
        services = api.state.services
        asset = await Asset.select().where(Asset.id == asset_id).first()
        steps = await ProcessingJob.select().where(ProcessingJob.asset == asset_id)
        # the asset, its step and its event were committed together; nothing was enqueued
        assert asset["status"] == "uploaded"
        assert [(s["step"], s["status"], s["queue_key"]) for s in steps] == [("image", "queued", "")]
        assert await services.queue.job(f"step:{steps[0]['id']}") is None
        uploaded = await Event.raw("SELECT type FROM events WHERE payload->>'asset_id' = {}", str(asset_id))
        assert [e["type"] for e in uploaded] == ["media.uploaded"]

        ctx = recovery_ctx(services)
        assert await recover_unstarted(ctx) == {"scheduled": 0, "enqueued": 0}  # too young: the normal path's
        await backdate(asset_id)
        assert await recover_unstarted(ctx) == {"scheduled": 0, "enqueued": 1}
        # again, and twice at once: the job is there (live), and the key makes any second enqueue a no-op
        assert await recover_unstarted(ctx) == {"scheduled": 0, "enqueued": 0}
        await asyncio.gather(recover_unstarted(ctx), recover_unstarted(ctx))
        job = await services.queue.job(f"step:{steps[0]['id']}")
        assert job is not None and job.status == Status.QUEUED
        assert await services.queue.count("queued") == 1
        assert (await Asset.select(Asset.status).where(Asset.id == asset_id).first())["status"] == "processing"

    worker = create_app(make_settings(**{"data_dir": str(data_dir), "queue.name": queue_name,
                                         "run_worker_in_app": True}))
    async with serve_in_process(worker):
        services = worker.state.services
        asset = await wait_ready(asset_id)
        assert asset["status"] == "ready", asset["error"]
        await one_set_of_renditions(services, asset_id)
        step = await ProcessingJob.select().where(ProcessingJob.asset == asset_id).first()
        assert step["status"] == "succeeded" and step["attempts"] == 1
        assert await recover_unstarted(recovery_ctx(services)) == {"scheduled": 0, "enqueued": 0}
        processed = await Event.raw("SELECT type FROM events WHERE payload->>'asset_id' = {} AND type = {}",
                                    str(asset_id), "media.processed")
        assert len(processed) == 1


async def test_assets_without_steps_and_steps_whose_job_ended_are_recovered(make_settings, tmp_path):
    settings = make_settings(**{"queue.name": f"crash-{uuid.uuid4().hex[:8]}"})
    data = jpeg(200, 150)
    api = create_app(settings)
    async with serve_in_process(api):
        services = api.state.services
        tenant = await get_or_create_tenant(f"crash-{uuid.uuid4().hex[:6]}")
        profile = settings.profiles[PROFILE]

        async def bare_asset(age: timedelta) -> uuid.UUID:
            """An `uploaded` asset with no step rows (as written before steps shared its transaction)."""
            asset_id, key = reserve_key("crash", profile, "jpg")
            await services.storage.put(key, data)
            when = datetime.now(timezone.utc) - age
            await Asset.insert(Asset(
                id=asset_id, tenant=tenant, profile=PROFILE, kind="image", original_name="me.jpg",
                content_type="image/jpeg", size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                bucket=profile.bucket, storage_key=key, status="uploaded", created_at=when, updated_at=when))
            return asset_id

        old, young, ended = (await bare_asset(timedelta(minutes=5)), await bare_asset(timedelta(seconds=0)),
                             await bare_asset(timedelta(minutes=5)))
        # `ended`: its step waits, but a job under the step's key already ran to the end (its key is spent)
        await ProcessingJob.insert(ProcessingJob(asset=ended, step="image", status="queued"))
        await backdate(ended)
        waiting = await ProcessingJob.select().where(ProcessingJob.asset == ended).first()
        spent_key = f"step:{waiting['id']}"
        await services.queue.enqueue("processing.run_step", key=spent_key, job_id=str(uuid.uuid4()))
        await services.queue.finish(await services.queue.job(spent_key), Status.COMPLETE)

        result = await recover_unstarted(recovery_ctx(services))
        assert result == {"scheduled": 1, "enqueued": 1}
        assert await ProcessingJob.count().where(ProcessingJob.asset == young) == 0  # left to the normal path
        scheduled = await ProcessingJob.select().where(ProcessingJob.asset == old)
        assert [(s["step"], s["status"]) for s in scheduled] == [("image", "queued")]
        refenced = await ProcessingJob.select().where(ProcessingJob.asset == ended).first()
        assert refenced["queue_key"].startswith(f"{spent_key}:r")
        assert (await services.queue.job(refenced["queue_key"])).status == Status.QUEUED
        assert await recover_unstarted(recovery_ctx(services)) == {"scheduled": 0, "enqueued": 0}

    worker = create_app(make_settings(**{"queue.name": settings.queue.name, "data_dir": settings.data_dir,
                                         "run_worker_in_app": True}))
    async with serve_in_process(worker):
        for asset_id in (old, ended):
            asset = await wait_ready(asset_id)
            assert asset["status"] == "ready", asset["error"]
            await one_set_of_renditions(worker.state.services, asset_id)
        assert (await Asset.select(Asset.status).where(Asset.id == young).first())["status"] == "uploaded"


# --- presigned confirm: a claim left by a killed instance ---------------------------------------------------------


async def uploaded_ticket(client, auth) -> dict:
    ticket = await ticket_for(client, auth)
    assert (await put_local(client, ticket, MP4)).status_code in (200, 201, 204)
    return ticket


async def claim(upload_id: str, age: timedelta) -> None:
    """What a confirm killed mid-way leaves: the row `confirming`, its claim as old as ``age``."""
    await UploadRow.raw("UPDATE uploads SET status = 'confirming', updated_at = now() - {}::interval WHERE id = {}",
                        age, uuid.UUID(upload_id))


async def test_a_stale_confirm_claim_is_retaken_and_the_confirm_completes(client, auth):
    ticket = await uploaded_ticket(client, auth)
    await claim(ticket["upload_id"], timedelta(hours=3))
    confirmed = await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["status"] == "complete" and body["sha256"] == hashlib.sha256(MP4).hexdigest()
    row = await UploadRow.select().where(UploadRow.id == uuid.UUID(ticket["upload_id"])).first()
    assert row["status"] == "complete" and str(row["asset"]) == body["asset_id"]
    assert await Asset.count().where(Asset.id == uuid.UUID(body["asset_id"])) == 1


async def test_a_fresh_confirm_claim_still_answers_409(client, auth):
    ticket = await uploaded_ticket(client, auth)
    await claim(ticket["upload_id"], timedelta(seconds=30))
    error = assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                            409, "conflict")
    assert error["message"] == "This upload is being confirmed"
    row = await UploadRow.select().where(UploadRow.id == uuid.UUID(ticket["upload_id"])).first()
    assert row["status"] == "confirming" and row["asset"] is None
