"""The SAQ worker settings factory for the ``mediasvc worker`` process: settings from the environment, a validated
plugin host, the queue and metrics, handed to ``mediasvc.worker_options`` (which the API app's in-process worker
uses too).

``mediasvc worker`` runs ``saq.Worker(**worker_settings(settings))``; ``saq mediasvc.jobs.worker.settings`` works as
well. Either way the worker serves both queues: processing, and (a second SAQ worker its start-up runs beside it)
the housekeeping queue with the cron jobs and event dispatch. Resources (database pool, storage, plugin host, queue) live in the job ``ctx`` from ``startup``. Only the CLI
imports this package: the API app must not depend on the worker's wiring.
"""

from __future__ import annotations

from typing import Any

from saq import Queue

from mediasvc.contracts import StorageBackend
from mediasvc.metrics import Metrics
from mediasvc.plugins import PluginHost
from mediasvc.queue import create_queue
from mediasvc.settings import Settings, ensure_secret_key, load_settings
from mediasvc.worker_options import worker_options


def worker_settings(settings: Settings | None = None, *, queue: Queue | None = None,
                    host: PluginHost | None = None, metrics: Metrics | None = None,
                    engine: Any = None, storage: StorageBackend | None = None) -> dict[str, Any]:
    """Everything ``saq.Worker`` needs. Given an ``engine`` and ``storage``, it shares that database pool and
    storage backend."""
    settings = ensure_secret_key(settings or load_settings())
    if host is None:  # a host handed in was validated by its owner
        host = PluginHost(settings)
        host.validate()
    return worker_options(settings, host, queue or create_queue(settings), metrics or Metrics(), engine=engine,
                          storage=storage)


def settings() -> dict[str, Any]:
    """For ``saq mediasvc.jobs.worker.settings``: build from the environment at call time, never at import."""
    return worker_settings()
