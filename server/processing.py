"""Processing: a profile's steps run as SAQ jobs, mirrored in `processing_jobs` rows, side by side where their
``needs`` allow (``mediasvc.step_graph``).

``create_steps`` writes a row per step (``skipped`` when no processor is installed) inside the caller's transaction,
``start_next_step`` enqueues every runnable one after commit (``schedule_processing`` does both), and
``mediasvc.processing_recovery`` finds steps a crash left unstarted. ``run_step`` (the ``processing.run_step`` job)
runs a processor, replaces its renditions atomically, and enqueues the steps that waited for it. A
``PermanentProcessingError`` fails the step at once (and skips the steps that need it); anything else is retried
with exponential backoff until the attempts run out. When every step is done the asset ends ``ready`` or
``failed`` with a reason, and `media.processed` / `media.processing_failed` is emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mediasvc import events, step_graph
from mediasvc.contracts import ProcessorResult, RenditionOut
from mediasvc.errors import PermanentProcessingError
from mediasvc.queue import enqueue_job
from mediasvc.scratch import remove_folder, step_folder
from mediasvc.step_watch import heartbeat, run_watched, stall_seconds
from mediasvc.step_errors import report_failure
from mediasvc.tables import Asset, ProcessingJob, Rendition

if TYPE_CHECKING:
    from saq import Queue

    from mediasvc.plugins import PluginHost
    from mediasvc.settings import Settings

log = logging.getLogger("mediasvc.processing")

RUN_STEP_JOB = "processing.run_step"
TERMINAL = ("succeeded", "failed", "skipped")


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def create_steps(settings: Settings, host: PluginHost, asset_id: UUID,
                       steps: list[str] | None = None) -> list[UUID]:
    """Write a row per step of the asset's profile (or ``steps``): ``queued``, or ``skipped`` when no installed
    processor takes it. Enqueues nothing, so it belongs inside the transaction that writes the asset: a crash
    after the commit then leaves ``queued`` rows for ``processing.recover`` to find. Returns the row ids."""
    asset = await Asset.select(Asset.profile, Asset.kind).where(Asset.id == asset_id).first()
    profile = settings.profiles[asset["profile"]]
    rows = []
    for step in steps if steps is not None else profile.steps:
        processor = host.processors.get(step)
        if processor is None:
            rows.append(ProcessingJob(asset=asset_id, step=step, status="skipped",
                                      error=f"no processor {step!r} is installed", completed_at=_now()))
        elif asset["kind"] not in processor.kinds:
            rows.append(ProcessingJob(asset=asset_id, step=step, status="skipped",
                                      error=f"processor {step!r} does not accept {asset['kind']}",
                                      completed_at=_now()))
        else:
            rows.append(ProcessingJob(asset=asset_id, step=step, status="queued"))
    if rows:
        await ProcessingJob.insert(*rows)
    return [row.id for row in rows]


async def schedule_processing(queue: Queue, settings: Settings, host: PluginHost, asset_id: UUID,
                              steps: list[str] | None = None) -> list[UUID]:
    """Create rows for the profile's steps (or ``steps``) and start the first. Returns the row ids."""
    ids = await create_steps(settings, host, asset_id, steps)
    await start_next_step(queue, settings, host, asset_id)
    return ids


def step_job_key(row: dict[str, Any]) -> str:
    """The SAQ job key of a step: ``step:<row id>``, or the key the stale sweep gave it when requeuing."""
    return row["queue_key"] or f"step:{row['id']}"


async def _asset_runs(asset_id: UUID) -> list[dict[str, Any]]:
    rows = await ProcessingJob.select(ProcessingJob.id, ProcessingJob.step, ProcessingJob.status,
                                      ProcessingJob.error, ProcessingJob.queue_key, ProcessingJob.created_at).where(
        ProcessingJob.asset == asset_id)
    return step_graph.newest_runs(rows)


