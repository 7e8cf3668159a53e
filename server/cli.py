"""The ``mediasvc`` command: the group and its entry point; the commands live beside it by concern.

- ``mediasvc.cli_serve``: ``dev``, ``serve``, ``healthcheck``
- ``mediasvc.cli_admin``: ``migrate``, ``apikey`` (database commands, with ``--data-dir``)
- ``mediasvc.cli_plugins``: ``plugins``, ``models``
- here: ``worker`` and ``operator``, whose imports (the worker's wiring, the dashboard's auth) only the entry point
  may make (tests/test_import_graph.py).

Every failure a user can act on is one line on stderr, ``mediasvc: <message>``, and exit status 1: bad settings,
a misconfigured plugin, an unreachable database. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import asyncpg
import click

from mediasvc.cli_admin import DATA_DIR_HELP, apikey, migrate
from mediasvc.cli_common import CliError, data_dir_option, settings_for
from mediasvc.cli_database import connected, database_settings
from mediasvc.cli_plugins import models, plugins
from mediasvc.cli_serve import dev, healthcheck, serve
from mediasvc.errors import ConfigurationError, MediaServiceError
from mediasvc.settings import SettingsError


def one_line(exc: BaseException) -> str | None:
    """The one-line message for an error a user can act on; None for anything else (a bug: keep the traceback)."""
    if isinstance(exc, MediaServiceError):
        return exc.message
    if isinstance(exc, asyncpg.UndefinedTableError):
        return f"database: {' '.join(str(exc).split())} (run `mediasvc migrate`)"
    if isinstance(exc, asyncpg.PostgresError):
        return f"database: {' '.join(str(exc).split())}"
    if isinstance(exc, (ConfigurationError, SettingsError, OSError)):
        return " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever the message holds
    return None


class MediasvcGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            message = one_line(exc)
            if message is None:
                raise
            raise CliError(message) from None


@click.group(cls=MediasvcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False), envvar="MEDIASVC_CONFIG",
              help="TOML settings file (env: MEDIASVC_CONFIG). MEDIASVC_* variables override it.")
@click.version_option(package_name="mediasvc")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """mediasvc: a self-hostable media service.

    \b
    Quick start (no external services):   mediasvc dev
    Production:                           mediasvc migrate && mediasvc serve   (and: mediasvc worker)
    """
    ctx.ensure_object(dict)["config"] = config
    if config:  # child processes (Granian workers, the start-up check) read settings from the environment
        os.environ["MEDIASVC_CONFIG"] = config


for command in (dev, serve, healthcheck, migrate, plugins, models, apikey):
    main.add_command(command)


@main.command()
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Port for this worker's /metrics and /health (default: worker_metrics_port; 0: off; "
                   "the image sets 8001).")
@click.pass_context
def worker(ctx: click.Context, metrics_port: int | None) -> None:
    """Run a SAQ worker for background jobs (processing, event delivery, cleanup); /health, /metrics on its port."""
    from mediasvc.jobs.worker import worker_settings
    from mediasvc.logs import configure_logging
    from mediasvc.metrics import Metrics
    from mediasvc.worker_http import run_worker

    settings = settings_for(ctx, worker_metrics_port=metrics_port)
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()
    options = worker_settings(settings, metrics=metrics)
    click.echo(f"mediasvc worker on queue {settings.queue.name!r} ({len(options['functions'])} jobs)", err=True)
    asyncio.run(run_worker(options, metrics, settings.host, settings.worker_metrics_port))


@main.group()
def operator() -> None:
    """Dashboard operators (sign in at /dashboard): admins act, viewers read; a tenant scope limits what they see."""


@operator.command("create")
@click.option("--email", required=True, help="Sign-in email (unique).")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer", show_default=True)
@click.option("--tenant", default=None, help="Tenant slug to limit the operator to (default: every tenant).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@data_dir_option(DATA_DIR_HELP)
@click.pass_context
def operator_create(ctx: click.Context, email: str, role: str, tenant: str | None, password_stdin: bool,
                    data_dir: str | None) -> None:
    """Create an operator. Without --password-stdin the password is asked twice, never echoed."""
    from mediasvc.dashboard.auth import create_operator

    async def create() -> Any:  # connected first: an unreachable database fails before the password prompt
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return await create_operator(email, password, role, tenant)

    operator_id = asyncio.run(connected(database_settings(ctx, data_dir), create))
    scope = f"tenant {tenant!r}" if tenant else "every tenant"
    click.echo(f"created {role} {email.strip().lower()} for {scope} (id {operator_id})", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
