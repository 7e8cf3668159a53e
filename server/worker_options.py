"""What ``saq.Worker`` needs, built from a validated plugin host: every registered job as a namespaced, instrumented
``(name, fn)`` pair, the cron jobs, and ``startup`` / ``shutdown`` that put the resources (database pool, storage,
plugin host, queue, metrics) in the job ``ctx``. A worker serves both queues of ``mediasvc.queue``: the processing
queue with ``queue.concurrency`` slots, and beside it (started and stopped with it) the housekeeping queue with the
cron jobs and event dispatch on ``queue.housekeeping_concurrency`` slots of their own.

Two callers: the API app's in-process worker (``mediasvc dev``, ``run_worker_in_app``), which shares the app's
pool and storage, and ``mediasvc.jobs.worker`` (the ``mediasvc worker`` process), which builds its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from saq import CronJob, Queue, Worker

from mediasvc.contracts import StorageBackend
from mediasvc.database import bind_tables, close_pool, engine_for, open_pool
from mediasvc.metrics import Metrics
from mediasvc.plugins import PluginHost
from mediasvc.queue import housekeeping_queue
from mediasvc.scratch import clear_stale_scratch, process_folder, remove_folder
from mediasvc.settings import Settings
from mediasvc.tables import CORE_TABLES
from mediasvc.telemetry import tracer

log = logging.getLogger("mediasvc.worker")


def _instrument(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a task in a span and a duration metric; SAQ (and its cron) address it by ``name``."""

    @functools.wraps(fn)
    async def run(ctx: dict[str, Any], **kwargs: Any) -> Any:
        started = time.perf_counter()
        status = "succeeded"
        with tracer().start_as_current_span(f"job {name}", attributes={"mediasvc.job": name}):
            try:
                return await fn(ctx, **kwargs)
            except BaseException:
                status = "failed"
                raise
            finally:
                metrics: Metrics | None = ctx.get("metrics")
                if metrics is not None:
                    metrics.job_duration.labels(job=name, status=status).observe(time.perf_counter() - started)

    run.__qualname__ = name
    run.__name__ = name
    return run


def _jobs_and_crons(host: PluginHost) -> tuple[dict[str, Callable[..., Any]], list[CronJob]]:
    wrapped = {name: _instrument(name, fn) for name, fn in host.jobs.items()}
    by_function = {id(fn): wrapped[name] for name, fn in host.jobs.items()}
    cron_jobs = []
    for cron in host.cron_jobs:
        if id(cron.function) not in by_function:
            raise ValueError(f"cron job {cron.function.__qualname__} is not returned by register_jobs")
        cron_jobs.append(dataclasses.replace(cron, function=by_function[id(cron.function)]))
    return wrapped, cron_jobs


def housekeeping_options(settings: Settings, host: PluginHost, queue: Queue) -> dict[str, Any]:
    """``saq.Worker`` keyword arguments for the housekeeping worker: every job (any may be enqueued there), all
    the cron jobs, ``queue.housekeeping_concurrency`` slots. ``worker_options``' start-up runs it beside the
    processing worker and fills its ``ctx``."""
    wrapped, cron_jobs = _jobs_and_crons(host)
    return {"queue": housekeeping_queue(queue), "functions": list(wrapped.items()), "cron_jobs": cron_jobs,
            "concurrency": settings.queue.housekeeping_concurrency}


def worker_options(settings: Settings, host: PluginHost, queue: Queue, metrics: Metrics, *, engine: Any = None,
                   storage: StorageBackend | None = None) -> dict[str, Any]:
    """``saq.Worker`` keyword arguments for the processing queue. Given an ``engine`` and ``storage`` (the in-app
    worker), the jobs share the app's database pool and storage backend; otherwise ``startup`` opens its own.
    When ``queue`` has a housekeeping queue (``create_queue``), ``startup`` also starts a second SAQ worker on it
    with the cron jobs, and ``shutdown`` stops it first; otherwise this worker runs the cron jobs itself."""
    wrapped, cron_jobs = _jobs_and_crons(host)
    paired = housekeeping_queue(queue) is not queue
    shared_engine = engine

    async def startup(ctx: dict[str, Any]) -> None:
        if shared_engine is None:
            own_engine = engine_for(settings.database_url)
            bind_tables(own_engine, CORE_TABLES)
            slots = settings.queue.concurrency + (settings.queue.housekeeping_concurrency if paired else 0)
            await open_pool(own_engine, max_size=max(2, slots + 1))
            ctx["own_engine"] = own_engine
        ctx.update(settings=settings, host=host, queue=queue, storage=storage or host.create_storage(),
                   metrics=metrics)
        await asyncio.to_thread(clear_stale_scratch, settings)  # what killed workers left in <data_dir>/scratch
        for result in host.hook.startup(app=None):
            if inspect.isawaitable(result):
                await result
        if paired:
            await _start_housekeeping(ctx, housekeeping_options(settings, host, queue))
        log.info("worker started: %d jobs, %d cron jobs%s", len(wrapped), len(cron_jobs),
                 f" (on {housekeeping_queue(queue).name})" if paired else "")

    async def shutdown(ctx: dict[str, Any]) -> None:
        await _stop_housekeeping(ctx)
        await asyncio.to_thread(remove_folder, process_folder(settings))  # its jobs are over: nothing uses it
        for result in host.hook.shutdown(app=None):
            if inspect.isawaitable(result):
                await result
        if storage is None and "storage" in ctx:
            await ctx["storage"].close()
        if "own_engine" in ctx:
            await close_pool(ctx["own_engine"])

    return {
        "queue": queue,
        "functions": list(wrapped.items()),
        "cron_jobs": [] if paired else cron_jobs,
        "concurrency": settings.queue.concurrency,
        "startup": startup,
        "shutdown": shutdown,
    }


async def _start_housekeeping(ctx: dict[str, Any], options: dict[str, Any]) -> None:
    """The housekeeping worker, in this process and event loop, sharing this worker's resources (its jobs see
    the same ``ctx``, ``queue`` being the processing queue). It leaves the signals to the processing worker."""
    shared = {k: v for k, v in ctx.items() if k != "worker"}

    async def share(own: dict[str, Any]) -> None:
        own.update(shared)

    worker = Worker(**options, startup=share)
    worker.SIGNALS = []
    ctx["housekeeping_worker"] = worker
    task = asyncio.create_task(worker.start(), name="housekeeping-worker")
    task.add_done_callback(_report_end)
    ctx["housekeeping_task"] = task


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the housekeeping worker stopped: cron jobs and event delivery wait for a restart",
                  exc_info=task.exception())


async def _stop_housekeeping(ctx: dict[str, Any]) -> None:
    worker: Worker | None = ctx.pop("housekeeping_worker", None)
    task: asyncio.Task[None] | None = ctx.pop("housekeeping_task", None)
    if worker is not None:
        await worker.stop()
    if task is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await task