async def start_next_step(queue: Queue, settings: Settings, host: PluginHost, asset_id: UUID) -> None:
    """After commit: skip the waiting steps a failed step dooms, enqueue every waiting step whose needs are met
    (``mediasvc.step_graph``), in profile order, or finish the asset when every step is done. Safe to repeat and
    to run on two workers at once: each step's enqueue is claimed by one conditional update of its ``queue_key``
    ('' → ``step:<id>``), and only the winner enqueues."""
    runs = await _asset_runs(asset_id)
    for step, failed in step_graph.doomed(runs, host.processors).items():
        await ProcessingJob.update({ProcessingJob.status: "skipped", ProcessingJob.error: f"after {failed} failed",
                                    ProcessingJob.completed_at: _now()}).where(
            ProcessingJob.asset == asset_id, ProcessingJob.step == step, ProcessingJob.status == "queued")
    runs = await _asset_runs(asset_id)
    if all(r["status"] in TERMINAL for r in runs):
        await _finish_asset(asset_id)
        return
    # ``processing`` only while a step is open, so a worker that finished the last step meanwhile keeps its word
    await Asset.raw("UPDATE assets SET status = 'processing', updated_at = {} WHERE id = {} "
                    "AND status IN ('uploaded', 'ready', 'failed') AND EXISTS (SELECT 1 FROM processing_jobs "
                    "WHERE asset = {} AND status IN ('queued', 'running'))", _now(), asset_id, asset_id)
    for row in step_graph.runnable(runs, host.processors):
        if row["queue_key"]:
            continue  # enqueued already (a retry waits in SAQ, or the sweeps own it)
        key = f"step:{row['id']}"
        claimed = await ProcessingJob.update({ProcessingJob.queue_key: key}).where(
            ProcessingJob.id == row["id"], ProcessingJob.status == "queued", ProcessingJob.queue_key == ""
        ).returning(ProcessingJob.id)
        if claimed:
            await enqueue_step(queue, settings, host, {**row, "queue_key": key})


async def enqueue_step(queue: Queue, settings: Settings, host: PluginHost, row: dict[str, Any]) -> None:
    """Enqueue one step under its job key (``step_job_key``): a second enqueue under the same key is a no-op."""
    processor = host.processors[row["step"]]
    await enqueue_job(queue, settings, RUN_STEP_JOB, job_id=str(row["id"]),
                      timeout=getattr(processor, "timeout_seconds", settings.queue.default_timeout_seconds),
                      heartbeat=settings.queue.heartbeat_seconds, key=step_job_key(row))


_start_next = start_next_step  # run_step's name for it


async def _finish_asset(asset_id: UUID) -> None:
    """All steps are terminal: the asset is ready, or failed naming the failed steps. The status change is
    conditional (only when it changes), so of two workers finishing the last steps at once only one emits the
    event."""
    jobs = await _asset_runs(asset_id)
    if any(j["status"] not in TERMINAL for j in jobs):
        return
    failed = [j for j in jobs if j["status"] == "failed"]
    asset = await Asset.select(Asset.tenant, Asset.status, Asset.profile, Asset.metadata).where(
        Asset.id == asset_id).output(load_json=True).first()
    target = "failed" if failed else "ready"
    if asset is None or asset["status"] in ("deleted", target):
        return
    reason = "; ".join(f"{j['step']}: {j['error']}" for j in failed) or None
    async with Asset._meta.db.transaction():
        won = await Asset.update({Asset.status: target, Asset.error: reason, Asset.updated_at: _now()}).where(
            Asset.id == asset_id, Asset.status.not_in(["deleted", target])).returning(Asset.id)
        if not won:
            return
        data = {"asset_id": str(asset_id), "profile": asset["profile"],
                "steps": {j["step"]: j["status"] for j in jobs}}
        if failed:
            await events.emit(events.MEDIA_PROCESSING_FAILED, {**data, "error": reason}, tenant_id=asset["tenant"])
        else:
            # partial: the probe kept a truncated file (``[plugins.video] truncated = "flag"``)
            partial = bool(((asset["metadata"] or {}).get("probe") or {}).get("partial"))
            await events.emit(events.MEDIA_PROCESSED, {**data, "partial": partial}, tenant_id=asset["tenant"])


