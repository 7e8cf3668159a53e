"""What ``saq.Worker`` needs, built from a validated plugin host: every registered job as a namespaced, instrumented
``(name, fn)`` pair, the cron jobs, and ``startup`` / ``shutdown`` that put the resources (database pool, storage,
plugin host, queue, metrics) in the job ``ctx``.

Two callers: the API app's in-process worker (``mediasvc dev``, ``run_worker_in_app``), which shares the app's
pool and storage, and ``mediasvc.jobs.worker`` (the ``mediasvc worker`` process), which builds its own.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from saq import Queue

from mediasvc.contracts import StorageBackend
from mediasvc.database import bind_tables, close_pool, engine_for, open_pool
from mediasvc.metrics import Metrics
from mediasvc.plugins import PluginHost
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


def worker_options(settings: Settings, host: PluginHost, queue: Queue, metrics: Metrics, *, engine: Any = None,
                   storage: StorageBackend | None = None) -> dict[str, Any]:
    """``saq.Worker`` keyword arguments. Given an ``engine`` and ``storage`` (the in-app worker), the jobs share
    the app's database pool and storage backend; otherwise ``startup`` opens its own."""
    wrapped = {name: _instrument(name, fn) for name, fn in host.jobs.items()}
    by_function = {id(fn): wrapped[name] for name, fn in host.jobs.items()}
    cron_jobs = []
    for cron in host.cron_jobs:
        if id(cron.function) not in by_function:
            raise ValueError(f"cron job {cron.function.__qualname__} is not returned by register_jobs")
        cron_jobs.append(dataclasses.replace(cron, function=by_function[id(cron.function)]))

    shared_engine = engine

    async def startup(ctx: dict[str, Any]) -> None:
        if shared_engine is None:
            own_engine = engine_for(settings.database_url)
            bind_tables(own_engine, CORE_TABLES)
            await open_pool(own_engine, max_size=max(2, settings.queue.concurrency + 1))
            ctx["own_engine"] = own_engine
        ctx.update(settings=settings, host=host, queue=queue, storage=storage or host.create_storage(),
                   metrics=metrics)
        for result in host.hook.startup(app=None):
            if inspect.isawaitable(result):
                await result
        log.info("worker started: %d jobs, %d cron jobs", len(wrapped), len(cron_jobs))

    async def shutdown(ctx: dict[str, Any]) -> None:
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
        "cron_jobs": cron_jobs,
        "concurrency": settings.queue.concurrency,
        "startup": startup,
        "shutdown": shutdown,
    }
