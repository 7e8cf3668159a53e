"""The tus server's background job and settings section, as hook implementations.

* ``tus.expire`` (``expire_job``), run by cron every 5 minutes: deletes the bytes of tus uploads past their
  ``Upload-Expires`` and marks them ``expired``; first it finishes uploads whose last byte is in but whose
  completion (asset) was cut short by a crash.
* the ``[plugins.tus]`` settings section (``TusSettings``), validated at start-up.
* ``shutdown``: closes the pool of upload-lock connections (``mediasvc.ingest.tus_lock``).

Register this module like the core's own hooks (``mediasvc.core_plugin``), or merge its lists there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from saq import CronJob

from mediasvc.hookspecs import hookimpl
from mediasvc.ingest.tus_lock import close_lock_pools
from mediasvc.ingest.tus_settings import SECTION, TusSettings
from mediasvc.ingest.tus_uploads import expire_uploads, finish_stalled
from mediasvc.metrics import Metrics
from mediasvc.services import Services

EXPIRE_JOB = "tus.expire"
EXPIRE_CRON = "*/5 * * * *"


async def expire_job(ctx: dict[str, Any], **_: Any) -> dict[str, int]:
    """Finish uploads whose completion was cut short (all bytes in, no asset: a crash), then expire unfinished
    tus uploads (and partial uploads kept for a concatenation) whose time is up."""
    result: dict[str, int] = {}
    if "queue" in ctx and "host" in ctx:  # a worker's ctx; the tests call this with storage and settings only
        services = Services(settings=ctx["settings"], host=ctx["host"], engine=ctx.get("own_engine"),
                            storage=ctx["storage"], queue=ctx["queue"],
                            metrics=ctx.get("metrics") or Metrics())
        result.update(await finish_stalled(services))
    result.update(await expire_uploads(ctx["storage"], ctx["settings"]))
    return result


EXPIRE_CRON_JOB = CronJob(expire_job, cron=EXPIRE_CRON, timeout=600, retries=1)


@hookimpl
def register_jobs() -> list[tuple[str, Callable[..., Any]]]:
    return [(EXPIRE_JOB, expire_job)]


@hookimpl
def register_cron_jobs() -> list[CronJob]:
    return [EXPIRE_CRON_JOB]


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, TusSettings)]


@hookimpl
def shutdown(app: Any) -> Any:
    return close_lock_pools()