class StepContext:
    """What a processor sees (``mediasvc.contracts.ProcessorContext``)."""

    def __init__(self, asset: dict[str, Any], settings: Settings, storage: Any, job_row_id: UUID,
                 saq_job: Any, queue: Queue | None = None, host: PluginHost | None = None) -> None:
        self.asset_id: UUID = asset["id"]
        self.asset = asset
        self.settings = settings
        self.storage = storage
        self.host = host
        self._job_row_id = job_row_id
        self._saq_job = saq_job
        self._queue = queue
        self._last_write = 0.0
        self._last_percent: float | None = None
        self.progress_at = time.monotonic()  # when progress last moved: the step's watch fails a stalled step

    @property
    def scratch(self) -> Path:
        """The step's scratch folder (``mediasvc.plugin.scratch_dir``), removed when the step ends."""
        return step_folder(self.settings, self._job_row_id)

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Publish an event about this asset now, while the step runs (``rendition.ready`` per HLS rung)."""
        self.progress_at = time.monotonic()
        async with Asset._meta.db.transaction():
            await events.emit(event_type, {"asset_id": str(self.asset_id), **data}, tenant_id=self.asset["tenant"])
        if self._queue is not None:
            await events.kick(self._queue)

    async def publish_rendition(self, rendition: RenditionOut) -> None:
        """Record a finished rendition now, while the step runs (an HLS rung and the master listing it), so
        playback can use it before the step ends; same (kind, name) replacement as the step's result."""
        self.progress_at = time.monotonic()
        await _replace_renditions(self.asset_id, [rendition])

    async def progress(self, percent: float, message: str = "") -> None:
        """Store progress (0-100, never lowered) at most 4 times a second; a value that moved keeps the step
        alive."""
        now = time.monotonic()
        if percent != self._last_percent:
            self._last_percent = percent
            self.progress_at = now
        if now - self._last_write < 0.25 and percent < 100:
            return
        self._last_write = now
        percent = max(0.0, min(100.0, percent))
        # the highest value stays: a retry starting over never moves the asset's progress backwards
        await ProcessingJob.raw("UPDATE processing_jobs SET progress = GREATEST(progress, {}) WHERE id = {}",
                                percent, self._job_row_id)
        if self._saq_job is not None:
            await self._saq_job.update(progress=percent / 100)


async def _replace_renditions(asset_id: UUID, outputs: list[RenditionOut]) -> None:
    async with Rendition._meta.db.transaction():  # joins the caller's transaction when there is one
        for out in outputs:
            await Rendition.delete().where(Rendition.asset == asset_id, Rendition.kind == out.kind,
                                           Rendition.name == out.name)
            await Rendition.insert(Rendition(
                asset=asset_id, kind=out.kind, name=out.name, storage_key=out.storage_key,
                content_type=out.content_type, size_bytes=out.size_bytes, width=out.width, height=out.height,
                duration_seconds=out.duration_seconds, bitrate=out.bitrate, metadata=out.metadata,
            ))


async def _still_ours(row_id: UUID, queue_key: str) -> bool:
    """False when the sweep handed the step to another job meanwhile (this one's worker looked dead)."""
    row = await ProcessingJob.select(ProcessingJob.status, ProcessingJob.queue_key).where(
        ProcessingJob.id == row_id).first()
    return row is not None and row["status"] == "running" and row["queue_key"] == queue_key


