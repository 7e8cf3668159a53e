"""One writer per upload across every API instance: a PostgreSQL session advisory lock.

The lock is taken with ``pg_try_advisory_lock`` on a connection held for the whole request, from a small pool
of its own: never from the app's pool, so requests holding locks while they stream can never starve the pool
that the same requests need for their queries. A second request for the same upload fails at once with 423
Locked. Releasing the connection to the pool resets it (asyncpg runs ``pg_advisory_unlock_all()``), and if the
process dies PostgreSQL ends the session and the lock goes with it.

The lock pool holds at most ``MAX_LOCK_CONNECTIONS`` connections per process (requests writing right now; idle
ones close after a minute): count them in PostgreSQL's ``max_connections`` beside the app's pool. A
transaction-pooling PgBouncer in front of PostgreSQL breaks session locks: point ``database_url`` at
PostgreSQL or at a session-pooling bouncer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

from mediasvc.errors import ServiceUnavailable
from mediasvc.ingest.tus_errors import Locked

MAX_LOCK_CONNECTIONS = 64
ACQUIRE_TIMEOUT_SECONDS = 30.0
IDLE_SECONDS = 60.0

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncpg.Pool]] = (
    weakref.WeakKeyDictionary()
)


def lock_key(upload_id: UUID) -> int:
    """A signed 64-bit key for ``upload_id`` in a namespace of its own (other features use other prefixes)."""
    digest = hashlib.blake2b(b"mediasvc.tus:" + upload_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _pool(database_url: str) -> asyncpg.Pool:
    loop = asyncio.get_running_loop()
    pools = _pools.setdefault(loop, {})
    pool = pools.get(database_url)
    if pool is None or pool._closed:  # asyncpg has no public 'is closed'
        pool = asyncpg.create_pool(database_url, min_size=0, max_size=MAX_LOCK_CONNECTIONS,
                                   max_inactive_connection_lifetime=IDLE_SECONDS)
        pools[database_url] = pool
    await pool  # initialises once; a no-op afterwards
    return pool


async def close_lock_pools() -> None:
    """Close this event loop's lock pools (app shutdown); they are recreated on the next lock."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    for pool in pools.values():
        await pool.close()


@asynccontextmanager
async def upload_lock(database_url: str, *upload_ids: UUID) -> AsyncIterator[None]:
    """Hold the locks of ``upload_ids`` (all or none) for the body of the ``with``; 423 when one is taken."""
    try:
        pool = await _pool(database_url)
        conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise ServiceUnavailable("database unavailable for the upload lock",
                                 details={"component": "database", "reason": type(exc).__name__}) from exc
    try:
        for upload_id in upload_ids:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(upload_id)):
                raise Locked(f"Upload {upload_id} is being written by another request; retry later",
                             details={"upload_id": str(upload_id)}, headers={"Retry-After": "1"})
        yield
    finally:
        # release() resets the session (pg_advisory_unlock_all); a broken connection is dropped, and its
        # session's locks with it. Shielded: a cancelled request must still give its lock back.
        await asyncio.shield(_release(pool, conn))


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    try:
        await conn.execute("SELECT pg_advisory_unlock_all()")
        await pool.release(conn)
    except Exception:  # the connection is broken: terminate it, PostgreSQL drops its locks
        conn.terminate()
        with contextlib.suppress(Exception):
            await pool.release(conn)
