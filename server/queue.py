"""The SAQ queue: Redis in production, the database itself (Postgres queue) for the embedded default."""

from __future__ import annotations

import asyncio
from typing import Any

from saq import Queue

from mediasvc.errors import ServiceUnavailable
from mediasvc.settings import Settings
from mediasvc.timeouts import within

QUEUE_STATES = ("queued", "active", "incomplete")


def create_queue(settings: Settings) -> Queue:
    url = settings.queue_url
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]  # SAQ picks the queue class by scheme prefix
    kwargs: dict[str, Any] = {"name": settings.queue.name}
    if url.startswith("postgres"):
        kwargs.update(min_size=1, max_size=4)
        url = "postgresql://" + url[len("postgres://") :]  # psycopg wants postgresql://
        from saq.queue.postgres import PostgresQueue

        return PostgresQueue.from_url(url, **kwargs)
    return Queue.from_url(url, **kwargs)


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
