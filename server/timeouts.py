"""Bounded waits that return on time even when the awaited work is slow to cancel.

``asyncio.wait_for`` waits for the cancelled task to finish; a driver stuck in a connect retry loop can hold a
health check for a minute. Here the task is cancelled and left to finish on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "exception not retrieved"
        raise TimeoutError(f"no answer within {timeout}s")
    return task.result()
