"""The database engine: built from settings, bound to every table of the core and plugins."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

from server.errors import ServiceUnavailable


def engine_for(database_url: str) -> PostgresEngine:
    # asyncpg understands postgres URLs, including unix sockets (?host=/path), as a dsn.
    return PostgresEngine(config={"dsn": database_url}, log_queries=False)


def bind_tables(engine: PostgresEngine, tables: Iterable[type[Table]]) -> None:
    """Point tables at this app's engine instead of the one piccolo_conf names (one engine per app)."""
    for table in tables:
        table._meta.db = engine


async def open_pool(engine: PostgresEngine, *, max_size: int = 10) -> None:
    await engine.start_connection_pool(min_size=1, max_size=max_size, command_timeout=60)


async def close_pool(engine: PostgresEngine) -> None:
    await engine.close_connection_pool()


async def check_database(engine: PostgresEngine, timeout: float = 2.0) -> None:
    """Raise ServiceUnavailable when a trivial query does not answer within ``timeout`` seconds."""
    try:
        await asyncio.wait_for(engine._run_in_pool("SELECT 1"), timeout=timeout)
    except Exception as exc:  # any failure means the database is not usable right now
        raise ServiceUnavailable("database unavailable", details={"component": "database",
                                                                  "reason": type(exc).__name__}) from exc
