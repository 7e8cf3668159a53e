"""mediasvc-logsink: every event as one structured record on the ``mediasvc.events`` logger.

The entry point is this module; it implements ``register_event_sinks``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mediasvc.plugin import hookimpl

if TYPE_CHECKING:
    from mediasvc.plugin import Event, Settings

log = logging.getLogger("mediasvc.events")


class LogSink:
    """Accepts every event; delivering is logging it, so it never fails and has no status."""

    name = "log"

    def accepts(self, event_type: str) -> bool:
        return True

    async def deliver(self, event: Event) -> None:
        log.info(
            "event",
            extra={
                "event_id": str(event.id),
                "event_type": event.type,
                "tenant_id": str(event.tenant_id) if event.tenant_id is not None else None,
                "data": event.data,
            },
        )


@hookimpl
def register_event_sinks(settings: Settings) -> list[LogSink]:
    return [LogSink()]
