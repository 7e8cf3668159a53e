"""The core's own hook implementations, registered like any plugin (and never blockable)."""

from __future__ import annotations

from typing import Any, Callable

from saq import CronJob

from server.asset_jobs import PURGE_JOB, purge_storage
from server.events import DISPATCH_JOB, dispatch_events
from server.hookspecs import hookimpl
from server.ingest.presigned import EXPIRE_JOB, expire_presigned_uploads
from server.ingest.sessions_join import JOIN_JOB, join_session
from server.processing import RUN_STEP_JOB, SWEEP_JOB, run_step, sweep_stale_steps


@hookimpl
def register_jobs() -> list[tuple[str, Callable[..., Any]]]:
    return [
        (DISPATCH_JOB, dispatch_events),
        (PURGE_JOB, purge_storage),
        (RUN_STEP_JOB, run_step),
        (EXPIRE_JOB, expire_presigned_uploads),
        (JOIN_JOB, join_session),
        (SWEEP_JOB, sweep_stale_steps),
    ]


@hookimpl
def register_cron_jobs() -> list[CronJob]:
    # The sweep: anything a kick missed, and retries whose scheduled job was lost, go out within a minute.
    return [
        CronJob(dispatch_events, cron="* * * * *", timeout=300, retries=1),
        CronJob(expire_presigned_uploads, cron="*/5 * * * *", timeout=300, retries=1),
        CronJob(sweep_stale_steps, cron="*/2 * * * *", timeout=120, retries=1),
    ]
