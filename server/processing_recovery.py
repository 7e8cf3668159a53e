"""Recovery of processing that a crash left unstarted (the ``processing.recover`` cron job).

An upload commits its asset and step rows in one transaction and enqueues the runnable steps after the commit; a
step that succeeds enqueues the steps that waited for it after its own commit. A process killed between a commit and its enqueue
leaves ``queued`` steps that no SAQ job will ever run. This sweep finds them and enqueues them under the key the
normal path uses (``step:<row id>``), so an enqueue that did happen meanwhile makes this one a no-op. It also
schedules ``uploaded`` assets that have no step rows at all (written before steps shared the asset's
transaction). Anything younger than ``queue.recover_grace_seconds`` is left to the normal path.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from saq.job import Status

from mediasvc import step_graph
from mediasvc.processing import create_steps, enqueue_step, start_next_step, step_job_key
from mediasvc.tables import Asset, ProcessingJob

if TYPE_CHECKING:
    from saq import Queue

    from mediasvc.plugins import PluginHost
    from mediasvc.settings import Settings

log = logging.getLogger("mediasvc.processing")

RECOVER_JOB = "processing.recover"
BATCH = 200
LIVE = (Status.NEW, Status.QUEUED, Status.ACTIVE, Status.ABORTING)


async def recover_unstarted(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: enqueue waiting steps that have no live SAQ job, and schedule ``uploaded`` assets with no steps.
    Idempotent, safe to run on several workers at once."""
    queue: Queue = ctx["queue"]
    settings: Settings = ctx["settings"]
    host: PluginHost = ctx["host"]
    grace = timedelta(seconds=settings.queue.recover_grace_seconds)
    scheduled = await _schedule_idle_uploads(queue, settings, host, grace)
    enqueued = await _enqueue_waiting_steps(queue, settings, host, grace)
    if scheduled or enqueued:
        log.warning("processing recovery: %d assets scheduled, %d steps enqueued", scheduled, enqueued)
    return {"scheduled": scheduled, "enqueued": enqueued}


async def _schedule_idle_uploads(queue: Queue, settings: Settings, host: PluginHost, grace: timedelta) -> int:
    """``uploaded`` assets, older than the grace, with nothing queued or running: steps are created where there
    are none (under the asset's row lock, so two sweeps never create them twice), then its runnable steps are started; an
    asset whose steps are all done is finished."""
    rows = await Asset.raw(
        "SELECT a.id FROM assets a WHERE a.status = 'uploaded' AND a.created_at < now() - {}::interval "
        "AND NOT EXISTS (SELECT 1 FROM processing_jobs j WHERE j.asset = a.id AND j.status IN ('queued', 'running')) "
        "ORDER BY a.created_at LIMIT {}", grace, BATCH)
    done = 0
    for row in rows:
        asset_id: UUID = row["id"]
        try:
            async with Asset._meta.db.transaction():
                locked = await Asset.raw("SELECT id FROM assets WHERE id = {} AND status = 'uploaded' "
                                         "FOR UPDATE SKIP LOCKED", asset_id)
                if not locked:
                    continue
                if not await ProcessingJob.exists().where(ProcessingJob.asset == asset_id):
                    await create_steps(settings, host, asset_id)
            await start_next_step(queue, settings, host, asset_id)
            done += 1
        except Exception:  # one asset (say, of a profile no longer configured) must not stop the others
            log.exception("processing recovery: could not schedule asset %s", asset_id)
    return done


async def _enqueue_waiting_steps(queue: Queue, settings: Settings, host: PluginHost, grace: timedelta) -> int:
    """Every ``queued`` step, older than the grace, whose needs are met (``mediasvc.step_graph``) and whose SAQ job
    is not live, on assets where no step finished within the grace (the normal path may be enqueueing). A step
    never claimed is started by ``start_next_step``; one claimed but never enqueued (a crash between the two) is
    enqueued under its key; one whose job already ended (never the normal path) gets a new key, fenced like the
    stale sweep's. Walks every waiting asset in pages (a busy queue has many whose jobs are simply waiting)."""
    done, after = 0, None
    while True:
        assets = await ProcessingJob.raw(
            "SELECT DISTINCT j.asset FROM processing_jobs j JOIN assets a ON a.id = j.asset "
            "WHERE j.status = 'queued' AND a.status <> 'deleted' AND ({}::uuid IS NULL OR j.asset > {}) "
            "AND j.created_at < now() - {}::interval "
            "AND NOT EXISTS (SELECT 1 FROM processing_jobs r WHERE r.asset = j.asset "
            "  AND r.completed_at > now() - {}::interval) "
            "ORDER BY j.asset LIMIT {}", after, after, grace, grace, BATCH)
        if not assets:
            return done
        after = assets[-1]["asset"]
        for asset in assets:
            try:
                done += await _enqueue_asset_steps(queue, settings, host, asset["asset"])
            except Exception:  # one asset must not stop the others
                log.exception("processing recovery: could not enqueue the steps of asset %s", asset["asset"])
        if len(assets) < BATCH:
            return done


async def _enqueue_asset_steps(queue: Queue, settings: Settings, host: PluginHost, asset_id: UUID) -> int:
    rows = await ProcessingJob.select(ProcessingJob.id, ProcessingJob.asset, ProcessingJob.step,
                                      ProcessingJob.status, ProcessingJob.queue_key, ProcessingJob.created_at).where(
        ProcessingJob.asset == asset_id)
    waiting = [r for r in step_graph.newest_runs(rows) if r["status"] == "queued"]
    for row in waiting:
        if host.processors.get(row["step"]) is None:
            log.warning("processing recovery: step %s of asset %s waits for processor %r, which is not installed",
                        row["id"], row["asset"], row["step"])
    ready = step_graph.runnable(step_graph.newest_runs(rows), host.processors)
    jobs = await queue.jobs([step_job_key(row) for row in ready]) if ready else []
    count = 0
    for row, job in zip(ready, jobs):
        if job is not None and job.status in LIVE:
            continue
        if job is not None:  # ended under its key: that key is spent
            row = await _unstick(row)
            if row is None:
                continue
        elif not row["queue_key"]:
            count += 1  # never claimed: start_next_step below claims and enqueues it
            continue
        await enqueue_step(queue, settings, host, row)
        count += 1
    await start_next_step(queue, settings, host, asset_id)
    return count


async def _unstick(row: dict[str, Any]) -> dict[str, Any] | None:
    """A waiting step whose job already ended under its key: the row with a new key, if it still waits under the
    old one (else None: someone else moved it)."""
    key = f"step:{row['id']}:r{int(time.time())}"
    moved = await ProcessingJob.update({ProcessingJob.queue_key: key}).where(
        ProcessingJob.id == row["id"], ProcessingJob.status == "queued",
        ProcessingJob.queue_key == row["queue_key"]).returning(ProcessingJob.id)
    return {**row, "queue_key": key} if moved else None
