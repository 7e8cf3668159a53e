"""The SAQ queues: Redis in production, the database itself (Postgres queue) for the embedded default.

Two queues, one pair: ``<name>`` runs processing and the other work requests ask for, ``<name>-housekeeping`` runs
the cron jobs and event dispatch with its own small concurrency (``queue.housekeeping_concurrency``), so neither
waits behind a transcode. ``create_queue`` returns the processing queue carrying its housekeeping queue:
connecting or disconnecting one does both, and every caller keeps passing one queue around.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from saq import Queue
from saq.queue.redis import RedisQueue

from mediasvc.errors import ServiceUnavailable
from mediasvc.settings import Settings
from mediasvc.timeouts import within

QUEUE_STATES = ("queued", "active", "incomplete")
HOUSEKEEPING_SUFFIX = "-housekeeping"


class _Paired:
    """Mixed into a SAQ queue class: the queue brings its housekeeping queue along."""

    housekeeping: Queue

    async def connect(self) -> None:
        await super().connect()  # type: ignore[misc]
        await self.housekeeping.connect()

    async def disconnect(self) -> None:
        try:
            await self.housekeeping.disconnect()
        finally:
            await super().disconnect()  # type: ignore[misc]


class _PairedRedisQueue(_Paired, RedisQueue):
    pass


@functools.cache
def _postgres_classes() -> tuple[type[Queue], type[Queue]]:
    """SAQ's Postgres queue and its paired variant, imported when a Postgres queue is first asked for."""
    from saq.queue.postgres import PostgresQueue

    class _PairedPostgresQueue(_Paired, PostgresQueue):
        pass

    return PostgresQueue, _PairedPostgresQueue


def housekeeping_name(settings: Settings) -> str:
    return settings.queue.name + HOUSEKEEPING_SUFFIX


def housekeeping_queue(queue: Queue) -> Queue:
    """Where cron jobs and event dispatch go: the queue's housekeeping queue (the queue itself for a queue that
    was not built by ``create_queue``, e.g. a plugin's own)."""
    return getattr(queue, "housekeeping", queue)


def create_queue(settings: Settings) -> Queue:
    """The processing queue, paired with its housekeeping queue (same backend, its own connection)."""
    url = settings.queue_url
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]  # SAQ picks the queue class by scheme prefix
    if url.startswith("postgres"):
        url = "postgresql://" + url[len("postgres://") :]  # psycopg wants postgresql://
        postgres_queue = _postgres_classes()
        queue: Any = postgres_queue[1].from_url(url, name=settings.queue.name, min_size=1, max_size=4)
        queue.housekeeping = postgres_queue[0].from_url(url, name=housekeeping_name(settings), min_size=1,
                                                        max_size=2)
        return queue
    queue = _PairedRedisQueue.from_url(url, name=settings.queue.name)
    queue.housekeeping = RedisQueue.from_url(url, name=housekeeping_name(settings))
    return queue


async def queue_depth(queue: Queue, timeout: float = 2.0) -> dict[str, int]:
    """Jobs queued / active / incomplete; raises ServiceUnavailable when the queue does not answer."""
    try:
        counts = await within(asyncio.gather(*[queue.count(state) for state in QUEUE_STATES]), timeout)
    except Exception as exc:
        raise ServiceUnavailable("queue unavailable", details={"component": "queue",
                                                               "reason": type(exc).__name__}) from exc
    return dict(zip(QUEUE_STATES, counts))


async def enqueue_job(queue: Queue, settings: Settings, name: str, *, timeout: int | None = None,
                      retries: int | None = None, heartbeat: int | None = None, key: str | None = None,
                      **kwargs: Any) -> None:
    """Enqueue with an explicit timeout and retries with exponential backoff: SAQ's defaults (10 s timeout, one
    attempt) would kill long work or drop transient failures. Jobs that report progress pass a ``heartbeat``."""
    options: dict[str, Any] = {
        "timeout": timeout if timeout is not None else settings.queue.default_timeout_seconds,
        "retries": retries if retries is not None else settings.queue.default_retries,
        "retry_delay": 1.0,
        "retry_backoff": True,
    }
    if heartbeat:
        options["heartbeat"] = heartbeat
    if key:
        options["key"] = key
    await queue.enqueue(name, **options, **kwargs)
