"""The host services of the public plugin API (``mediasvc.plugin``) that are more than a re-export.

Thin, stable wrappers over private core functions: a plugin calls these, so the functions behind them may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from saq import Queue

    from mediasvc.plugins import PluginHost
    from mediasvc.settings import Settings


def plugin_section(host: PluginHost, name: str) -> Any:
    """The validated settings section ``[plugins.<name>]`` a plugin declared with ``register_settings``."""
    return host.plugin_settings[name]


async def emit_event(event_type: str, data: dict[str, Any], *, tenant_id: UUID | None) -> UUID:
    """Write an event to the outbox. Call it inside the transaction that makes the fact true, then
    ``kick_events`` after it commits so the sinks deliver it at once (the dispatcher would find it anyway)."""
    from mediasvc import events

    return await events.emit(event_type, data, tenant_id=tenant_id)


async def kick_events(queue: Queue) -> None:
    """Wake the event dispatcher (after the transaction that emitted has committed)."""
    from mediasvc import events

    await events.kick(queue)


async def schedule_steps(queue: Queue, settings: Settings, host: PluginHost, asset_id: UUID,
                         steps: list[str] | None = None) -> list[UUID]:
    """Run ``steps`` (default: the asset's profile steps) on an asset as processing jobs; returns the job ids."""
    from mediasvc.processing import schedule_processing

    return await schedule_processing(queue, settings, host, asset_id, steps)


async def enqueue(queue: Queue, settings: Settings, name: str, *, timeout: int | None = None,
                  retries: int | None = None, heartbeat: int | None = None, key: str | None = None,
                  **kwargs: Any) -> None:
    """Queue one of the plugin's own jobs (registered with ``register_jobs``) by its namespaced name, with an
    explicit timeout and retries with backoff (defaults from ``[queue]``), never SAQ's 10 s default."""
    from mediasvc.queue import enqueue_job

    await enqueue_job(queue, settings, name, timeout=timeout, retries=retries, heartbeat=heartbeat, key=key,
                      **kwargs)
