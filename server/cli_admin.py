"""Database commands: `mediasvc migrate` and `mediasvc apikey create|list|revoke`.

Each takes ``--data-dir``: without a configured database they use the embedded PostgreSQL of a `mediasvc dev`
running for that directory (``mediasvc.cli_database``). `mediasvc operator` lives in ``mediasvc.cli`` (it needs
the dashboard's auth, which only the entry point may import).
"""

from __future__ import annotations

import asyncio

import click

from mediasvc.cli_common import CliError, data_dir_option
from mediasvc.cli_database import connected, database_settings, migrated

DATA_DIR_HELP = ("Data directory of a running `mediasvc dev` whose embedded PostgreSQL to use when no database "
                 "is configured (default: MEDIASVC_DATA_DIR or ./data).")
database_data_dir = data_dir_option(DATA_DIR_HELP)


@click.command()
@database_data_dir
@click.pass_context
def migrate(ctx: click.Context, data_dir: str | None) -> None:
    """Create the database if needed and apply the core's and every plugin's migrations."""
    asyncio.run(migrated(database_settings(ctx, data_dir)))
    click.echo("migrations applied", err=True)


@click.group()
def apikey() -> None:
    """Create, list and revoke API keys (REST clients authenticate with `Authorization: Bearer <key>`)."""


@apikey.command("create")
@click.option("--tenant", required=True, help="Tenant slug; created if it does not exist.")
@click.option("--name", default="", help="A label to tell keys apart.")
@database_data_dir
@click.pass_context
def apikey_create(ctx: click.Context, tenant: str, name: str, data_dir: str | None) -> None:
    """Create a key. The key is printed alone on the last line, once; only its hash is stored."""
    from mediasvc.auth import create_api_key

    settings = database_settings(ctx, data_dir)
    key, info = asyncio.run(connected(settings, lambda: create_api_key(tenant, name)))
    click.echo(f"created key {info.prefix}… for tenant {tenant!r} (id {info.id})", err=True)
    click.echo(key)


@apikey.command("list")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@database_data_dir
@click.pass_context
def apikey_list(ctx: click.Context, tenant: str | None, data_dir: str | None) -> None:
    """List keys (prefix, tenant, name, created, last used, revoked)."""
    from mediasvc.auth import list_api_keys

    for info in asyncio.run(connected(database_settings(ctx, data_dir), lambda: list_api_keys(tenant))):
        revoked = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
        click.echo(f"{info.id}  {info.prefix}…  {info.tenant:<16} {info.name:<16} {revoked}")


@apikey.command("revoke")
@click.argument("key_id_or_prefix")
@database_data_dir
@click.pass_context
def apikey_revoke(ctx: click.Context, key_id_or_prefix: str, data_dir: str | None) -> None:
    """Revoke a key by id or by the prefix `apikey list` shows."""
    from mediasvc.auth import revoke_api_key

    count = asyncio.run(connected(database_settings(ctx, data_dir), lambda: revoke_api_key(key_id_or_prefix)))
    if not count:
        raise CliError(f"no active key matches {key_id_or_prefix!r}")
    click.echo(f"revoked {count} key(s)", err=True)
