"""Apply the core's and every plugin's Piccolo migrations to the configured database."""

from __future__ import annotations

import os

import asyncpg

from mediasvc.settings import Settings

PICCOLO_CONF_MODULE = "mediasvc.piccolo_conf"


async def ensure_database_exists(database_url: str) -> bool:
    """Create the target database when the server is up but the database is not; True if created."""
    try:
        conn = await asyncpg.connect(database_url)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return True


async def run_migrations(settings: Settings) -> list[str]:
    """Run forwards for all apps; return Piccolo's messages. Must run in a process whose settings are these."""
    os.environ["PICCOLO_CONF"] = PICCOLO_CONF_MODULE
    os.environ["MEDIASVC_DATABASE_URL"] = settings.database_url
    await ensure_database_exists(settings.database_url)
    from piccolo.apps.migrations.commands.forwards import run_forwards

    result = await run_forwards(app_name="all", migration_id="all")
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}")
    return [result.message]