async def run_step(ctx: dict[str, Any], *, job_id: str) -> dict[str, Any]:
    """The ``processing.run_step`` job. The row's ``queue_key`` names the SAQ job that owns the step: a job whose
    key is no longer there (the sweep requeued the step under a new key) stops and writes nothing."""
    host: PluginHost = ctx["host"]
    settings: Settings = ctx["settings"]
    row_id = UUID(job_id)
    row = await ProcessingJob.select().where(ProcessingJob.id == row_id).first()
    if row is None or row["status"] in TERMINAL:
        return {"skipped": True}
    asset = await Asset.select().where(Asset.id == row["asset"]).output(load_json=True).first()
    if asset is None or asset["status"] == "deleted":
        await ProcessingJob.update({ProcessingJob.status: "skipped", ProcessingJob.error: "asset deleted",
                                    ProcessingJob.completed_at: _now()}).where(ProcessingJob.id == row_id)
        return {"skipped": True}
    processor = host.processors[row["step"]]
    attempts = row["attempts"] + 1
    saq_job = ctx.get("job")
    queue_key = saq_job.key if saq_job is not None else row["queue_key"]
    claimed = await ProcessingJob.update({
        ProcessingJob.status: "running", ProcessingJob.attempts: attempts, ProcessingJob.started_at: _now(),
        ProcessingJob.error: None, ProcessingJob.queue_key: queue_key,
    }).where(ProcessingJob.id == row_id, ProcessingJob.queue_key.is_in(["", queue_key])).returning(ProcessingJob.id)
    if not claimed:
        return {"skipped": "superseded"}
    metadata_before = copy.deepcopy(asset.get("metadata"))
    step_ctx = StepContext(asset, settings, ctx["storage"], row_id, saq_job, ctx.get("queue"), host)
    started = time.perf_counter()
    # the watch touches the SAQ job while progress moves, and fails the attempt when it stops moving
    watch = heartbeat(saq_job, settings.queue.heartbeat_seconds, lambda: step_ctx.progress_at,
                      stall_seconds(processor, settings))
    try:
        outputs = await run_watched(asyncio.wait_for(processor.run(step_ctx), timeout=processor.timeout_seconds),
                                    watch)
    except Exception as exc:
        if not await _still_ours(row_id, queue_key):
            return {"skipped": "superseded"}
        return await _step_failed(ctx, row, attempts, exc, time.perf_counter() - started)
    finally:
        await asyncio.to_thread(remove_folder, step_ctx.scratch)
    if not await _still_ours(row_id, queue_key):
        log.warning("step %s of asset %s was requeued while this run went on: its output is dropped", row["step"],
                    asset["id"])
        return {"skipped": "superseded"}
    result = _as_result(outputs, processor, metadata_before, step_ctx.asset.get("metadata"))
    await _apply_result(asset, row_id, result)
    _observe(ctx, row["step"], "succeeded", time.perf_counter() - started)
    await _start_next(ctx["queue"], settings, host, asset["id"])
    await events.kick(ctx["queue"])
    return {"renditions": len(result.renditions)}


def _as_result(outputs: Any, processor: Any, metadata_before: Any, metadata_after: Any) -> ProcessorResult:
    """A ``ProcessorResult``; a bare list (plugin API 0.x) is wrapped, its metadata taken from ctx.asset edits."""
    if isinstance(outputs, ProcessorResult):
        return outputs
    warnings.warn(f"processor {processor.name!r} returned a list: return a ProcessorResult (mediasvc.plugin)",
                  DeprecationWarning, stacklevel=2)
    added = {k: v for k, v in (metadata_after or {}).items() if (metadata_before or {}).get(k) != v}
    return ProcessorResult(renditions=list(outputs or []), metadata=added)


async def _apply_result(asset: dict[str, Any], row_id: UUID, result: ProcessorResult) -> None:
    """Renditions, metadata, events and the step's success: one transaction, so a crash leaves all or none."""
    async with Asset._meta.db.transaction():
        await _replace_renditions(asset["id"], result.renditions)
        if result.metadata:  # top-level keys are merged, never a whole-document overwrite
            await Asset.raw("UPDATE assets SET metadata = metadata || {}::jsonb WHERE id = {}",
                            json.dumps(result.metadata), asset["id"])
        for event in result.events:
            await events.emit(event.type, {"asset_id": str(asset["id"]), **event.data}, tenant_id=asset["tenant"])
        await ProcessingJob.update({ProcessingJob.status: "succeeded", ProcessingJob.progress: 100.0,
                                    ProcessingJob.completed_at: _now()}).where(ProcessingJob.id == row_id)


