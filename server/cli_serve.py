"""Running the service: `mediasvc dev` (everything in one process), `mediasvc serve` (the API under Granian) and
`mediasvc healthcheck`. `mediasvc worker` lives in ``mediasvc.cli`` (only the entry point imports the worker)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import click

from mediasvc.cli_common import CliError, data_dir_of, settings_for, step
from mediasvc.cli_database import connected, migrated
from mediasvc.settings import Settings, ensure_secret_key


def server_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory "
                            "(local storage, secret key; embedded PostgreSQL for `dev`).")(function)
    function = click.option("--port", type=int, help="Port to listen on (default 8000).")(function)
    function = click.option("--host", help="Address to bind (default 127.0.0.1).")(function)
    return function


@click.command()
@server_options
@click.pass_context
def dev(ctx: click.Context, host: str | None, port: int | None, data_dir: str | None) -> None:
    """Run everything in one process with zero external services.

    Embedded PostgreSQL (database and job queue) and local storage under the data directory (default ./data),
    the API and the worker together. Prints the URL, and an API key on first start.
    """
    from mediasvc.embedded import start_embedded_postgres

    started = time.perf_counter()
    data = data_dir_of(ctx, data_dir)
    data.mkdir(parents=True, exist_ok=True)
    click.echo(f"mediasvc dev: data in {data}", err=True)
    done = step("starting embedded PostgreSQL")
    database_url = start_embedded_postgres(data / "postgres")
    done()
    os.environ["MEDIASVC_DATABASE_URL"] = database_url
    settings = settings_for(ctx, host=host, port=port, data_dir=str(data), database_url=database_url,
                            run_worker_in_app=True, log_format="text")
    settings = ensure_secret_key(settings, single_host=True)  # one process: a generated key is enough
    done = step("applying migrations")
    asyncio.run(_migrate_quietly(settings))
    done()
    key = asyncio.run(connected(settings, _first_api_key))
    if key:
        click.echo(f"\n  API key for tenant 'default' (shown once): {key}\n", err=True)
    _serve_embedded(settings, started)


async def _migrate_quietly(settings: Settings) -> None:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        await migrated(settings)


async def _first_api_key() -> str | None:
    from mediasvc.auth import create_api_key
    from mediasvc.tables import ApiKey

    if await ApiKey.count() > 0:
        return None
    key, _ = await create_api_key("default", name="dev")
    return key


def _serve_embedded(settings: Settings, started: float) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    from mediasvc.app import create_app
    from mediasvc.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    server = Server(app, address=settings.host, port=settings.port, interface=Interfaces.ASGI,
                    log_enabled=False)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        serving = asyncio.create_task(server.serve())
        await _wait_until_listening(settings.host, settings.port)
        click.echo(f"mediasvc dev ready in {time.perf_counter() - started:.1f}s: "
                   f"http://{settings.host}:{settings.port}  (API /api/v1, docs /schema, health /health)", err=True)
        await serving

    asyncio.run(run())


async def _wait_until_listening(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


@click.command()
@server_options
@click.option("--workers", type=int, default=1, show_default=True, help="Granian worker processes.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, data_dir: str | None, workers: int) -> None:
    """Serve the API with Granian (ASGI). Run `mediasvc worker` beside it for background jobs.

    On SIGTERM /health answers 503 `draining` for shutdown.drain_seconds, then in-flight requests get up to
    shutdown.timeout_seconds to finish.
    """
    from granian.constants import Interfaces

    from mediasvc.cli_granian import DrainingGranian
    from mediasvc.draining import DRAIN_MARKER_ENV, DrainState

    settings = settings_for(ctx, host=host, port=port, data_dir=data_dir)
    _export(settings, host=host, port=port, data_dir=data_dir)
    ensure_secret_key(settings)
    _check_app(settings)
    marker_dir = Path(tempfile.mkdtemp(prefix="mediasvc-serve-"))
    os.environ[DRAIN_MARKER_ENV] = str(marker_dir / "draining")  # read by each Granian worker's app
    click.echo(f"mediasvc serving on http://{settings.host}:{settings.port}", err=True)
    try:
        DrainingGranian("mediasvc.asgi:app", address=settings.host, port=settings.port,
                        interface=Interfaces.ASGI, workers=workers, factory=True,
                        drain=DrainState.from_environment(), shutdown=settings.shutdown).serve()
    finally:
        shutil.rmtree(marker_dir, ignore_errors=True)


def _export(settings: Settings, **given: Any) -> None:
    """Pass command-line overrides to Granian's worker processes, which build settings from the environment."""
    for key, value in given.items():
        if value is not None:
            os.environ[f"MEDIASVC_{key.upper()}"] = str(value)


_CHECK_APP = """
import sys
from mediasvc.app import create_app
from mediasvc.errors import ConfigurationError
from mediasvc.settings import SettingsError
try:
    create_app()
except (ConfigurationError, SettingsError) as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""


def _check_app(settings: Settings) -> None:
    """Build the app once, in a child process, so a bad setting or plugin stops `serve` with its message. In the
    parent it would keep every import (PyAV, Pillow...) resident in a process that serves nothing."""
    result = subprocess.run([sys.executable, "-c", _CHECK_APP], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CliError(result.stderr.strip().splitlines()[-1] if result.stderr.strip()
                       else "the app failed to start")


@click.command()
@click.option("--role", type=click.Choice(["auto", "serve", "worker"]), default="auto", show_default=True,
              help="Which /health to ask; auto: `worker` when the container's main process runs `mediasvc worker`.")
@click.pass_context
def healthcheck(ctx: click.Context, role: str) -> None:
    """Exit 0 when the local `serve` (/health on `port`) or `worker` (/health on `worker_metrics_port`) is healthy."""
    from mediasvc.healthcheck import probe, resolve_target

    healthy, message = probe(resolve_target(settings_for(ctx), role))  # type: ignore[arg-type]
    click.echo(message, err=not healthy)
    ctx.exit(0 if healthy else 1)
