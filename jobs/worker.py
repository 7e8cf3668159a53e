"""The SAQ worker settings factory: core and plugin jobs as namespaced ``(name, fn)`` pairs.

``mediasvc worker`` runs ``saq.Worker(**worker_settings(settings))``; ``mediasvc dev`` runs the same worker inside
the API process. Resources (database pool, storage, plugin host, queue) live in the job ``ctx`` from ``startup``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from typing import Any, Callable

from saq import CronJob, Queue

from mediasvc.contracts import StorageBackend
from mediasvc.database import bind_tables, close_pool, engine_for, open_pool
from mediasvc.metrics import Metrics
from mediasvc.plugins import PluginHost
from mediasvc.queue import create_queue
from mediasvc.settings import Settings, ensure_secret_key, load_settings
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


def worker_settings(settings: Settings | None = None, *, queue: Queue | None = None,
                    host: PluginHost | None = None, metrics: Metrics | None = None,
                    engine: Any = None, storage: StorageBackend | None = None) -> dict[str, Any]:
    """Everything ``saq.Worker`` needs. Given an ``engine`` and ``storage`` (the in-app worker), it shares the
    app's database pool and storage backend."""
    settings = ensure_secret_key(settings or load_settings())
    if host is None:  # a host handed in was validated by its owner (the app)
        host = PluginHost(settings)
        host.validate()
    queue = queue or create_queue(settings)
    metrics = metrics or Metrics()
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


def settings() -> dict[str, Any]:
    """For ``saq jobs.worker.settings``: build from the environment at call time, never at import."""
    return worker_settings()