async def _step_failed(ctx: dict[str, Any], row: dict[str, Any], attempts: int, exc: Exception,
                       seconds: float) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    permanent = isinstance(exc, PermanentProcessingError)
    # readable text and a stable code for clients; the exception itself goes to the log under the step's id
    _code, message = report_failure(exc, step=row["step"], step_id=row["id"], asset_id=row["asset"],
                                    seconds=seconds)
    last_attempt = permanent or attempts >= settings.queue.default_retries
    _observe(ctx, row["step"], "failed", seconds)
    if not last_attempt:
        await ProcessingJob.update({ProcessingJob.status: "queued", ProcessingJob.error: message}).where(
            ProcessingJob.id == row["id"])
        log.warning("step %s of asset %s failed (attempt %d), retrying: %s", row["step"], row["asset"], attempts,
                    message)
        raise exc  # SAQ retries with exponential backoff
    await ProcessingJob.update({ProcessingJob.status: "failed", ProcessingJob.error: message,
                                ProcessingJob.completed_at: _now()}).where(ProcessingJob.id == row["id"])
    # the steps that need this one (transitively) are skipped, its siblings go on; the asset fails at the end
    await start_next_step(ctx["queue"], settings, ctx["host"], row["asset"])
    await events.kick(ctx["queue"])
    return {"failed": message}


def _observe(ctx: dict[str, Any], step: str, status: str, seconds: float) -> None:
    metrics = ctx.get("metrics")
    if metrics is not None:
        metrics.processing_duration.labels(step=step, status=status).observe(seconds)


SWEEP_JOB = "processing.sweep_stale"


async def _worker_lost(queue: Queue, row: dict[str, Any]) -> bool:
    """The SAQ job that owns a ``running`` step is gone, finished, or no longer touched by its worker (its
    heartbeat lapsed: the worker was killed). A job queued for a retry is not lost: it claims the step again."""
    if not row["queue_key"]:
        return False
    from saq.job import Status

    job = await queue.job(row["queue_key"])
    if job is None or job.status in (Status.COMPLETE, Status.FAILED, Status.ABORTED):
        return True
    if job.status in (Status.ACTIVE, Status.ABORTING) and job.stuck:
        with contextlib.suppress(Exception):  # take it off the active list so SAQ's own sweep does not retry it
            await queue.finish(job, Status.ABORTED, error="worker lost")
        return True
    return False


async def sweep_stale_steps(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: a step left ``running`` by a worker that died (its SAQ job's heartbeat lapsed, or the job is gone), or
    past its processor's timeout, is queued again under a new job key while attempts remain, else failed, so no
    asset stays ``processing`` forever. The new key fences off the old job should it ever run on."""
    host: PluginHost = ctx["host"]
    settings: Settings = ctx["settings"]
    rows = await ProcessingJob.select().where(ProcessingJob.status == "running")
    requeued = failed = 0
    now = _now()
    for row in rows:
        processor = host.processors.get(row["step"])
        limit = (processor.timeout_seconds if processor else 600) + 2 * settings.queue.heartbeat_seconds + 60
        timed_out = row["started_at"] is not None and (now - row["started_at"]).total_seconds() >= limit
        if not timed_out and not await _worker_lost(ctx["queue"], row):
            continue
        if processor is not None and row["attempts"] < settings.queue.default_retries:
            key = f"step:{row['id']}:{row['attempts']}"
            updated = await ProcessingJob.update({ProcessingJob.status: "queued", ProcessingJob.queue_key: key,
                                                  ProcessingJob.error: "worker lost; retrying"}).where(
                ProcessingJob.id == row["id"], ProcessingJob.status == "running",
                ProcessingJob.queue_key == row["queue_key"]).returning(ProcessingJob.id)
            if updated:
                await enqueue_job(ctx["queue"], settings, RUN_STEP_JOB, job_id=str(row["id"]),
                                  timeout=processor.timeout_seconds, heartbeat=settings.queue.heartbeat_seconds,
                                  key=key)
                requeued += 1
            continue
        await ProcessingJob.update({ProcessingJob.status: "failed", ProcessingJob.completed_at: now,
                                    ProcessingJob.error: "worker lost and no attempts left"}).where(
            ProcessingJob.id == row["id"])
        await start_next_step(ctx["queue"], settings, host, row["asset"])  # skips its dependents, not siblings
        failed += 1
    if requeued or failed:
        await events.kick(ctx["queue"])
    return {"requeued": requeued, "failed": failed}
