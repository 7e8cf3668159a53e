"""The core's own hook implementations, registered like any plugin (and never blockable)."""

from __future__ import annotations

from typing import Any, Callable

from saq import CronJob

from mediasvc.asset_jobs import PURGE_JOB, purge_storage
from mediasvc.events import DISPATCH_JOB, dispatch_events
from mediasvc.hookspecs import hookimpl
from mediasvc.ingest.presigned import EXPIRE_JOB, expire_presigned_uploads
from mediasvc.ingest.sessions_join import JOIN_JOB, join_session
from mediasvc.lifecycle import (
    ORPHANS_JOB,
    RETENTION_JOB,
    SECTION,
    LifecycleSettings,
    delete_expired_originals,
    sweep_orphans,
)
from mediasvc.processing import RUN_STEP_JOB, SWEEP_JOB, run_step, sweep_stale_steps
from mediasvc.processing_recovery import RECOVER_JOB, recover_unstarted


@hookimpl
def register_jobs() -> list[tuple[str, Callable[..., Any]]]:
    return [
        (DISPATCH_JOB, dispatch_events),
        (PURGE_JOB, purge_storage),
        (RUN_STEP_JOB, run_step),
        (EXPIRE_JOB, expire_presigned_uploads),
        (JOIN_JOB, join_session),
        (SWEEP_JOB, sweep_stale_steps),
        (RECOVER_JOB, recover_unstarted),
        (RETENTION_JOB, delete_expired_originals),
        (ORPHANS_JOB, sweep_orphans),
    ]


@hookimpl
def register_cron_jobs() -> list[CronJob]:
    # The dispatch sweep: anything a kick missed, and retries whose scheduled job was lost, go out within a minute.
    # Stale steps every 15 s (cron's sixth field is seconds): a killed worker's step is retried once its heartbeat
    # lapses; the check is one indexed query plus a queue lookup per running step. Steps a crash left unstarted
    # (committed, never enqueued) every 30 s. Expired tus uploads: tus.expire (server.ingest.tus_jobs, every 5
    # minutes). Retention hourly, the orphan sweep (a full listing) once a day. Every cron job runs on the
    # housekeeping queue (mediasvc.worker_options), never behind a transcode.
    return [
        CronJob(dispatch_events, cron="* * * * *", timeout=300, retries=1),
        CronJob(expire_presigned_uploads, cron="*/5 * * * *", timeout=300, retries=1),
        CronJob(sweep_stale_steps, cron="* * * * * */15", timeout=60, retries=1),
        CronJob(recover_unstarted, cron="* * * * * */30", timeout=120, retries=1),
        CronJob(delete_expired_originals, cron="17 * * * *", timeout=1800, retries=1),
        CronJob(sweep_orphans, cron="43 3 * * *", timeout=3 * 3600, retries=1),
    ]


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, LifecycleSettings)]
