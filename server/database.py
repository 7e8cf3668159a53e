"""The database engine: built from settings, bound to every table of the core and plugins."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

from mediasvc.errors import ServiceUnavailable
from mediasvc.timeouts import within


class DeferredCheckEngine(PostgresEngine):
    """Piccolo's engine connects synchronously in ``__init__`` to check the server version (on a side thread,
    blocking the caller up to the connect timeout). Here that check waits until the pool opens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._constructing = True
        super().__init__(*args, **kwargs)
        self._constructing = False

    async def check_version(self) -> None:
        if not self._constructing:
            await super().check_version()

    async def prep_database(self) -> None:
        if not self._constructing:
            await super().prep_database()


def engine_for(database_url: str) -> PostgresEngine:
    # asyncpg understands postgres URLs, including unix sockets (?host=/path), as a dsn.
    return DeferredCheckEngine(config={"dsn": database_url}, log_queries=False)


def bind_tables(engine: PostgresEngine, tables: Iterable[type[Table]]) -> None:
    """Point tables at this app's engine instead of the one piccolo_conf names (one engine per app)."""
    for table in tables:
        table._meta.db = engine


async def open_pool(engine: PostgresEngine, *, max_size: int = 10) -> None:
    await engine.start_connection_pool(min_size=1, max_size=max_size, command_timeout=60)
    await engine.check_version()


async def close_pool(engine: PostgresEngine, timeout: float = 10.0) -> None:
    """Close gracefully; connections still held after ``timeout`` (a job stuck mid-query) are terminated."""
    pool = engine.pool
    if pool is None:
        return
    try:
        await within(pool.close(), timeout)
    except TimeoutError:
        pool.terminate()
    engine.pool = None


async def check_database(engine: PostgresEngine, timeout: float = 2.0) -> None:
    """Raise ServiceUnavailable when a trivial query does not answer within ``timeout`` seconds."""
    try:
        await within(engine._run_in_pool("SELECT 1"), timeout)
    except Exception as exc:  # any failure means the database is not usable right now
        raise ServiceUnavailable("database unavailable", details={"component": "database",
                                                                  "reason": type(exc).__name__}) from exc
