"""The watch over a running step: a heartbeat that proves progress, not only a live event loop.

While the step's progress moves, the SAQ job is touched every ``heartbeat_seconds / 4`` (a worker that dies stops
touching it, and the sweeps recover its step). When the progress has not moved for the step's stall bound, the
watch stops touching the job and raises ``StepStalled``: ``run_step`` cancels the processor and the attempt fails
(and is retried) with "no progress for N s". A processor that swallows its cancellation is waited for at most
``CANCEL_GRACE`` seconds, then left behind: the step never hangs on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger("mediasvc.processing")

T = TypeVar("T")
CANCEL_GRACE = 10.0  # seconds a cancelled processor gets to stop before the step goes on without it
STALL_CHECK_MAX = 5.0  # the stall is checked at least this often (seconds)


class StepStalled(Exception):
    """The step's progress did not move for its stall bound, while its worker was alive."""


def stall_seconds(processor: Any, settings: Any) -> float:
    """The processor's own ``stall_seconds`` when it sets one, else ``queue.stall_seconds``; 0: never stalls."""
    own = getattr(processor, "stall_seconds", None)
    return float(settings.queue.stall_seconds if own is None else own)


async def heartbeat(saq_job: Any, seconds: float, progress_at: Callable[[], float], stall: float) -> None:
    """Touch ``saq_job`` while ``progress_at()`` (a ``time.monotonic`` stamp of the last progress) is recent;
    raise ``StepStalled`` when it is ``stall`` seconds old. Never returns otherwise: cancel it."""
    beat = max(0.2, seconds / 4) if saq_job is not None and seconds else 0.0
    check = max(0.05, min(stall / 4, STALL_CHECK_MAX)) if stall else 0.0
    if not beat and not check:
        await asyncio.Event().wait()
    interval = min(x for x in (beat, check) if x)
    next_beat = time.monotonic() + beat
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic()
        if stall and now - progress_at() >= stall:
            raise StepStalled(f"no progress for {stall:.0f} s")
        if beat and now >= next_beat:
            next_beat = now + beat
            try:
                await asyncio.wait_for(saq_job.update(), timeout=max(1.0, seconds))
            except Exception as exc:  # noqa: BLE001 - a queue hiccup must not fail the step; the next beat retries
                log.warning("heartbeat of %s failed: %r", saq_job.key, exc)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a task left behind must not log "exception was never retrieved"


async def run_watched(work: Awaitable[T], watch: Awaitable[None]) -> T:
    """``await work`` while ``watch`` runs beside it; if ``watch`` raises first (``StepStalled``), ``work`` is
    cancelled and that error raised. Either task is cancelled on the way out, and awaited for a bounded time."""
    work_task = asyncio.ensure_future(work)
    watch_task = asyncio.ensure_future(watch)
    try:
        done, _ = await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
        if work_task in done:
            return work_task.result()
        watch_task.result()  # raises StepStalled
        raise RuntimeError("the step's watch ended without a reason")
    finally:
        for task in (watch_task, work_task):
            task.cancel()
            task.add_done_callback(_retrieve)
        _, pending = await asyncio.wait({work_task, watch_task}, timeout=CANCEL_GRACE)
        if pending:
            log.warning("a cancelled step did not stop within %ss; it is left behind", CANCEL_GRACE)
